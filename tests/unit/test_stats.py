"""Interval estimates and paired tests, each against a value worked by hand or a closed form."""

import math

import numpy as np
import pytest
import scipy.stats

from evalkit.metrics import hypotheses, stats

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
    """Scores 1, ½, 0, 1: 2.5 of 4 = 0.625. Deviations 0.375, −0.125, −0.625, 0.375: variance
    0.6875/4 = 0.171875 against the binomial 0.625·0.375 = 0.234375, so n_eff = 4·0.234375/0.171875
    = 5.454545 (Wilson's formula holds for fractional x and n)."""
    estimate = stats.proportion(np.array([1.0, 0.5, 0.0, 1.0]), 0.95)
    assert (estimate.value, estimate.n, estimate.method) == (0.625, 4, "wilson")
    assert estimate.sampling.n_effective == pytest.approx(5.454545, abs=1e-6)


def test_clustered_proportion_uses_the_effective_sample_size() -> None:
    """Outcomes 1 1 0 0, the first two pairs on prompt a, the last two on b. Clustered (CR1): residuals
    ½ ½ −½ −½ sum to 1 and −1 per prompt, se² = (2/1)·(1 + 1)/4² = 1/4; p̂(1 − p̂) = 1/4, so n_eff = 1:
    two prompts that each answer as one carry about one pair's worth of evidence."""
    estimate = stats.proportion(np.array([1.0, 1, 0, 0]), 0.95, clusters=np.array(["a", "a", "b", "b"]))
    assert estimate.method == "wilson_clustered"
    assert estimate.sampling.n_effective == pytest.approx(1.0)
    assert estimate.interval == stats.wilson_interval(0.5, 1.0, 0.95)
    one_each = stats.proportion(np.array([1.0, 1, 0, 0]), 0.95, clusters=np.array(["a", "b", "c", "d"]))
    assert (one_each.method, one_each.sampling.n_effective) == ("wilson", 4.0)  # nothing shared, nothing to cluster


def test_ties_counted_half_shrink_the_variance_and_grow_the_effective_size() -> None:
    """1 ½ ½ 0: p̂ = ½, outcome variance (¼ + 0 + 0 + ¼)/4 = 1/8 against the binomial ¼: n_eff = 8."""
    estimate = stats.proportion(np.array([1.0, 0.5, 0.5, 0.0]), 0.95)
    assert estimate.sampling.n_effective == pytest.approx(8.0)
    assert estimate.interval == stats.wilson_interval(4.0, 8.0, 0.95)


def test_the_gate_test_of_a_share_is_exact() -> None:
    """17 of 22 right against p₀ = 0.6: P(X ≥ 17 | 22, 0.6) = binom.sf(16); the lower bound is
    Clopper–Pearson's, where that tail is α."""
    share = stats.proportion(np.array([1.0] * 17 + [0.0] * 5), 0.95)
    assert hypotheses.p_greater(share.sampling, 0.6) == pytest.approx(scipy.stats.binom.sf(16, 22, 0.6))
    low = hypotheses.lower_bound(share.sampling, 0.05)
    assert low == pytest.approx(scipy.stats.beta.ppf(0.05, 17, 6))


def test_t_interval_by_hand() -> None:
    """1..5: mean 3, s = √2.5, se = 0.707107, t(0.975; 4) = 2.776445, half-width 1.963243."""
    estimate = stats.mean(np.array([1.0, 2, 3, 4, 5]), 0.95)
    assert estimate.method == "student_t" and estimate.interval is not None
    assert estimate.interval.low == pytest.approx(3 - 1.963243, abs=1e-6)
    assert estimate.interval.high == pytest.approx(3 + 1.963243, abs=1e-6)
    assert (estimate.sampling.se, estimate.sampling.df) == (pytest.approx(math.sqrt(0.5)), 4.0)


def test_t_interval_is_undefined_without_spread_or_with_one_pair() -> None:
    """Identical pairs carry no information about the spread: se = 0 would claim certainty."""
    assert stats.mean(np.full(50, 0.5), 0.95).interval is None
    assert stats.mean(np.array([2.0]), 0.95).interval is None


def test_cluster_t_by_hand() -> None:
    """1 2 | 3 4 on two prompts of equal size (CR2 is then CR1, and df = G − 1): mean 2.5, residual sums
    −2 and 2, se = √(4/(1 − ½) + 4/(1 − ½))/4 = 1, df = 1,
    t(0.975; 1) = 12.706205: [2.5 − 12.706205, 2.5 + 12.706205]."""
    estimate = stats.mean(np.array([1.0, 2, 3, 4]), 0.95, clusters=np.array([7, 7, 9, 9]))
    assert estimate.method == "cluster_t" and estimate.interval is not None
    assert (estimate.sampling.se, estimate.sampling.df) == (pytest.approx(1.0), 1.0)
    assert estimate.interval.low == pytest.approx(2.5 - 12.706205, abs=1e-5)


