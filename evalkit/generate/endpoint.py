"""Generation through an OpenAI-compatible server: `vllm serve`, TGI, `transformers serve`, Ollama, a hosted API.

A panel that outgrows one process is decoded on a serving engine, not on a loop of ours: evalkit sends one
`/v1/chat/completions` request per completion, at most `concurrency` at a time, and the server batches them.
What this module promises:

- Every answer is written to an on-disk cache as soon as it arrives (one file per response, written to a
  temporary name and renamed, so a crash never leaves half a file). The key is the request body itself:
  the endpoint's model name, the messages and the decoding parameters. An interrupted run resumes where it
  stopped and a rerun sends no request. The base URL is not in the key, so the same model served on
  another host or port is the same answer.
- Every attempt has a wall-clock deadline (`timeout_s`, connection to last byte: `evalkit.generate.deadline`)
  and a size cap (`max_response_bytes`: the body is read as it streams and dropped at the cap).
- A timeout, a connection error, a 429 or 5xx status, or a body that is not a chat completion is retried
  with bounded exponential backoff; after the last attempt the run stops with one `EvalkitError` line
  naming the endpoint and what went wrong, and every answer received before stays in the cache. An answer
  over the cap, or with values out of range (`evalkit.generate.answer`), is refused at once and never cached.
- Ctrl-C cancels the requests in flight: the run stops within a fraction of a second, not when they end.
- The API key is read from the environment variable the suite names, sent as a bearer token, and never
  written to results, reports, logs or error messages: a server that echoes it, as it is or encoded, has it
  masked in messages and in the answers kept, and the run's results count the answers masked.
- Determinism is stated, not assumed (`determinism`): a server may batch concurrent requests together and
  round differently, and sampling seeds are honoured per request by some servers only.

HTTP goes through `httpx2`, the client `huggingface_hub` (and so transformers) already installs: a
thread-safe connection pool with per-request timeouts, and no second client library to pin.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from evalkit.config.specs import SamplingSpec
from evalkit.data.pairs import Message
from evalkit.data.rendering import PLAIN, Rendering
from evalkit.errors import EvalkitError
from evalkit.generate.answer import (
    ChatResponse,
    KeptAnswer,
    KeyMask,
    Malformed,
    Refused,
    ResponseCache,
    read_answer,
)
from evalkit.generate.deadline import Cancelled, deadline, keep_deadlines
from evalkit.generate.decode import Sample
from evalkit.generate.panel import PanelPrompt


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one served model."""

    base_url: str
    """The API root, ending in `/v1` (e.g. `http://127.0.0.1:8000/v1`)."""
    model: str
    """The served model name, as the server lists it under `/v1/models`."""
    api_key_env: str | None = None
    """The environment variable holding the API key; None: no key is sent (a local server)."""
    concurrency: int = 4
    """Requests in flight at once; the server batches them."""
    timeout_s: float = 120.0
    """Seconds one attempt may take, connection to last byte, however slowly the server sends."""
    max_response_bytes: int = 8 * 2**20
    """The longest answer body read; a longer one is refused (a chat completion of thousands of tokens with
    their top log-probs is well under 1 MiB)."""
    retries: int = 3
    """Further attempts after a failed one."""
    backoff_s: float = 0.5
    """Wait before the first retry; doubled at each further one."""
    max_backoff_s: float = 8.0
    """The longest wait between two attempts."""
    cache_dir: Path | None = None
    """Where answers are kept; None: no cache (every run asks again)."""
    honours_seed: bool = False
    """Whether the server applies a request's `seed` to that request alone (vLLM does; `transformers serve`
    sets one global torch seed that concurrent requests share)."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for."""

    messages: list[Message]
    max_tokens: int
    temperature: float = 0.0
    """0: greedy."""
    top_p: float | None = None
    seed: int | None = None
    top_logprobs: int | None = None
    """Ask for the first tokens' top log-probabilities (a judge's verdict); None: no log-probs."""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Determinism:
    """Whether a backend can promise the same completions on a rerun with an empty cache."""

    deterministic: bool
    reason: str


