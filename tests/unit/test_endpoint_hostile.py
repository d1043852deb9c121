"""The endpoint client against loopback servers that misbehave on purpose: trickling bytes, huge bodies,
impossible log-probs and token counts, an echoed API key, and a run interrupted while requests are in flight."""

import base64
import json
import math
import re
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import EvalkitError
from evalkit.generate.endpoint import ChatRequest, Endpoint, EndpointClient, ResponseCache, generate_via_endpoint
from evalkit.generate.panel import PanelPrompt
from evalkit.judges.pairwise import EndpointJudge

Handler = Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]
"""Writes the whole raw answer (status line, headers, body) to the handler's socket, however it likes."""


class Hostile:
    """A loopback server whose `answer` writes each response; it counts the requests it read."""

    def __init__(self) -> None:
        self.answer: Handler = lambda handler, body: send(handler, completion("ok"))
        self.requests = 0
        self.url = ""
        self.closed = threading.Event()
        """Set at teardown: a trickle still going stops."""


@pytest.fixture()
def hostile() -> Iterator[Hostile]:
    state = Hostile()

    class Handle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests += 1
            try:
                state.answer(self, body)
            except (BrokenPipeError, ConnectionResetError):  # the client hung up: what the tests want
                self.close_connection = True

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    state.closed.set()
    server.shutdown()
    server.server_close()


