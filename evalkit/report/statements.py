"""What a reviewer reads first: one sentence of what happened, then one statement per gate rule.

The sentence comes from the results alone: per dataset, each model against the anchor on preference
accuracy (the metric every two models are compared on) with its interval and flips, then how the
release rules came out. Each rule then reads as one statement: its value with the interval, what it
had to be (in the rule's unit), the test's p at α, and n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.metrics import names
from evalkit.metrics.baselines import BASELINE_TITLES
from evalkit.metrics.flips import FLIP_METRIC, primary_comparisons
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report import verdicts
from evalkit.report.baseline_rows import Shortfall, shortfalls
from evalkit.report.best_of_n import best_of_n_clauses
from evalkit.report.formats import adjusted_p, format_bracket, format_interval, format_number, format_p, format_signed
from evalkit.report.tables import Table, unbreakable
from evalkit.results.estimates import Comparison
from evalkit.results.schema import GateStatus, GateVerdict, RunResult

UNITS = {
    "drift_budget": "prompts",
    "length_budget": "prompts",
    "win_rate": "prompts",
    "capability_non_inferiority": "documents",
}
"""What a rule's n counts; pairs for every other kind."""


def _two_decimals(value: float, low: float | None, high: float | None) -> str:
    interval = f" [{format_interval(low, high, signed=True)}]" if low is not None and high is not None else ""
    return f"{value:+.2f}{interval}"


def _clause(c: Comparison, alpha: float) -> str:
    significant = adjusted_p(c) < alpha and c.value != 0
    if not significant:
        verb = f"does not differ measurably from {c.baseline}"
    elif c.value > 0:
        verb = f"beats {c.baseline}"
    else:
        verb = f"is worse than {c.baseline}"
    flips = ""
    if c.flips is not None:
        flips = f", {c.flips.wrong_to_right} pairs flipped to right, {c.flips.right_to_wrong} to wrong"
    what = "reward accuracy" if c.metric == REWARD_FLIP_METRIC else "preference accuracy"
    return f"{c.model} {verb} on {c.dataset}: {what} {_two_decimals(c.value, c.ci_low, c.ci_high)}{flips}"


REWARD_FLIP_METRIC = "rewards/accuracies"
"""The accuracy a reward model is compared on (it has no log-probs, so no `preference/accuracy`)."""


