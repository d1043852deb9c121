"""The endpoint client against a loopback server of our own that answers, fails, stalls or talks nonsense on cue."""

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evalkit.config.specs import SamplingSpec
from evalkit.data.rendering import Rendering
from evalkit.errors import EvalkitError
from evalkit.generate.endpoint import (
    ChatRequest,
    Endpoint,
    EndpointClient,
    ResponseCache,
    determinism,
    generate_via_endpoint,
    request_body,
)
from evalkit.generate.panel import PanelPrompt
from evalkit.judges.pairwise import EndpointJudge

Reply = tuple[int, str]  # (status, body)


def completion(content: str, finish: str = "stop", tokens: int | None = 3, logprobs: Any = None) -> Reply:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    body: dict[str, Any] = {"id": "x", "object": "chat.completion", "choices": [choice]}
    if tokens is not None:
        body["usage"] = {"completion_tokens": tokens, "prompt_tokens": 1, "total_tokens": tokens + 1}
    return 200, json.dumps(body)


def echo(body: dict[str, Any]) -> Reply:
    """The last message back, upper-cased: a server whose answers say which request they answer."""
    return completion(body["messages"][-1]["content"].upper())


@dataclass
class FaultServer:
    """A loopback HTTP server; `respond(body)` decides each answer, `stall_s` delays it."""

    respond: Callable[[dict[str, Any]], Reply] = echo
    stall_s: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    @property
    def requests(self) -> int:
        return len(self.bodies)


@pytest.fixture()
def fault_server() -> Iterator[FaultServer]:
    state = FaultServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                state.bodies.append(body)
                state.headers.append(dict(self.headers))
            time.sleep(state.stall_s)
            status, text = state.respond(body)
            payload = text.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (the timeout test)
                pass

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


def endpoint(server: FaultServer, tmp_path: Path, **options: Any) -> Endpoint:
    settings: dict[str, Any] = {"concurrency": 2, "timeout_s": 5.0, "retries": 2, "backoff_s": 0.01}
    settings |= options
    return Endpoint(server.url, "tiny", cache_dir=tmp_path / "cache", **settings)


def asks(*contents: str) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": c}], max_tokens=8) for c in contents]


def test_answers_come_back_in_request_order(fault_server: FaultServer, tmp_path: Path) -> None:
    with EndpointClient(endpoint(fault_server, tmp_path, concurrency=4)) as client:
        answers = client.complete(asks(*[f"q{i}" for i in range(9)]))
    assert [a.content for a in answers] == [f"Q{i}" for i in range(9)]
    assert {a.finish_reason for a in answers} == {"stop"} and {a.completion_tokens for a in answers} == {3}


def test_a_rerun_is_answered_from_the_cache_and_sends_nothing(fault_server: FaultServer, tmp_path: Path) -> None:
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        first = client.complete(asks("a", "b", "c"))
    assert fault_server.requests == 3
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        second = client.complete(asks("a", "b", "c"))
        assert client.requests_sent == 0
    assert second == first and fault_server.requests == 3
    # one file per answer, each holding its request, and no temporary file left behind
    files = sorted((tmp_path / "cache").rglob("*"))
    assert [f.suffix for f in files if f.is_file()] == [".json"] * 3
    # another request (here: more tokens) is another key
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        client.complete([ChatRequest([{"role": "user", "content": "a"}], max_tokens=9)])
    assert fault_server.requests == 4


def test_a_damaged_cache_file_is_asked_again(fault_server: FaultServer, tmp_path: Path) -> None:
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        client.complete(asks("a"))
    [entry] = (tmp_path / "cache").rglob("*.json")
    entry.write_text('{"request": ')
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        assert client.complete(asks("a"))[0].content == "A"
        assert client.requests_sent == 1
    assert json.loads(entry.read_text())["response"]["choices"][0]["message"]["content"] == "A"


def test_an_endpoint_judge_reads_log_probs_where_given(fault_server: FaultServer, tmp_path: Path) -> None:
    """vLLM-shaped log-probs: the first position names no label, the second has A at 0.6 and B at 0.2, so
    P(first) = 0.75; a server without log-probs leaves the reply to be parsed."""
    positions = [
        {"token": " ", "logprob": -0.1, "top_logprobs": [{"token": " ", "logprob": -0.1}]},
        {
            "token": "A",
            "logprob": math.log(0.6),
            "top_logprobs": [{"token": "A", "logprob": math.log(0.6)}, {"token": "B", "logprob": math.log(0.2)}],
        },
    ]
    fault_server.respond = lambda body: completion(" A", logprobs={"content": positions})
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        [verdict] = EndpointJudge("judge", client, top_logprobs=5).verdicts([[{"role": "user", "content": "?"}]])
    assert verdict.source == "logprobs" and verdict.p_first == pytest.approx(0.75)
    assert (fault_server.bodies[0]["logprobs"], fault_server.bodies[0]["top_logprobs"]) == (True, 5)
    fault_server.respond = lambda body: completion("B")
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        [verdict] = EndpointJudge("judge", client).verdicts([[{"role": "user", "content": "another"}]])
    assert (verdict.source, verdict.p_first) == ("parsed", 0.0)


