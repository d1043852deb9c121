"""The AUC and its interval, worked by hand."""

import numpy as np
import pytest

from evalkit.metrics.auc import auc, mann_whitney_auc, newcombe_bounds, newcombe_variance
from evalkit.metrics.stats import z_score

Z = z_score(0.95)


def test_ties_count_half() -> None:
    # 3 > 1, 3 > 2, 2 > 1, 2 = 2 (½): U = 3.5 of 4 comparisons
    assert mann_whitney_auc(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == 0.875
    assert mann_whitney_auc(np.array([1.0]), np.array([1.0])) == 0.5
    assert mann_whitney_auc(np.array([0.0, 0.0]), np.array([5.0])) == 0.0


def test_one_score_each_solves_in_closed_form() -> None:
    """m = n = 1: N* = 1, so V(θ) = θ(1 − θ) and (AUC − θ)² = z²θ(1 − θ).

    AUC = 1: (1 − θ) = z²θ, θ = 1/(1 + z²) = 0.20654. AUC = ½: (1 + z²)θ² − (1 + z²)θ + ¼ = 0,
    θ = ½ ± ½·z/√(1 + z²) = 0.054621, 0.945379."""
    one = auc(np.array([2.0]), np.array([1.0]), 0.95)
    assert one.value == 1.0 and one.interval is not None
    assert one.interval.low == pytest.approx(1 / (1 + Z * Z), abs=1e-12) and one.interval.high == 1.0
    assert one.interval.low == pytest.approx(0.20654, abs=1e-5)
    tie = auc(np.array([1.0]), np.array([1.0]), 0.95)
    assert tie.interval is not None
    assert tie.interval.low == pytest.approx(0.054621, abs=1e-6) and tie.interval.high == pytest.approx(
        0.945379, abs=1e-6
    )
    assert one.method == "newcombe_auc" and one.n == 2 and one.sampling.n_positive == 1


def test_bounds_solve_the_score_equation_and_mirror() -> None:
    value, m, n = 0.7, 7.0, 12.0
    low, high = newcombe_bounds(np.array(value), np.array(m), np.array(n), Z)
    for bound in (float(low), float(high)):
        assert (value - bound) ** 2 == pytest.approx(Z * Z * float(newcombe_variance(np.array(bound), m, n)), abs=1e-12)
    # Swapping the groups turns AUC into 1 − AUC and the interval into its mirror image.
    mirror_low, mirror_high = newcombe_bounds(np.array(1 - value), np.array(n), np.array(m), Z)
    assert float(mirror_low) == pytest.approx(1 - float(high), abs=1e-12)
    assert float(mirror_high) == pytest.approx(1 - float(low), abs=1e-12)


def test_an_auc_of_zero_has_its_upper_bound_in_closed_form() -> None:
    zero = auc(np.array([0.0]), np.array([1.0]), 0.95)
    assert zero.interval is not None and zero.interval.low == 0.0
    assert zero.interval.high == pytest.approx(Z * Z / (1 + Z * Z), abs=1e-12)
