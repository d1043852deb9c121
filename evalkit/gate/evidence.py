"""What a rule's judge hands to the decision: the run judged, a rule's evidence before the rules are corrected
together, and the two ways a rule is settled without a test (undecidable, or waiting for a baseline)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.config.rules import GateRule, GateSpec
from evalkit.metrics import stats
from evalkit.results.schema import GateStatus, GateVerdict, RunResult


class Undecidable(Exception):
    """The rule cannot be judged on this run: its verdict is `undecidable` (exit 2), never a pass."""


class NoBaselineYet(Exception):
    """The rule needs a baseline run and none is recorded yet: its verdict is `skipped`."""


NO_BASELINE = (
    "no baseline yet: pass --baseline with a released run's results.json (in a clone, `make baseline` records one)"
)


@dataclass(frozen=True)
class Run:
    """What rules are judged on: the run's results, and the baseline run's when one is given."""

    spec: GateSpec
    result: RunResult
    results_dir: Path
    baseline: RunResult | None
    baseline_dir: Path | None


@dataclass(frozen=True)
class Judged:
    """A rule's evidence before the rules are corrected together."""

    rule: GateRule
    verdict: GateVerdict
    """Everything but `passed`, `p_adjusted` and the end of `reason`."""
    sampling: stats.Sampling | None
    """The estimate the rule tests; None for rules judged on a value alone (not tests)."""
    null: float
    """The boundary of the null hypothesis, on the scale of `sampling`."""
    higher_passes: bool
    """True when H₀ is θ ≤ null (the release must be above it), False when H₀ is θ ≥ null."""
    passes_on_value: bool = False
    """For rules that are not tests: whether the value alone clears the threshold."""


def open_verdict(rule: GateRule, reason: str, status: GateStatus = "failed", **fields: Any) -> GateVerdict:
    """A verdict not passed (yet): a judge's evidence before the decision, or a rule settled without a test."""
    return GateVerdict(rule=rule.title, kind=rule.kind, passed=False, status=status, reason=reason, **fields)


NOT_A_NUMBER = "its value or interval is not a number (NaN)"
"""Why a rule with a NaN anywhere in its evidence is undecidable: NaN is neither a pass, nor a fail, nor a tie."""


def nan_in(*numbers: float | None) -> bool:
    """Whether any of `numbers` is NaN (None, for a number not recorded, is not)."""
    return any(x is not None and math.isnan(x) for x in numbers)


def check_numbers(judged: Judged, where: str) -> Judged:
    """`judged`, unless a NaN is among the numbers it would be decided on (its value, interval, estimate, null)."""
    verdict, sampling = judged.verdict, judged.sampling
    numbers = [verdict.value, verdict.ci_low, verdict.ci_high, judged.null]
    if sampling is not None:
        numbers += [sampling.value, sampling.se, sampling.df, sampling.skewness]
    if nan_in(*numbers):
        raise Undecidable(f"{where}: {NOT_A_NUMBER}")
    return judged