def test_tokens_that_read_the_same_add_their_probabilities(fault_server: FaultServer, tmp_path: Path) -> None:
    """vLLM lists each token id with its text: `A` (0.2) and the byte-fallback token `<0x41>` (0.1) both read `A`,
    and B has 0.3, so P(first) = 0.3 / 0.6 = ½, not 0.1 / 0.4 (the later entry overwriting the earlier one)."""
    entries = [("A", 0.2), ("B", 0.3), ("A", 0.1), ("", 0.05), ("", 0.05)]
    top = [{"token": token, "logprob": math.log(p)} for token, p in entries]
    position = {"token": "B", "logprob": math.log(0.3), "top_logprobs": top}
    fault_server.respond = lambda body: completion("B", logprobs={"content": [position]})
    with EndpointClient(endpoint(fault_server, tmp_path)) as client:
        [answer] = client.complete([ChatRequest([{"role": "user", "content": "?"}], 1, top_logprobs=5)])
        [verdict] = EndpointJudge("judge", client, top_logprobs=5).verdicts([[{"role": "user", "content": "?"}]])
    assert answer.top_logprobs is not None
    assert {token: math.exp(logprob) for token, logprob in answer.top_logprobs[0].items()} == pytest.approx(
        {"A": 0.3, "B": 0.3, "": 0.1}
    )
    assert verdict.source == "logprobs" and verdict.p_first == pytest.approx(0.5)


def test_the_cache_key_is_the_request_not_the_address(tmp_path: Path) -> None:
    """The same model behind another port is the same answer; a different model, message or option is not."""
    request = asks("hello")[0]
    here = request_body(Endpoint("http://127.0.0.1:1/v1", "m"), request)
    there = request_body(Endpoint("http://127.0.0.1:2/v1", "m"), request)
    other = request_body(Endpoint("http://127.0.0.1:1/v1", "n"), request)
    assert ResponseCache.key(here) == ResponseCache.key(there) != ResponseCache.key(other)
    assert here == {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "temperature": 0}


def test_transient_failures_are_retried(fault_server: FaultServer, tmp_path: Path) -> None:
    failures = iter([(503, "busy"), (429, "slow down")])
    fault_server.respond = lambda body: next(failures, None) or echo(body)
    with EndpointClient(endpoint(fault_server, tmp_path, concurrency=1)) as client:
        answers = client.complete(asks("x"))
        assert client.requests_sent == 3
    assert answers[0].content == "X"


@pytest.mark.parametrize(
    ("respond", "stall_s", "expected"),
    [
        (lambda body: (500, "Internal Server Error"), 0.0, "HTTP 500: Internal Server Error (after 3 attempts)"),
        (lambda body: (200, "{not json"), 0.0, "the answer is not a chat completion: '{not json' (after 3 attempts)"),
        (lambda body: (200, '{"choices": []}'), 0.0, "the answer is not a chat completion"),
        (echo, 1.0, "no answer within 0.2 s (after 3 attempts)"),
    ],
    ids=["500", "garbage", "no-choices", "timeout"],
)
def test_a_failure_that_outlasts_its_retries_is_one_line(
    fault_server: FaultServer, tmp_path: Path, respond: Callable[[dict[str, Any]], Reply], stall_s: float, expected: str
) -> None:
    fault_server.respond, fault_server.stall_s = respond, stall_s
    with EndpointClient(endpoint(fault_server, tmp_path, timeout_s=0.2)) as client, pytest.raises(EvalkitError) as err:
        client.complete(asks("x"))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"endpoint {fault_server.url} (model 'tiny'): ")
    assert expected in message
    assert message.endswith(f"0 of 1 answers are kept in {tmp_path / 'cache'}; a rerun asks only for the rest")
    assert fault_server.requests == 3


def test_what_was_answered_before_a_failure_is_kept(fault_server: FaultServer, tmp_path: Path) -> None:
    """One request always fails: the run stops, every other answer is cached, a rerun asks for that one only."""
    fault_server.respond = lambda body: (500, "boom") if body["messages"][0]["content"] == "bad" else echo(body)
    requests = asks("a", "b", "bad", "c")
    with EndpointClient(endpoint(fault_server, tmp_path, concurrency=1)) as client, pytest.raises(EvalkitError) as err:
        client.complete(requests)
    answered = int(str(err.value).split("; ")[-2].split(" of ")[0])
    # a and b were answered before bad; c was answered too if the worker took it before the run stopped sending
    assert answered in (2, 3)
    fault_server.respond, before = echo, fault_server.requests
    with EndpointClient(endpoint(fault_server, tmp_path, concurrency=1)) as client:
        answers = client.complete(requests)
    assert [a.content for a in answers] == ["A", "B", "BAD", "C"]
    assert fault_server.requests - before == 4 - answered  # bad (and c, if it was not sent)


