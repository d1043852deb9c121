"""Scoring on a serving engine (`evalkit.scoring.served`) against an in-memory engine whose log-probs are known:
what is sent, what is summed, what is refused, and what is stated about batching and parity."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

from evalkit.config.specs import ParitySpec, ScoringSpec
from evalkit.config.suite import parse_suite
from evalkit.errors import EvalkitError
from evalkit.generate.answer import Refused
from evalkit.generate.endpoint import Endpoint, EndpointClient
from evalkit.report.document import render_markdown
from evalkit.report.html import render_html
from evalkit.report.served import served_lines
from evalkit.results.files import read_results
from evalkit.results.schema import ModelInfo, ParityResult
from evalkit.scoring.score import TokenizedPair
from evalkit.scoring.served import (
    Engine,
    ScoringServer,
    batching_statement,
    compare_logps,
    probe_endpoint,
    read_prompt_logprobs,
    score_served,
)

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"


def engine_answer(ids: list[int]) -> dict[str, Any]:
    """vLLM's shape: no log-prob for the first token; each later token t gets −t/10 (and a decoy entry beside it)."""
    positions: list[Any] = [None] + [
        {str(t): {"logprob": -t / 10, "rank": 1}, "999": {"logprob": -9.0}} for t in ids[1:]
    ]
    return {"object": "text_completion", "choices": [{"index": 0, "text": "x", "prompt_logprobs": positions}]}


class FakeEngine:
    """An in-memory vLLM: `/v1/models`, `/version`, `/v1/completions`; it records every completion body."""

    def __init__(self, served: str = "m", scores: bool = True) -> None:
        self.served, self.scores, self.bodies = served, scores, []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path == "/v1/models":
            return httpx2.Response(200, json={"data": [{"id": self.served, "owned_by": "vllm"}]})
        if path == "/version":
            return httpx2.Response(200, json={"version": "0.32.0"})
        body = json.loads(request.content)
        self.bodies.append(body)
        answer = engine_answer(body["prompt"])
        if not self.scores:  # a server that ignores prompt_logprobs
            del answer["choices"][0]["prompt_logprobs"]
        return httpx2.Response(200, json=answer)


def client(engine: FakeEngine, cache: Path | None = None, model: str = "m") -> EndpointClient:
    endpoint = Endpoint("http://engine/v1", model, concurrency=2, cache_dir=cache, retries=0)
    return EndpointClient(endpoint, transport=httpx2.MockTransport(engine))


def pair(prompt: list[int], chosen: list[int], rejected: list[int]) -> TokenizedPair:
    return TokenizedPair("p", "all", prompt, chosen, rejected, prompt_is_prefix=True)


def test_the_log_prob_of_each_prompt_token_is_read_from_its_own_entry() -> None:
    body = {"prompt": [5, 7, 9]}
    assert read_prompt_logprobs(engine_answer([5, 7, 9]), body) == [-0.7, -0.9]


@pytest.mark.parametrize(
    ("positions", "expected"),
    [
        (None, "no prompt_logprobs"),
        ([None, {"7": {"logprob": -1.0}}], "2 positions for a prompt of 3 tokens"),
        ([None, {"8": {"logprob": -1.0}}, {"9": {"logprob": -1.0}}], "no log-prob for token 7"),
        ([None, {"7": {"logprob": 3.0}}, {"9": {"logprob": -1.0}}], "the log-prob 3.0; expected ≤ 0"),
        ([None, {"7": {"logprob": math.nan}}, {"9": {"logprob": -1.0}}], "the log-prob nan"),
        ([None, {"7": {"logprob": True}}, {"9": {"logprob": -1.0}}], "no log-prob for token 7"),
    ],
)
def test_an_answer_without_usable_prompt_log_probs_is_refused(positions: Any, expected: str) -> None:
    answer = {"choices": [{"prompt_logprobs": positions}]}
    with pytest.raises(Refused, match=expected):
        read_prompt_logprobs(answer, {"prompt": [5, 7, 9]})


def test_sums_cover_the_completion_tokens_cut_to_max_length_and_a_rerun_asks_nothing(tmp_path: Path) -> None:
    """Pair 1: prompt [1, 2], chosen [3, 4] cut to [3] by max_length 3: −0.3; rejected [5]: −0.5. Pair 2: the same
    answer twice, one log-prob: [2] then [6, 4] → −0.6 − 0.4 = −1.0."""
    engine = FakeEngine()
    pairs = [pair([1, 2], [3, 4], [5]), pair([2], [6, 4], [6, 4])]
    with client(engine, tmp_path) as served:
        scored = score_served(served, pairs, 3, "m")
        assert served.requests_sent == 4
    first, second = scored.logps
    assert (first.chosen, first.rejected, first.n_tokens_chosen, first.n_tokens_rejected) == (
        pytest.approx(-0.3),
        pytest.approx(-0.5),
        1,
        1,
    )
    assert first.truncated and not second.truncated
    assert second.chosen == second.rejected == pytest.approx(-1.0)
    assert scored.mode is not None and scored.mode.mode == "served"
    assert engine.bodies[0] == {
        "model": "m",
        "prompt": [1, 2, 3],
        "max_tokens": 1,
        "temperature": 0.0,
        "prompt_logprobs": 0,
    }
    with client(engine, tmp_path) as again:
        assert score_served(again, pairs, 3, "m").logps == scored.logps
        assert again.requests_sent == 0  # every answer from the cache, keyed by served model and token ids


