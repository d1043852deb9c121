import dataclasses
import math
import random

import pytest
from scipy.stats import t as scipy_t

from evalkit.errors import EvalkitError
from evalkit.metrics.compute import compute_metrics, reliability_curves
from evalkit.metrics.names import REGISTRY
from evalkit.metrics.paired import compare_models
from evalkit.results.estimates import Comparison, Metric
from evalkit.results.pairs import PairScore

Z2 = 1.959963984540054**2  # z² of a 95% interval


def row(
    pair_id: str,
    subset: str,
    lc: float,
    lr: float,
    rc: float | None,
    rr: float | None,
    tokens: tuple[int, int] = (2, 2),
    model: str = "m",
) -> PairScore:
    return PairScore(pair_id, subset, model, lc, lr, tokens[0], tokens[1], False, rc, rr)


def table(metrics: list[Metric], subset: str = "all") -> dict[str, Metric]:
    return {m.metric: m for m in metrics if m.subset == subset}


# β = 0.5. Hand-worked per pair (reward = β·(logp − ref_logp); Δlength = tokens chosen − rejected):
#   p1: rewards  0.5 / −0.5 → margin  1.0 (right); policy −1 > −3 (right); per token −0.5 > −0.75 (right);
#       Δlength −2 (chosen shorter); chosen −1 ≥ ref −2 (not displaced)
#   p2: rewards  0.0 /  0.0 → margin  0.0 (tie);   policy −4 < −2 (wrong); per token −1 > −2 (right);
#       Δlength +3 (chosen longer); chosen −4 = ref −4 (not displaced)
#   p3: rewards −0.5 /  1.0 → margin −1.5 (wrong); policy −2 < −1 (wrong); per token −1 < −0.5 (wrong);
#       Δlength 0 (same length); chosen −2 < ref −1 (displaced)
ROWS = [
    row("p1", "x", -1.0, -3.0, -2.0, -2.0, tokens=(2, 4)),
    row("p2", "x", -4.0, -2.0, -4.0, -2.0, tokens=(4, 1)),
    row("p3", "y", -2.0, -1.0, -1.0, -3.0, tokens=(2, 2)),
]


def test_policy_and_reward_metrics_match_hand_computation() -> None:
    m = table(compute_metrics("d", ROWS, beta=0.5))
    assert m["preference/accuracy"].value == pytest.approx(1 / 3)
    assert m["preference/accuracy_per_token"].value == pytest.approx(2 / 3)  # p1 and p2
    assert m["logps/chosen"].value == pytest.approx(-7 / 3)
    assert m["logps/rejected"].value == pytest.approx(-2.0)
    assert m["logps/margins"].value == pytest.approx((2.0 - 2.0 - 1.0) / 3)  # ℓ(chosen) − ℓ(rejected): 2, −2, −1
    assert m["rewards/accuracies"].value == pytest.approx(1 / 3)  # the tie does not count as right
    assert m["rewards/ties"].value == pytest.approx(1 / 3)
    assert m["rewards/margins"].value == pytest.approx((1.0 + 0.0 - 1.5) / 3)
    assert m["rewards/margins_median"].value == 0.0
    assert m["rewards/chosen"].value == pytest.approx(0.0)
    assert m["rewards/rejected"].value == pytest.approx(1 / 6)
    # log(1 + e^−1) + log 2 + log(1 + e^1.5) = 0.313262 + 0.693147 + 1.701413 → / 3 = 0.902607
    expected_loss = (math.log(1 + math.exp(-1.0)) + math.log(2) + math.log(1 + math.exp(1.5))) / 3
    assert m["loss"].value == pytest.approx(expected_loss)
    assert m["loss"].value == pytest.approx(0.902607, abs=1e-6)
    assert m["displacement/chosen"].value == pytest.approx(1 / 3)  # p3 only
    assert all(x.n == 3 for key, x in m.items() if not key.startswith("length/"))