def test_a_wrong_request_is_not_retried(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.respond = lambda body: (404, '{"detail": "model tiny not found"}')
    with EndpointClient(endpoint(fault_server, tmp_path)) as client, pytest.raises(EvalkitError, match="HTTP 404"):
        client.complete(asks("x"))
    assert fault_server.requests == 1


def test_the_api_key_is_sent_and_never_written(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-secret-123")
    with EndpointClient(endpoint(fault_server, tmp_path, api_key_env="EVALKIT_TEST_KEY")) as client:
        client.complete(asks("x"))
    assert fault_server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    assert all("sk-secret-123" not in f.read_text() for f in (tmp_path / "cache").rglob("*.json"))
    # a server that echoes the key in its error: the message carries a mask instead
    fault_server.respond = lambda body: (401, "bad key sk-secret-123")
    secured = endpoint(fault_server, tmp_path, api_key_env="EVALKIT_TEST_KEY")
    with EndpointClient(secured) as client, pytest.raises(EvalkitError) as err:
        client.complete(asks("y"))
    assert "sk-secret-123" not in str(err.value) and "bad key ***" in str(err.value)


def test_a_long_key_echoed_at_the_end_of_a_long_reply_is_masked_before_the_reply_is_cut(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-" + "k" * 155  # the reply is cut at 160 characters: inside the key, had it not been masked first
    monkeypatch.setenv("EVALKIT_TEST_KEY", key + "\n")  # read from a file: the newline is not part of the key
    fault_server.respond = lambda body: (401, "Incorrect API key provided: " + key)
    client = EndpointClient(endpoint(fault_server, tmp_path, api_key_env="EVALKIT_TEST_KEY"))
    with client, pytest.raises(EvalkitError) as err:
        client.complete(asks("y"))
    assert fault_server.headers[0]["Authorization"] == "Bearer " + key
    assert "kkkkkkkkkk" not in str(err.value) and "Incorrect API key provided: ***" in str(err.value)


def test_a_missing_or_broken_key_is_reported_without_echoing_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVALKIT_ABSENT_KEY", raising=False)
    # a key pasted into `api_key_env` by mistake is never printed back
    with pytest.raises(EvalkitError, match="the environment variable it names is not set") as err:
        EndpointClient(Endpoint("http://127.0.0.1:1/v1", "m", api_key_env="EVALKIT_ABSENT_KEY"))
    assert "EVALKIT_ABSENT_KEY" not in str(err.value)
    monkeypatch.setenv("EVALKIT_BROKEN_KEY", "sk-one two")
    with pytest.raises(EvalkitError, match="holds spaces or control characters") as err:
        EndpointClient(Endpoint("http://127.0.0.1:1/v1", "m", api_key_env="EVALKIT_BROKEN_KEY"))
    assert "sk-one" not in str(err.value)


def test_determinism_is_stated() -> None:
    sampling = SamplingSpec(k=2, temperature=0.7, seed=1)
    assert determinism(Endpoint("u", "m", concurrency=1), None).deterministic
    assert not determinism(Endpoint("u", "m", concurrency=8), None).deterministic
    assert not determinism(Endpoint("u", "m", concurrency=1), sampling).deterministic
    assert "does not apply per-request seeds" in determinism(Endpoint("u", "m", honours_seed=False), sampling).reason


def test_samples_through_an_endpoint(fault_server: FaultServer, tmp_path: Path) -> None:
    """Sample records as the in-process path makes them: one per (prompt, sample), a seed each, the template
    options sent along, `ended` from the finish reason and `n_tokens` from the server's usage."""
    fault_server.respond = lambda body: completion("hi", "length" if body["messages"][0]["content"] == "p1" else "stop")
    panel = [PanelPrompt("id0", "p0", "p0"), PanelPrompt("id1", [{"role": "user", "content": "p1"}], "p1")]
    sampling = SamplingSpec(k=2, temperature=0.5, top_p=0.9, seed=7)
    with EndpointClient(endpoint(fault_server, tmp_path, concurrency=1)) as client:
        samples = generate_via_endpoint(
            client, panel, "policy", 5, sampling, rendering=Rendering(options={"enable_thinking": False})
        )
    assert [(s.prompt_id, s.index, s.ended, s.n_tokens) for s in samples] == [
        ("id0", 0, True, 3),
        ("id0", 1, True, 3),
        ("id1", 0, False, 3),
        ("id1", 1, False, 3),
    ]
    assert {s.model for s in samples} == {"policy"} and {s.completion for s in samples} == {"hi"}
    seeds = [b["seed"] for b in fault_server.bodies]
    assert len(set(seeds)) == 4
    assert {(b["temperature"], b["top_p"], b["max_tokens"]) for b in fault_server.bodies} == {(0.5, 0.9, 5)}
    assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in fault_server.bodies)