def determinism(endpoint: Endpoint, sampling: SamplingSpec | None) -> Determinism:
    """What a server can promise for this decoding. The cache makes any rerun repeat its answers; this is
    about a fresh run."""
    if sampling is not None and not endpoint.honours_seed:
        return Determinism(False, "sampling on a server that does not apply per-request seeds")
    if sampling is not None:
        return Determinism(False, "seeded sampling on a server: reproducible only where it applies each seed alone")
    if endpoint.concurrency > 1:
        return Determinism(False, "greedy, but concurrent requests may be batched together and round differently")
    return Determinism(True, "greedy, one request at a time")


def request_body(endpoint: Endpoint, request: ChatRequest) -> dict[str, Any]:
    """The JSON body of a request; also its cache key. Optional fields are left out when unset: hosted APIs
    reject parameters they do not know (`chat_template_kwargs` is vLLM's and transformers serve's)."""
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.seed is not None:
        body["seed"] = request.seed
    if request.top_logprobs is not None:
        body |= {"logprobs": True, "top_logprobs": request.top_logprobs}
    if request.chat_template_kwargs:
        body["chat_template_kwargs"] = request.chat_template_kwargs
    return body


@dataclass(frozen=True)
class Route:
    """One kind of request: where it is posted and how its answer is checked before it is used or kept."""

    path: str
    """Relative to the API root: `chat/completions`, `completions`."""
    check: Callable[[Any, dict[str, Any]], object]
    """Reads `(answer, request body)`; raises `Malformed` (retried) or `Refused` (the run stops at once)."""
    what: str
    """What a valid answer is, for messages: `a chat completion`."""


CHAT = Route("chat/completions", lambda answer, body: read_answer(answer, body["max_tokens"]), "a chat completion")


class _Retryable(Exception):
    """A failure another attempt may cure (timeout, connection, 429, 5xx, a body that is not an answer)."""


