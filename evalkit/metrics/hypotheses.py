"""One-sided tests read back from a recorded `Sampling` (what a gate asks: is the true value above θ₀?), each the
inversion of its interval in `evalkit.metrics.stats`; two-sided p-values, Wilcoxon's and the sign test; the
minimum detectable effect of a test; and the multiplicity corrections (Holm for a gate's rules,
Benjamini–Hochberg for a report's comparisons)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from evalkit.metrics.auc import mover_lower_bound, mover_p_greater, newcombe_bounds, newcombe_variance
from evalkit.metrics.stats import (
    TESTABLE,
    Sampling,
    hall_inverse,
    hall_statistic,
    normal_isf,
    tango_root,
    tango_statistic,
    wilson_interval,
)
from evalkit.results.estimates import Comparison, Metric

# --- one-sided tests, read back from a `Sampling` ---------------------------------------------------------


def recorded_sampling(record: Metric | Comparison) -> Sampling | None:
    """The estimate a record's test replays, rebuilt from what `results.json` recorded of it; None for records that
    predate recorded methods (schema < 1.4)."""
    if record.method is None:
        return None
    if isinstance(record, Comparison) and record.method == "tango":
        assert record.flips is not None, "an accuracy comparison carries its flips"
        gained, lost = record.flips.wrong_to_right, record.flips.right_to_wrong
        return Sampling("tango", record.value, record.n, gained=gained, lost=lost)
    if isinstance(record, Comparison) and record.method == "mover_auc":
        return Sampling(
            "mover_auc",
            record.value,
            record.n,
            se=record.se,
            n_positive=record.n_positive,
            n_negative=record.n_negative,
            baseline_value=record.baseline_value,
            correlation=record.correlation,
        )
    return Sampling(
        record.method,  # type: ignore[arg-type]
        record.value,
        record.n,
        se=record.se,
        df=record.df,
        n_effective=record.n_effective if isinstance(record, Metric) else None,
        skewness=record.skewness,
        n_positive=record.n_positive if isinstance(record, Metric) else None,
        n_negative=record.n_negative if isinstance(record, Metric) else None,
    )


def p_greater(s: Sampling, null: float) -> float | None:
    """One-sided p of H₀: θ ≤ `null` against θ > `null`; None where the method has no test or it is undefined."""
    test = _GREATER.get(s.method)
    return test(s, null) if test is not None else None


def _share_greater(s: Sampling, null: float) -> float | None:
    n = _effective(s)
    if n <= 0:
        return None
    if null <= 0.0:
        return 0.0 if s.value > 0 else 1.0
    if null >= 1.0:
        return 1.0
    successes = _whole_successes(s)
    if successes is not None:  # exact: P(X ≥ x | n, p₀)
        return float(scipy_stats.binom.sf(successes - 1, s.n, null))
    z = (s.value - null) / np.sqrt(null * (1 - null) / n)
    return float(scipy_stats.norm.sf(z))


def _mean_greater(s: Sampling, null: float) -> float | None:
    if s.se is None or s.df is None or not s.se > 0 or s.df < 1:
        return None
    statistic = (s.value - null) / s.se
    if s.skewness:
        statistic = hall_statistic(statistic, s.skewness, s.n)
    return float(scipy_stats.t.sf(statistic, s.df))


def _paired_shares_greater(s: Sampling, null: float) -> float | None:
    if s.gained is None or s.lost is None or s.n < 1:
        return None
    if null <= -1.0:
        return 0.0 if s.value > -1 else 1.0
    if null >= 1.0:
        return 1.0
    z = tango_statistic(np.array(s.gained), np.array(s.lost), np.array(s.n), np.array(null))
    return float(scipy_stats.norm.sf(z))


def _correlation_greater(s: Sampling, null: float) -> float | None:
    if s.se is None or not s.se > 0 or abs(null) >= 1:
        return None
    return float(scipy_stats.norm.sf((np.arctanh(s.value) - np.arctanh(null)) / s.se))


def _auc_greater(s: Sampling, null: float) -> float | None:
    """Newcombe's score test, the one his interval inverts: z = (AUC − θ₀)/√V(θ₀) with V of `evalkit.metrics.auc`."""
    m, n = s.n_positive, s.n_negative
    if m is None or n is None or m < 1 or n < 1:
        return None
    if null <= 0.0:
        return 0.0 if s.value > 0 else 1.0
    if null >= 1.0:
        return 1.0
    z = (s.value - null) / float(np.sqrt(newcombe_variance(np.array(null), m, n)))
    return float(scipy_stats.norm.sf(z))


def _auc_difference_greater(s: Sampling, null: float) -> float | None:
    """MOVER's test of Δ AUC, the inversion of its lower limit (`evalkit.metrics.auc.mover_p_greater`)."""
    m, n = s.n_positive, s.n_negative
    if m is None or n is None or m < 2 or n < 2 or s.baseline_value is None or s.correlation is None:
        return None
    return mover_p_greater(s.value + s.baseline_value, s.baseline_value, s.correlation, m, n, null)


