"""Gate rules simulated at the boundary of their null hypothesis, for the calibration study
(`evalkit.gate.calibration`): each sampler draws the estimate a rule tests where the truth sits exactly on its
threshold, so the share of passes is the rule's false-pass rate, which must stay at or under α."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evalkit.config.rules import AbsoluteRule, Correction, GateSpec
from evalkit.gate.evidence import Judged
from evalkit.gate.judge import decide
from evalkit.gate.kinds import win_rate_sampling
from evalkit.judges.length_controlled import length_controlled_win_rate, length_feature
from evalkit.judges.pairwise import length_controlled_record
from evalkit.metrics import hypotheses, stats
from evalkit.metrics.baselines import pick_scores
from evalkit.results.generation import PairwiseWinRate
from evalkit.results.schema import GateVerdict

Rng = np.random.Generator
CONFIDENCE = 0.95


Sampler = Callable[[Rng, int], tuple[stats.Sampling, float, bool]]
"""(generator, n) → the estimate a rule tests, the null's boundary, and whether the rule needs θ above it."""


def absolute_share_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """`at_least` on an accuracy whose true value is the threshold (uniform on [0.6, 0.9]): exact binomial."""
    threshold = float(rng.uniform(0.6, 0.9))
    return stats.proportion(rng.random(n) < threshold, CONFIDENCE).sampling, threshold, True


def absolute_mean_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """`at_least` on a mean margin, skewed (gamma(4)), true mean on the threshold: skewness-corrected t."""
    return stats.mean(rng.gamma(4.0, 0.25, n) + 1.0, CONFIDENCE).sampling, 2.0, True


def superiority_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """Δ accuracy = 0 (the two models equally good), discordance 10–50%: Tango's score test."""
    discordant = rng.uniform(0.1, 0.5)
    gained, lost, _ = rng.multinomial(n, [discordant / 2, discordant / 2, 1 - discordant])
    return stats.paired_shares(int(gained), int(lost), n, CONFIDENCE).sampling, 0.0, True


def non_inferiority_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """Δ accuracy = −0.02, exactly the margin, discordance 10–50%: Tango's score test at Δ₀ = −0.02."""
    discordant, delta = rng.uniform(0.1, 0.5), -0.02
    gained, lost, _ = rng.multinomial(n, [(discordant + delta) / 2, (discordant - delta) / 2, 1 - discordant])
    return stats.paired_shares(int(gained), int(lost), n, CONFIDENCE).sampling, delta, True


def non_inferiority_margin_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """Δ reward margin = −0.1, exactly the margin (normal differences, sd 1): skewness-corrected t."""
    return stats.mean(rng.normal(-0.1, 1.0, n), CONFIDENCE).sampling, -0.1, True


def drift_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """Per-prompt KLs gamma(4)-skewed with mean exactly the budget (3 nats): H₀ KL ≥ 3, skewness-corrected t."""
    return stats.mean(rng.gamma(4.0, 0.75, n), CONFIDENCE).sampling, 3.0, False


def length_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """Paired lengths growing by exactly the budget (25%): L − 1.25·L_before has mean 0."""
    before = rng.poisson(16, n).astype(np.float64)
    after = rng.poisson(20, n).astype(np.float64)
    return stats.mean(after - 1.25 * before, CONFIDENCE).sampling, 0.0, False


TIES = 0.2
"""Share of simulated prompts whose two orders disagree (a tie, ½): judged preferences are rarely only 0 or 1."""


def _judged_preferences(rng: Rng, p: np.ndarray) -> np.ndarray:
    """0/½/1 preferences with mean `p` (n,): a tie with probability TIES, else a win with (p − TIES/2)/(1 − TIES)."""
    win = (p - TIES / 2) / (1 - TIES)
    return np.where(rng.random(p.size) < TIES, 0.5, (rng.random(p.size) < win).astype(np.float64))


def _win_rate_record(preferences: np.ndarray, deltas: np.ndarray) -> PairwiseWinRate:
    """The record `results.json` keeps of simulated judgments, through the summary's own estimators."""
    raw = stats.proportion(preferences, CONFIDENCE)
    controlled = length_controlled_win_rate(preferences, deltas, np.zeros_like(deltas), CONFIDENCE)
    return PairwiseWinRate(
        judge="j",
        model="m",
        baseline="b",
        win_rate=raw.value,
        ci_low=None,
        ci_high=None,
        method=raw.method,
        n_effective=raw.sampling.n_effective,
        wins=0,
        ties=0,
        losses=0,
        n=preferences.size,
        unparsed=0,
        length_controlled=length_controlled_record(controlled),
        position_bias_rate=None,
        agreement_rate=None,
        first_position_rate=None,
    )


def win_rate_length_controlled_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """A judge with a length bias (φ = 1.5), the candidate longer on about 70% of prompts, and a true length-
    controlled win rate exactly `at_least` (uniform on [0.4, 0.6]): the raw win rate is well above it."""
    at_least = float(rng.uniform(0.4, 0.6))
    deltas = rng.normal(50.0, 100.0, n)
    p = 1.0 / (1.0 + np.exp(-(np.log(at_least / (1 - at_least)) + 1.5 * length_feature(deltas))))
    record = _win_rate_record(_judged_preferences(rng, p), deltas)
    return (*win_rate_sampling(record, "length_controlled", at_least), True)


def win_rate_raw_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """0/½/1 preferences whose mean is exactly `at_least` (uniform on [0.4, 0.6]), with 20% ties."""
    at_least = float(rng.uniform(0.4, 0.6))
    record = _win_rate_record(_judged_preferences(rng, np.full(n, at_least)), rng.normal(0.0, 100.0, n))
    return (*win_rate_sampling(record, "raw", at_least), True)