def test_cluster_robust_degrees_of_freedom_by_hand() -> None:
    """Clusters of 1, 1 and 2 pairs (n = 4): a² = 4/3, 4/3, 2. Σa⁴n² = 32/9 + 16 = 19.555556,
    2Σa⁴n³/n = 2·(32/9 + 32)/4 = 17.777778, (Σa²n²)²/n² = (32/3)²/16 = 7.111111: ‖W‖² = 8.888889 and
    df = 4²/8.888889 = 1.8, fewer than G − 1 = 2 because the sizes differ. CR2: residuals of 1 2 4 5
    (mean 3) sum to −2, −1, 3 per cluster: se = √(4·4/3 + 1·4/3 + 9·2)/4 = √24.666667/4 = 1.241639."""
    estimate = stats.mean(np.array([1.0, 2, 4, 5]), 0.95, clusters=np.array(["a", "b", "c", "c"]))
    assert estimate.sampling.df == pytest.approx(1.8)
    assert estimate.sampling.se == pytest.approx(1.241639, abs=1e-6)


def test_tango_without_discordant_pairs_has_a_closed_form() -> None:
    """b = c = 0: the constrained MLE is q = 0 (Δ > 0), so Z(Δ) = −√(nΔ/(1 − Δ)); |Z| = z at
    Δ = ±z²/(n + z²): ±0.071348 for n = 50. No discordant pair is evidence too, bounded by n."""
    estimate = stats.paired_shares(0, 0, 50, 0.95)
    assert estimate.interval is not None
    assert estimate.interval.high == pytest.approx(Z * Z / (50 + Z * Z), abs=1e-9)
    assert estimate.interval.low == pytest.approx(-Z * Z / (50 + Z * Z), abs=1e-9)


def test_tango_statistic_at_zero_is_mcnemars() -> None:
    """Z(0) = (b − c)/√(b + c): 5 and 0 → √5 = 2.236068, two-sided p = 2·(1 − Φ(2.236068)) = 0.025347."""
    z = stats.tango_statistic(np.array(5), np.array(0), np.array(150), np.array(0.0))
    assert float(z) == pytest.approx(math.sqrt(5))
    estimate = stats.paired_shares(5, 0, 150, 0.95)
    assert hypotheses.two_sided_p(estimate.sampling) == pytest.approx(0.025347, abs=1e-6)


def test_tango_interval_and_test_agree_everywhere() -> None:
    """The interval excludes 0 exactly when the two-sided test at the same level rejects: one method.
    (5 flipped to right, 0 to wrong of 150 used to read "interval excludes 0, p = 0.0625".)"""
    for n in (10, 40, 150):
        for gained in range(0, 12):
            for lost in range(0, 12 - gained):
                estimate = stats.paired_shares(gained, lost, n, 0.95)
                assert estimate.interval is not None
                excludes = estimate.interval.low > 0 or estimate.interval.high < 0
                rejects = hypotheses.two_sided_p(estimate.sampling) < 0.05
                assert excludes == rejects, (n, gained, lost)


def test_tango_bounds_solve_the_score_equation() -> None:
    """At each bound the score statistic equals ±z."""
    estimate = stats.paired_shares(12, 3, 40, 0.95)
    assert estimate.interval is not None
    at = [
        float(stats.tango_statistic(np.array(12), np.array(3), np.array(40), np.array(b)))
        for b in (estimate.interval.low, estimate.interval.high)
    ]
    assert at == [pytest.approx(Z, abs=1e-6), pytest.approx(-Z, abs=1e-6)]


def test_one_sided_tests_by_hand() -> None:
    """The exact binomial tail, 7 of 10 against p₀ = ½: (120 + 45 + 10 + 1)/2¹⁰ = 0.171875.
    Student t on symmetric values (no skewness to correct): the same p as scipy's one-sided t-test."""
    share = stats.proportion(np.array([1.0] * 7 + [0.0] * 3), 0.95)
    assert hypotheses.p_greater(share.sampling, 0.5) == pytest.approx(176 / 1024)
    values = np.array([-1.0, 0.5, 0.8, 1.2, 1.5, 3.0])
    mean = stats.mean(values, 0.95)
    theirs = scipy.stats.ttest_1samp(values, 0.2, alternative="greater").pvalue
    assert hypotheses.p_greater(mean.sampling, 0.2) == pytest.approx(theirs)
    assert hypotheses.p_less(mean.sampling, 0.2) == pytest.approx(1 - theirs)


