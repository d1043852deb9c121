"""Newcombe's interval of the AUC covers the truth at its nominal level at small sizes: seeded simulations.

Desirable scores x ~ N(d, 1) and undesirable y ~ N(0, 1) have AUC Φ(d/√2); integer scores
(binomial, many ties) have the AUC P(X > Y) + ½P(X = Y), summed exactly over their laws. 4,000 seeded
draws per setting (under a second in all): a 95% interval must cover between 93% and 98.5% of the time
(the binomial noise of 4,000 draws is ±0.7%). The Wald interval with Hanley and McNeil's plug-in
variance, which this method replaces, covered about 24% at 5 + 5 scores and AUC 0.98, and 51% at 10 + 10, in
the same simulation; measured here: 94.2% to 98.0% over the 18 settings. A gate rule on the AUC at its null's
boundary (2,000 draws per setting) passed 0% to 4.2% of the time at α = 5%.
"""

import numpy as np
import pytest
from scipy import stats

from evalkit.metrics.auc import newcombe_bounds
from evalkit.metrics.hypotheses import p_greater
from evalkit.metrics.stats import Sampling, z_score

DRAWS = 4000
GATE_DRAWS = 2000


def batch_auc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The AUC of each row of x (draws, m) over the same row of y (draws, n), ties half, from mid-ranks."""
    m, n = x.shape[1], y.shape[1]
    ranks = stats.rankdata(np.concatenate([x, y], axis=1), axis=1)
    return np.asarray((ranks[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n))


def coverage(x: np.ndarray, y: np.ndarray, truth: float) -> float:
    auc = batch_auc(x, y)
    low, high = newcombe_bounds(auc, np.array(x.shape[1]), np.array(y.shape[1]), z_score(0.95))
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.mark.parametrize(("m", "n"), [(5, 5), (10, 10), (8, 24), (30, 30)])
@pytest.mark.parametrize("shift", [0.0, 1.0, 2.0, 3.0])
def test_coverage_of_continuous_scores(m: int, n: int, shift: float) -> None:
    rng = np.random.default_rng([m, n, int(shift * 10)])
    x, y = rng.normal(shift, 1.0, (DRAWS, m)), rng.normal(0.0, 1.0, (DRAWS, n))
    assert 0.93 <= coverage(x, y, float(stats.norm.cdf(shift / np.sqrt(2)))) <= 0.985


@pytest.mark.parametrize(("m", "n"), [(6, 6), (12, 20)])
def test_coverage_of_scores_with_ties(m: int, n: int) -> None:
    support = np.arange(5)
    px, py = stats.binom.pmf(support, 4, 0.65), stats.binom.pmf(support, 4, 0.4)
    truth = float(sum(px[i] * py[j] * (1.0 if i > j else 0.5 if i == j else 0.0) for i in support for j in support))
    rng = np.random.default_rng([m, n])
    x, y = rng.binomial(4, 0.65, (DRAWS, m)), rng.binomial(4, 0.4, (DRAWS, n))
    assert 0.93 <= coverage(x.astype(float), y.astype(float), truth) <= 0.985


@pytest.mark.parametrize(("m", "n"), [(10, 10), (30, 30), (12, 40)])
@pytest.mark.parametrize("shift", [0.5, 1.5])
def test_an_auc_rule_at_its_boundary_passes_at_most_alpha(m: int, n: int, shift: float) -> None:
    """A gate rule `objective/auc at_least θ₀` with the true AUC exactly θ₀ (the null's boundary) passes at most
    α = 5% of the time: the one-sided Newcombe score test the gate replays (`hypotheses.p_greater`), run on each
    draw's AUC and group sizes as results.json records them."""
    truth = float(stats.norm.cdf(shift / np.sqrt(2)))
    rng = np.random.default_rng([m, n, int(shift * 10), 7])
    x, y = rng.normal(shift, 1.0, (GATE_DRAWS, m)), rng.normal(0.0, 1.0, (GATE_DRAWS, n))
    passes = [
        (p := p_greater(Sampling("newcombe_auc", float(auc), m + n, n_positive=m, n_negative=n), truth)) is not None
        and p < 0.05
        for auc in batch_auc(x, y)
    ]
    assert float(np.mean(passes)) <= 0.065