def test_length_diagnostics_match_hand_computation() -> None:
    """Bins by the sign of Δlength hold one pair each (p1 shorter, p3 same, p2 longer); the
    longer-answer baseline is right on p2, wrong on p1, and skips p3 (equal lengths): 1/2 of n = 2.
    Spearman: margins 1 0 −1.5 rank 3 2 1, Δlength −2 3 0 rank 1 3 2; d = 2 −1 −1, Σd² = 6,
    ρ = 1 − 6·6/(3·8) = −0.5."""
    m = table(compute_metrics("d", ROWS, beta=0.5))
    assert {k: (v.value, v.n) for k, v in m.items() if k.startswith("length/") and "accuracy/" in k} == {
        "length/preference_accuracy/chosen_shorter": (1.0, 1),
        "length/preference_accuracy/same_length": (0.0, 1),
        "length/preference_accuracy/chosen_longer": (0.0, 1),
        "length/rewards_accuracy/chosen_shorter": (1.0, 1),
        "length/rewards_accuracy/same_length": (0.0, 1),
        "length/rewards_accuracy/chosen_longer": (0.0, 1),  # p2 is a tie
    }
    assert (m["length/longer_accuracy"].value, m["length/longer_accuracy"].n) == (0.5, 2)
    assert m["length/margin_spearman"].value == pytest.approx(-0.5)


def test_calibration_matches_hand_computation() -> None:
    """σ(1) = 0.731059, σ(0) = 0.5, σ(−1.5) = 0.182426.
    Brier = mean (1 − σ(m))² = (0.268941² + 0.5² + 0.817574²) / 3 = (0.072329 + 0.25 + 0.668427) / 3 = 0.330252.
    Top-label confidence σ(|m|): p1 0.731 right (bin [0.70, 0.75)), p2 0.5 half right ([0.50, 0.55)),
    p3 0.818 wrong ([0.80, 0.85)); one pair per bin, so
    ECE = (|1 − 0.731059| + |½ − ½| + |0 − 0.817574|) / 3 = 1.086515 / 3 = 0.362172."""
    m = table(compute_metrics("d", ROWS, beta=0.5))
    assert m["calibration/brier"].value == pytest.approx(0.330252, abs=1e-6)
    assert m["calibration/ece"].value == pytest.approx(0.362172, abs=1e-6)
    curve = [b for b in reliability_curves("d", ROWS, beta=0.5) if b.subset == "all"]
    assert [(b.low, b.high, b.n, b.accuracy) for b in curve] == [
        (0.5, 0.55, 1, 0.5),
        (0.7, 0.75, 1, 1.0),
        (0.8, 0.85, 1, 0.0),
    ]
    assert [b.confidence for b in curve] == pytest.approx([0.5, 0.731059, 0.817574], abs=1e-6)


def test_intervals_by_hand() -> None:
    """Shares get Wilson intervals: 1 of 3 → centre (1 + z²/2)/(3 + z²) = 0.426916, half-width
    z·√(2/3 + z²/4)/(3 + z²) = 0.365424 → [0.061492, 0.792340].
    Means get Student t: logps/chosen −1, −4, −2 has mean −7/3, s² = 7/3, se = √(7/9) = 0.881917,
    t(0.975; 2) = 4.302653 → −7/3 ± 3.794583 = [−6.127916, 1.461250].
    No interval for ρ on 3 pairs (Fisher z needs n > 3), for the median (no order statistics
    reach 95% below 6 pairs), or for ECE (descriptive). Every record names its method."""
    m = table(compute_metrics("d", ROWS, beta=0.5))
    accuracy = m["preference/accuracy"]
    assert (accuracy.ci_low, accuracy.ci_high) == (pytest.approx(0.061492, abs=1e-6), pytest.approx(0.792340, abs=1e-6))
    assert accuracy.method == "wilson"
    chosen = m["logps/chosen"]
    assert (chosen.ci_low, chosen.ci_high) == (pytest.approx(-6.127916, abs=1e-6), pytest.approx(1.461250, abs=1e-6))
    assert (chosen.method, chosen.se, chosen.df) == ("student_t", pytest.approx(math.sqrt(7 / 9)), 2.0)
    without = {"length/margin_spearman", "rewards/margins_median", "calibration/ece"}
    for name in without:
        assert (m[name].ci_low, m[name].ci_high) == (None, None), name
    assert (m["calibration/ece"].method, m["rewards/margins_median"].method) == ("none", "order_statistics")
    for metric in m.values():
        if metric.metric not in without:
            assert metric.ci_low is not None and metric.ci_high is not None, metric.metric
            assert metric.ci_low <= metric.ci_high