def _normal_greater(s: Sampling, null: float) -> float | None:
    """z = (θ̂ − θ₀)/se on a recorded standard error: best-of-N's mean over subsets (`stratified_normal`) and its
    Ties composite (`cluster_bootstrap`), the normal tests their intervals invert."""
    if s.se is None or not s.se > 0:
        return None
    return float(scipy_stats.norm.sf((s.value - null) / s.se))


_GREATER: dict[str, Callable[[Sampling, float], float | None]] = {
    "wilson": _share_greater,
    "wilson_clustered": _share_greater,
    "student_t": _mean_greater,
    "cluster_t": _mean_greater,
    "tango": _paired_shares_greater,
    "fisher_z": _correlation_greater,
    "newcombe_auc": _auc_greater,
    "mover_auc": _auc_difference_greater,
    "stratified_normal": _normal_greater,
    "cluster_bootstrap": _normal_greater,
}
"""The one-sided test of each method that has one (`order_statistics` and `none` have none)."""


def p_less(s: Sampling, null: float) -> float | None:
    """One-sided p of H₀: θ ≥ `null` against θ < `null` (the mirror of `p_greater`)."""
    mirrored = _mirror(s)
    return p_greater(mirrored, 1 - null if s.method in _SHARES else -null)


def describe_test(s: Sampling) -> str:
    """The one-sided test `p_greater` and `p_less` run for `s`, in words."""
    if s.method == "wilson":
        return "exact binomial" if _whole_successes(s) is not None else "score test on the effective n"
    return {
        "wilson_clustered": "score test on the effective n, clustered by prompt",
        "student_t": "t, skewness-corrected" if s.skewness else "t",
        "cluster_t": "cluster-robust t",
        "tango": "tango score",
        "fisher_z": "fisher z",
        "newcombe_auc": "Newcombe score",
        "mover_auc": "MOVER of Newcombe intervals, DeLong correlation",
        "stratified_normal": "z on the subsets' standard errors",
        "cluster_bootstrap": "z on a bootstrap standard error over prompts",
    }.get(s.method, "no test")


def _effective(s: Sampling) -> float:
    return s.n_effective if s.n_effective is not None else float(s.n)


def _whole_successes(s: Sampling) -> int | None:
    """x for a share of independent 0/1 outcomes (n_effective = n, value·n whole); None otherwise."""
    if s.method != "wilson" or abs(_effective(s) - s.n) > 1e-9 * s.n:
        return None
    successes = s.value * s.n
    rounded = round(successes)
    return int(rounded) if abs(successes - rounded) < 1e-6 else None


_SHARES = ("wilson", "wilson_clustered", "newcombe_auc")
"""Methods of a quantity in [0, 1], mirrored as 1 − θ (an AUC as the other group's: V(θ) is symmetric in θ ↔ 1 − θ
and in the two group sizes)."""


def _mirror(s: Sampling) -> Sampling:
    """The same estimate of −θ (of 1 − θ for shares), so one function tests both directions."""
    if s.method == "newcombe_auc":
        return Sampling(s.method, 1 - s.value, s.n, n_positive=s.n_negative, n_negative=s.n_positive)
    if s.method == "mover_auc":  # the baseline's AUC against the model's
        model = None if s.baseline_value is None else s.value + s.baseline_value
        return replace(s, value=-s.value, baseline_value=model)
    if s.method in ("wilson", "wilson_clustered"):
        return Sampling(s.method, 1 - s.value, s.n, n_effective=s.n_effective)
    if s.method == "tango":
        return Sampling("tango", -s.value, s.n, gained=s.lost, lost=s.gained)
    skewness = -s.skewness if s.skewness is not None else None
    return Sampling(s.method, -s.value, s.n, se=s.se, df=s.df, skewness=skewness)


def lower_bound(s: Sampling, alpha: float) -> float | None:
    """The one-sided (1 − α) lower confidence bound: the smallest θ₀ that `p_greater` does not reject at α."""
    if s.method not in TESTABLE:
        return None
    if s.method in ("wilson", "wilson_clustered"):
        successes = _whole_successes(s)
        if successes is not None:  # Clopper–Pearson: where P(X ≥ x | p) = α
            return 0.0 if successes == 0 else float(scipy_stats.beta.ppf(alpha, successes, s.n - successes + 1))
        n = _effective(s)
        interval = wilson_interval(s.value * n, n, 1 - 2 * alpha) if n > 0 else None
        return interval.low if interval else None
    if s.method in ("student_t", "cluster_t"):
        if s.se is None or s.df is None or not s.se > 0 or s.df < 1:
            return None
        critical = float(scipy_stats.t.isf(alpha, s.df))
        if s.skewness:
            critical = hall_inverse(critical, s.skewness, s.n)
        return s.value - critical * s.se
    if s.method in ("stratified_normal", "cluster_bootstrap"):
        return s.value - normal_isf(alpha) * s.se if s.se is not None and s.se > 0 else None
    if s.method == "newcombe_auc":
        if s.n_positive is None or s.n_negative is None or min(s.n_positive, s.n_negative) < 1:
            return None
        low, _ = newcombe_bounds(np.array(s.value), np.array(s.n_positive), np.array(s.n_negative), normal_isf(alpha))
        return float(low)
    if s.method == "mover_auc":
        return mover_lower_bound(s, alpha)
    if s.method == "tango":
        assert s.gained is not None and s.lost is not None
        return float(tango_root(np.array(s.gained), np.array(s.lost), np.array(s.n), np.array(normal_isf(alpha))))
    if s.se is None or not s.se > 0:  # fisher_z
        return None
    return float(np.tanh(np.arctanh(s.value) - float(scipy_stats.norm.isf(alpha)) * s.se))


