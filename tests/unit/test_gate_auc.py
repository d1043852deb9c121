"""Gating the AUC of unpaired data (`objective/auc`): Newcombe's score test, read back from the two group sizes
results.json records, worked by hand on two desirable and two undesirable completions."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats

from evalkit.config.rules import GateSpec
from evalkit.gate.judge import evaluate_gate
from evalkit.metrics import hypotheses
from evalkit.metrics.auc import newcombe_variance
from evalkit.metrics.stats import Sampling
from evalkit.results.estimates import Metric
from evalkit.results.files import read_results
from evalkit.results.schema import GateVerdict

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"

# m = n = 2: N* = 2 and V(½) = ¼·¼·(1 + ⅓ + ⅓) = 5/48, so H₀: θ ≤ ½ against an AUC of 1 is z = ½/√(5/48) = 1.5492,
# one-sided p = 0.06066.
V_HALF = 5 / 48


def test_the_score_test_of_an_auc_by_hand() -> None:
    assert float(newcombe_variance(np.array(0.5), 2, 2)) == pytest.approx(V_HALF)
    perfect = Sampling("newcombe_auc", 1.0, 4, n_positive=2, n_negative=2)
    p = hypotheses.p_greater(perfect, 0.5)
    assert p == pytest.approx(scipy.stats.norm.sf(0.5 / np.sqrt(V_HALF))) and p == pytest.approx(0.06066, abs=1e-5)
    # The mirror: an AUC of 0 is below ½ with the same evidence; the bounds are the roots of the score equation.
    worst = Sampling("newcombe_auc", 0.0, 4, n_positive=2, n_negative=2)
    assert hypotheses.p_less(worst, 0.5) == pytest.approx(p)
    low = hypotheses.lower_bound(perfect, 0.05)
    high = hypotheses.upper_bound(worst, 0.05)
    assert low is not None and high is not None and high == pytest.approx(1 - low)
    z = scipy.stats.norm.isf(0.05)
    assert (1 - low) ** 2 == pytest.approx(z * z * float(newcombe_variance(np.array(low), 2, 2)), abs=1e-12)
    assert hypotheses.p_greater(Sampling("newcombe_auc", 1.0, 4), 0.5) is None  # no group sizes: no test


def judge_auc(rule: dict[str, Any], value: float, m: int, n: int) -> GateVerdict:
    result = read_results(GOLDEN)
    dataset = result.datasets[0].name
    auc = Metric(
        dataset=dataset,
        subset="all",
        model="aligned",
        metric="objective/auc",
        value=value,
        ci_low=0.0,
        ci_high=1.0,
        n=m + n,
        higher_is_better=True,
        method="newcombe_auc",
        n_positive=m,
        n_negative=n,
    )
    spec = GateSpec.model_validate(
        {"rules": [{"kind": "absolute", "model": "aligned", "metric": "objective/auc", **rule}]}
    )
    (verdict,) = evaluate_gate(spec, result.model_copy(update={"metrics": [*result.metrics, auc]}), GOLDEN.parent)
    return verdict


def test_an_auc_rule_is_a_one_sided_score_test() -> None:
    verdict = judge_auc({"at_least": 0.5, "min_pairs": 2}, 1.0, 2, 2)
    assert verdict.p_value == pytest.approx(scipy.stats.norm.sf(0.5 / np.sqrt(V_HALF)))
    assert verdict.status == "failed"  # p = 0.061 > α = 0.05: two completions a side are not enough
    assert verdict.test is not None and "Newcombe score" in verdict.test
    many = judge_auc({"at_least": 0.6, "min_pairs": 10}, 0.9, 40, 40)
    assert many.status == "passed" and many.bound is not None and 0.6 < many.bound < 0.9


def test_an_auc_rule_needs_enough_completions_of_each_label() -> None:
    # 100 completions in all, but 5 undesirable ones: the default minimum (30) holds for each label.
    verdict = judge_auc({"at_least": 0.5}, 0.95, 95, 5)
    assert verdict.status == "undecidable" and "needs at least 30 desirable and 30 undesirable" in verdict.reason
