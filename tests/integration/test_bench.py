"""`evalkit bench` end to end on the embedded default suite, in a temporary directory."""

import json
import shutil
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.results import read_results

DEFAULT_SUITE = Path(__file__).parents[2] / "suites" / "default.yaml"


def relocated_default(tmp_path: Path) -> Path:
    """The default suite with its world and outputs moved under `tmp_path`."""
    text = DEFAULT_SUITE.read_text()
    text = text.replace(".evalkit/world", str(tmp_path / "world")).replace("reports/default", str(tmp_path / "out"))
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


REDUCED = [
    "--set",
    "world.pairs_per_subset=16",
    "--set",
    "world.pretrain_steps=60",
    "--set",
    "train.args.num_train_epochs=1",
]


def test_reduced_default_suite_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = relocated_default(tmp_path)
    assert main(["bench", str(suite), *REDUCED]) == 0
    out = tmp_path / "out"
    result = read_results(out / "results.json")

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
    assert "## tinyworld: headline (12 pairs)" in (out / "report.md").read_text()
    assert "evalkit · default" in capsys.readouterr().err

    # A second run reuses the cached world and gives the same numbers.
    assert main(["bench", str(suite), *REDUCED, "--out", str(tmp_path / "again")]) == 0
    assert "tiny world: reusing" in capsys.readouterr().err
    again = read_results(tmp_path / "again" / "results.json")
    assert again.metrics == result.metrics
    assert result.generation is not None and again.generation == result.generation  # identical samples

    # The report renders from a copied results.json alone.
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(out / "results.json", copy / "results.json")
    assert main(["report", str(copy / "results.json")]) == 0
    assert (copy / "report.md").read_text() == (out / "report.md").read_text()


def test_full_default_suite_learns_the_preference(tmp_path: Path) -> None:
    """The walking skeleton's promise, at full size: the base has no preference, DPO learns it."""
    assert main(["bench", str(relocated_default(tmp_path))]) == 0
    result = read_results(tmp_path / "out" / "results.json")
    base_accuracy = result.value("tinyworld", "base", "preference/accuracy")
    aligned_reward_accuracy = result.value("tinyworld", "aligned", "rewards/accuracies")
    assert base_accuracy is not None and 0.35 <= base_accuracy <= 0.65
    assert aligned_reward_accuracy is not None and aligned_reward_accuracy >= 0.8
    # The report's comparison: aligned against base on the same pairs, with an interval and a test.
    (delta,) = [
        c
        for c in result.comparisons
        if (c.model, c.baseline, c.metric, c.subset) == ("aligned", "base", "preference/accuracy", "all")
    ]
    assert delta.ci_low is not None and delta.ci_low > 0 and delta.p_value is not None and delta.p_value < 0.001
    assert delta.flips is not None and delta.flips.wrong_to_right > delta.flips.right_to_wrong
    assert "aligned vs base" in (tmp_path / "out" / "report.md").read_text()
    # What the models now write: the judge that knows the right answers prefers the aligned model.
    assert result.generation is not None
    (win,) = [w for w in result.generation.win_rates if w.model == "aligned"]
    assert win.delta_ci_low is not None and win.delta_ci_low > 0
    (drift,) = result.generation.drift
    assert drift.model == "aligned" and drift.kl > 0
