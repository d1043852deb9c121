"""Interval estimates and paired tests, each against a value worked by hand or a closed form."""

import math

import numpy as np
import pytest
import scipy.stats

from evalkit import stats

Z = 1.959963984540054  # Φ⁻¹(0.975)
Z_POWER = 0.8416212335729143  # Φ⁻¹(0.80)


def test_z_score() -> None:
    assert stats.z_score(0.95) == pytest.approx(Z)


def test_wilson_interval_by_hand() -> None:
    """x = 7 of n = 10, z² = 3.841459:
    centre = (7 + z²/2) / (10 + z²) = 8.920729 / 13.841459 = 0.644493
    half   = z·√(7·3/10 + z²/4) / (10 + z²) = 1.959964·√3.060365 / 13.841459 = 0.247715
    → [0.396778, 0.892209], which is also scipy's Wilson interval.
    """
    interval = stats.wilson_interval(7, 10, 0.95)
    assert interval is not None
    assert (interval.low, interval.high) == (pytest.approx(0.396778, abs=1e-6), pytest.approx(0.892209, abs=1e-6))
    scipy_ci = scipy.stats.binomtest(7, 10).proportion_ci(method="wilson")
    assert (interval.low, interval.high) == (pytest.approx(scipy_ci.low), pytest.approx(scipy_ci.high))


def test_wilson_interval_edges() -> None:
    """All or none right: one end is exact and the other is n/(n + z²) away from it.

    n = 1, x = 1: [1/(1 + z²), 1] = [0.206549, 1]; n = 10, x = 0: [0, z²/(10 + z²)] = [0, 0.277533].
    n = 0: no interval.
    """
    one = stats.wilson_interval(1, 1, 0.95)
    assert one is not None and (one.low, one.high) == (pytest.approx(1 / (1 + Z * Z)), 1.0)
    none_right = stats.wilson_interval(0, 10, 0.95)
    assert none_right is not None and (none_right.low, none_right.high) == (0.0, pytest.approx(Z * Z / (10 + Z * Z)))
    assert stats.wilson_interval(0, 0, 0.95) is None


def test_proportion_counts_half_successes() -> None:
    """Scores 1, ½, 0, 1: 2.5 of 4 = 0.625 (the Wilson formula holds for fractional x)."""
    estimate = stats.proportion(np.array([1.0, 0.5, 0.0, 1.0]), 0.95)
    assert (estimate.value, estimate.n) == (0.625, 4)
    assert estimate.interval == stats.wilson_interval(2.5, 4, 0.95)


