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
from evalkit.metrics import stats
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
