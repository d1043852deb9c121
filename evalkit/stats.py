"""Interval estimates and paired tests on per-pair arrays: numpy and scipy, nothing of evalkit's.

Every estimate comes with the pairs it was computed on and a 95% interval (by default):
- proportions get Wilson score intervals, which stay inside [0, 1] and keep their coverage at
  0 or n successes and at small n, where the normal (Wald) interval collapses to a point;
- means, medians, correlations and calibration errors get a percentile bootstrap over pairs.
  Resamples are pair indices drawn from a seeded generator, so every statistic of a cell (and
  both models of a paired comparison) sees the same resamples, and a rerun gives the same
  interval to the last digit. With one chunk of resamples the draw is the one
  `scipy.stats.bootstrap(..., method="percentile")` makes, so the two agree exactly.

An interval is None where it is undefined: fewer than two pairs, no spread in the resamples
(every pair has the same value), or a statistic that is undefined on some resample (a
correlation where one resample has a constant variable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

Statistic = Callable[[np.ndarray], np.ndarray]
"""A statistic of the pairs picked by an index array (R, n) → one value per row (R,)."""

_CHUNK_ELEMENTS = 4_000_000
"""Resample indices drawn at a time (32 MB of int64): bounds memory for large datasets."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Estimate:
    """A point estimate over `n` pairs and its interval (None where undefined)."""

    value: float
    interval: Interval | None
    n: int


def z_score(confidence: float) -> float:
    """The two-sided standard-normal quantile: 1.95996… for 95%."""
    return float(scipy_stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: float, n: int, confidence: float) -> Interval | None:
    """Wilson score interval of a proportion; None when n = 0.

    With z the normal quantile and p̂ = x/n:
        centre = (x + z²/2) / (n + z²),  half-width = z·√(x(n − x)/n + z²/4) / (n + z²).
    `successes` may be fractional (a tie counted as half right); the formula holds as written.
    """
    if n == 0:
        return None
    z = z_score(confidence)
    centre = (successes + z * z / 2) / (n + z * z)
    half = z * np.sqrt(max(successes * (n - successes) / n, 0.0) + z * z / 4) / (n + z * z)
    return Interval(float(max(centre - half, 0.0)), float(min(centre + half, 1.0)))


def proportion(outcomes: np.ndarray, confidence: float) -> Estimate:
    """Share of `outcomes` (booleans, or 0/½/1 scores) with its Wilson interval; n ≥ 1."""
    assert outcomes.size > 0, "a proportion of no pairs is undefined; callers skip empty cells"
    successes = float(np.sum(outcomes))
    return Estimate(successes / outcomes.size, wilson_interval(successes, outcomes.size, confidence), outcomes.size)


def resample_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of the pair indices 0..n−1, in chunks of shape (rows, n)."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def bootstrap_interval(statistic: Statistic, n: int, confidence: float, resamples: int, seed: int) -> Interval | None:
    """Percentile bootstrap interval of `statistic` over `n` pairs; None where undefined (see module doc)."""
    if n < 2:
        return None
    distribution = np.concatenate([statistic(chunk) for chunk in resample_indices(n, resamples, seed)])
    if not np.all(np.isfinite(distribution)):
        return None
    if np.ptp(distribution) <= 1e-12 * max(1.0, float(np.max(np.abs(distribution)))):
        return None  # no spread: every resample gives the same value
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(distribution, [tail, 100 - tail])
    return Interval(float(low), float(high))


def bootstrap_estimate(statistic: Statistic, n: int, confidence: float, resamples: int, seed: int) -> Estimate:
    """`statistic` over all `n` pairs, with its percentile bootstrap interval; n ≥ 1."""
    assert n > 0, "a statistic of no pairs is undefined; callers skip empty cells"
    value = float(statistic(np.arange(n)[None, :])[0])
    return Estimate(value, bootstrap_interval(statistic, n, confidence, resamples, seed), n)