@pytest.mark.parametrize(
    "estimate",
    [
        stats.proportion(np.array([1.0] * 17 + [0.0] * 5), 0.95),
        stats.proportion(np.array([1.0, 1, 0, 1, 0, 0, 1, 1]), 0.95, clusters=np.array([1, 1, 2, 2, 3, 3, 4, 4])),
        stats.mean(np.array([0.3, 1.2, -0.4, 2.2, 0.9, 1.1]), 0.95),
        stats.mean(np.array([0.3, 1.2, -0.4, 2.2, 0.9, 1.1]), 0.95, clusters=np.array([1, 1, 2, 3, 3, 4])),
        stats.paired_shares(14, 4, 60, 0.95),
        stats.spearman(np.arange(30.0), (np.arange(30.0) * 7) % 11, 0.95),
    ],
    ids=["wilson", "wilson_clustered", "student_t", "cluster_t", "tango", "fisher_z"],
)
def test_each_one_sided_bound_is_where_its_test_has_p_alpha(estimate: stats.Estimate | None) -> None:
    """Bound and test are one method: p(θ₀ = lower bound) = α from above, and p(upper bound) = α from below.
    The two one-sided 97.5% bounds are the two-sided 95% interval."""
    assert estimate is not None and estimate.interval is not None
    low, high = hypotheses.lower_bound(estimate.sampling, 0.05), hypotheses.upper_bound(estimate.sampling, 0.05)
    assert low is not None and high is not None
    assert hypotheses.p_greater(estimate.sampling, low) == pytest.approx(0.05, abs=1e-6)
    assert hypotheses.p_less(estimate.sampling, high) == pytest.approx(0.05, abs=1e-6)
    # Shares of 0/1 outcomes are gated exactly (Clopper–Pearson) and means with the skewness correction,
    # while the reports show Wilson's and Student's intervals; the others are one method both ways.
    if estimate.method not in ("wilson", "student_t"):
        assert hypotheses.lower_bound(estimate.sampling, 0.025) == pytest.approx(estimate.interval.low, abs=1e-6)
        assert hypotheses.upper_bound(estimate.sampling, 0.025) == pytest.approx(estimate.interval.high, abs=1e-6)


def test_hall_statistic_by_hand_and_its_inverse() -> None:
    """t = 2, γ = 1, n = 9: 2 + 4/(3·3) + 8/(27·9) + 1/(6·3) = 2 + 0.444444 + 0.032922 + 0.055556 = 2.532922.
    No skewness: T = t. The bound inverts the transformation exactly."""
    assert stats.hall_statistic(2.0, 1.0, 9) == pytest.approx(2.532922, abs=1e-6)
    assert stats.hall_statistic(2.0, 0.0, 9) == 2.0
    skewed = stats.mean(np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.9, 1.6, 3.5]), 0.95)
    assert skewed.sampling.skewness is not None and skewed.sampling.skewness > 1
    low = hypotheses.lower_bound(skewed.sampling, 0.05)
    assert low is not None and hypotheses.p_greater(skewed.sampling, low) == pytest.approx(0.05, abs=1e-9)


def test_skewness_correction_guards_the_side_a_skewed_mean_errs_on() -> None:
    """Right-skewed values: a low sample mean comes with a low sd, so the plain t upper bound is too low
    and "the mean is below the budget" passes too often; the corrected upper bound sits higher."""
    skewed = stats.mean(np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.9, 1.6, 3.5]), 0.95)
    plain = stats.Sampling("student_t", skewed.value, skewed.n, se=skewed.sampling.se, df=skewed.sampling.df)
    corrected, uncorrected = hypotheses.upper_bound(skewed.sampling, 0.05), hypotheses.upper_bound(plain, 0.05)
    assert corrected is not None and uncorrected is not None and corrected > uncorrected


def test_median_interval_by_hand() -> None:
    """1..20: γ_d = 1 − 2·P(Bin(20, ½) ≤ d − 1): P(≤ 5) = 21700/2²⁰, P(≤ 6) = 60460/2²⁰, so
    γ₆ = 0.9586105, γ₇ = 0.8846817 and d = 6; I = 0.0086105/0.0739288 = 0.116470,
    λ = 14·I/(6 + 8·I) = 0.235234: [x₆ + λ, x₁₅ − λ] = [6.235234, 14.764766].
    Fewer than 6 values: no order statistics reach 95%."""
    estimate = stats.median(np.arange(1.0, 21.0), 0.95)
    assert estimate.value == 10.5 and estimate.interval is not None
    assert estimate.interval.low == pytest.approx(6.235234, abs=1e-5)
    assert estimate.interval.high == pytest.approx(14.764766, abs=1e-5)
    assert stats.median(np.arange(5.0), 0.95).interval is None