def _reward_model_comparisons(result: RunResult, comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Each comparison of a classifier reward model's accuracy with another model's, the reward model first."""
    classifiers = {m.name for m in result.models if m.reward_model}
    out = []
    for c in comparisons:
        if c.subset != ALL_SUBSETS or c.metric != REWARD_FLIP_METRIC:
            continue
        if c.model in classifiers:
            out.append(c)
        elif c.baseline in classifiers:
            out.append(c.reversed())
    return out


def _gate_clause(gate: Sequence[GateVerdict]) -> str:
    count = {status: sum(v.status == status for v in gate) for status in verdicts.LABELS}
    total = len(gate)
    rules = "release rule" if total == 1 else "release rules"
    if not gate:
        return ""
    if count["undecidable"]:
        which = ", ".join(v.rule for v in gate if v.status == "undecidable")
        return f"{count['undecidable']} of {total} {rules} could not be judged ({which})"
    if count["failed"]:
        which = ", ".join(v.rule for v in gate if v.status == "failed")
        return f"{count['failed']} of {total} {rules} fail ({which})"
    judged = total - count["skipped"]
    if judged == 0:
        return f"{total} {rules} waiting for a baseline"
    skipped = f", {count['skipped']} waiting for a baseline" if count["skipped"] else ""
    passing = "the one judged release rule passes" if judged == 1 else f"all {judged} judged release rules pass"
    return passing + skipped


def verdict_sentence(result: RunResult) -> str:
    """E.g. 'aligned beats base on tinyworld: preference accuracy +0.44 [+0.37, +0.52], 110 pairs flipped to
    right, 10 to wrong; all 4 judged release rules pass.'"""
    alpha = 1 - result.effective_statistics.confidence_level
    clauses = []
    for d in result.datasets:
        comparisons = [c for c in result.comparisons if c.dataset == d.name]
        for c in primary_comparisons(comparisons, result.reference):
            if c.subset == ALL_SUBSETS and c.metric == FLIP_METRIC:
                clauses.append(_clause(c, alpha))
        clauses += [_clause(c, alpha) for c in _reward_model_comparisons(result, comparisons)]
        if d.format == "unpaired":
            clauses += _separation_clauses(result, d.name)
    clauses += _baseline_clauses(result, alpha)
    clauses += best_of_n_clauses(result, alpha)
    if result.gate is not None and (gate := _gate_clause(result.gate)):
        clauses.append(gate)
    if not clauses:
        return ""
    return "; ".join(clauses) + "."  # model names lead, as they are written: never capitalised


def _baseline_clauses(result: RunResult, alpha: float) -> list[str]:
    """One clause per model and dataset that does not beat every content-blind baseline (`evalkit.report.baseline_rows`)
    on its headline accuracy (reward accuracy where it has one), over all pairs or in some subset."""
    found: dict[tuple[str, str], list[Shortfall]] = {}
    rewarded = {(c.model, c.dataset) for c in result.baseline_comparisons if c.metric == "rewards/accuracies"}
    for f in shortfalls(result, alpha):
        headline = "rewards/accuracies" if (f.model, f.dataset) in rewarded else "preference/accuracy"
        if f.metric == headline:
            found.setdefault((f.model, f.dataset), []).append(f)
    clauses = []
    for (model, dataset), cells in found.items():
        overall = next((f for f in cells if f.subset == ALL_SUBSETS), None)
        where = "" if overall is not None else " in " + ", ".join(f.subset for f in cells)
        first = overall or cells[0]
        w = first.weakest
        p = f"one-sided p = {format_p(first.p_value)}" if first.p_value is not None else "its test undefined"
        clauses.append(
            f"{model} does not beat the content-blind baselines on {dataset}{where} "
            f"({names.title(first.metric)} {format_number(w.model_value)} "
            f"vs {BASELINE_TITLES[w.baseline]} {format_number(w.baseline_value)}, {p})"
        )
    return clauses


def _separation_clauses(result: RunResult, dataset: str) -> list[str]:
    """E.g. 'kto on feedback: reward AUC 0.81 [0.74, 0.87] over 60 + 40 completions', per model with rewards."""
    return [
        f"{m.model} on {dataset}: reward AUC {format_number(m.value)} {format_bracket(m.ci_low, m.ci_high)} over "
        f"{m.n_positive} + {m.n_negative} completions"
        for m in result.metrics
        if (m.dataset, m.subset, m.metric) == (dataset, ALL_SUBSETS, "objective/auc")
    ]


@dataclass(frozen=True)
class RuleLine:
    """One gate rule as the reports state it."""

    status: GateStatus
    mark: str
    """The status as a symbol (markdown)."""
    label: str
    """The status as a word."""
    rule: str
    kind: str
    where: str
    """Dataset, subset, models and metric the rule judged."""
    statement: str
    """Value with its interval, what it had to be, p at α, n; for a rule not judged, why not."""


@dataclass(frozen=True)
class VerdictView:
    outcome: str
    headline: str
    rules: list[RuleLine]

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def table(self) -> Table | None:
        rows = [[f"{r.mark} {r.label}", r.rule, r.where, r.statement] for r in self.rules]
        return Table(["", "rule", "on", "statement"], rows, "llll") if rows else None


def _at_least(v: GateVerdict) -> bool:
    """Whether the rule's value must be above its threshold: from its test, else the metric's direction."""
    if v.test is not None and "H0:" in v.test:
        return "<=" in v.test.split("(")[0]
    if v.kind in ("drift_budget", "length_budget"):
        return False
    return (
        v.metric is None or names.REGISTRY.get(v.metric) is None or names.metric(v.metric).higher_is_better is not False
    )


def statement(v: GateVerdict) -> str:
    """'Δ pref. acc +0.444 [+0.37, +0.52], must be above +0.000; p = 3.5e-20 at α = 0.05; n = 225 pairs', each
    number with its interval, sign and unit unbreakable (a PR comment's narrow column wraps between clauses only)."""
    if v.status in ("undecidable", "skipped") or v.value is None:
        return v.reason
    percent = v.kind == "length_budget"
    what = {"drift_budget": "KL", "length_budget": "length growth"}.get(v.kind) or names.title(v.metric or "value")
    if v.kind == "win_rate":  # the metric is `<judge>/<raw or length_controlled>`
        judge, _, on = (v.metric or "").partition("/")
        what = f"{'LC ' if on == 'length_controlled' else ''}win rate by {judge}"
    if v.kind in ("superiority", "non_inferiority", "capability_non_inferiority", "beats_baseline"):
        what = f"Δ {what}"
    signed = what.startswith("Δ")
    bracket = format_bracket(v.ci_low, v.ci_high, signed=signed)
    if percent:
        value = f"{v.value:+.1%}"
    else:
        value = " ".join(filter(None, [format_signed(v.value) if signed else format_number(v.value), bracket]))
    unit = " nats" if v.kind == "drift_budget" else ""
    parts = [f"{what} {unbreakable(value + unit)}"]
    if v.threshold is not None:
        if percent:
            bound = f"{v.threshold:+.0%}"
        else:
            bound = format_signed(v.threshold) if signed else format_number(v.threshold)
        relation = ("above" if _at_least(v) else "below") if signed else ("at least" if _at_least(v) else "at most")
        parts.append(f"must be {relation} {unbreakable(bound + unit)}")
    test = []
    if v.p_value is not None:
        p = v.p_adjusted if v.p_adjusted is not None else v.p_value
        test.append(unbreakable(f"p = {format_p(p)}") + (" (Holm)" if v.p_adjusted is not None else ""))
        if v.alpha is not None:
            test[-1] += " at " + unbreakable(f"α = {v.alpha:.2g}")
    if v.n is not None:
        test.append(unbreakable(f"n = {v.n}") + f" {_unit(v)}")
    return ", ".join(parts) + ("; " + "; ".join(test) if test else "")


def _unit(v: GateVerdict) -> str:
    """What the verdict's n counts: labelled completions for a metric of unpaired data, else the kind's unit."""
    if v.metric is not None and v.metric in names.REGISTRY and names.REGISTRY[v.metric].unpaired:
        return "completions"
    return UNITS.get(v.kind, "pairs")


def rows_within(rows: Sequence[str], room: int) -> int:
    """How many of `rows` (markdown table rows, a newline each), from the first, fit in `room` characters: the gate's
    rules come worst first, so those left out are the ones a reader needs least; the full text is in report.html."""
    shown = 0
    for row in rows:
        room -= len(row) + 1
        if room < 0:
            break
        shown += 1
    return shown


def verdict_view(gate: Sequence[GateVerdict] | None) -> VerdictView | None:
    """The gate's verdict: passed or failed, then every rule, the worst first, one statement each."""
    if gate is None:
        return None
    rules = []
    for v in verdicts.worst_first(gate):
        subset = None if v.subset in (None, ALL_SUBSETS) else v.subset
        models = f"{v.model} vs {v.baseline}" if v.model and v.baseline else v.model
        where = " · ".join(part for part in (v.dataset, subset, models) if part)
        mark, label = verdicts.MARKS[v.status], verdicts.LABELS[v.status]
        rules.append(RuleLine(v.status, mark, label, v.rule, v.kind.replace("_", "-"), where, statement(v)))
    return VerdictView(verdicts.outcome(gate), verdicts.headline(gate), rules)