def test_the_shared_tokens_and_the_prompt_come_from_the_same_answers(tmp_path: Path) -> None:
    """Token t has log-prob −t/10. Prompt [1, 2, 3], chosen [4, 5, 6], rejected [7]: the answers share their first
    token, so ℓ_shared is −0.4 and −0.7; the prompt's tokens after its first, [2, 3], sum to −0.5."""
    engine = FakeEngine()
    with client(engine, tmp_path) as served:
        scored = score_served(served, [pair([1, 2, 3], [4, 5, 6], [7])], 10, "m", with_prompt=True).logps[0]
        assert served.requests_sent == 2  # nothing more asked for the parts
    assert (scored.chosen, scored.chosen_shared, scored.rejected_shared) == (
        pytest.approx(-1.5),
        pytest.approx(-0.4),
        pytest.approx(-0.7),
    )
    assert (scored.prompt, scored.n_tokens_prompt) == (pytest.approx(-0.5), 2)
    with client(engine, tmp_path) as again:
        unasked = score_served(again, [pair([1, 2, 3], [4, 5, 6], [7])], 10, "m").logps[0]
    assert unasked.prompt is None and unasked.chosen_shared == pytest.approx(-0.4)


def test_the_probe_names_the_engine_and_refuses_what_cannot_score() -> None:
    with client(FakeEngine()) as served:
        assert probe_endpoint(served, 1) == Engine("vllm", "0.32.0")
    with client(FakeEngine(scores=False)) as deaf, pytest.raises(EvalkitError) as refusal:
        probe_endpoint(deaf, 1)
    assert "no prompt_logprobs" in str(refusal.value) and "else use `scoring.backend: hf`" in str(refusal.value)
    with client(FakeEngine(served="other"), model="m") as wrong, pytest.raises(EvalkitError, match="lists 'other'"):
        probe_endpoint(wrong, 1)


def test_batch_invariance_is_stated_only_where_evalkit_can_know() -> None:
    vllm = Engine("vllm", "0.32.0")
    assert batching_statement(vllm, 1).batch_invariant is None
    assert "VLLM_BATCH_INVARIANT=1" in batching_statement(vllm, 4).reason
    assert batching_statement(Engine("unknown", None), 4).batch_invariant is False


def test_parity_figures_are_absolute_differences_per_token_and_per_sequence() -> None:
    """Tokens: |−1 − (−1.1)| = 0.1, 0, |−0.5 − (−0.2)| = 0.3 → max 0.3, median 0.1. Sequences: |−3 − (−3.1)| = 0.1 and
    0.3 → max 0.3, median 0.2."""
    found = compare_logps([[-1.0, -2.0], [-0.5]], [[-1.1, -2.0], [-0.2]], ParitySpec(pairs=1), 1, "float32")
    assert (found.token_max, found.token_median, found.n_tokens) == (pytest.approx(0.3), pytest.approx(0.1), 3)
    assert (found.sequence_max, found.sequence_median) == (pytest.approx(0.3), pytest.approx(0.2))


def test_the_terminal_line_states_engine_batching_and_requests() -> None:
    with client(FakeEngine()) as served:
        statement = ScoringServer(served, Engine("vllm", "0.32.0")).statement()
    info = ModelInfo(
        name="policy", path="p", kind="model", base=None, dtype="served", fingerprint="f", served=statement
    )
    (line,) = served_lines([info])
    assert line.startswith("policy scored on vllm 0.32.0 at http://engine/v1 (served as 'm', prompt_logprobs)")
    assert "batch-invariant: — (2 requests in flight" in line and line.endswith("; 0 requests sent")


def test_a_served_backend_needs_an_endpoint_and_loads_nothing_in_process() -> None:
    with pytest.raises(ValidationError, match="`backend: vllm` needs an `endpoint`"):
        ScoringSpec(backend="vllm")
    with pytest.raises(ValidationError, match="set `backend: vllm`"):
        ScoringSpec(parity=ParitySpec())
    raw = {
        "name": "s",
        "output_dir": "out",
        "datasets": [{"name": "d", "path": "d.jsonl"}],
        "models": [{"name": "m", "path": "m"}],
        "scoring": {"backend": "vllm", "endpoint": {"base_url": "http://h/v1", "base_urls": {"x": "http://g/v1"}}},
        "generation": {"prompts": ["hi"]},
    }
    with pytest.raises(EvalkitError) as refused:
        parse_suite(raw, source="s.yaml")
    assert "no model named 'x'" in str(refused.value) and "decode with `backend: openai`" in str(refused.value)


def test_both_reports_state_the_engine_batching_and_parity_and_older_files_show_nothing() -> None:
    result = read_results(GOLDEN)
    before = render_markdown(result, budget=10**9)
    assert "serving engine" not in before and all(m.served is None for m in result.models)  # read as before
    parity = ParityResult(
        n_pairs=4,
        seed=0,
        dtype="float32",
        n_tokens=80,
        token_max=2.4e-6,
        token_median=4.8e-7,
        n_sequences=8,
        sequence_max=3.1e-6,
        sequence_median=1.2e-6,
    )
    with client(FakeEngine()) as served:
        statement = ScoringServer(served, Engine("vllm", "0.32.0")).statement(parity)
    first = result.models[0].model_copy(update={"served": statement})
    result = result.model_copy(update={"models": [first, *result.models[1:]]})
    figures = "4 pairs (float32 here): per token max 2.4e-06, median 4.8e-07 over 80 tokens; per sequence max 3.1e-06"
    markdown, html = render_markdown(result, budget=10**9), render_html(result)
    for report in (markdown, html):
        assert "vllm 0.32.0" in report and "VLLM_BATCH_INVARIANT=1" in report and "prompt_logprobs" in report
    assert figures in markdown.replace("\\", "")
    assert figures in html
