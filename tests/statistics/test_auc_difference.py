"""The difference of two models' AUCs on the same completions keeps its promises: seeded simulations.

Each completion has a pair of binormal scores, one per model, correlated ρ ∈ {0, 0.5, 0.9} (two models rank the same
rows, so their AUCs are correlated); the desirable rows are shifted by d_A and d_B. Continuous scores have AUC
Φ(d/√2); scores rounded to integers (many ties) the AUC P(X > Y) + ½P(X = Y) summed exactly over their laws. At a
non-inferiority margin's boundary d_A is solved so that AUC_A = AUC_B − margin exactly.

Measured over 180 settings (10 + 10, 15 + 15, 10 + 30, 25 + 25, 50 + 50 completions; ρ ∈ {0, 0.5, 0.9}; AUC_B ≈ 0.75,
0.91, 0.95; continuous and integer scores; 4,000 draws each):
- MOVER (evalkit's `mover_auc`): the two-sided 95% interval covered 94.2% to 100%; the gate's one-sided test at
  α = 5% passed a superiority rule at Δ = 0 at most 5.4% of the time, a non-inferiority rule at Δ = −0.05 at most
  6.4% (10 + 30, ρ = 0, AUC 0.76; the binomial noise of 4,000 draws is ±0.7%). It is conservative where the AUCs
  near 1 (0–2% at AUC 0.95 and 10 + 10): the price of each side's score interval.
- DeLong's Wald test, which it replaces: the interval covered 80.3% to 99.1% (80% at 10 + 10, ρ = 0.9, AUC 0.96); the
  superiority test passed up to 6.2%, the non-inferiority test up to 15.9% (a t on min(m, n) − 1 degrees of freedom:
  13.7%), since its variance, read at the observed AUCs, shrinks as they near 1.
This module reruns a subset at 2,000 draws per setting (a few seconds); bounds allow for that noise.
"""

import numpy as np
import pytest
from scipy import optimize, stats

from evalkit.metrics.auc import delong_pair, mover_bounds
from evalkit.metrics.stats import z_score

DRAWS = 2000
SUPPORT = np.arange(-12, 16)


def true_auc(shift: float, ties: bool) -> float:
    if not ties:
        return float(stats.norm.cdf(shift / np.sqrt(2)))
    px = stats.norm.cdf(SUPPORT + 0.5 - shift) - stats.norm.cdf(SUPPORT - 0.5 - shift)
    py = stats.norm.cdf(SUPPORT + 0.5) - stats.norm.cdf(SUPPORT - 0.5)
    above = (SUPPORT[:, None] > SUPPORT[None, :]) + 0.5 * (SUPPORT[:, None] == SUPPORT[None, :])
    return float(np.sum(px[:, None] * py[None, :] * above))


def draws(
    seed: list[int], m: int, n: int, rho: float, shifts: tuple[float, float], ties: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(A's desirable, A's undesirable, B's desirable, B's undesirable) scores, each (DRAWS, rows)."""
    rng = np.random.default_rng(seed)
    cov = [[1.0, rho], [rho, 1.0]]
    x, y = rng.multivariate_normal([0, 0], cov, (DRAWS, m)), rng.multivariate_normal([0, 0], cov, (DRAWS, n))
    scores = (x[..., 0] + shifts[0], y[..., 0], x[..., 1] + shifts[1], y[..., 1])
    return tuple(np.round(s) if ties else s for s in scores)  # type: ignore[return-value]


def limits(scores: tuple[np.ndarray, ...], z: float) -> tuple[np.ndarray, np.ndarray]:
    """MOVER's limits of every draw."""
    pair = delong_pair(*scores)
    return mover_bounds(pair.model, pair.baseline, pair.correlation, pair.m, pair.n, z)


def shifts_at(auc_b: float, margin: float, ties: bool) -> tuple[float, float]:
    """d_A, d_B with AUC_B = `auc_b` (continuous scale) and AUC_A = AUC_B − margin exactly."""
    d_b = float(np.sqrt(2) * stats.norm.ppf(auc_b))
    target = true_auc(d_b, ties) - margin
    d_a = d_b if margin == 0 else float(optimize.brentq(lambda d: true_auc(d, ties) - target, -3, 6))
    return d_a, d_b


@pytest.mark.parametrize(("m", "n"), [(10, 10), (10, 30), (50, 50)])
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("ties", [False, True])
def test_coverage_of_the_two_sided_interval(m: int, n: int, rho: float, ties: bool) -> None:
    d_a, d_b = shifts_at(0.85, 0.05, ties)
    truth = true_auc(d_a, ties) - true_auc(d_b, ties)
    low, high = limits(draws([m, n, int(rho * 10), ties], m, n, rho, (d_a, d_b), ties), z_score(0.95))
    assert 0.93 <= float(np.mean((low <= truth) & (truth <= high))) <= 1.0


@pytest.mark.parametrize(("m", "n"), [(10, 10), (10, 30), (25, 25)])
@pytest.mark.parametrize("rho", [0.0, 0.9])
@pytest.mark.parametrize(("auc_b", "margin"), [(0.76, 0.0), (0.76, 0.05), (0.95, 0.05)])
def test_the_gate_passes_at_most_alpha_at_the_null_boundary(
    m: int, n: int, rho: float, auc_b: float, margin: float
) -> None:
    """Superiority (H₀: Δ ≤ 0) at Δ = 0 and non-inferiority (H₀: Δ ≤ −margin) at Δ = −margin: the one-sided lower
    limit at α = 5% (what `hypotheses.p_greater` inverts) clears the null at most ~α of the time."""
    shifts = shifts_at(auc_b, margin, ties=True)
    low, _ = limits(draws([m, n, int(rho * 10), int(auc_b * 100), 3], m, n, rho, shifts, True), z_score(0.90))
    assert float(np.mean(low > -margin)) <= 0.07


def test_delong_wald_passes_too_often_near_one_where_mover_holds() -> None:
    """Why evalkit does not gate on DeLong's Wald test: at a non-inferiority boundary with AUCs near 0.95, 15 + 15
    completions and ρ = 0.9, it passes far more than α; MOVER on the same draws stays at or below it."""
    scores = draws([15, 15, 9, 96], 15, 15, 0.9, shifts_at(0.96, 0.05, ties=False), False)
    pair = delong_pair(*scores)
    se = pair.se
    wald = np.where(se > 0, (pair.model - pair.baseline + 0.05) / np.where(se > 0, se, 1.0), 0.0)
    assert float(np.mean(stats.norm.sf(wald) < 0.05)) > 0.10
    low, _ = limits(scores, z_score(0.90))
    assert float(np.mean(low > -0.05)) <= 0.06
