"""The difference of two models' AUCs on the same completions, worked by hand.

Model A scores the desirable rows x = (4, 3, 1) and the undesirable rows y = (2, 0); model B scores the same rows
x = (1, 3, 2), y = (2, 0). DeLong's components (ties half):
  A: V10 = (1, 1, ½) (4 and 3 beat both; 1 beats 0), V01 = (2/3, 1): AUC_A = 5/6;
  B: V10 = (½, 1, ¾) (2 ties 2 and beats 0),        V01 = (½, 1): AUC_B = 3/4.  Δ = 1/12.
Over the desirable rows the deviations are A (1/6, 1/6, −1/3), B (−1/4, 1/4, 0): S10_AA = (1/36 + 1/36 + 1/9)/2
= 1/12, S10_BB = (1/16 + 1/16)/2 = 1/16, S10_AB = (−1/24 + 1/24 + 0)/2 = 0. Over the undesirable rows, A (−1/6, 1/6),
B (−1/4, 1/4): S01_AA = 1/18, S01_BB = 1/8, S01_AB = 1/12. With m = 3, n = 2:
  Var A = 1/36 + 1/36 = 1/18, Var B = 1/48 + 1/16 = 1/12, Cov = 0 + 1/24,
  r = (1/24)/√(1/18 · 1/12) = √216/24 = 0.612372, DeLong's se of Δ = √(1/18 + 1/12 − 1/12) = 0.235702.
"""

import numpy as np
import pytest

from evalkit.metrics.auc import auc, auc_difference, delong_components, delong_pair, mover_bounds, mover_p_greater
from evalkit.metrics.hypotheses import lower_bound, p_greater, p_less, recorded_sampling, two_sided_p, upper_bound
from evalkit.metrics.stats import z_score

A_X, A_Y = np.array([4.0, 3.0, 1.0]), np.array([2.0, 0.0])
B_X, B_Y = np.array([1.0, 3.0, 2.0]), np.array([2.0, 0.0])


def test_components_and_covariance_by_hand() -> None:
    v10, v01 = delong_components(B_X, B_Y)
    assert v10.tolist() == [0.5, 1.0, 0.75] and v01.tolist() == [0.5, 1.0]
    pair = delong_pair(A_X, A_Y, B_X, B_Y)
    assert float(pair.model) == pytest.approx(5 / 6) and float(pair.baseline) == pytest.approx(3 / 4)
    assert float(pair.var_model) == pytest.approx(1 / 18) and float(pair.var_baseline) == pytest.approx(1 / 12)
    assert float(pair.covariance) == pytest.approx(1 / 24)
    assert float(pair.correlation) == pytest.approx(0.612372, abs=1e-6)
    assert float(pair.se) == pytest.approx(0.235702, abs=1e-6)


def test_mover_interval_recombines_each_auc_newcombe_interval() -> None:
    delta = auc_difference(A_X, A_Y, B_X, B_Y, 0.95)
    assert delta.value == pytest.approx(1 / 12) and delta.n == 5 and delta.method == "mover_auc"
    a, b = auc(A_X, A_Y, 0.95).interval, auc(B_X, B_Y, 0.95).interval
    assert a is not None and b is not None and delta.interval is not None
    r = 0.612372
    below_a, above_b = 5 / 6 - a.low, b.high - 3 / 4
    above_a, below_b = a.high - 5 / 6, 3 / 4 - b.low
    low = 1 / 12 - np.sqrt(below_a**2 + above_b**2 - 2 * r * below_a * above_b)
    high = 1 / 12 + np.sqrt(above_a**2 + below_b**2 - 2 * r * above_a * below_b)
    assert delta.interval.low == pytest.approx(low, abs=1e-6) and delta.interval.high == pytest.approx(high, abs=1e-6)
    assert -1 < delta.interval.low < 0 < delta.interval.high < 1  # five rows decide nothing


def test_identical_models_differ_by_nothing_significant() -> None:
    """r = 1: each limit is Δ ∓ |(A − l_A) − (u_A − A)|, the asymmetry of Newcombe's interval (MOVER is not
    degenerate for one model against itself), so the interval straddles 0 and no test passes."""
    delta = auc_difference(A_X, A_Y, A_X, A_Y, 0.95)
    assert delta.value == 0.0 and delta.sampling.correlation == pytest.approx(1.0)
    a = auc(A_X, A_Y, 0.95).interval
    assert a is not None and delta.interval is not None
    spread = abs((5 / 6 - a.low) - (a.high - 5 / 6))
    assert delta.interval.low == pytest.approx(-spread) and delta.interval.high == pytest.approx(spread)
    assert two_sided_p(delta.sampling) == pytest.approx(1.0)


def test_one_completion_of_a_label_has_no_interval() -> None:
    delta = auc_difference(A_X, A_Y[:1], B_X, B_Y[:1], 0.95)
    assert delta.interval is None and delta.method == "none"


def test_the_test_inverts_the_interval_both_ways() -> None:
    """At p = p_greater(null) the one-sided lower limit is exactly the null; the mirrored tests agree."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(1.5, 1, 20), rng.normal(0, 1, 25)
    other_x, other_y = x + rng.normal(0, 1, 20), y + rng.normal(0, 1, 25)
    s = auc_difference(x, y, other_x, other_y, 0.95).sampling
    for null in (-0.1, 0.0, 0.05):
        p = p_greater(s, null)
        assert p is not None and 0 < p < 1
        assert lower_bound(s, p) == pytest.approx(null, abs=1e-7)
        less = p_less(s, null)
        assert less is not None and less == pytest.approx(1 - p, abs=1e-9)
    # the two-sided 95% interval is the pair of one-sided 97.5% limits
    interval = auc_difference(x, y, other_x, other_y, 0.95).interval
    assert interval is not None
    assert lower_bound(s, 0.025) == pytest.approx(interval.low) and upper_bound(s, 0.025) == pytest.approx(
        interval.high
    )
    assert two_sided_p(s) == pytest.approx(2 * min(p_greater(s, 0.0) or 0, p_less(s, 0.0) or 0))


def test_p_greater_at_the_limit() -> None:
    model, baseline, r = 0.9, 0.7, 0.5
    low, _ = mover_bounds(np.array(model), np.array(baseline), np.array(r), 30, 30, z_score(0.90))
    assert mover_p_greater(model, baseline, r, 30, 30, float(low)) == pytest.approx(0.05, abs=1e-9)


def test_recorded_comparison_replays_the_test_either_way_round() -> None:
    from evalkit.metrics.unpaired import _auc_comparison

    label = np.array([True, True, True, False, False])
    ours, theirs = np.concatenate([A_X, A_Y]), np.concatenate([B_X, B_Y])
    record = _auc_comparison(("d", "all", "a", "b"), ours, theirs, label, 0.95)
    s = recorded_sampling(record)
    assert s is not None and s.baseline_value == pytest.approx(0.75) and s.n_positive == 3
    back = recorded_sampling(record.reversed())
    assert back is not None
    assert p_greater(s, 0.0) == pytest.approx(p_less(back, 0.0), abs=1e-12)
    assert record.p_value == pytest.approx(two_sided_p(s))
