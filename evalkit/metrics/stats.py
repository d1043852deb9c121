"""Intervals and tests on per-pair arrays: numpy and scipy, nothing of evalkit's.

Every estimate names its method and carries what a one-sided test of it needs, so a gate can
ask "is the true value above θ₀?" at any level from `results.json` alone, and the answer is the
same as reading the matching interval (each test is the inversion of its interval):

- `wilson`: a share of independent pairs. Wilson's score interval. Its one-sided test is exact
  where the outcomes are 0 or 1 (the binomial tail, with the Clopper–Pearson bound), so a gate's
  false-pass rate never exceeds α (the score test behind Wilson's interval reaches 5.8% at some n
  for a nominal 5%). A share of 0/½/1 outcomes (a tie counted half) has less variance than a
  binomial one: Wilson and the score test then run on the effective sample size
  n·p̂(1 − p̂)/v̂, v̂ the outcomes' variance.
- `wilson_clustered`: a share of pairs that share prompts: Wilson and the score test on the
  effective sample size p̂(1 − p̂)/se², se the cluster-robust standard error.
- `student_t`: a mean of independent pairs. Student's t on n − 1 degrees of freedom. Its one-sided
  test (what a gate asks) adds Hall's (1992) skewness correction,
  T = t + γ t²/(3√n) + γ² t³/(27n) + γ/(6√n) with γ the sample skewness: a plain one-sided t-test
  on right-skewed values (per-prompt KLs, losses) passes "the mean is below the budget" 7–10% of
  the time at a nominal 5% and 30 prompts; corrected, 5.4–6%.
- `cluster_t`: a mean when pairs share a prompt: the bias-reduced cluster-robust standard error
  (CR2) over G prompts and t on Bell and McCaffrey's (2002) degrees of freedom, which stay
  honest with few prompts of unequal size (the plain CR1 on G − 1 covers 93.3% at ten prompts of
  1–3 pairs).
- `tango`: the difference of two paired shares (two models' accuracies on the same pairs).
  Tango's (1998) score interval from the discordant pairs; its test is the score test, which at
  Δ₀ = 0 is McNemar's z = (b − c)/√(b + c). The interval excludes 0 exactly when the test rejects.
- `fisher_z`: Spearman's ρ on the atanh scale with Bonett and Wright's (2000) variance
  (1 + ρ²/2)/(n − 3).
- `order_statistics`: a median, distribution-free: the sign-test interval of order statistics,
  interpolated between the two neighbouring ones to the stated level (Hettmansperger and Sheather
  1986). It has no test evalkit can replay without the data, so medians cannot be gated.
- `newcombe_auc`: an AUC (Mann–Whitney) with Newcombe's score-type interval (`evalkit.metrics.auc`).
- `mover_auc`: the difference of two models' AUCs on the same completions: each AUC's Newcombe interval recombined
  by MOVER with the AUCs' correlation from DeLong's structural components (`evalkit.metrics.auc`).
- `none`: a number without an interval (say, a binned calibration error, whose bootstrap is
  biased and misses its truth).

An interval is None where it is undefined: too few pairs, or no spread at all in a mean (then a
standard error of 0 would claim certainty that 2 or 50 identical pairs cannot give).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

Method = Literal[
    "wilson",
    "wilson_clustered",
    "student_t",
    "cluster_t",
    "tango",
    "fisher_z",
    "order_statistics",
    "newcombe_auc",
    "mover_auc",
    "stratified_normal",
    "cluster_bootstrap",
    "none",
]
TESTABLE: frozenset[str] = frozenset(
    {
        "wilson",
        "wilson_clustered",
        "student_t",
        "cluster_t",
        "tango",
        "fisher_z",
        "newcombe_auc",
        "mover_auc",
        "stratified_normal",
        "cluster_bootstrap",
    }
)
"""Methods whose one-sided test can be replayed from the recorded numbers (`Sampling`)."""


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Sampling:
    """What a test of an estimate needs: its method and the numbers that method reads.

    wilson, wilson_clustered: `value`, `n`, `n_effective` (= n for 0/1 outcomes of independent pairs);
    student_t, cluster_t: `value`, `se`, `df` (and `skewness` for student_t); fisher_z: `value`, `se` (of atanh ρ);
    tango: `n`, `gained` and `lost` (the discordant pairs, b and c); newcombe_auc (`evalkit.metrics.auc`): `value`,
    `n_positive` and `n_negative` (the sizes of the two groups); mover_auc (a difference of two AUCs): `value` (Δ),
    `baseline_value` (the baseline's AUC), `correlation` (of the two AUCs), `n_positive`, `n_negative`, and `se`
    (DeLong's, recorded, not read by the test).
    """

    method: Method
    value: float
    n: int
    se: float | None = None
    df: float | None = None
    n_effective: float | None = None
    gained: int | None = None
    lost: int | None = None
    skewness: float | None = None
    n_positive: int | None = None
    n_negative: int | None = None
    baseline_value: float | None = None
    correlation: float | None = None


@dataclass(frozen=True)
class Estimate:
    """A point estimate over `n` pairs, its two-sided interval (None where undefined), and how it was made."""

    value: float
    interval: Interval | None
    n: int
    sampling: Sampling

    @property
    def method(self) -> Method:
        return self.sampling.method

    @property
    def bounds(self) -> dict[str, float | None]:
        """The interval as a record's `ci_low` and `ci_high`, None where it is undefined."""
        interval = self.interval
        return {"ci_low": interval.low if interval else None, "ci_high": interval.high if interval else None}


def z_score(confidence: float) -> float:
    """The two-sided standard-normal quantile: 1.95996… for 95%."""
    return normal_isf((1 - confidence) / 2)


@functools.lru_cache(maxsize=64)
def normal_isf(tail: float) -> float:
    """Φ⁻¹(1 − tail), kept: the same few levels are asked for again and again."""
    return float(scipy_stats.norm.isf(tail))


# --- shares ----------------------------------------------------------------------------------------------


def wilson_interval(successes: float, n: float, confidence: float) -> Interval | None:
    """Wilson score interval of a proportion; None when n = 0.

    With z the normal quantile and p̂ = x/n:
        centre = (x + z²/2) / (n + z²),  half-width = z·√(x(n − x)/n + z²/4) / (n + z²).
    `successes` and `n` may be fractional (ties counted half; an effective sample size).
    """
    if n <= 0:
        return None
    z = z_score(confidence)
    centre = (successes + z * z / 2) / (n + z * z)
    half = z * np.sqrt(max(successes * (n - successes) / n, 0.0) + z * z / 4) / (n + z * z)
    return Interval(float(max(centre - half, 0.0)), float(min(centre + half, 1.0)))


def proportion(outcomes: np.ndarray, confidence: float, clusters: np.ndarray | None = None) -> Estimate:
    """Share of `outcomes` (booleans, or 0/½/1 scores) with its Wilson interval; n ≥ 1.

    With `clusters` (one label per pair) where some label repeats, the pairs of one prompt are not
    independent: the interval is Wilson's on the effective sample size (see the module doc).
    """
    assert outcomes.size > 0, "a proportion of no pairs is undefined; callers skip empty cells"
    values = outcomes.astype(np.float64)
    n = values.size
    share = float(values.mean())
    binomial = share * (1 - share)
    shared = clusters if clusters is not None and _has_shared_clusters(clusters) else None
    se2 = _cluster_se(values, shared) ** 2 if shared is not None else float(values.var()) / n
    n_effective = binomial / se2 if binomial > 0 and se2 > 0 else float(n)  # no spread: nothing to rescale
    sampling = Sampling("wilson" if shared is None else "wilson_clustered", share, n, n_effective=n_effective)
    return Estimate(share, wilson_interval(share * n_effective, n_effective, confidence), n, sampling)


# --- means -----------------------------------------------------------------------------------------------


def mean(values: np.ndarray, confidence: float, clusters: np.ndarray | None = None) -> Estimate:
    """Mean with a Student t interval (cluster-robust over prompts where pairs share one); n ≥ 1."""
    assert values.size > 0, "a mean of no pairs is undefined; callers skip empty cells"
    values = values.astype(np.float64)
    n, value = values.size, float(values.mean())
    skewness = None
    if clusters is not None and _has_shared_clusters(clusters):
        se, df, method = _cluster_se(values, clusters), _cluster_df(clusters), "cluster_t"
    else:
        se = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        df, method = float(n - 1), "student_t"
        skewness = _skewness(values)
    sampling = Sampling(method, value, n, se=se, df=df, skewness=skewness)  # type: ignore[arg-type]
    return Estimate(value, _t_interval(value, se, df, confidence), n, sampling)


def _skewness(values: np.ndarray) -> float | None:
    """The adjusted Fisher–Pearson skewness G₁ = g₁·√(n(n − 1))/(n − 2); None below 3 values or without spread."""
    n = values.size
    if n < 3:
        return None
    centred = values - values.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= 0:
        return None
    g1 = float(np.mean(centred**3)) / m2**1.5
    return float(g1 * np.sqrt(n * (n - 1)) / (n - 2))


def hall_statistic(t: float, skewness: float, n: int) -> float:
    """Hall's (1992) monotone transformation of a t statistic that removes the skewness term of its law."""
    root = np.sqrt(n)
    return float(t + skewness * t * t / (3 * root) + skewness**2 * t**3 / (27 * n) + skewness / (6 * root))


def hall_inverse(statistic: float, skewness: float, n: int) -> float:
    """The t with `hall_statistic(t) = statistic`: T − γ/(6√n) = (√n/γ)(u³ − 1), u = 1 + γt/(3√n)."""
    if skewness == 0:
        return statistic
    root = np.sqrt(n)
    u = float(np.cbrt(1 + (skewness / root) * (statistic - skewness / (6 * root))))
    return float(3 * root * (u - 1) / skewness)


def _t_interval(value: float, se: float, df: float, confidence: float) -> Interval | None:
    if df < 1 or not se > 0:
        return None  # one pair or one prompt, or no spread at all: no honest interval
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Interval(value - half, value + half)


def _has_shared_clusters(clusters: np.ndarray) -> bool:
    return len(np.unique(clusters)) < clusters.size


def _cluster_sizes(clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's cluster index (n,) and each cluster's size (G,)."""
    _, index = np.unique(clusters, return_inverse=True)
    return index, np.bincount(index)


def _cluster_se(values: np.ndarray, clusters: np.ndarray) -> float:
    """CR2 standard error of the mean: √(Σ_g S_g²/(1 − n_g/n)) / n, S_g the cluster's sum of residuals.

    For a mean, (I − H_gg)^(−½) scales a cluster's residual sum by 1/√(1 − n_g/n); with equal sizes this is
    CR1's G/(G − 1) exactly. 0 with a single cluster (nothing to compare it with).
    """
    index, sizes = _cluster_sizes(clusters)
    n = values.size
    if sizes.size < 2:
        return 0.0
    sums = np.bincount(index, weights=values - values.mean(), minlength=sizes.size)
    return float(np.sqrt(np.sum(sums * sums / (1 - sizes / n))) / n)


def _cluster_df(clusters: np.ndarray) -> float:
    """Bell–McCaffrey degrees of freedom of the CR2 variance of a mean: (tr W)²/‖W‖², W the Gram matrix of
    the scaled cluster indicators under independent errors, W = D − q qᵀ/n with D = diag(a²n_g), q = a n_g,
    a_g² = 1/(1 − n_g/n). tr W = n, so df = n²/(Σ a⁴n_g² − 2Σ a⁴n_g³/n + (Σ a²n_g²)²/n²); G − 1 for equal sizes."""
    _, sizes = _cluster_sizes(clusters)
    n = float(sizes.sum())
    if sizes.size < 2:
        return 0.0
    a2 = 1 / (1 - sizes / n)
    frobenius = np.sum(a2 * a2 * sizes**2) - 2 * np.sum(a2 * a2 * sizes**3) / n + np.sum(a2 * sizes**2) ** 2 / n**2
    return float(n * n / frobenius)


# --- paired shares: Tango's score interval ----------------------------------------------------------------


def tango_statistic(gained: np.ndarray, lost: np.ndarray, n: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Tango's score statistic Z(Δ₀) for H₀: p₁ − p₂ = Δ₀ from b = `gained`, c = `lost` of n pairs.

        Z = (b − c − nΔ₀) / √(n(2q + Δ₀ − Δ₀²)),
    q the maximum-likelihood p(lost) under H₀: the root of 2n q² + (−b − c + (2n − b + c)Δ₀) q − cΔ₀(1 − Δ₀)
    (Tango 1998). Z(0) = (b − c)/√(b + c), McNemar's statistic. Decreasing in Δ₀. Vectorised.
    """
    b, c, n, d = (np.asarray(x, dtype=np.float64) for x in (gained, lost, n, delta))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _tango_z(b, c, n, d)


def _tango_z(b: np.ndarray, c: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    b_coef = -b - c + (2 * n - b + c) * d
    c_coef = -c * d * (1 - d)
    q = (np.sqrt(np.maximum(b_coef * b_coef - 8 * n * c_coef, 0.0)) - b_coef) / (4 * n)
    variance = n * (2 * q + d - d * d)
    numerator = b - c - n * d
    z = numerator / np.sqrt(np.maximum(variance, 0.0))
    return np.where(numerator == 0, 0.0, np.where(variance > 1e-300, z, np.sign(numerator) * np.inf))


def tango_root(gained: np.ndarray, lost: np.ndarray, n: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The Δ in [−1, 1] where Tango's statistic crosses `target` (+z: the lower bound, −z: the upper one).

    Vectorised: bisection, 50 halvings of [−1, 1] (to 2·2⁻⁵⁰), over any shape the arguments broadcast to; one
    pair of models (scalars): Brent's method, about four times fewer evaluations, to 1e-14. Where the statistic
    never crosses the target inside [−1, 1], the root is the end it stays beyond.
    """
    b, c, n, goal = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (gained, lost, n, target)))
    if b.ndim == 0:
        return np.array(_scalar_tango_root(b, c, n, float(goal)))
    low, high = np.full(b.shape, -1.0), np.full(b.shape, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(50):
            middle = (low + high) / 2
            above = _tango_z(b, c, n, middle) > goal  # Z decreases in Δ: the root lies further right
            low, high = np.where(above, middle, low), np.where(above, high, middle)
    return np.asarray((low + high) / 2)


def _scalar_tango_root(b: np.ndarray, c: np.ndarray, n: np.ndarray, goal: float) -> float:
    def gap(delta: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.clip(_tango_z(b, c, n, np.asarray(delta)), -1e12, 1e12)) - goal

    if gap(-1.0) <= 0:
        return -1.0
    if gap(1.0) >= 0:
        return 1.0
    return float(optimize.brentq(gap, -1.0, 1.0, xtol=1e-14))


def tango_bounds(gained: np.ndarray, lost: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided interval: the Δ where Tango's statistic crosses +z (lower) and −z (upper), in one bisection."""
    roots = tango_root(gained, lost, n, np.array([z, -z]).reshape((2,) + (1,) * np.ndim(n)))  # (2, ...)
    return roots[0], roots[1]


def paired_shares(gained: int, lost: int, n: int, confidence: float) -> Estimate:
    """Δ = (b − c)/n of two paired shares with Tango's score interval; n ≥ 1."""
    assert n > 0, "a difference over no pairs is undefined; callers skip empty cells"
    low, high = tango_bounds(np.array(gained), np.array(lost), np.array(n), z_score(confidence))
    value = (gained - lost) / n
    sampling = Sampling("tango", value, n, gained=gained, lost=lost)
    return Estimate(value, Interval(float(low), float(high)), n, sampling)


# --- medians and correlations ----------------------------------------------------------------------------


def median(values: np.ndarray, confidence: float) -> Estimate:
    """Median with the interpolated order-statistic interval (Hettmansperger and Sheather 1986); n ≥ 1.

    [x₍d₎, x₍n−d+1₎] covers the median with probability γ_d = 1 − 2·P(Bin(n, ½) < d) whatever the
    distribution. d is the largest with γ_d ≥ the level; the bounds move towards the next order
    statistics by λ = (n − d)I / (d + (n − 2d)I), I = (γ_d − level)/(γ_d − γ_{d+1}). None for n < 6
    (no d reaches 95% there).
    """
    assert values.size > 0, "a median of no pairs is undefined; callers skip empty cells"
    ordered = np.sort(values.astype(np.float64))
    n = ordered.size
    value = float(np.median(ordered))
    sampling = Sampling("order_statistics", value, n)
    coverage = 1 - 2 * scipy_stats.binom.cdf(np.arange(0, n // 2 + 1) - 1, n, 0.5)  # γ_d for d = 0..n//2
    reaching = np.nonzero(coverage[1:] >= confidence)[0] + 1
    if reaching.size == 0:
        return Estimate(value, None, n, sampling)
    d = int(reaching.max())
    if d >= n - d:  # the two order statistics meet: nothing to interpolate towards
        return Estimate(value, Interval(float(ordered[d - 1]), float(ordered[n - d])), n, sampling)
    gamma_d, gamma_next = coverage[d], coverage[d + 1] if d + 1 < coverage.size else 0.0
    share = (gamma_d - confidence) / (gamma_d - gamma_next) if gamma_d > gamma_next else 0.0
    weight = (n - d) * share / (d + (n - 2 * d) * share)
    low = (1 - weight) * ordered[d - 1] + weight * ordered[d]
    high = (1 - weight) * ordered[n - d] + weight * ordered[n - d - 1]
    return Estimate(value, Interval(float(low), float(high)), n, sampling)


def spearman(x: np.ndarray, y: np.ndarray, confidence: float) -> Estimate | None:
    """Spearman's ρ with a Fisher-z interval (Bonett–Wright variance); None where x or y is constant."""
    n = x.size
    rx, ry = scipy_stats.rankdata(x), scipy_stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    if denominator == 0:
        return None
    rho = float(np.clip((rx * ry).sum() / denominator, -1.0, 1.0))
    if n <= 3 or abs(rho) == 1.0:
        return Estimate(rho, None, n, Sampling("fisher_z", rho, n))
    se = float(np.sqrt((1 + rho * rho / 2) / (n - 3)))
    half = z_score(confidence) * se
    centre = float(np.arctanh(rho))
    interval = Interval(float(np.tanh(centre - half)), float(np.tanh(centre + half)))
    return Estimate(rho, interval, n, Sampling("fisher_z", rho, n, se=se))


def descriptive(value: float, n: int) -> Estimate:
    """A number stated without an interval (see the module doc's `none`)."""
    return Estimate(value, None, n, Sampling("none", value, n))


def sampling_fields(sampling: Sampling) -> dict[str, Any]:
    """The record fields of a `Sampling` a gate's test reads back (`method`, `se`, `df`, `n_effective`,
    `skewness`, and an AUC's group sizes `n_positive`, `n_negative`)."""
    fields = {name: getattr(sampling, name) for name in ("method", "se", "df", "n_effective", "skewness")}
    if sampling.n_positive is not None or sampling.n_negative is not None:
        # Only an AUC has group sizes, and only the records that can hold one (`Metric`) are given them.
        fields |= {"n_positive": sampling.n_positive, "n_negative": sampling.n_negative}
    return fields
