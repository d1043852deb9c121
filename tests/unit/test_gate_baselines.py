"""`beats_baseline` rules on hand-made pairs, judged from the baseline comparisons a run records.

40 pairs, no length ties; "pick the longer" is right where the chosen answer is longer:
  A: model right, longer right   16 pairs
  B: model right, longer wrong   12
  C: model wrong, longer right    2
  D: model wrong, longer wrong   10
Model 28/40 = 0.70, longer 18/40 = 0.45, shorter 22/40 = 0.55, chance 0.5. Against longer the discordant pairs are
b = 12 (B), c = 2 (C): McNemar's z = 10/√14, one-sided p = Φ(−2.673) = 0.0038. Against shorter (right on B and D):
b = 16 (A), c = 10 (D), z = 6/√26, p = Φ(−1.177) = 0.12. Against chance, the model's own accuracy above ½:
P(X ≥ 28 | 40, ½) = 0.0083 (exact binomial).
"""

import math
from pathlib import Path
from typing import Any

import pytest
import scipy.stats
from rich.console import Console

from evalkit.config.rules import GateSpec
from evalkit.gate.judge import evaluate_gate
from evalkit.metrics.baselines import baseline_inputs, compare_with_baselines, compute_baselines
from evalkit.metrics.compute import compute_metrics
from evalkit.report.document import summary_table
from evalkit.report.html import render_html
from evalkit.report.statements import verdict_sentence
from evalkit.report.views import dataset_view
from evalkit.results.files import read_results
from evalkit.results.pairs import PairScore
from evalkit.results.schema import GateVerdict, RunResult

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"


def pair(i: int, model_right: bool, longer_right: bool) -> PairScore:
    logps = (-1.0, -2.0) if model_right else (-2.0, -1.0)
    tokens = (5, 3) if longer_right else (3, 5)
    return PairScore(f"p{i:02d}", "small" if i < 10 else "large", "aligned", *logps, *tokens, False)


GROUPS = [(True, True)] * 16 + [(True, False)] * 12 + [(False, True)] * 2 + [(False, False)] * 10
ROWS = [pair(i, *group) for i, group in enumerate(GROUPS)]


def run_with_baselines() -> RunResult:
    inputs = baseline_inputs("tinyworld", ROWS, {})
    assert inputs is not None
    return read_results(GOLDEN).model_copy(
        update={
            "metrics": compute_metrics("tinyworld", ROWS, beta=0.1),
            "comparisons": [],
            "baselines": compute_baselines("tinyworld", inputs),
            "baseline_comparisons": compare_with_baselines("tinyworld", ROWS, inputs, beta=0.1),
        }
    )


def rule(**kwargs: Any) -> dict[str, Any]:
    return {"kind": "beats_baseline", "model": "aligned", "metric": "preference/accuracy", **kwargs}


def judge(result: RunResult, *rules: dict[str, Any]) -> list[GateVerdict]:
    return evaluate_gate(GateSpec.model_validate({"rules": list(rules)}), result, GOLDEN.parent)


def test_beating_one_baseline_and_every_baseline_are_one_sided_tests_corrected_together() -> None:
    longer, best = judge(run_with_baselines(), rule(baseline="longer_tokens"), rule())
    p_longer, p_shorter = scipy.stats.norm.sf(10 / math.sqrt(14)), scipy.stats.norm.sf(6 / math.sqrt(26))
    assert longer.p_value == pytest.approx(p_longer) and longer.value == pytest.approx(0.25)
    assert longer.baseline == "longer_tokens" and longer.n == 40
    # `best` is the intersection-union test: the weakest win decides, here against "pick the shorter".
    assert best.baseline == "shorter_tokens" and best.p_value == pytest.approx(p_shorter)
    assert "the hardest of 3 baselines to beat" in best.reason
    # Holm over the two rules: the smaller p doubled passes, the larger stays itself and fails.
    assert longer.passed and longer.p_adjusted == pytest.approx(2 * p_longer)
    assert not best.passed and best.p_adjusted == pytest.approx(p_shorter)
    assert best.rule == "aligned beats every content-blind baseline on preference/accuracy"


def test_beating_chance_is_the_exact_test_of_the_accuracy_above_one_half() -> None:
    (chance,) = judge(run_with_baselines(), rule(baseline="chance"))
    assert chance.passed and chance.p_value == pytest.approx(scipy.stats.binom.sf(27, 40, 0.5))
    assert (chance.baseline, chance.value, chance.threshold) == ("chance", pytest.approx(0.7), 0.5)


def test_too_few_pairs_or_no_recorded_baselines_is_undecidable() -> None:
    (small,) = judge(run_with_baselines(), rule(subset="small"))
    assert small.status == "undecidable" and small.reason.endswith("needs at least 30 pairs, has 10")
    (old,) = judge(read_results(GOLDEN), rule())
    assert old.status == "undecidable" and "results written before baselines existed" in old.reason


def test_a_beats_baseline_rule_tests_an_accuracy() -> None:
    with pytest.raises(ValueError, match="a beats_baseline rule tests an accuracy"):
        GateSpec.model_validate({"rules": [rule(metric="loss")]})


def test_reports_show_the_baselines_beside_the_model_and_flag_a_model_that_does_not_beat_them() -> None:
    result = run_with_baselines()
    view = dataset_view(result, "tinyworld", 40)
    rows = {row[0]: row for row in view.headline.rows}
    assert rows["aligned"][1].endswith(" †")  # pref. acc 0.700: the weakest win (vs shorter, p = 0.12) is no win
    assert rows["baseline: longer (tokens)"][1].startswith("0.450 [")
    assert rows["baseline: shorter (tokens)"][1].startswith("0.550 [")
    assert rows["baseline: chance"][1] == "0.500" and rows["baseline: chance"][-1] == "40"
    assert "† marks a model that does not beat every baseline at α = 0.05" in view.baselines_note
    best = {row[0]: row[1] for row in view.subsets.rows if row[1].startswith("best baseline")}  # type: ignore[union-attr]
    assert best == {"large": "best baseline: shorter (tokens)", "small": "best baseline: longer (tokens)"}
    assert (
        "aligned does not beat the content-blind baselines on tinyworld (pref. acc 0.700 vs shorter (tokens) 0.550, "
        f"one-sided p = {scipy.stats.norm.sf(6 / math.sqrt(26)):.2g})" in verdict_sentence(result)
    )


def test_the_terminal_and_the_html_report_show_the_same_baselines() -> None:
    result = run_with_baselines()
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    text = console.export_text()
    assert "baseline: shorter (tokens)" in text and "0.700 [0.55, 0.82] †" in text
    html = render_html(result)
    assert "Models beside content-blind baselines" in html and "baseline: longer (tokens)" in html
