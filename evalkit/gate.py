"""Release gates: rules decided on intervals and paired tests, with verdicts that say why.

A gate reads `results.json` (and, for rules against a baseline run, the per-pair files beside
both results), never a model. Each rule becomes a `GateVerdict` carrying the value, interval, p
and n it was decided on. A rule that cannot be decided (a metric the run did not compute, a
non-inferiority rule with no baseline) is bad input: an `EvalkitError`, exit code 2, never a
silent pass. Verdicts go to the console, `results.json`, `junit.xml` (one test case per rule),
`summary.md`, and `$GITHUB_STEP_SUMMARY` when it is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from rich.table import Table

from evalkit.config import GateRule, GateSpec, check_rule_names
from evalkit.errors import EvalkitError
from evalkit.metrics import compare_models
from evalkit.results import (
    Comparison,
    GateVerdict,
    Metric,
    PairScore,
    RunResult,
    Statistics,
    atomic_write_text,
    read_pair_scores,
)


def evaluate_gate(
    spec: GateSpec,
    result: RunResult,
    results_dir: Path,
    baseline: RunResult | None = None,
    baseline_dir: Path | None = None,
) -> list[GateVerdict]:
    """The verdict of every rule of `spec` on `result` (and the baseline run, for rules that need one)."""
    models = [m.name for m in result.models]
    datasets = [d.name for d in result.datasets]
    run = Run(spec, result, results_dir, baseline, baseline_dir)
    verdicts = []
    for index, rule in enumerate(spec.rules):
        where = f"gate.rules.{index} ({rule.title})"
        try:
            check_rule_names(rule, where, models, datasets)
        except ValueError as exc:
            raise EvalkitError(str(exc)) from None
        verdicts.append(_JUDGES[rule.kind](rule, run, where))
    return verdicts


@dataclass(frozen=True)
class Run:
    """What rules are judged on: the run's results, and the baseline run's when one is given."""

    spec: GateSpec
    result: RunResult
    results_dir: Path
    baseline: RunResult | None
    baseline_dir: Path | None


def _dataset(rule: GateRule, result: RunResult) -> str:
    return rule.dataset or result.datasets[0].name


def _absolute(rule: GateRule, run: Run, where: str) -> GateVerdict:
    result = run.result
    dataset = _dataset(rule, result)
    assert rule.metric is not None
    metric = result.metric(dataset, rule.model, rule.metric, rule.subset)
    if metric is None:
        raise EvalkitError(
            f"{where}: the results have no {rule.metric!r} for model {rule.model!r} on {dataset}/{rule.subset}"
            + (" (the reference has no reward metrics)" if rule.model == result.reference else "")
        )
    at_least = rule.at_least is not None
    threshold = rule.at_least if at_least else rule.at_most
    assert threshold is not None
    bound = _bound(metric.ci_low if at_least else metric.ci_high, metric.value, metric.n)
    judged = metric.value if rule.judge_on == "value" else bound
    comparison = ">=" if at_least else "<="
    if judged is None:
        passed, why = False, "its interval is undefined (too few pairs)"
    else:
        passed = judged >= threshold if at_least else judged <= threshold
        which = "value" if rule.judge_on == "value" else ("lower bound" if at_least else "upper bound")
        why = f"{which} {judged:.4g} {comparison if passed else _negate(comparison)} {threshold:g}"
    return GateVerdict(
        rule=rule.title,
        kind=rule.kind,
        passed=passed,
        reason=f"{rule.metric} of {rule.model} on {dataset}/{rule.subset} = {_interval_of(metric)}: {why}",
        dataset=dataset,
        subset=rule.subset,
        model=rule.model,
        metric=rule.metric,
        value=metric.value,
        ci_low=metric.ci_low,
        ci_high=metric.ci_high,
        n=metric.n,
        threshold=threshold,
    )


def _superiority(rule: GateRule, run: Run, where: str) -> GateVerdict:
    result = run.result
    dataset = _dataset(rule, result)
    assert rule.metric is not None and rule.baseline is not None
    comparison = _find_comparison(result.comparisons, dataset, rule.subset, rule.model, rule.baseline, rule.metric)
    if comparison is None:
        raise EvalkitError(
            f"{where}: the results compare no {rule.model!r} and {rule.baseline!r} on {rule.metric!r} in "
            f"{dataset}/{rule.subset} (reward metrics need both models to have rewards)"
        )
    alpha = rule.alpha if rule.alpha is not None else run.spec.alpha
    return _paired_verdict(rule, comparison, dataset, alpha=alpha, margin=None)


def _non_inferiority(rule: GateRule, run: Run, where: str) -> GateVerdict:
    result, results_dir, baseline, baseline_dir = run.result, run.results_dir, run.baseline, run.baseline_dir
    if baseline is None or baseline_dir is None:
        raise EvalkitError(f"{where}: needs a baseline run; pass --baseline BASELINE/results.json")
    dataset = _dataset(rule, result)
    assert rule.metric is not None and rule.margin is not None
    baseline_model = rule.baseline or rule.model
    baseline_name = f"{baseline_model} (baseline)"
    current = _pair_rows(result, results_dir, dataset, rule.model, where)
    before = _pair_rows(baseline, baseline_dir, dataset, baseline_model, where + " in the baseline")
    renamed = [_renamed(row, baseline_name) for row in before]
    statistics = result.statistics or Statistics()
    comparisons = compare_models(dataset, [*renamed, *current], result.scoring.beta, statistics=statistics)
    found = _find_comparison(comparisons, dataset, rule.subset, rule.model, baseline_name, rule.metric)
    if found is None or found.n == 0:
        raise EvalkitError(f"{where}: the run and the baseline share no scored pairs of {dataset}/{rule.subset}")
    verdict = _paired_verdict(rule, found, dataset, alpha=None, margin=rule.margin)
    prints = {d.name: d.fingerprint for d in result.datasets}, {d.name: d.fingerprint for d in baseline.datasets}
    if prints[0].get(dataset) != prints[1].get(dataset):
        verdict = verdict.model_copy(update={"reason": verdict.reason + " (the dataset changed since the baseline)"})
    return verdict


def _paired_verdict(
    rule: GateRule, comparison: Comparison, dataset: str, alpha: float | None, margin: float | None
) -> GateVerdict:
    """Superiority (`alpha`): the right direction with p < alpha. Non-inferiority (`margin`): the
    interval's worst bound no worse than the margin."""
    higher = comparison.higher_is_better is not False
    delta, low, high = comparison.value, comparison.ci_low, comparison.ci_high
    described = f"Δ {rule.metric} = {_interval(delta, low, high, signed=True)} over {comparison.n} pairs"
    if margin is None:
        assert alpha is not None
        right_way = delta > 0 if higher else delta < 0
        passed = right_way and comparison.p_value < alpha
        why = f"p = {comparison.p_value:.2g} {'<' if comparison.p_value < alpha else '>='} α = {alpha:g}"
        if not right_way:
            why = f"the difference goes the wrong way ({why})"
        threshold = alpha
    else:
        worst = _bound(low if higher else high, delta, comparison.n)
        if worst is None:
            passed, why = False, "its interval is undefined (too few pairs or no spread)"
        else:
            passed = worst > -margin if higher else worst < margin
            limit = f"{-margin:+g}" if higher else f"{margin:+g}"
            side, holds, breaks = ("lower", ">", "<=") if higher else ("upper", "<", ">=")
            why = f"{side} bound {worst:+.4g} {holds if passed else breaks} {limit}, the margin of non-inferiority"
        threshold = margin
    return GateVerdict(
        rule=rule.title,
        kind=rule.kind,
        passed=passed,
        reason=f"{rule.model} vs {comparison.baseline}: {described}: {why}",
        dataset=dataset,
        subset=rule.subset,
        model=rule.model,
        baseline=comparison.baseline,
        metric=rule.metric,
        value=delta,
        ci_low=low,
        ci_high=high,
        p_value=comparison.p_value,
        n=comparison.n,
        threshold=threshold,
    )


