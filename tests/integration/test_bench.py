"""`evalkit bench` end to end on the embedded default suite, in a temporary directory."""

import json
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from evalkit.cli import main
from evalkit.results.files import read_results
from evalkit.results.schema import SCHEMA_FILE, SCHEMA_VERSION


@pytest.mark.slow
def test_reduced_default_suite_runs_end_to_end(
    tmp_path: Path,
    default_suite: Path,
    reduced: list[str],
    capsys: pytest.CaptureFixture[str],
    schema_errors: Callable[..., list[str]],
) -> None:
    suite = default_suite
    assert main(["bench", str(suite), *reduced]) == 0
    out = tmp_path / "out"
    result = read_results(out / "results.json")
    raw, schema = json.loads((out / "results.json").read_text()), json.loads(SCHEMA_FILE.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and schema_errors(raw, schema, schema) == []
    # Every scoring setting is recorded, as run.
    assert raw["scoring"] == {
        "beta": 0.1,
        "max_length": 1024,
        "batch_size": 16,
        "token_budget": None,
        "share_prompt": True,
        "dtype": "float32",
        "reference_cache": ".evalkit/cache/reference",
    }
    assert raw["environment"]["processes"] == 1

    assert [m.name for m in result.models] == ["base", "aligned"]
    assert [m.kind for m in result.models] == ["model", "adapter"]
    assert result.datasets[0].n_pairs == 12 and result.datasets[0].subsets == ["arithmetic", "format", "helpfulness"]
    assert result.training is not None and result.training.steps > 0
    for metric in ("rewards/accuracies", "rewards/margins", "loss", "preference/accuracy"):
        assert result.value("tinyworld", "aligned", metric) is not None
        assert result.value("tinyworld", "aligned", metric, subset="format") is not None

    rows = [json.loads(line) for line in (out / "pairs" / "tinyworld.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 12
    aligned = [r for r in rows if r["model"] == "aligned"]
    base = {r["id"]: r for r in rows if r["model"] == "base"}
    for r in aligned:  # the aligned model's reference log-probs are the base model's own
        assert r["ref_logp_chosen"] == base[r["id"]]["logp_chosen"]
        assert r["margin"] == pytest.approx(r["reward_chosen"] - r["reward_rejected"])
    texts = [json.loads(line) for line in (out / "pairs" / "tinyworld.texts.jsonl").read_text().splitlines()]
    assert sorted(t["id"] for t in texts) == sorted(base) and all(t["prompt"] and t["chosen"] for t in texts)
    assert "## tinyworld: headline (12 pairs)" in (out / "report.md").read_text()
    assert "evalkit · default" in capsys.readouterr().out  # results on stdout

    # A second run reuses the cached world and gives the same numbers.
    assert main(["bench", str(suite), *reduced, "--out", str(tmp_path / "again")]) == 0
    assert "tiny world: reusing" in capsys.readouterr().err
    again = read_results(tmp_path / "again" / "results.json")
    assert again.metrics == result.metrics
    assert result.generation is not None and again.generation == result.generation  # identical samples

    # Your own checkpoint with the same suite: the adapter's base becomes the reference.
    assert main(["bench", str(suite), *reduced, "--model", str(out / "models" / "aligned")]) == 0
    candidate = read_results(tmp_path / "out-candidate" / "results.json")
    assert [m.name for m in candidate.models] == ["reference", "candidate"]
    for metric in ("rewards/accuracies", "preference/accuracy", "loss"):
        assert candidate.value("tinyworld", "candidate", metric) == result.value("tinyworld", "aligned", metric)

    # The report renders from a copied results.json alone.
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(out / "results.json", copy / "results.json")
    assert main(["report", str(copy / "results.json")]) == 0
    assert (copy / "report.md").read_text() == (out / "report.md").read_text()


def test_a_failing_gate_exits_1_and_names_every_failed_rule(
    tmp_path: Path, default_suite: Path, reduced: list[str]
) -> None:
    suite = default_suite
    raw = yaml.safe_load(suite.read_text())
    raw["gate"] = yaml.safe_load((Path(__file__).parent / "suites" / "failing_gate.yaml").read_text())["gate"]
    suite.write_text(yaml.safe_dump(raw))
    # The reduced world has 12 pairs: the rules are decided on them (below 30 they would be undecidable).
    assert main(["bench", str(suite), *reduced[:-2], "--set", "gate.min_pairs=2"]) == 1
    out = tmp_path / "out"
    result = read_results(out / "results.json")  # written in full, with the verdicts
    assert result.gate is not None and [v.passed for v in result.gate] == [False] * 4
    junit = ElementTree.parse(out / "junit.xml").getroot().find("testsuite")
    assert junit is not None and (junit.get("tests"), junit.get("failures")) == ("4", "4")
    summary = (out / "summary.md").read_text()
    for name in ("perfect reward accuracy", "base beats aligned", "no drift at all", "answers must shrink by half"):
        assert name in summary
    assert summary.startswith("## evalkit gate: default: FAILED: 4 of 4 rules")


def test_a_run_stopped_between_two_outputs_leaves_no_file_of_the_previous_run(
    tmp_path: Path, default_suite: Path, reduced: list[str]
) -> None:
    """Stopped just after results.json is replaced, a run used to leave it beside the last run's report.html,
    junit.xml and summary.md. Now the old set goes first: what is there belongs to the new run, and the reports
    render again from it."""
    gated = [*reduced[:-2], "--set", "gate.min_pairs=2"]
    assert main(["bench", str(default_suite), *gated]) in (0, 1)
    out = tmp_path / "out"
    first = read_results(out / "results.json")
    assert {"report.html", "junit.xml", "summary.md"} <= {p.name for p in out.iterdir()}

    # Killed (SIGKILL: nothing runs after it) between results.json and the reports, in a process of its own.
    killer = (
        "import os, signal, sys\n"
        "import evalkit.pipeline.bench\n"
        "evalkit.pipeline.bench.write_reports = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from evalkit.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = [sys.executable, "-c", killer, "bench", str(default_suite), *gated, "--set", "scoring.beta=0.2"]
    killed = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    second = read_results(out / "results.json")
    assert second.created_at >= first.created_at and second.scoring.beta == 0.2
    assert not {"report.md", "report.html", "junit.xml", "summary.md"} & {p.name for p in out.iterdir()}
    assert main(["report", str(out / "results.json")]) == 0
    assert "β = 0.2" in (out / "report.md").read_text()