def upper_bound(s: Sampling, alpha: float) -> float | None:
    """The one-sided (1 − α) upper confidence bound (the mirror of `lower_bound`)."""
    low = lower_bound(_mirror(s), alpha)
    if low is None:
        return None
    return 1 - low if s.method in _SHARES else -low


# --- two-sided tests of a paired difference ---------------------------------------------------------------


def two_sided_p(s: Sampling) -> float:
    """Two-sided p of H₀: θ = 0 (a difference), from the same method as its interval; 1.0 where undefined."""
    if s.method == "tango":
        assert s.gained is not None and s.lost is not None
        if s.gained + s.lost == 0:
            return 1.0
        z = (s.gained - s.lost) / np.sqrt(s.gained + s.lost)  # Tango's Z at Δ₀ = 0: McNemar's statistic
        return float(2 * scipy_stats.norm.sf(abs(z)))
    if s.method in ("student_t", "cluster_t"):
        if s.se is None or s.df is None or not s.se > 0 or s.df < 1:
            return 1.0
        return float(2 * scipy_stats.t.sf(abs(s.value) / s.se, s.df))
    if s.method == "mover_auc":  # the two-sided interval at 1 − p just reaches 0
        greater = p_greater(s, 0.0)
        return 1.0 if greater is None else min(1.0, 2 * min(greater, 1 - greater))
    raise AssertionError(f"no two-sided test of a difference for method {s.method!r}")


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank test of paired differences against 0.

    Zero differences are dropped (scipy's default `zero_method="wilcox"`); scipy uses the exact
    null distribution for small samples and the normal approximation for large ones. With no
    non-zero difference there is no evidence of a difference and p = 1.
    """
    if not np.any(differences != 0):
        return 1.0
    return float(scipy_stats.wilcoxon(differences).pvalue)


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins against losses (ties dropped); 1.0 with neither."""
    if wins + losses == 0:
        return 1.0
    return float(scipy_stats.binomtest(wins, wins + losses, 0.5).pvalue)


# --- power -----------------------------------------------------------------------------------------------


def mde_mean(se: float | None, df: float | None, alpha: float, power: float) -> float | None:
    """Smallest true mean difference the two-sided t-test at `alpha` detects with `power`.

    Solved on the noncentral t: power(δ) = P(|T| > t_{1−α/2}) with T ~ t'(df, δ/se); se from the
    observed differences. None without an honest standard error.
    """
    if se is None or df is None or not se > 0 or df < 1:
        return None
    critical = float(scipy_stats.t.isf(alpha / 2, df))

    def shortfall(effect: float) -> float:
        shift = effect / se
        detected = float(scipy_stats.nct.sf(critical, df, shift) + scipy_stats.nct.cdf(-critical, df, shift))
        return (detected if np.isfinite(detected) else 1.0) - power

    high = se * (critical + float(scipy_stats.norm.isf(1 - power)) + 4)
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10 * se))


def mde_paired_shares(discordant: float, n: int, alpha: float, power: float) -> float | None:
    """Smallest true difference of paired shares McNemar's (score) test at `alpha` detects with `power`.

    Connor (1987): with ψ the share of discordant pairs, √n·Δ = z_{1−α/2}√ψ + z_power√(ψ − Δ²).
    ψ is read from the observed pairs. None when no pair is discordant or no Δ ≤ ψ reaches the power.
    """
    if n < 1 or discordant <= 0:
        return None
    psi = discordant / n
    za, zb = float(scipy_stats.norm.isf(alpha / 2)), float(scipy_stats.norm.isf(1 - power))

    def shortfall(effect: float) -> float:
        return float(np.sqrt(n) * effect - za * np.sqrt(psi) - zb * np.sqrt(max(psi - effect * effect, 0.0)))

    if shortfall(psi) < 0:
        return None
    return float(optimize.brentq(shortfall, 0.0, psi, xtol=1e-12))


# --- multiplicity ----------------------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: p̃₍ᵢ₎ = max_{j≤i} min(1, (m − j + 1)·p₍ⱼ₎). Controls the
    family-wise error rate under any dependence."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return [float(p) for p in adjusted]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (scipy's `false_discovery_control`): controls the false
    discovery rate for independent or positively dependent tests."""
    if not p_values:
        return []
    return [float(p) for p in scipy_stats.false_discovery_control(np.asarray(p_values, dtype=np.float64))]