def _drift_budget(rule: GateRule, run: Run, where: str) -> GateVerdict:
    result = run.result
    drifts = [d for d in (result.generation.drift if result.generation else []) if d.model == rule.model]
    if not drifts:
        raise EvalkitError(f"{where}: the results have no drift for {rule.model!r}; enable generation.drift")
    drift = drifts[0]
    assert rule.max_kl is not None
    judged = drift.kl if rule.judge_on == "value" else drift.ci_high
    if judged is None:
        passed, why = False, "its interval is undefined (too few prompts)"
    else:
        passed = judged <= rule.max_kl
        which = "value" if rule.judge_on == "value" else "upper bound"
        why = f"{which} {judged:.4g} {'<=' if passed else '>'} {rule.max_kl:g}"
    return GateVerdict(
        rule=rule.title,
        kind=rule.kind,
        passed=passed,
        reason=f"KL({rule.model} ‖ {drift.reference}) = {_interval(drift.kl, drift.ci_low, drift.ci_high)} nats: {why}",
        model=rule.model,
        baseline=drift.reference,
        value=drift.kl,
        ci_low=drift.ci_low,
        ci_high=drift.ci_high,
        n=drift.n,
        threshold=rule.max_kl,
    )


def _length_budget(rule: GateRule, run: Run, where: str) -> GateVerdict:
    result, baseline = run.result, run.baseline
    current = _mean_tokens(result, rule.model, where)
    if baseline is not None:
        before_model, before_run = rule.baseline or rule.model, "the baseline run"
        before = _mean_tokens(baseline, before_model, where + " in the baseline")
    elif result.reference is not None:
        before_model, before_run = result.reference, "this run"
        before = _mean_tokens(result, before_model, where)
    else:
        raise EvalkitError(f"{where}: needs a baseline run (--baseline) or a reference model to measure growth against")
    assert rule.max_growth is not None
    growth = current / before - 1 if before > 0 else float("inf")
    passed = growth <= rule.max_growth
    return GateVerdict(
        rule=rule.title,
        kind=rule.kind,
        passed=passed,
        reason=(
            f"mean generation length of {rule.model} {current:.1f} tokens vs {before:.1f} for {before_model} "
            f"({before_run}): {growth:+.1%} {'<=' if passed else '>'} {rule.max_growth:+.0%}"
        ),
        model=rule.model,
        baseline=before_model,
        value=growth,
        threshold=rule.max_growth,
    )


