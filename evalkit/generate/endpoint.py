"""Generation through an OpenAI-compatible server: `vllm serve`, TGI, `transformers serve`, Ollama, a hosted API.

A panel that outgrows one process is decoded on a serving engine, not on a loop of ours: evalkit sends one
`/v1/chat/completions` request per completion, at most `concurrency` at a time, and the server batches them.
What this module promises:

- Every answer is written to an on-disk cache as soon as it arrives (one file per response, written to a
  temporary name and renamed, so a crash never leaves half a file). The key is the request body itself:
  the endpoint's model name, the messages and the decoding parameters. An interrupted run resumes where it
  stopped and a rerun sends no request. The base URL is not in the key, so the same model served on
  another host or port is the same answer.
- A timeout, a connection error, a 429 or 5xx status, or a body that is not a chat completion is retried
  with bounded exponential backoff; after the last attempt the run stops with one `EvalkitError` line
  naming the endpoint and what went wrong, and every answer received before stays in the cache.
- The API key is read from the environment variable the suite names, sent as a bearer token, and never
  written to results, reports, logs or error messages.
- Determinism is stated, not assumed (`determinism`): a server may batch concurrent requests together and
  round differently, and sampling seeds are honoured per request by some servers only.

HTTP goes through `httpx2`, the client `huggingface_hub` (and so transformers) already installs: a
thread-safe connection pool with per-request timeouts, and no second client library to pin.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from evalkit.config.specs import SamplingSpec
from evalkit.data.pairs import Message
from evalkit.data.rendering import PLAIN, Rendering
from evalkit.errors import EvalkitError
from evalkit.generate.decode import Sample
from evalkit.generate.panel import PanelPrompt
from evalkit.results.files import atomic_write_text


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
    """Seconds one request may take, connection to last byte."""
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
class ChatResponse:
    """What the server answered, reduced to what evalkit reads."""

    content: str
    finish_reason: str | None
    """`stop` (the model ended its turn), `length` (it hit `max_tokens`), or what the server says."""
    completion_tokens: int | None
    """The server's count of generated tokens (its EOS included), when it reports usage."""
    top_logprobs: list[dict[str, float]] | None
    """Per generated position, token text → log-prob of the most likely tokens; None when not given."""


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