def completion(content: str, tokens: Any = 3, logprobs: Any = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {"choices": [choice], "usage": {"completion_tokens": tokens}}


def send(handler: BaseHTTPRequestHandler, answer: dict[str, Any] | str, status: int = 200) -> None:
    payload = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def client(server: Hostile, tmp_path: Path, **options: Any) -> EndpointClient:
    settings: dict[str, Any] = {"timeout_s": 5.0, "retries": 0, "backoff_s": 0.01, "cache_dir": tmp_path / "cache"}
    return EndpointClient(Endpoint(server.url, "tiny", **(settings | options)))


def asks(*contents: str, max_tokens: int = 8) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": c}], max_tokens=max_tokens) for c in contents]


def cached_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache").rglob("*.json"))


def trickle(where: str, closed: threading.Event) -> Handler:
    """One byte every 0.1 s, in the status line or in the body, for 6 s (a read timeout never trips)."""

    def answer(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        payload = json.dumps(completion("ok")).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        slow = head if where == "status line" else payload
        if where == "body":
            handler.wfile.write(head)
        for i in range(min(len(slow), 60)):
            if closed.wait(0.1):
                return
            handler.wfile.write(slow[i : i + 1])
            handler.wfile.flush()
        handler.wfile.write(slow[60:] + (payload if where == "status line" else b""))

    return answer


@pytest.mark.parametrize("where", ["status line", "body"])
def test_a_trickling_server_meets_the_wall_clock_deadline(hostile: Hostile, tmp_path: Path, where: str) -> None:
    """Every read gets a byte well within `timeout_s`, so only a deadline on the whole request ends it: 0.5 s per
    attempt, two attempts (the retry policy holds), the run over in about a second, not six."""
    hostile.answer = trickle(where, hostile.closed)
    started = time.monotonic()
    with client(hostile, tmp_path, timeout_s=0.5, retries=1) as c, pytest.raises(EvalkitError) as err:
        c.complete(asks("x"))
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, elapsed
    assert f"endpoint {hostile.url} (model 'tiny'): no answer within 0.5 s (after 2 attempts)" in str(err.value)
    assert hostile.requests == 2 and cached_files(tmp_path) == []


def test_the_deadline_holds_through_a_proxy_from_the_environment(
    hostile: Hostile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx mounts its own transport for `HTTP_PROXY`; the deadline is kept there too (the trickling server is
    the proxy here: it reads the request for the unreachable host and trickles the answer)."""
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", hostile.url.removesuffix("/v1"))
    hostile.answer = trickle("body", hostile.closed)
    started = time.monotonic()
    proxied = Endpoint("http://models.invalid/v1", "tiny", timeout_s=0.5, retries=0)
    with EndpointClient(proxied) as c, pytest.raises(EvalkitError, match=r"no answer within 0\.5 s"):
        c.complete(asks("x"))
    assert hostile.requests == 1 and time.monotonic() - started < 1.5


def huge(declared: bool) -> Handler:
    """A valid chat completion whose answer is 100 MB of text, with or without a Content-Length."""

    def answer(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        head, tail = '{"choices":[{"message":{"role":"assistant","content":"', '"},"finish_reason":"stop"}]}'
        chunk, n = b"a" * 2**20, 100
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declared:
            handler.send_header("Content-Length", str(len(head) + n * len(chunk) + len(tail)))
        else:
            handler.send_header("Connection", "close")  # the body ends when the connection does
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(head.encode())
        for _ in range(n):
            handler.wfile.write(chunk)
        handler.wfile.write(tail.encode())

    return answer


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
def test_a_100_mb_answer_is_refused_at_the_cap(hostile: Hostile, tmp_path: Path, declared: bool) -> None:
    """Not read whole (it would cost memory per request in flight, and panic the tokenizer downstream), not
    retried (the server would send it again), not cached: one line naming the server and the cap."""
    hostile.answer = huge(declared)
    started = time.monotonic()
    with client(hostile, tmp_path, max_response_bytes=2**20, retries=2) as c, pytest.raises(EvalkitError) as err:
        c.complete(asks("x"))
    message = str(err.value)
    assert message.startswith(f"endpoint {hostile.url} (model 'tiny'): refused an answer longer than ")
    assert "max_response_bytes (1048576 bytes)" in message and "\n" not in message
    assert hostile.requests == 1 and cached_files(tmp_path) == []
    assert time.monotonic() - started < 3.0


def judged(logprob: Any, token: Any = "A") -> dict[str, Any]:
    entries = [{"token": token, "logprob": logprob}, {"token": "B", "logprob": -1.0}]
    return completion("A", logprobs=[{"token": "A", "logprob": -0.1, "top_logprobs": entries}])


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (judged(1000), "the top log-prob of token 'A' at position 0 is 1000; expected ≤ 0"),
        (judged(math.nan), "the top log-prob of token 'A' at position 0 is NaN; expected ≤ 0"),
        (judged("-0.5"), """the top log-prob of token 'A' at position 0 is "-0.5"; expected ≤ 0"""),
        (judged(-0.5, token=5), "a top log-prob token at position 0 is 5, not text"),
        (completion("A", logprobs=5), "logprobs.content 5 is not a list"),
    ],
    ids=["1000", "nan", "string", "token-not-text", "content-not-a-list"],
)
def test_a_judge_answer_with_impossible_log_probs_is_refused_and_never_cached(
    hostile: Hostile, tmp_path: Path, answer: dict[str, Any], expected: str
) -> None:
    """A log-prob of 1000 overflowed `exp` and a number for a token broke `.strip()`: crashes (exit 3) that the
    cache then kept, so a rerun crashed again. Now the answer is refused in one line (exit 2) and never kept."""
    hostile.answer = lambda handler, body: send(handler, answer)
    with client(hostile, tmp_path, retries=2) as c, pytest.raises(EvalkitError) as err:
        EndpointJudge("judge", c).verdicts([[{"role": "user", "content": "?"}]])
    assert str(err.value).startswith(f"endpoint {hostile.url} (model 'tiny'): refused an answer: {expected}; ")
    assert hostile.requests == 1 and cached_files(tmp_path) == []


def test_a_crashing_answer_an_older_evalkit_cached_is_asked_again(hostile: Hostile, tmp_path: Path) -> None:
    request = [{"role": "user", "content": "?"}]
    with client(hostile, tmp_path) as c:
        body = {"model": "tiny", "messages": request, "max_tokens": 8, "temperature": 0.0}
        body |= {"logprobs": True, "top_logprobs": 5}
        path = tmp_path / "cache" / ResponseCache.key(body)[:2] / f"{ResponseCache.key(body)}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"request": body, "response": judged(1000)}))
        hostile.answer = lambda handler, body: send(handler, judged(math.log(0.75)))
        [verdict] = EndpointJudge("judge", c).verdicts([request])
    # P(A) = 0.75 / (0.75 + e^-1)
    assert hostile.requests == 1 and verdict.p_first == pytest.approx(0.75 / (0.75 + math.exp(-1.0)))
    assert json.loads(path.read_text())["response"] == judged(math.log(0.75))


@pytest.mark.parametrize("reported", [-7, 1e30, 9, 2.5, "3", True, None])
def test_a_token_count_outside_0_to_max_tokens_is_recounted(
    hostile: Hostile, tmp_path: Path, tiny_tokenizer: Any, reported: Any
) -> None:
    """−7 and 1e30 reached the results as sample lengths; a count must be a whole number in [0, max_tokens]
    (here 8), otherwise the text's own tokens are counted (the EOS included, as the model ended its turn)."""
    text = "the cat sat"
    hostile.answer = lambda handler, body: send(handler, completion(text, tokens=reported))
    with client(hostile, tmp_path) as c:
        [sample] = generate_via_endpoint(c, [PanelPrompt("p", "hi", "hi")], "m", 8, None, tokenizer=tiny_tokenizer)
    recounted = len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) + 1
    assert recounted <= 8 and sample.n_tokens == recounted and len(sample.token_ids) == recounted
    hostile.answer = lambda handler, body: send(handler, completion(text, tokens=8))
    with client(hostile, tmp_path) as c:
        [sample] = generate_via_endpoint(c, [PanelPrompt("q", "ho", "ho")], "m", 8, None, tokenizer=tiny_tokenizer)
    assert sample.n_tokens == 8  # a count in range is the server's


KEY = 'sk-Ab/9+x"' + "k" * 24


def echoes(key: str) -> dict[str, str]:
    """The key as servers and proxies echo it."""
    return {
        "exact": key,
        "url": urllib.parse.quote(key, safe=""),
        "url-lower-hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), urllib.parse.quote(key, safe="")),
        "form": urllib.parse.quote_plus(key),
        "base64": base64.b64encode(key.encode()).decode(),
        "basic": base64.b64encode(b"user:" + key.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(b"ab" + key.encode()).decode(),
        "json": json.dumps(key, ensure_ascii=False)[1:-1],
        "json-ascii-slash": json.dumps(key, ensure_ascii=True)[1:-1].replace("/", "\\/"),
    }


def the_key_in(text: str) -> bool:
    """Whether the key can be read back from `text`: in one of its plain forms, or decoding a run of base64."""
    plain = [form for name, form in echoes(KEY).items() if "base64" not in name and name != "basic"]
    runs = re.findall(r"[A-Za-z0-9+/_=-]{16,}", text)
    return any(form in text for form in plain) or any(KEY.encode() in d for run in runs for d in decodings(run))


def decodings(run: str) -> Iterator[bytes]:
    """The run read as base64 in either alphabet, from each of the four starting characters."""
    for altchars in (b"+/", b"-_"):
        for start in range(4):
            chunk = run[start:].rstrip("=")
            chunk = chunk[: len(chunk) - (len(chunk) % 4 == 1)]  # a lone last character holds no whole byte
            chunk += "=" * (-len(chunk) % 4)
            try:
                yield base64.b64decode(chunk, altchars=altchars, validate=True)
            except ValueError:
                continue


def test_the_key_is_masked_in_every_encoding_in_messages_and_in_kept_answers(
    hostile: Hostile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", KEY)
    reflected = " | ".join(f"{name}: {form}" for name, form in echoes(KEY).items())
    assert all(the_key_in(form) for form in echoes(KEY).values())  # the check below would see any form left
    hostile.answer = lambda handler, body: send(handler, completion(reflected))
    with client(hostile, tmp_path, api_key_env="EVALKIT_TEST_KEY") as c:
        [answer] = c.complete(asks("x"))
        assert c.answers_redacted == 1
    assert not the_key_in(answer.content) and answer.content.count("***") == len(echoes(KEY))
    assert not the_key_in(cached_files(tmp_path)[0].read_text())
    # from the cache on a rerun: still masked, and still counted
    with client(hostile, tmp_path, api_key_env="EVALKIT_TEST_KEY") as c:
        assert c.complete(asks("x"))[0].content == answer.content and c.answers_redacted == 1
        assert c.requests_sent == 0
    # in an error message (a proxy's 401 that prints what it was sent)
    hostile.answer = lambda handler, body: send(handler, reflected, status=401)
    with client(hostile, tmp_path, api_key_env="EVALKIT_TEST_KEY") as c, pytest.raises(EvalkitError) as err:
        c.complete(asks("y"))
    assert not the_key_in(str(err.value)) and "HTTP 401: exact: *** | url: *** | " in str(err.value)
    # a placeholder key (vLLM's `EMPTY`) is not a secret: the text that happens to contain it stays as written
    monkeypatch.setenv("EVALKIT_TEST_KEY", "EMPTY")
    hostile.answer = lambda handler, body: send(handler, completion("EMPTY set"))
    with client(hostile, tmp_path, api_key_env="EVALKIT_TEST_KEY") as c:
        assert c.complete(asks("z"))[0].content == "EMPTY set" and c.answers_redacted == 0
    # a key no HTTP header can carry is refused in one line, not a crash
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-é" + "k" * 24)
    with pytest.raises(EvalkitError, match="holds characters other than ASCII") as err:
        client(hostile, tmp_path, api_key_env="EVALKIT_TEST_KEY")
    assert "kkkk" not in str(err.value)


def test_ctrl_c_cancels_the_requests_in_flight(hostile: Hostile, tmp_path: Path) -> None:
    """The pool used to wait for every request in flight (a stalled server: minutes) before Ctrl-C took effect.
    Now the interrupt comes straight through and the worker threads let go within a fraction of a second, so
    nothing holds the process open: the CLI exits 130 at once."""

    def stall(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        hostile.closed.wait(20)

    hostile.answer = stall
    before = set(threading.enumerate())
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()
    threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT)).start()
    started = time.monotonic()
    with client(hostile, tmp_path, concurrency=3, timeout_s=30) as c, pytest.raises(KeyboardInterrupt):
        c.complete(asks("a", "b", "c", "d"))
    assert time.monotonic() - started < 1.5
    workers = [t for t in set(threading.enumerate()) - before if t.name.startswith("ThreadPoolExecutor")]
    for worker in workers:
        worker.join(timeout=1.0)
    assert not any(w.is_alive() for w in workers) and hostile.requests == 3
    assert time.monotonic() - started < 2.5