_JUDGES: dict[str, Callable[[GateRule, Run, str], GateVerdict]] = {
    "absolute": _absolute,
    "superiority": _superiority,
    "non_inferiority": _non_inferiority,
    "drift_budget": _drift_budget,
    "length_budget": _length_budget,
}


def _bound(bound: float | None, value: float, n: int) -> float | None:
    """An interval's bound; with two or more pairs and no spread at all the interval is the point itself."""
    if bound is not None:
        return bound
    return value if n >= 2 else None


def _find_comparison(
    comparisons: Sequence[Comparison], dataset: str, subset: str, model: str, other: str, metric: str
) -> Comparison | None:
    """`model` against `other`, whichever way round the run compared them."""
    for c in comparisons:
        if (c.dataset, c.subset, c.metric) != (dataset, subset, metric):
            continue
        if (c.model, c.baseline) == (model, other):
            return c
        if (c.model, c.baseline) == (other, model):
            return c.model_copy(
                update={
                    "model": model,
                    "baseline": other,
                    "model_value": c.baseline_value,
                    "baseline_value": c.model_value,
                    "value": -c.value,
                    "ci_low": -c.ci_high if c.ci_high is not None else None,
                    "ci_high": -c.ci_low if c.ci_low is not None else None,
                }
            )
    return None


def _pair_rows(result: RunResult, directory: Path, dataset: str, model: str, where: str) -> list[PairScore]:
    info = next((d for d in result.datasets if d.name == dataset), None)
    if info is None:
        raise EvalkitError(f"{where}: no dataset {dataset!r} in the results")
    rows = [r for r in read_pair_scores(directory / info.pairs_file) if r.model == model]
    if not rows:
        raise EvalkitError(f"{where}: no per-pair scores of model {model!r} on {dataset}")
    return rows


