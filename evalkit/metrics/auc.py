"""How well a score separates two groups: the AUC (Mann–Whitney) with Newcombe's score-type interval.

For unpaired data (KTO style) there are no pairs to count right or wrong: what a reward should do is
rank desirable completions above undesirable ones. With m desirable scores x and n undesirable
scores y,

    AUC = U / (m·n),  U = Σ_i Σ_j [x_i > y_j] + ½·[x_i = y_j],

the probability that a random desirable completion outscores a random undesirable one, ties counted
half (the Mann–Whitney U, from mid-ranks). 0.5 is no separation, 1 complete separation.

The interval is Newcombe's (2006, "Confidence intervals for an effect size measure based on the
Mann–Whitney statistic. Part 2", method 5): a score-type interval that inverts
(AUC − θ)² = z²·V(θ), with Hanley and McNeil's variance written as a function of θ alone,

    V(θ) = θ(1 − θ)/(m·n) · [1 + (N* − 1)·((1 − θ)/(2 − θ) + θ/(1 + θ))],  N* = (m + n)/2.

Like Wilson's interval for a proportion it stays inside [0, 1], is not degenerate at AUC = 0 or 1,
and keeps close to its nominal coverage at small m and n, where the Wald forms (Hanley–McNeil with
the plug-in variance, DeLong) cover too little (tests/statistics/test_auc_coverage.py measures it).
The rows are taken as independent: completions that share a prompt are not clustered here.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from evalkit.metrics.stats import Estimate, Interval, Sampling, z_score


def mann_whitney_auc(desirable: np.ndarray, undesirable: np.ndarray) -> float:
    """U/(m·n), ties counted half, from the mid-ranks of both groups together; both groups non-empty."""
    m, n = desirable.size, undesirable.size
    assert m > 0 and n > 0, "an AUC needs scores in both groups"
    ranks = scipy_stats.rankdata(np.concatenate([desirable, undesirable]).astype(np.float64))
    u = float(ranks[:m].sum()) - m * (m + 1) / 2
    return u / (m * n)


def newcombe_variance(theta: np.ndarray, m: float | np.ndarray, n: float | np.ndarray) -> np.ndarray:
    """V(θ) of the module doc: Hanley and McNeil's variance with N* = (m + n)/2 for both group sizes."""
    half = (m + n) / 2
    shape = 1 + (half - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta))
    return np.asarray(theta * (1 - theta) / (m * n) * shape)


def newcombe_bounds(auc: np.ndarray, m: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """The roots of (AUC − θ)² = z²·V(θ) below and above each AUC, by 60 halvings of [0, AUC] and [AUC, 1].

    Vectorised over any shape the arguments broadcast to (the coverage simulation bisects thousands at once).
    Below AUC the gap (AUC − θ)² − z²V(θ) falls from AUC² ≥ 0 at θ = 0 to −z²V(AUC) ≤ 0; above it, it rises to
    (1 − AUC)² at θ = 1, so each bisection keeps the root between its ends."""
    auc, m, n = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (auc, m, n)))

    def gap(theta: np.ndarray) -> np.ndarray:
        return np.asarray((auc - theta) ** 2 - z * z * newcombe_variance(theta, m, n))

    low, high = np.zeros_like(auc), auc.copy()  # the lower root: gap > 0 left of it
    for _ in range(60):
        middle = (low + high) / 2
        left = gap(middle) > 0
        low, high = np.where(left, middle, low), np.where(left, high, middle)
    lower = np.where(auc > 0, (low + high) / 2, 0.0)
    low, high = auc.copy(), np.ones_like(auc)  # the upper root: gap > 0 right of it
    for _ in range(60):
        middle = (low + high) / 2
        right = gap(middle) > 0
        low, high = np.where(right, low, middle), np.where(right, middle, high)
    upper = np.where(auc < 1, (low + high) / 2, 1.0)
    return lower, upper


def auc(desirable: np.ndarray, undesirable: np.ndarray, confidence: float) -> Estimate:
    """The AUC of scores `desirable` over `undesirable` with Newcombe's interval; n is m + n."""
    value = mann_whitney_auc(desirable, undesirable)
    m, n = desirable.size, undesirable.size
    low, high = newcombe_bounds(np.array(value), np.array(m), np.array(n), z_score(confidence))
    sampling = Sampling("newcombe_auc", value, m + n, n_positive=m, n_negative=n)
    return Estimate(value, Interval(float(low), float(high)), m + n, sampling)