def test_spearman_by_hand() -> None:
    """x = 1 2 3 4, y = 1 3 2 4: rank differences 0 1 1 0, ρ = 1 − 6·2/(4·15) = 0.8.
    With ties, x = 0 0 1 1 (ranks 1.5 1.5 3.5 3.5), y = 1 2 3 4: centred ranks −1 −1 1 1 and
    −1.5 −0.5 0.5 1.5, ρ = 4 / √(4·5) = 0.894427. Interval on n = 4: atanh(0.8) ± z·√((1 + 0.32)/1).
    A constant variable has no ρ."""
    estimate = stats.spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]), 0.95)
    assert estimate is not None and estimate.value == pytest.approx(0.8) and estimate.interval is not None
    assert estimate.interval.low == pytest.approx(math.tanh(math.atanh(0.8) - Z * math.sqrt(1.32)))
    tied = stats.spearman(np.array([0.0, 0, 1, 1]), np.array([1.0, 2, 3, 4]), 0.95)
    assert tied is not None and tied.value == pytest.approx(4 / math.sqrt(20))
    assert tied.value == pytest.approx(scipy.stats.spearmanr([0, 0, 1, 1], [1, 2, 3, 4]).statistic)
    assert stats.spearman(np.zeros(4), np.array([1.0, 2, 3, 4]), 0.95) is None


def test_wilcoxon_by_hand() -> None:
    """Exact signed-rank p-values, two-sided:
    1 2 3 4 5 all positive: 2/2⁵ = 0.0625;
    0 1 2 3: the zero is dropped, then 2/2³ = 0.25;
    1 1 2 −3 (ranks 1.5 1.5 3 4, W− = 4): sign patterns with W− ≤ 4 are {}, {1.5}, {1.5'}, {3},
    {4}, {1.5, 1.5'}, 6 of 16, so p = 12/16 = 0.75;
    all zero: no evidence, p = 1."""
    assert hypotheses.wilcoxon_p(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(0.0625)
    assert hypotheses.wilcoxon_p(np.array([0.0, 1, 2, 3])) == pytest.approx(0.25)
    assert hypotheses.wilcoxon_p(np.array([1.0, 1, 2, -3])) == pytest.approx(0.75)
    assert hypotheses.wilcoxon_p(np.zeros(3)) == 1.0


def test_sign_test_by_hand() -> None:
    """5 wins, 0 losses: 2·(½)⁵ = 0.0625; 3 wins, 1 loss: 2·(1 + 4)/16 = 0.625; neither: 1."""
    assert hypotheses.sign_test_p(5, 0) == pytest.approx(0.0625)
    assert hypotheses.sign_test_p(3, 1) == pytest.approx(0.625)
    assert hypotheses.sign_test_p(0, 0) == 1.0


def test_mde_of_a_mean_reaches_its_power_on_the_noncentral_t() -> None:
    """At the MDE the two-sided t-test at α = 0.05 has power 0.8 exactly (noncentral t); the normal
    approximation (z + z_power)·se = 2.801585·se understates it, most at few degrees of freedom."""
    for df in (4.0, 19.0, 199.0):
        mde = hypotheses.mde_mean(0.1, df, 0.05, 0.8)
        assert mde is not None
        critical = scipy.stats.t.isf(0.025, df)
        power = scipy.stats.nct.sf(critical, df, mde / 0.1) + scipy.stats.nct.cdf(-critical, df, mde / 0.1)
        assert power == pytest.approx(0.8, abs=1e-8)
        assert mde > (Z + Z_POWER) * 0.1
    assert hypotheses.mde_mean(0.0, 10.0, 0.05, 0.8) is None


def test_mde_of_paired_shares_by_hand() -> None:
    """Connor (1987), ψ = 20/100: √100·Δ = 1.959964·√0.2 + 0.841621·√(0.2 − Δ²) at Δ = 0.123819:
    left 1.238194, right 0.876523 + 0.841621·0.429730 = 1.238194. No discordant pair: undefined."""
    assert hypotheses.mde_paired_shares(20, 100, 0.05, 0.8) == pytest.approx(0.123819, abs=1e-6)
    assert hypotheses.mde_paired_shares(0, 100, 0.05, 0.8) is None


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    """p = 0.01, 0.04, 0.03. Holm: sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → running max 0.06.
    BH: 0.01·3/1 = 0.03, 0.03·3/2 = 0.045, 0.04·3/3 = 0.04, then the running minimum from the top."""
    assert hypotheses.holm([0.01, 0.04, 0.03]) == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06)]
    assert hypotheses.benjamini_hochberg([0.01, 0.04, 0.03]) == [
        pytest.approx(0.03),
        pytest.approx(0.04),
        pytest.approx(0.04),
    ]
    assert hypotheses.holm([0.5]) == [0.5] and hypotheses.benjamini_hochberg([]) == []