def _renamed(row: PairScore, model: str) -> PairScore:
    return PairScore(**{**vars(row), "model": model})


def _mean_tokens(result: RunResult, model: str, where: str) -> float:
    stats = [s for s in (result.generation.stats if result.generation else []) if s.model == model]
    if not stats:
        raise EvalkitError(f"{where}: the results have no generation samples of {model!r}; add a generation section")
    return stats[0].mean_tokens


def _interval(value: float, low: float | None, high: float | None, signed: bool = False) -> str:
    fmt = "{:+.4g}" if signed else "{:.4g}"
    text = fmt.format(value)
    return f"{text} [{fmt.format(low)}, {fmt.format(high)}]" if low is not None and high is not None else text


def _interval_of(metric: Metric) -> str:
    return _interval(metric.value, metric.ci_low, metric.ci_high)


def _negate(comparison: str) -> str:
    return {">=": "<", "<=": ">"}[comparison]


def write_junit(verdicts: Sequence[GateVerdict], path: Path) -> None:
    """JUnit XML: one test case per rule, a failure element for each failing rule."""
    failures = sum(not v.passed for v in verdicts)
    suites = ElementTree.Element("testsuites", name="evalkit gate", tests=str(len(verdicts)), failures=str(failures))
    suite = ElementTree.SubElement(
        suites, "testsuite", name="evalkit gate", tests=str(len(verdicts)), failures=str(failures), errors="0"
    )
    for verdict in verdicts:
        case = ElementTree.SubElement(suite, "testcase", classname=f"evalkit.gate.{verdict.kind}", name=verdict.rule)
        properties = ElementTree.SubElement(case, "properties")
        for key in ("dataset", "subset", "model", "baseline", "metric", "value", "ci_low", "ci_high", "p_value", "n"):
            value = getattr(verdict, key)
            if value is not None:
                ElementTree.SubElement(properties, "property", name=key, value=str(value))
        if not verdict.passed:
            ElementTree.SubElement(case, "failure", message=verdict.reason, type=verdict.kind).text = verdict.reason
        else:
            ElementTree.SubElement(case, "system-out").text = verdict.reason
    ElementTree.indent(suites)
    atomic_write_text(path, ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n")


def summary_markdown(verdicts: Sequence[GateVerdict], title: str) -> str:
    """A markdown verdict fit for `$GITHUB_STEP_SUMMARY` or a PR comment."""
    failed = [v for v in verdicts if not v.passed]
    head = f"FAILED: {len(failed)} of {len(verdicts)} rules" if failed else f"PASSED: all {len(verdicts)} rules"
    lines = [
        f"## evalkit gate: {title}: {head}",
        "",
        "| | rule | value [95% CI] | p | n | why |",
        "|---|---|---:|---:|---:|---|",
    ]
    for v in verdicts:
        value = _interval(v.value, v.ci_low, v.ci_high) if v.value is not None else "—"
        p = f"{v.p_value:.2g}" if v.p_value is not None else "—"
        n = str(v.n) if v.n is not None else "—"
        lines.append(f"| {'✅' if v.passed else '❌'} | {_cell(v.rule)} | {value} | {p} | {n} | {_cell(v.reason)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def verdict_table(verdicts: Sequence[GateVerdict]) -> Table:
    table = Table(title="evalkit gate", title_justify="left")
    for column in ("", "rule", "why"):
        table.add_column(column)
    for v in verdicts:
        table.add_row("[green]pass[/green]" if v.passed else "[red]FAIL[/red]", v.rule, v.reason)
    return table


def publish(verdicts: Sequence[GateVerdict], out_dir: Path, title: str) -> list[Path]:
    """Write `junit.xml` and `summary.md`; append the summary to `$GITHUB_STEP_SUMMARY` when set."""
    junit, summary = out_dir / "junit.xml", out_dir / "summary.md"
    write_junit(verdicts, junit)
    text = summary_markdown(verdicts, title)
    atomic_write_text(summary, text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return [junit, summary]
