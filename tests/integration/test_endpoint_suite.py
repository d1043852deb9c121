"""suites/endpoint.yaml end to end: generation and pairwise judges through `transformers serve`.

The suite runs as shipped, with only what locates it changed: its world model is the `served_world` model
(both suite models point at the served directory, so the server knows them by their path), its data a few
world pairs, the server's address the fixture's port.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli import main
from evalkit.data.pairs import PreferencePair
from evalkit.results.schema import SCHEMA_FILE
from evalkit.world.pairs import generate_pairs

SUITE = Path(__file__).parents[2] / "suites" / "endpoint.yaml"


def write_pairs(path: Path, pairs: list[PreferencePair]) -> None:
    rows = [
        {"id": p.id, "subset": p.subset, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def run(served_world: Any, tmp_path: Path, *extra: str) -> int:
    data = tmp_path / "eval.jsonl"
    if not data.exists():
        write_pairs(data, generate_pairs(4, seed=3))
    served, url = served_world.name, served_world.base_url
    overrides = {
        "datasets.tinyworld.path": str(data),
        "models.base.path": served,
        "models.served-copy.path": served,
        "generation.endpoint.base_url": url,
        "generation.endpoint.cache_dir": str(tmp_path / "cache"),
        "generation.judges.served-judge.endpoint.base_url": url,
        "generation.judges.served-judge.endpoint.model": served,
        "generation.judges.served-judge.endpoint.cache_dir": str(tmp_path / "cache"),
        "generation.judges.local-judge.model": served,
        "generation.from_dataset.n": "6",
        "scoring.reference_cache": "null",
    }
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    return main(["bench", str(SUITE), "--out", str(tmp_path / "out"), *sets, *extra])


def test_the_endpoint_suite_generates_and_judges_through_the_server(
    served_world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema_errors: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(served_world, tmp_path) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["schema_version"] == "1.9"
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema_errors(results, schema, schema) == []
    generation = results["generation"]
    backends = {b["used_by"]: b for b in generation["backends"]}
    assert set(backends) == {"generation", "judge served-judge", "judge local-judge"}
    decoding = backends["generation"]
    assert decoding["backend"] == "openai" and decoding["base_url"] == served_world.base_url
    assert decoding["served_models"] == {"base": served_world.name, "served-copy": served_world.name}
    assert not decoding["deterministic"] and "concurrent requests" in decoding["reason"]
    # the second model's requests are the first one's (same served model, messages, parameters): cached
    assert decoding["requests_sent"] == 6
    assert backends["judge local-judge"]["backend"] == "hf" and backends["judge local-judge"]["deterministic"]
    samples = generation["samples"]
    assert len(samples) == 12 and {s["model"] for s in samples} == {"base", "served-copy"}
    by_model = {m: [s["completion"] for s in samples if s["model"] == m] for m in ("base", "served-copy")}
    assert by_model["base"] == by_model["served-copy"]

    judged = {(w["judge"], w["model"], w["baseline"]): w for w in generation["pairwise"]}
    assert set(judged) == {("served-judge", "served-copy", "base"), ("local-judge", "served-copy", "base")}
    # transformers serve gives no log-probs and the tiny model answers no label: every prompt unparsed, counted
    served_judge = judged[("served-judge", "served-copy", "base")]
    assert (served_judge["n"], served_judge["unparsed"], served_judge["win_rate"]) == (0, 6, None)
    # the local judge reads label probabilities; the same answer on both sides is the same prompt in both orders,
    # so the judge's pull to one position is all there is: each prompt counts ½ (the orders disagree) or the mean
    # of p and 1 − p, which is ½ again
    local = judged[("local-judge", "served-copy", "base")]
    assert local["n"] == 6 and local["unparsed"] == 0 and local["win_rate"] == pytest.approx(0.5)
    assert local["length_controlled"]["win_rate"] == pytest.approx(0.5, abs=1e-6)
    assert local["position_bias_rate"] + local["agreement_rate"] == pytest.approx(1.0)
    readings = [j for j in generation["pairwise_judgments"] if j["judge"] == "local-judge"]
    assert len(readings) == 6 and all(j["candidate_first"]["source"] == "logprobs" for j in readings)
    assert sum(j["judge"] == "served-judge" for j in generation["pairwise_judgments"]) == 6

    report = (tmp_path / "out" / "report.md").read_text()
    assert "LC win rate" in report and "position bias: share of prompts where the verdict flipped" in report
    assert "a fresh run may not repeat these answers" in report

    # a rerun asks the server nothing: generation and the endpoint judge are answered from the cache
    assert run(served_world, tmp_path, "--out", str(tmp_path / "again")) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())["generation"]
    assert [b["requests_sent"] for b in again["backends"] if b["backend"] == "openai"] == [0, 0]
    assert again["pairwise"] == generation["pairwise"]


def test_a_server_that_is_gone_is_one_line_and_exit_2(
    served_world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = run(
        served_world,
        tmp_path,
        "--set",
        "generation.endpoint.base_url=http://127.0.0.1:9/v1",
        "--set",
        "generation.endpoint.retries=0",
    )
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("evalkit: error: endpoint http://127.0.0.1:9/v1 (model ") and "cannot connect" in error
    assert "0 of 6 answers are kept in" in error


def test_a_judge_server_that_fails_loses_no_answer(
    served_world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The panel is decoded, then the endpoint judge's server is gone: one line, exit 2, and the rerun with the
    judge back asks the server for none of the answers it had already given."""
    monkeypatch.chdir(tmp_path)
    gone = ["--set", "generation.judges.served-judge.endpoint.base_url=http://127.0.0.1:9/v1"]
    gone += ["--set", "generation.judges.served-judge.endpoint.retries=0"]
    assert run(served_world, tmp_path, *gone) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("evalkit: error: endpoint http://127.0.0.1:9/v1 (model ") and "0 of 12 answers" in error
    assert not (tmp_path / "out" / "results.json").exists()
    assert run(served_world, tmp_path) == 0
    backends = json.loads((tmp_path / "out" / "results.json").read_text())["generation"]["backends"]
    sent = {b["used_by"]: b["requests_sent"] for b in backends}
    assert sent == {"generation": 0, "judge served-judge": 12, "judge local-judge": None}