class EndpointClient:
    """Sends chat completions to one endpoint, through the cache, `concurrency` at a time."""

    def __init__(self, endpoint: Endpoint, transport: httpx2.BaseTransport | None = None) -> None:
        self.endpoint = endpoint
        key = read_api_key(endpoint.api_key_env)
        self._mask = KeyMask(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx2.Client(
            base_url=endpoint.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=endpoint.timeout_s,
            limits=httpx2.Limits(max_connections=endpoint.concurrency),
            transport=transport,
        )
        keep_deadlines(self._http)
        self._cache = ResponseCache(endpoint.cache_dir) if endpoint.cache_dir is not None else None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self.requests_sent = 0
        """HTTP requests sent so far, retries included (a fully cached run sends none)."""
        self.answers_redacted = 0
        """Answers used in this run (cached ones included) in which the API key was found and masked."""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def complete(
        self, requests: Sequence[ChatRequest], on_answer: Callable[[int], None] | None = None
    ) -> list[ChatResponse]:
        """Chat answers in the order of `requests` (`exchange` on `/chat/completions`)."""
        bodies = [request_body(self.endpoint, r) for r in requests]
        kept = self.exchange(bodies, CHAT, on_answer)
        return [read_answer(body, r.max_tokens) for body, r in zip(kept, requests, strict=True)]

    def exchange(
        self,
        bodies: Sequence[dict[str, Any]],
        route: Route,
        on_answer: Callable[[int], None] | None = None,
        *,
        cached: bool = True,
    ) -> list[dict[str, Any]]:
        """Answers in the order of `bodies` (the key masked in them): cached ones read, the rest asked for, each
        cached on arrival. `on_answer(i)` is called as answer i arrives (a progress bar). On a failure that outlasts
        its retries, requests not yet sent are dropped, those in flight finish (and are cached), then it raises.
        On Ctrl-C (any BaseException) the requests in flight are cancelled and nothing is waited for. `cached=False`:
        the cache is neither read nor written (a probe of what the server can do now)."""
        answers = [self._cached(b, route) if cached else None for b in bodies]
        missing = [i for i, found in enumerate(answers) if found is None]
        if missing:
            failure: BaseException | None = None
            pool = ThreadPoolExecutor(max_workers=self.endpoint.concurrency)
            try:
                futures = {pool.submit(self._ask, bodies[i], route, cached): i for i in missing}
                for future in as_completed(futures):
                    error = None if future.cancelled() else future.exception()
                    if error is not None and failure is None:  # stop sending; what is in flight finishes, cached
                        failure = error
                        _cancel_pending(futures)
                    elif not future.cancelled() and error is None:
                        answers[futures[future]] = future.result()
                        if on_answer is not None:
                            on_answer(futures[future])
            except BaseException:  # Ctrl-C: the requests in flight let go of their sockets; no thread is awaited
                self._cancel.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
            if failure is not None:
                answered = sum(found is not None for found in answers)
                message = f"{failure}" if isinstance(failure, EvalkitError) else f"{self._where()}: {failure!r}"
                raise EvalkitError(self._scrub(f"{message}; {self._kept(answered, len(answers))}")) from None
        kept = [found for found in answers if found is not None]
        self.answers_redacted += sum(found.redacted for found in kept)
        return [found.body for found in kept]

    def get(self, url: str) -> Any:
        """A JSON document the server describes itself with (`models`, or `/version` beside the API root), in one
        attempt within the request deadline; None when it answers anything else (not every server has it)."""
        try:
            with deadline(self.endpoint.timeout_s, self._cancel):
                reply = self._http.get(url)
            return reply.json() if reply.status_code == 200 and len(reply.content) <= 2**20 else None
        except (httpx2.HTTPError, ValueError):
            return None

    def _cached(self, body: dict[str, Any], route: Route) -> KeptAnswer | None:
        """A cached answer that still reads as a valid one (an entry kept by an older evalkit may not): else a miss."""
        found = self._cache.get(body) if self._cache is not None else None
        if found is None:
            return None
        try:
            route.check(found.body, body)
        except (Malformed, Refused):
            return None
        masked, redacted = self._mask.value(found.body)
        return KeptAnswer(masked, found.redacted or redacted)

    def _ask(self, body: dict[str, Any], route: Route, cached: bool = True) -> KeptAnswer:
        """One request with its retries; the validated answer, the key masked in it, is cached before it is
        returned. A refused answer is neither retried nor cached."""
        endpoint = self.endpoint
        attempts = endpoint.retries + 1
        for attempt in range(attempts):
            try:
                answer = self._post(body, route)
            except _Retryable as failure:
                if attempt + 1 == attempts:
                    raise EvalkitError(f"{self._where()}: {failure} (after {attempts} attempts)") from None
                if self._cancel.wait(min(endpoint.max_backoff_s, endpoint.backoff_s * 2**attempt)):
                    raise Cancelled("the run was interrupted") from None
                continue
            masked, redacted = self._mask.value(answer)
            kept = KeptAnswer(masked, redacted)
            if self._cache is not None and cached:
                self._cache.put(body, kept)
            return kept
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _post(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        with self._lock:
            self.requests_sent += 1
        try:
            with deadline(self.endpoint.timeout_s, self._cancel):
                status, text = self._exchange(body, route.path)
        except httpx2.TimeoutException:
            raise _Retryable(f"no answer within {self.endpoint.timeout_s:g} s") from None
        except httpx2.TransportError as exc:
            raise _Retryable(f"cannot connect ({type(exc).__name__}: {self._line(str(exc))})") from None
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {self._line(text)}")
        if status >= 400:  # the request itself is wrong (bad model name, bad key): no retry helps
            raise EvalkitError(f"{self._where()}: HTTP {status}: {self._line(text)}")
        try:
            answer: dict[str, Any] = json.loads(text)
            route.check(answer, body)
        except (ValueError, Malformed):
            raise _Retryable(f"the answer is not {route.what}: {self._line(text)!r}") from None
        except Refused as refusal:
            raise EvalkitError(f"{self._where()}: refused an answer: {self._scrub(str(refusal))}") from None
        return answer

    def _exchange(self, body: dict[str, Any], path: str) -> tuple[int, str]:
        """Status and body text, the body read as it streams and dropped past `max_response_bytes`."""
        cap = self.endpoint.max_response_bytes
        with self._http.stream("POST", path, json=body) as reply:
            declared = reply.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise EvalkitError(self._too_long())
            chunks, size = [], 0
            for chunk in reply.iter_bytes():
                size += len(chunk)
                if size > cap:
                    raise EvalkitError(self._too_long())
                chunks.append(chunk)
        return reply.status_code, b"".join(chunks).decode("utf-8", errors="replace")  # JSON is UTF-8

    def _too_long(self) -> str:
        cap = self.endpoint.max_response_bytes
        return f"{self._where()}: refused an answer longer than max_response_bytes ({cap} bytes)"

    def _where(self) -> str:
        return f"endpoint {self.endpoint.base_url} (model {self.endpoint.model!r})"

    def _kept(self, answered: int, total: int) -> str:
        if self._cache is None:
            return f"{answered} of {total} answers received; set a cache directory to keep them between runs"
        return f"{answered} of {total} answers are kept in {self._cache.directory}; a rerun asks only for the rest"

    def _scrub(self, message: str) -> str:
        """A server may echo what it was sent; the key, in none of its encodings, reaches a message."""
        return self._mask.text(message)

    def _line(self, text: str) -> str:
        """A server's text as one short line, the key taken out before it is cut (a cut key would not match)."""
        return _first_line(self._scrub(text))


def _cancel_pending(futures: dict[Future[KeptAnswer], int]) -> None:
    for other in futures:
        other.cancel()


def read_api_key(variable: str | None) -> str | None:
    """The key in the environment variable `variable` (None: no key), checked as an HTTP header can carry it."""
    if variable is None:
        return None
    key = os.environ.get(variable, "").strip()  # a key read from a file often ends in a newline
    if not key:
        # Not named: a key pasted into `api_key_env` by mistake would be printed.
        raise EvalkitError("endpoint.api_key_env: the environment variable it names is not set")
    if not key.isprintable() or any(c.isspace() for c in key):
        raise EvalkitError("endpoint.api_key_env: the key in that variable holds spaces or control characters")
    if not key.isascii():  # an HTTP header carries ASCII only
        raise EvalkitError("endpoint.api_key_env: the key in that variable holds characters other than ASCII")
    return key


def _first_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def chat_messages(prompt: PanelPrompt) -> list[Message]:
    """The panel prompt as chat messages: a plain prompt is one user turn, as `render_prompt` renders it."""
    return [{"role": "user", "content": prompt.prompt}] if isinstance(prompt.prompt, str) else prompt.prompt


def generate_via_endpoint(
    client: EndpointClient,
    panel: Sequence[PanelPrompt],
    model_name: str,
    max_new_tokens: int,
    sampling: SamplingSpec | None,
    *,
    tokenizer: Any | None = None,
    rendering: Rendering = PLAIN,
    on_answer: Callable[[int], None] | None = None,
) -> list[Sample]:
    """The same `Sample` records as `evalkit.generate.decode.generate`, decoded by the server: greedy
    (temperature 0), or `sampling.k` samples per prompt, each with its own seed (from the suite's seed, the
    prompt's position and the sample's index, so it does not depend on the other prompts or models).

    The server renders the chat with the model's own template; the suite's template options travel as
    `chat_template_kwargs`. A pinned date cannot: a template that reads the clock renders the server's
    today. A server returns text, so `token_ids` are the completion re-tokenized with `tokenizer` (the
    served model's, EOS appended when the model ended its turn), and empty without one; `n_tokens` is the
    server's count when it reports usage. `ended` is the server's `finish_reason == "stop"`; transformers
    serve says `length` when the EOS is the last token allowed (it compares its count, EOS included, with
    `max_tokens`), so there such a completion reads as cut off.
    """
    rows = [(i, j) for i in range(len(panel)) for j in range(sampling.k if sampling else 1)]
    requests = [
        ChatRequest(
            messages=chat_messages(panel[i]),
            max_tokens=max_new_tokens,
            temperature=sampling.temperature if sampling else 0.0,
            top_p=sampling.top_p if sampling else None,
            seed=_sample_seed(sampling.seed, i, j) if sampling else None,
            chat_template_kwargs=dict(rendering.options),
        )
        for i, j in rows
    ]
    responses = client.complete(requests, on_answer)
    eos = getattr(tokenizer, "eos_token_id", None)
    samples = []
    for (i, j), response in zip(rows, responses, strict=True):
        ended = response.finish_reason == "stop"
        ids = list(tokenizer(response.content, add_special_tokens=False)["input_ids"]) if tokenizer else []
        if ended and eos is not None and tokenizer is not None:
            ids.append(int(eos))
        n_tokens = response.completion_tokens if response.completion_tokens is not None else len(ids)
        samples.append(Sample(panel[i].id, model_name, j, response.content, n_tokens, ended, ids))
    return samples


def _sample_seed(base: int, prompt_index: int, sample_index: int) -> int:
    return (base * 1_000_003 + prompt_index * 1_009 + sample_index) % (2**31)