def _beats_baseline(rng: Rng, n: int, ties: float) -> tuple[stats.Sampling, float, bool]:
    """A model exactly as accurate as "pick the longer" (true accuracy q uniform on [0.55, 0.75]), agreeing with it on
    85% of the pairs it picks right, with a share `ties` of equal lengths (scored ½); judged as a `best` rule against
    longer, shorter and chance, as `beats_baseline` judges it (the weakest of the three wins decides)."""
    q = float(rng.uniform(0.55, 0.75))
    tied = rng.random(n) < ties
    longer_wins = (q - ties / 2) / (1 - ties)  # P(the chosen answer is longer | lengths differ)
    chosen_longer = rng.random(n) < longer_wins
    chosen = np.where(tied, 5, np.where(chosen_longer, 6, 4))
    longer = pick_scores(chosen, np.full(n, 5), longer=True)  # (n,) 1, 0 or ½
    # P(model right): 0.85 where the longer answer is chosen, q on ties, and `c` where it is rejected, so that
    # E[model] = (1 − t)·w·0.85 + (1 − t)(1 − w)·c + t·q = q: the model is exactly at the boundary.
    c = (q * (1 - ties) - (1 - ties) * longer_wins * 0.85) / ((1 - ties) * (1 - longer_wins))
    p_right = np.where(tied, q, np.where(chosen_longer, 0.85, c))
    model = (rng.random(n) < p_right).astype(np.float64)
    # As `weakest_win` chooses: the largest one-sided p of longer, shorter (paired) and chance (the accuracy vs ½).
    tests = [(_difference(model, longer), 0.0), (_difference(model, 1.0 - longer), 0.0)]
    tests.append((stats.proportion(model, CONFIDENCE).sampling, 0.5))
    p_values = [hypotheses.p_greater(sampling, null) for sampling, null in tests]
    undefined = [i for i, p in enumerate(p_values) if p is None]
    hardest = undefined[0] if undefined else max(range(len(tests)), key=lambda i: p_values[i] or 0.0)
    return (*tests[hardest], True)


def _difference(model: np.ndarray, baseline: np.ndarray) -> stats.Sampling:
    """Δ = model − baseline as `compare_with_baselines` estimates it (`paired_values_test` without the MDE and
    Wilcoxon it adds for the reports): Tango's where both are 0/1, else the mean of the differences."""
    if np.all((baseline == 0) | (baseline == 1)):
        differences = model - baseline
        gained, lost = int((differences > 0).sum()), int((differences < 0).sum())
        return stats.paired_shares(gained, lost, model.size, CONFIDENCE).sampling
    return stats.mean(model - baseline, CONFIDENCE).sampling


def beats_baseline_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """Beats every baseline, where "pick the longer" is as good as the model and 20% of pairs tie in length."""
    return _beats_baseline(rng, n, ties=0.2)


def beats_baseline_untied_rule(rng: Rng, n: int) -> tuple[stats.Sampling, float, bool]:
    """The same with no length ties: the baseline's scores are 0/1 and its test Tango's."""
    return _beats_baseline(rng, n, ties=0.0)


GATE_RULES: dict[str, Sampler] = {
    "absolute, accuracy (exact binomial)": absolute_share_rule,
    "absolute, skewed mean (t, skewness-corrected)": absolute_mean_rule,
    "superiority, accuracy (tango)": superiority_rule,
    "non-inferiority, accuracy, margin 0.02 (tango)": non_inferiority_rule,
    "non-inferiority, mean margin (t)": non_inferiority_margin_rule,
    "drift budget, skewed KLs (t, skewness-corrected)": drift_rule,
    "length budget (paired t)": length_rule,
    "win rate, length-controlled (delta method, t on n − 2)": win_rate_length_controlled_rule,
    "win rate, raw, 20% ties (score test on the effective n)": win_rate_raw_rule,
    "beats best baseline, 20% length ties (paired t, intersection-union)": beats_baseline_rule,
    "beats best baseline, no length ties (tango, intersection-union)": beats_baseline_untied_rule,
}


def _judged(sampling: stats.Sampling, null: float, higher: bool, n: int) -> Judged:
    rule = AbsoluteRule(kind="absolute", model="m", metric="loss", at_most=1.0, min_pairs=2)
    verdict = GateVerdict(rule="r", kind="absolute", passed=False, status="failed", reason="simulated", n=n)
    return Judged(rule, verdict, sampling, null, higher)


def false_pass_rate(sampler: Sampler, rng: Rng, n: int, replicates: int) -> float:
    """The share of rules that pass (through `evalkit.gate.judge.decide`, alone in their suite) at the boundary."""
    spec = GateSpec(rules=[AbsoluteRule(kind="absolute", model="m", metric="loss", at_most=1.0)], min_pairs=2)
    passes = 0
    for _ in range(replicates):
        (verdict,) = decide([_judged(*sampler(rng, n), n)], spec)
        passes += verdict.passed
    return passes / replicates


def family_error_rate(rng: Rng, n: int, replicates: int, correction: Correction) -> float:
    """The share of suites of four rules, all at their boundaries, in which any rule passes."""
    samplers = [absolute_share_rule, superiority_rule, non_inferiority_rule, drift_rule]
    spec = GateSpec(
        rules=[AbsoluteRule(kind="absolute", model="m", metric="loss", at_most=1.0)], min_pairs=2, correction=correction
    )
    failures = 0
    for _ in range(replicates):
        verdicts = decide([_judged(*sampler(rng, n), n) for sampler in samplers], spec)
        failures += any(v.passed for v in verdicts)
    return failures / replicates