class ResponseCache:
    """One JSON file per answered request, named by the SHA-256 of its canonical body."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(body: dict[str, Any]) -> str:
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        path = self._path(self.key(body))
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):  # absent, or damaged (edited by hand): asked again, and rewritten
            return None
        return entry.get("response") if entry.get("request") == body else None  # a hash collision reads as a miss

    def put(self, body: dict[str, Any], response: dict[str, Any]) -> None:
        entry = json.dumps({"request": body, "response": response}, ensure_ascii=False)
        atomic_write_text(self._path(self.key(body)), entry)  # a reader sees the whole answer or none


class _Retryable(Exception):
    """A failure another attempt may cure (timeout, connection, 429, 5xx, a body that is not an answer)."""


class EndpointClient:
    """Sends chat completions to one endpoint, through the cache, `concurrency` at a time."""

    def __init__(self, endpoint: Endpoint, transport: httpx2.BaseTransport | None = None) -> None:
        self.endpoint = endpoint
        self._key = _api_key(endpoint.api_key_env)
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._http = httpx2.Client(
            base_url=endpoint.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=endpoint.timeout_s,
            limits=httpx2.Limits(max_connections=endpoint.concurrency),
            transport=transport,
        )
        self._cache = ResponseCache(endpoint.cache_dir) if endpoint.cache_dir is not None else None
        self._lock = threading.Lock()
        self.requests_sent = 0
        """HTTP requests sent so far, retries included (a fully cached run sends none)."""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def complete(
        self, requests: Sequence[ChatRequest], on_answer: Callable[[int], None] | None = None
    ) -> list[ChatResponse]:
        """Answers in the order of `requests`: cached ones read, the rest asked for, each cached on arrival.
        `on_answer(i)` is called as answer i arrives (a progress bar). On a failure that outlasts its
        retries, requests not yet sent are dropped, those in flight finish (and are cached), then it raises."""
        bodies = [request_body(self.endpoint, r) for r in requests]
        raw: list[dict[str, Any] | None] = [self._cache.get(b) if self._cache else None for b in bodies]
        missing = [i for i, found in enumerate(raw) if found is None]
        if missing:
            failure: BaseException | None = None
            with ThreadPoolExecutor(max_workers=self.endpoint.concurrency) as pool:
                futures = {pool.submit(self._ask, bodies[i]): i for i in missing}
                for future in as_completed(futures):
                    if future.cancelled():
                        continue
                    error = future.exception()
                    if error is not None:
                        if failure is None:  # stop sending; what is in flight finishes and is cached
                            failure = error
                            for other in futures:
                                other.cancel()
                        continue
                    raw[futures[future]] = future.result()
                    if on_answer is not None:
                        on_answer(futures[future])
            if failure is not None:
                answered = sum(found is not None for found in raw)
                message = f"{failure}" if isinstance(failure, EvalkitError) else f"{self._where()}: {failure!r}"
                raise EvalkitError(self._scrub(f"{message}; {self._kept(answered, len(raw))}")) from None
        return [_response(found) for found in raw if found is not None]

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request with its retries; the validated answer is cached before it is returned."""
        endpoint = self.endpoint
        attempts = endpoint.retries + 1
        for attempt in range(attempts):
            try:
                answer = self._post(body)
            except _Retryable as failure:
                if attempt + 1 == attempts:
                    raise EvalkitError(f"{self._where()}: {failure} (after {attempts} attempts)") from None
                time.sleep(min(endpoint.max_backoff_s, endpoint.backoff_s * 2**attempt))
                continue
            if self._cache is not None:
                self._cache.put(body, answer)
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests_sent += 1
        try:
            reply = self._http.post("chat/completions", json=body)
        except httpx2.TimeoutException:
            raise _Retryable(f"no answer within {self.endpoint.timeout_s:g} s") from None
        except httpx2.TransportError as exc:
            raise _Retryable(f"cannot connect ({type(exc).__name__}: {self._line(str(exc))})") from None
        if reply.status_code == 429 or reply.status_code >= 500:
            raise _Retryable(f"HTTP {reply.status_code}: {self._line(reply.text)}")
        if reply.status_code >= 400:  # the request itself is wrong (bad model name, bad key): no retry helps
            raise EvalkitError(f"{self._where()}: HTTP {reply.status_code}: {self._line(reply.text)}")
        try:
            answer: dict[str, Any] = reply.json()
            _response(answer)
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"the answer is not a chat completion: {self._line(reply.text)!r}") from None
        return answer

    def _where(self) -> str:
        return f"endpoint {self.endpoint.base_url} (model {self.endpoint.model!r})"

    def _kept(self, answered: int, total: int) -> str:
        if self._cache is None:
            return f"{answered} of {total} answers received; set a cache directory to keep them between runs"
        return f"{answered} of {total} answers are kept in {self._cache.directory}; a rerun asks only for the rest"

    def _scrub(self, message: str) -> str:
        """A server may echo what it was sent; the key never reaches a message."""
        return message.replace(self._key, "***") if self._key else message

    def _line(self, text: str) -> str:
        """A server's text as one short line, the key taken out before it is cut (a cut key would not match)."""
        return _first_line(self._scrub(text))


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "").strip()  # a key read from a file often ends in a newline
    if not key:
        # Not named: a key pasted into `api_key_env` by mistake would be printed.
        raise EvalkitError("endpoint.api_key_env: the environment variable it names is not set")
    if not key.isprintable() or any(c.isspace() for c in key):
        raise EvalkitError("endpoint.api_key_env: the key in that variable holds spaces or control characters")
    return key


def _first_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _response(answer: dict[str, Any]) -> ChatResponse:
    """The fields evalkit reads; a KeyError, IndexError or TypeError when the body is not a chat completion."""
    choice = answer["choices"][0]
    content = choice["message"]["content"]
    if not isinstance(content, str):
        raise TypeError("message.content is not text")
    usage = answer.get("usage") or {}
    tokens = usage.get("completion_tokens")
    logprobs = choice.get("logprobs") or {}
    positions = logprobs.get("content")
    top = (
        [{entry["token"]: float(entry["logprob"]) for entry in position["top_logprobs"]} for position in positions]
        if positions
        else None
    )
    return ChatResponse(content, choice.get("finish_reason"), int(tokens) if tokens is not None else None, top)


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
