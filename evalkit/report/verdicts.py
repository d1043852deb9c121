"""What a set of gate verdicts says, in words every output shares (terminal, summary.md, report.md, report.html).

The overall outcome is the worst status among the rules: one undecidable rule makes the gate
`undecidable` (exit 2: fix it first, it may hide a failure), else one failed rule makes it `failed`
(exit 1). Skipped rules (waiting for a first baseline) are named beside a pass, never counted as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from evalkit.results.schema import GateStatus, GateVerdict

Outcome = Literal["passed", "failed", "undecidable", "no rules"]

LABELS: dict[GateStatus, str] = {"passed": "pass", "failed": "FAIL", "undecidable": "UNDECIDABLE", "skipped": "skipped"}
"""A verdict's status as one word, for tables and tags."""

MARKS: dict[GateStatus, str] = {"passed": "✅", "failed": "❌", "undecidable": "⚠️", "skipped": "⏭️"}
"""A verdict's status as one symbol, for markdown."""

ORDER: dict[GateStatus, int] = {"undecidable": 0, "failed": 1, "skipped": 2, "passed": 3}
"""Rules are listed worst first."""


def outcome(verdicts: Sequence[GateVerdict]) -> Outcome:
    statuses = {v.status for v in verdicts}
    if not verdicts:
        return "no rules"
    return "undecidable" if "undecidable" in statuses else "failed" if "failed" in statuses else "passed"


def headline(verdicts: Sequence[GateVerdict]) -> str:
    """E.g. `FAILED: 1 of 4 rules failed`, `PASSED: 3 of 3 judged rules; 1 skipped (no baseline yet)`."""
    total = len(verdicts)
    count = {status: sum(v.status == status for v in verdicts) for status in LABELS}
    skipped = f"; {count['skipped']} skipped (no baseline yet)" if count["skipped"] else ""
    state = outcome(verdicts)
    if state == "no rules":
        return "no rules to check"
    if state == "undecidable":
        failed = f", {count['failed']} failed" if count["failed"] else ""
        return f"UNDECIDABLE: {count['undecidable']} of {total} rules could not be judged{failed}{skipped}"
    if state == "failed":
        return f"FAILED: {count['failed']} of {total} rules failed{skipped}"
    if not skipped:
        return f"PASSED: all {total} rules"
    judged = total - count["skipped"]
    return f"PASSED: {judged} of {judged} judged rules{skipped}"


def worst_first(verdicts: Sequence[GateVerdict]) -> list[GateVerdict]:
    return sorted(verdicts, key=lambda v: ORDER[v.status])


def interval(value: float, low: float | None, high: float | None, signed: bool = False) -> str:
    """`0.9022 [0.8564, 0.9345]` (with signs for a difference); the value alone where the interval is undefined."""
    fmt = "{:+.4g}" if signed else "{:.4g}"
    text = fmt.format(value)
    return f"{text} [{fmt.format(low)}, {fmt.format(high)}]" if low is not None and high is not None else text


def stated_value(v: GateVerdict) -> str:
    """The number a rule was judged on, in its unit: Δ with its sign, growth in percent, KL in nats."""
    if v.value is None:
        return "—"
    if v.kind == "length_budget":
        return f"{v.value:+.1%} growth"
    if v.kind in ("superiority", "non_inferiority", "capability_non_inferiority"):
        return "Δ " + interval(v.value, v.ci_low, v.ci_high, signed=True)
    if v.kind == "drift_budget":
        return interval(v.value, v.ci_low, v.ci_high) + " nats"
    return interval(v.value, v.ci_low, v.ci_high)
