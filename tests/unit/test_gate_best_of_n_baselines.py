"""`beats_baseline` rules on best-of-N items: chance is each item's share of correct answers, not ½.

12 items of four completions: 8 with one correct answer (chance ¼), 4 with two (chance ½), so chance over the
subset is (8·¼ + 4·½)/12 = ⅓. The model ranks a correct answer alone on top in 9 items (score 9/12 = 0.75); every
correct answer has 3 characters and the incorrect ones 5, 4 and 2 (one of them 3 where two are correct: a tie),
so "pick the longer" and "pick the shorter" never score. Against chance, the exact binomial
P(X ≥ 9 | 12, ⅓) = 0.0039 passes at α = 0.05, where against ½ it would be P(X ≥ 9 | 12, ½) = 0.073 and fail.
"""

from pathlib import Path
from typing import Any

import pytest
import scipy.stats

from evalkit.config.rules import GateSpec
from evalkit.data.best_of_n import BestOfNItem
from evalkit.errors import EvalkitError
from evalkit.gate.judge import evaluate_gate
from evalkit.metrics import hypotheses, stats
from evalkit.metrics.best_of_n import best_of_n_metrics, compare_best_of_n
from evalkit.pipeline.best_of_n import best_of_n_baselines, item_scores, length_choices
from evalkit.results.estimates import Statistics
from evalkit.results.files import read_results
from evalkit.results.schema import GateVerdict, RunResult

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"
STATS = Statistics()


def items() -> list[BestOfNItem]:
    one = [BestOfNItem(f"a{i}", f"p{i}", ["ccc"], ["wwwww", "xxxx", "yy"], "Math") for i in range(8)]
    two = [BestOfNItem(f"b{i}", f"q{i}", ["ccc", "ddd"], ["wwwww", "yy"], "Math") for i in range(4)]
    return one + two


def run_with_items() -> RunResult:
    dataset, rows = "tinyworld", items()
    # Right (its top completion correct) on the first 9 items, wrong (an incorrect one on top) on the last 3.
    scores = {i.id: [1.0, 0.0, 0.0, 0.0] if k < 9 else [0.0, 0.0, 1.0, 0.0] for k, i in enumerate(rows)}
    model = item_scores(rows, scores)
    metrics, _ = best_of_n_metrics(dataset, "aligned", model, STATS)
    comparisons = [
        c
        for name, blind in length_choices(rows, None).items()
        for c in compare_best_of_n(dataset, "aligned", model, name, blind, STATS)
    ]
    return read_results(GOLDEN).model_copy(
        update={
            "best_of_n": metrics,
            "best_of_n_comparisons": comparisons,
            "baselines": best_of_n_baselines(dataset, rows, None, STATS),
            "baseline_comparisons": [],
        }
    )


def rule(**kwargs: Any) -> dict[str, Any]:
    return {
        "kind": "beats_baseline",
        "model": "aligned",
        "metric": "best_of_n/score",
        "dataset": "tinyworld",
        "subset": "Math",
        "min_pairs": 10,
        **kwargs,
    }


def judge(result: RunResult, *rules: dict[str, Any]) -> list[GateVerdict]:
    return evaluate_gate(GateSpec.model_validate({"rules": list(rules)}), result, GOLDEN.parent)


def test_chance_on_best_of_n_is_each_items_share_of_correct_answers() -> None:
    result = run_with_items()
    chance = next(b for b in result.baselines if (b.subset, b.baseline) == ("Math", "chance"))
    assert chance.value == pytest.approx(1 / 3)
    (verdict,) = judge(result, rule(baseline="chance"))
    assert verdict.value == 0.75 and verdict.threshold == pytest.approx(1 / 3) and verdict.n == 12
    assert verdict.p_value == pytest.approx(scipy.stats.binom.sf(8, 12, 1 / 3))
    assert verdict.passed and "against chance 0.333, over 12 items" in verdict.reason
    assert scipy.stats.binom.sf(8, 12, 0.5) > 0.05  # the pairs' ½ would have failed the same model


def test_best_is_the_weakest_win_over_length_baselines_and_chance() -> None:
    (best,) = judge(run_with_items(), rule())
    # Against longer and shorter (characters) it gains 9 items and loses none (Tango); chance is the weaker win.
    assert best.baseline == "chance" and best.passed
    assert "the hardest of 3 baselines to beat" in best.reason


def test_best_of_n_score_is_the_only_new_metric_a_beats_baseline_rule_takes() -> None:
    with pytest.raises((EvalkitError, ValueError), match="a beats_baseline rule tests an accuracy"):
        GateSpec.model_validate({"rules": [rule(metric="rewards/margins")]})


def test_a_mean_over_subsets_is_tested_by_z_on_its_standard_error() -> None:
    s = stats.Sampling("stratified_normal", 0.6, 40, se=0.1)
    assert hypotheses.p_greater(s, 0.4) == pytest.approx(scipy.stats.norm.sf(2.0))
    assert hypotheses.lower_bound(s, 0.05) == pytest.approx(0.6 - 1.644854 * 0.1, abs=1e-6)