def test_without_reference_only_policy_metrics() -> None:
    m = table(compute_metrics("d", [row("p", "all", -1.0, -2.0, None, None, tokens=(1, 3))], beta=0.1))
    assert set(m) == {
        "preference/accuracy",
        "preference/ties",
        "preference/accuracy_per_token",
        "preference/ties_per_token",
        "logps/chosen",
        "logps/rejected",
        "logps/margins",
        "length/preference_accuracy/chosen_shorter",
        "length/longer_accuracy",
    }
    assert m["preference/accuracy"].value == 1.0
    assert m["preference/accuracy_per_token"].value == 0.0  # −1/1 < −2/3


def test_metrics_cover_all_pairs_and_each_subset() -> None:
    metrics = compute_metrics("d", ROWS, beta=0.5)
    cells = {(m.subset, m.metric): (m.value, m.n) for m in metrics}
    assert cells[("all", "rewards/accuracies")] == (pytest.approx(1 / 3), 3)
    assert cells[("x", "rewards/accuracies")] == (0.5, 2)
    assert cells[("x", "preference/accuracy")] == (0.5, 2)
    assert cells[("y", "rewards/margins")] == (pytest.approx(-1.5), 1)
    assert all(m.higher_is_better is REGISTRY[m.metric].higher_is_better for m in metrics)
    assert next(m for m in metrics if m.metric == "loss").higher_is_better is False


def test_no_subset_column_gives_only_the_overall_cell() -> None:
    rows = [row("p", "all", -1.0, -2.0, -1.0, -1.0)]
    assert {m.subset for m in compute_metrics("d", rows, beta=0.1)} == {"all"}


def test_metrics_and_intervals_do_not_depend_on_row_order() -> None:
    """Pairs are sorted by id before resampling, so even the bootstrap intervals stay put."""
    rows = [row(f"p{i}", "all", -i / 7, -((i * 5) % 11) / 3, -1.0, -1.0, tokens=(1 + i % 3, 2)) for i in range(40)]
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert compute_metrics("d", shuffled, 0.5) == compute_metrics("d", rows, 0.5)
    assert compare_models("d", [*shuffled, *(replace_model(r, "b") for r in rows)], 0.5) == compare_models(
        "d", [*rows, *(replace_model(r, "b") for r in shuffled)], 0.5
    )