def test_bootstrap_mean_equals_scipy_percentile_bootstrap() -> None:
    """One chunk of resamples is the draw scipy.stats.bootstrap makes from the same seed."""
    values = np.random.default_rng(1).normal(size=40)
    ours = stats.bootstrap_estimate(stats.mean_of(values), 40, 0.95, 2000, seed=0)
    theirs = scipy.stats.bootstrap(
        (values,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert ours.value == pytest.approx(values.mean())
    assert ours.interval is not None
    assert (ours.interval.low, ours.interval.high) == (pytest.approx(theirs.low), pytest.approx(theirs.high))


def test_bootstrap_of_three_values_spans_min_to_max() -> None:
    """With 3 pairs a resample is all-lowest with probability 1/27 ≈ 3.7% > 2.5% (likewise
    all-highest), so the 2.5th and 97.5th percentiles of 2000 resample means are min and max."""
    estimate = stats.bootstrap_estimate(stats.mean_of(np.array([-1.0, -4.0, -2.0])), 3, 0.95, 2000, seed=0)
    assert estimate.value == pytest.approx(-7 / 3)
    assert estimate.interval == stats.Interval(-4.0, -1.0)


def test_bootstrap_is_deterministic_and_seeded() -> None:
    values = np.arange(30, dtype=float) ** 1.5
    first = stats.bootstrap_interval(stats.median_of(values), 30, 0.95, 500, seed=0)
    assert first == stats.bootstrap_interval(stats.median_of(values), 30, 0.95, 500, seed=0)
    assert first != stats.bootstrap_interval(stats.median_of(values), 30, 0.95, 500, seed=1)


def test_bootstrap_chunks_cover_every_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunking (for large n) changes nothing but memory: same number of resamples, same seed stream."""
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 7 * 10)  # chunks of 7 resamples of 10 pairs
    chunks = list(stats.resample_indices(10, 50, seed=0))
    assert [c.shape for c in chunks] == [(7, 10)] * 7 + [(1, 10)]


def test_bootstrap_undefined_cases() -> None:
    """One pair, no spread, or a statistic undefined on some resample: no interval."""
    assert stats.bootstrap_interval(stats.mean_of(np.array([2.0])), 1, 0.95, 100, seed=0) is None
    assert stats.bootstrap_interval(stats.mean_of(np.full(5, 0.3)), 5, 0.95, 100, seed=0) is None
    x, y = np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0])
    assert stats.bootstrap_interval(stats.spearman_of(x, y), 3, 0.95, 100, seed=0) is None


def test_spearman_by_hand() -> None:
    """x = 1 2 3 4, y = 1 3 2 4: rank differences 0 1 1 0, ρ = 1 − 6·2/(4·15) = 0.8.
    With ties, x = 0 0 1 1 (ranks 1.5 1.5 3.5 3.5), y = 1 2 3 4: centred ranks −1 −1 1 1 and
    −1.5 −0.5 0.5 1.5, ρ = 4 / √(4·5) = 0.894427. A constant variable has no ρ (NaN)."""
    everything = np.arange(4)[None, :]
    assert stats.spearman_of(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]))(everything)[0] == pytest.approx(0.8)
    tied = stats.spearman_of(np.array([0.0, 0, 1, 1]), np.array([1.0, 2, 3, 4]))(everything)[0]
    assert tied == pytest.approx(4 / math.sqrt(20))
    assert tied == pytest.approx(scipy.stats.spearmanr([0, 0, 1, 1], [1, 2, 3, 4]).statistic)
    assert np.isnan(stats.spearman_of(np.zeros(4), np.array([1.0, 2, 3, 4]))(everything)[0])


def test_calibration_error_by_hand() -> None:
    """10 bins over [0.5, 1]. Pairs (confidence, correct): (0.625, 1), (0.625, 0) in bin [0.60, 0.65),
    (0.875, 1) in [0.85, 0.90), (0.5, ½) in [0.50, 0.55).
    ECE = (|1 − 0.625 + 0 − 0.625| + |1 − 0.875| + |½ − ½|) / 4 = (0.25 + 0.125) / 4 = 0.09375."""
    confidence = np.array([0.625, 0.625, 0.875, 0.5])
    correct = np.array([1.0, 0.0, 1.0, 0.5])
    bins = np.array([2, 2, 7, 0])
    ece = stats.calibration_error_of(confidence, correct, bins, 10)
    assert ece(np.arange(4)[None, :])[0] == pytest.approx(0.09375)
    # On a resample that picks pair 0 four times: |4·(1 − 0.625)| / 4 = 0.375.
    assert ece(np.zeros((1, 4), dtype=int))[0] == pytest.approx(0.375)


def test_mcnemar_exact_by_hand() -> None:
    """Two-sided binomial test of the discordant pairs against ½:
    5 vs 0 → 2·(½)⁵ = 0.0625; 3 vs 1 → 2·(1 + 4)/16 = 0.625; 1 vs 0 → 1; none → 1 (no evidence)."""
    assert stats.mcnemar_exact_p(5, 0) == pytest.approx(0.0625)
    assert stats.mcnemar_exact_p(0, 5) == pytest.approx(0.0625)
    assert stats.mcnemar_exact_p(3, 1) == pytest.approx(0.625)
    assert stats.mcnemar_exact_p(1, 0) == 1.0
    assert stats.mcnemar_exact_p(0, 0) == 1.0


def test_wilcoxon_by_hand() -> None:
    """Exact signed-rank p-values, two-sided:
    1 2 3 4 5 all positive: 2/2⁵ = 0.0625;
    0 1 2 3: the zero is dropped, then 2/2³ = 0.25;
    1 1 2 −3 (ranks 1.5 1.5 3 4, W− = 4): sign patterns with W− ≤ 4 are {}, {1.5}, {1.5'}, {3},
    {4}, {1.5, 1.5'}, 6 of 16, so p = 12/16 = 0.75;
    all zero: no evidence, p = 1."""
    assert stats.wilcoxon_p(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(0.0625)
    assert stats.wilcoxon_p(np.array([0.0, 1, 2, 3])) == pytest.approx(0.25)
    assert stats.wilcoxon_p(np.array([1.0, 1, 2, -3])) == pytest.approx(0.75)
    assert stats.wilcoxon_p(np.zeros(3)) == 1.0


def test_minimum_detectable_effect_by_hand() -> None:
    """d = 1 0 0 −1: sd = √(2/3) = 0.816497, sd/√4 = 0.408248, MDE = (1.959964 + 0.841621)·0.408248 = 1.143742.
    One pair, or models that agree on every pair (sd = 0): undefined."""
    mde = stats.minimum_detectable_effect(np.array([1.0, 0, 0, -1]), 0.95, 0.8)
    assert mde == pytest.approx((Z + Z_POWER) * math.sqrt(2 / 3) / 2)
    assert mde == pytest.approx(1.143742, abs=1e-6)
    assert stats.minimum_detectable_effect(np.array([1.0]), 0.95, 0.8) is None
    assert stats.minimum_detectable_effect(np.zeros(5), 0.95, 0.8) is None


def test_paired_t_by_hand_and_at_the_edges() -> None:
    """Differences 1..5: mean 3, sd² = 2.5, t = 3/√(2.5/5) = 3√2 on 4 df, p = 0.0132356."""
    assert stats.paired_t_p(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(0.0132356, abs=1e-7)
    assert stats.paired_t_p(np.array([2.0])) == 1.0  # one pair: no test
    assert stats.paired_t_p(np.zeros(4)) == 1.0
    assert stats.paired_t_p(np.full(4, 0.5)) == 0.0  # the same gain on every pair


def test_the_mean_test_follows_the_mean_when_most_pairs_move_the_other_way() -> None:
    """45 pairs up by 0.5, 5 pairs down by 10: the mean falls (−0.55) although most pairs rose.
    Wilcoxon calls the rise significant; the t-test, which tests what Δ reports, does not."""
    differences = np.array([0.5] * 45 + [-10.0] * 5)
    assert differences.mean() == pytest.approx(-0.55)
    assert stats.wilcoxon_p(differences) < 1e-3
    assert stats.paired_t_p(differences) > 0.05