def mean_of(values: np.ndarray) -> Statistic:
    return lambda index: values[index].mean(axis=-1)


def median_of(values: np.ndarray) -> Statistic:
    return lambda index: np.median(values[index], axis=-1)


def spearman_of(x: np.ndarray, y: np.ndarray) -> Statistic:
    """Spearman's ρ (Pearson's r of average ranks), NaN on a sample where x or y is constant."""

    def statistic(index: np.ndarray) -> np.ndarray:
        rx = scipy_stats.rankdata(x[index], axis=-1)  # (R, n)
        ry = scipy_stats.rankdata(y[index], axis=-1)  # (R, n)
        rx -= rx.mean(axis=-1, keepdims=True)
        ry -= ry.mean(axis=-1, keepdims=True)
        denominator = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, (rx * ry).sum(axis=-1) / denominator, np.nan)

    return statistic


def calibration_error_of(confidence: np.ndarray, correct: np.ndarray, bins: np.ndarray, n_bins: int) -> Statistic:
    """Expected calibration error: Σ_bins (n_b/n)·|accuracy_b − confidence_b| = Σ_bins |Σ_b (correct − conf)| / n."""
    gap = correct - confidence

    def statistic(index: np.ndarray) -> np.ndarray:
        rows, n = index.shape
        flat = (bins[index] + n_bins * np.arange(rows)[:, None]).ravel()  # (R·n,) one slot per (row, bin)
        sums = np.bincount(flat, weights=gap[index].ravel(), minlength=rows * n_bins).reshape(rows, n_bins)
        return np.abs(sums).sum(axis=-1) / n

    return statistic


def mcnemar_exact_p(wrong_to_right: int, right_to_wrong: int) -> float:
    """McNemar's exact test: a two-sided binomial test of the discordant pairs against ½.

    Pairs both models get right (or both wrong) carry no information on which is better; under
    the null each discordant pair is equally likely to flip either way. With no discordant pair
    there is no evidence of a difference and p = 1.
    """
    discordant = wrong_to_right + right_to_wrong
    if discordant == 0:
        return 1.0
    return float(scipy_stats.binomtest(wrong_to_right, discordant, 0.5).pvalue)


def paired_t_p(differences: np.ndarray) -> float:
    """Two-sided one-sample t-test of the mean paired difference against 0: the test that matches
    the reported Δ (a mean) and its bootstrap interval.

    Fewer than two pairs: no test, p = 1. No spread: p = 1 when every difference is 0, else 0 (the
    same non-zero difference on every pair).
    """
    if len(differences) < 2:
        return 1.0
    if np.ptp(differences) == 0:
        return 1.0 if differences[0] == 0 else 0.0
    return float(scipy_stats.ttest_1samp(differences, 0.0).pvalue)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank test of paired differences against 0.

    Zero differences are dropped (scipy's default `zero_method="wilcox"`); scipy uses the exact
    null distribution for small samples and the normal approximation for large ones. With no
    non-zero difference there is no evidence of a difference and p = 1.
    """
    if not np.any(differences != 0):
        return 1.0
    return float(scipy_stats.wilcoxon(differences).pvalue)


def minimum_detectable_effect(differences: np.ndarray, confidence: float, power: float) -> float | None:
    """Smallest true mean difference a two-sided test at α = 1 − `confidence` detects with `power`.

    Normal approximation on the per-pair differences d (as in Miller 2024, "Adding error bars to
    evals"): MDE = (z_{1−α/2} + z_{power}) · sd(d) / √n, with the sample sd of the observed
    differences, so it says what this many pairs can resolve for models that disagree as much
    as these two do. None when n < 2 or the models agree on every pair (sd = 0).
    """
    n = differences.size
    if n < 2:
        return None
    sd = float(np.std(differences, ddof=1))
    if sd == 0:
        return None
    return (z_score(confidence) + float(scipy_stats.norm.ppf(power))) * sd / np.sqrt(n)