def test_pairs_sharing_a_prompt_are_clustered() -> None:
    """Four pairs on two prompts (two pairs each): shares and means use the cluster-robust variance;
    with a prompt each, the independent methods."""
    rows = [row(f"p{i}", "all", -1.0 - i, -2.0, -1.0, -1.0) for i in range(4)]
    shared = [dataclasses.replace(r, prompt_key="ab"[i // 2]) for i, r in enumerate(rows)]
    own = [dataclasses.replace(r, prompt_key=str(i)) for i, r in enumerate(rows)]
    clustered, independent = table(compute_metrics("d", shared, 0.5)), table(compute_metrics("d", own, 0.5))
    assert (clustered["logps/chosen"].method, clustered["logps/chosen"].df) == ("cluster_t", 1.0)
    assert clustered["preference/accuracy"].method == "wilson_clustered"
    assert (independent["logps/chosen"].method, independent["logps/chosen"].df) == ("student_t", 3.0)
    assert independent["preference/accuracy"].method == "wilson"


# Edge cases -------------------------------------------------------------------------------------


def test_no_pairs_give_no_metrics() -> None:
    """n = 0: nothing to estimate, so nothing is reported (the tokenization audit says why)."""
    assert compute_metrics("d", [], beta=0.1) == []
    assert reliability_curves("d", [], beta=0.1) == []
    assert compare_models("d", [], beta=0.1) == []


def test_one_pair() -> None:
    """n = 1: shares keep a Wilson interval (1 of 1 → [1/(1 + z²), 1] = [0.206549, 1]); means and
    medians have none (a bootstrap of one value has no spread); a correlation is undefined."""
    m = table(compute_metrics("d", [row("p", "all", -1.0, -2.0, -2.0, -2.0)], beta=1.0))
    assert (m["preference/accuracy"].value, m["preference/accuracy"].ci_low) == (1.0, pytest.approx(1 / (1 + Z2)))
    assert m["preference/accuracy"].ci_high == 1.0
    assert m["rewards/margins"].value == 1.0  # β·((−1 + 2) − (−2 + 2))
    assert (m["rewards/margins"].ci_low, m["rewards/margins"].ci_high) == (None, None)
    assert (m["loss"].ci_low, m["calibration/ece"].ci_low) == (None, None)
    assert "length/margin_spearman" not in m


def test_all_ties() -> None:
    """A model equal to its reference: every margin is 0, so reward accuracy is 0 (strict >) with
    Wilson [0, z²/(3 + z²)] = [0, 0.561497], ties are 1, the loss is log 2 with no spread, ECE is 0
    (confidence ½, half right) and Brier ¼. Equal policy log-probs are not preferred either."""
    rows = [row(f"p{i}", "all", -1.0, -1.0, -1.0, -1.0, tokens=(1 + i, 2)) for i in range(3)]
    m = table(compute_metrics("d", rows, beta=0.1))
    assert (m["rewards/accuracies"].value, m["rewards/accuracies"].ci_low) == (0.0, 0.0)
    assert m["rewards/accuracies"].ci_high == pytest.approx(Z2 / (3 + Z2))
    assert m["rewards/ties"].value == 1.0
    assert m["loss"].value == pytest.approx(math.log(2))
    assert (m["loss"].ci_low, m["rewards/margins"].ci_low) == (None, None)
    assert m["calibration/ece"].value == 0.0
    assert m["calibration/brier"].value == 0.25
    assert m["preference/accuracy"].value == 0.0
    assert m["displacement/chosen"].value == 0.0
    assert "length/margin_spearman" not in m  # the margin is constant


@pytest.mark.parametrize(
    ("field", "value"),
    [("logp_chosen", float("nan")), ("logp_rejected", float("-inf")), ("ref_logp_chosen", float("nan"))],
)
def test_non_finite_log_probs_are_refused(field: str, value: float) -> None:
    rows = [row(f"p{i}", "all", -1.0, -2.0, -1.5, -1.5, model="aligned") for i in range(3)]
    bad = dataclasses.replace(rows[1], **{field: value})
    scores = [rows[0], bad, rows[2]]
    message = r"dataset 'tiny', model 'aligned': non-finite log-probs .* 1 of 3 pairs: 'p1'; evalkit refuses"
    with pytest.raises(EvalkitError, match=message):
        compute_metrics("tiny", scores, beta=0.1)
    with pytest.raises(EvalkitError, match=message):
        compare_models("tiny", [*(replace_model(r, "base") for r in rows), *scores], beta=0.1)
    with pytest.raises(EvalkitError, match=message):
        reliability_curves("tiny", scores, beta=0.1)


def test_empty_completions_are_refused() -> None:
    rows = [row("p0", "all", 0.0, -2.0, None, None, tokens=(0, 2))]
    with pytest.raises(EvalkitError, match=r"model 'm': 1 pairs have an answer with no completion tokens: 'p0'"):
        compute_metrics("d", rows, beta=0.1)


def test_many_bad_pairs_are_named_then_counted() -> None:
    rows = [row(f"p{i:02}", "all", float("nan"), -2.0, None, None) for i in range(25)]
    with pytest.raises(EvalkitError, match=r"25 of 25 pairs: 'p00', .*'p09' and 15 more;"):
        compute_metrics("d", rows, beta=0.1)


# Comparisons ------------------------------------------------------------------------------------


def replace_model(score: PairScore, model: str, **changes: object) -> PairScore:
    return dataclasses.replace(score, model=model, **changes)


def by_metric(comparisons: list[Comparison], model: str, baseline: str, subset: str = "all") -> dict[str, Comparison]:
    return {c.metric: c for c in comparisons if (c.model, c.baseline, c.subset) == (model, baseline, subset)}


def test_accuracy_comparison_by_hand() -> None:
    """6 pairs. The base is right on q6 only, the aligned model on all six: 5 wrong→right flips and
    none right→wrong. Δ = 1 − 1/6 = 5/6; Tango's score test at Δ = 0 is McNemar's z = 5/√5 = 2.236068,
    two-sided p = 0.025347. MDE (Connor): with ψ = 5/6 discordant, even Δ = ψ gives √6·ψ = 2.041 <
    1.959964·√ψ + 0.841621·√(ψ − ψ²) = 1.789 + 0.314: no difference 6 pairs can show with 80% power.
    Log-prob margins ℓ(chosen) − ℓ(rejected): base −1 (q1..q5) and +1 (q6), aligned +1: differences
    2 2 2 2 2 0, Δ = 10/6; paired t: sd² = (5·(1/3)² + (5/3)²)/5 = 2/3, t = (5/3)/√(2/3 / 6) = 5 on
    5 df, two-sided p = 0.0041047; Wilcoxon drops the zero, five positive differences: 2/2⁵ = 0.0625."""
    base = [row(f"q{i}", "all", -2.0, -1.0, None, None, model="base") for i in range(1, 6)]
    base.append(row("q6", "all", -1.0, -2.0, None, None, model="base"))
    aligned = [row(f"q{i}", "all", -1.0, -2.0, -2.0, -1.0, model="aligned") for i in range(1, 7)]
    found = by_metric(compare_models("d", [*base, *aligned], beta=0.1), "aligned", "base")
    # The base has no rewards (it is the reference): only policy accuracies are compared.
    assert set(found) == {"preference/accuracy", "preference/accuracy_per_token", "logps/margins"}
    margins = found["logps/margins"]
    assert (margins.value, margins.test, margins.p_value, margins.wilcoxon_p_value) == (
        pytest.approx(5 / 3),
        "paired_t",
        pytest.approx(0.0041047, abs=1e-7),
        pytest.approx(0.0625),
    )
    c = found["preference/accuracy"]
    assert (c.baseline_value, c.model_value, c.value, c.n) == (pytest.approx(1 / 6), 1.0, pytest.approx(5 / 6), 6)
    assert (c.test, c.method) == ("tango_score", "tango") and c.p_value == pytest.approx(0.025347, abs=1e-6)
    assert c.flips is not None
    assert (c.flips.wrong_to_right, c.flips.right_to_wrong) == (5, 0)
    assert c.flips.wrong_to_right_ids == ["q1", "q2", "q3", "q4", "q5"] and c.flips.right_to_wrong_ids == []
    assert c.mde is None
    assert c.ci_low is not None and c.ci_high is not None and c.ci_low <= 5 / 6 <= c.ci_high <= 1.0
    assert c.higher_is_better is True


def test_reward_comparison_by_hand() -> None:
    """Both models have rewards (β = 1, reference log-probs 0): margins of `new` are 1 2 3 4 5,
    those of `old` 0 (ties). Δ margin = 3; paired t on differences 1..5: sd² = 2.5, t = 3/√(2.5/5) = 3√2
    on 4 df, p = 0.0132356; Wilcoxon, all positive: 2/2⁵ = 0.0625.
    Loss differences log(1 + e^−k) − log 2 are all negative: also 0.0625, Δ below 0.
    Reward accuracy: 5 wrong→right (a tie is not right), McNemar's z = √5, p = 0.025347."""
    old = [row(f"q{k}", "all", 0.0, 0.0, 0.0, 0.0, model="old") for k in range(1, 6)]
    new = [row(f"q{k}", "all", float(-k), float(-2 * k), 0.0, 0.0, model="new") for k in range(1, 6)]
    found = by_metric(compare_models("d", [*old, *new], beta=1.0), "new", "old")
    assert list(found) == [
        "preference/accuracy",
        "preference/accuracy_per_token",
        "logps/margins",
        "rewards/accuracies",
        "rewards/margins",
        "loss",
    ]
    margins = found["rewards/margins"]
    assert (margins.value, margins.test, margins.flips) == (pytest.approx(3.0), "paired_t", None)
    assert margins.p_value == pytest.approx(0.0132356, abs=1e-7) and margins.wilcoxon_p_value == pytest.approx(0.0625)
    loss = found["loss"]
    expected = sum(math.log(1 + math.exp(-k)) - math.log(2) for k in range(1, 6)) / 5
    differences = [math.log(1 + math.exp(-k)) - math.log(2) for k in range(1, 6)]
    sd = math.sqrt(sum((d - expected) ** 2 for d in differences) / 4)
    t = expected / (sd / math.sqrt(5))  # the t statistic by hand; its two-sided tail on 4 df below
    assert (loss.value, loss.higher_is_better, loss.wilcoxon_p_value) == (pytest.approx(expected), False, 0.0625)
    assert loss.p_value == pytest.approx(2 * scipy_t.sf(abs(t), 4))
    accuracy = found["rewards/accuracies"]
    assert accuracy.flips is not None and accuracy.flips.wrong_to_right == 5
    assert accuracy.p_value == pytest.approx(0.025347, abs=1e-6)


def test_every_later_model_is_compared_with_every_earlier_one_on_shared_pairs() -> None:
    """Order is the order of appearance; pairs are matched by id, and only pairs both scored count."""
    base = [row(f"q{i}", "s", -1.0, -2.0, None, None, model="base") for i in range(6)]
    first = [row(f"q{i}", "s", -1.0, -2.0, -1.0, -1.0, model="first") for i in range(1, 7)]
    second = [row(f"q{i}", "s", -2.0, -1.0, -1.0, -1.0, model="second") for i in range(6)]
    comparisons = compare_models("d", [*base, *first, *second], beta=0.1)
    assert list(dict.fromkeys((c.model, c.baseline) for c in comparisons)) == [
        ("first", "base"),
        ("second", "base"),
        ("second", "first"),
    ]
    assert by_metric(comparisons, "first", "base")["preference/accuracy"].n == 5  # q1..q5
    assert {c.subset for c in comparisons} == {"all", "s"}
    flips = by_metric(comparisons, "second", "first")["preference/accuracy"].flips
    assert flips is not None and flips.right_to_wrong_ids == ["q1", "q2", "q3", "q4", "q5"]
    assert "rewards/margins" in by_metric(comparisons, "second", "first")  # both have rewards


def test_identical_models_compare_as_no_difference() -> None:
    """No discordant pair: Δ 0 and p = 1 for every test, no detectable effect stated. Accuracies keep
    Tango's interval ±z²/(n + z²) = ±0.489891 (4 pairs that agree are some evidence); margins and
    losses have none (no spread)."""
    rows = [row(f"q{i}", "all", -1.0 - i, -2.0, -1.0, -1.0, model="a") for i in range(4)]
    comparisons = compare_models("d", [*rows, *(replace_model(r, "b") for r in rows)], beta=0.1)
    for c in comparisons:
        assert (c.value, c.p_value, c.mde) == (0.0, 1.0, None), c.metric
        if c.test == "tango_score":
            assert (c.ci_low, c.ci_high) == (pytest.approx(-Z2 / (4 + Z2)), pytest.approx(Z2 / (4 + Z2))), c.metric
        else:
            assert (c.ci_low, c.ci_high) == (None, None), c.metric


def test_one_shared_pair_and_no_shared_pairs() -> None:
    """n = 1: a single flip gives McNemar's z = 1, p = 0.317311, and no MDE; n = 0: nothing to compare."""
    one = compare_models(
        "d", [row("q", "all", -2.0, -1.0, None, None, model="a"), row("q", "all", -1.0, -2.0, None, None, model="b")], 1
    )
    c = by_metric(one, "b", "a")["preference/accuracy"]
    assert (c.value, c.p_value, c.mde, c.n) == (1.0, pytest.approx(0.317311, abs=1e-6), None, 1)
    disjoint = [
        row("q1", "all", -1.0, -2.0, None, None, model="a"),
        row("q2", "all", -1.0, -2.0, None, None, model="b"),
    ]
    assert compare_models("d", disjoint, beta=0.1) == []


def test_repeated_pair_ids_cannot_be_paired() -> None:
    rows = [row("q", "all", -1.0, -2.0, None, None, model="a"), row("q", "all", -2.0, -1.0, None, None, model="a")]
    with pytest.raises(EvalkitError, match=r"dataset 'd', model 'a': pair ids repeat \('q'\).*id_column"):
        compare_models("d", [*rows, row("q", "all", -1.0, -2.0, None, None, model="b")], beta=0.1)
