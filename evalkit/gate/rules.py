"""Release gates: every rule a one-sided hypothesis test, the rules corrected together.

A gate reads `results.json` (and, for rules against a baseline run, the per-pair files beside
both results), never a model. Each rule's null hypothesis is "the release is bad" (the metric
below its threshold, the candidate worse than the baseline by more than the margin, the drift at
or above its budget); the rule passes only when the data reject it at `gate.alpha`, one-sided,
with the test recorded beside the numbers (`evalkit.metrics.stats`: the same method as the metric's
interval, so the rule passes exactly when its one-sided (1 − α) bound clears the threshold).
With `correction: holm` (the default) the p-values of all tested rules are adjusted together
by Holm's step-down, so the chance that any rule passes while its null holds is at most α.
(A release needs every rule, so the overall decision is level α even uncorrected, by the
intersection-union principle; Holm makes each rule's own verdict trustworthy too.)

Each verdict has a status. `passed` and `failed` are decisions. A rule that cannot be decided (a
metric the run did not compute, fewer pairs than `min_pairs`, an undefined interval, a baseline
without the model) is `undecidable`: a problem to fix, exit code 2, never a pass. A rule that needs
a baseline run when none is recorded yet (the first run of a suite) is `skipped`: reported as such
everywhere, never as a pass, and it does not stop the run that records the first baseline. The
baseline run's models are found by role and fingerprint (`evalkit.results.matching`), so a suite run and a
`bench --model` run gate against each other although their models have other names. Every verdict
goes to the console, `junit.xml` (one test case per rule: `<failure>`, `<error>`, `<skipped>`), `summary.md`,
`$GITHUB_STEP_SUMMARY` when it is set, the reports, and `results.json` (the run's own for `bench`; for `evalkit
gate`, the judged copy in `--out`, never over the file it read).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
from rich.table import Table

from evalkit.capabilities import primary_metric
from evalkit.config.suite import GateRule, GateSpec, check_rule_names
from evalkit.console import plain
from evalkit.gate import verdicts as verdict_words
from evalkit.metrics import hypotheses, stats
from evalkit.metrics.hypotheses import describe_test
from evalkit.metrics.paired import compare_models
from evalkit.report import markdown
from evalkit.results.estimates import Comparison, Metric, Statistics
from evalkit.results.files import atomic_write_text
from evalkit.results.matching import counterparts, dataset_counterpart
from evalkit.results.pairs import PairScore, pairs_path, read_pair_scores
from evalkit.results.schema import GateStatus, GateVerdict, RunResult


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
    judged: list[Judged | GateVerdict] = []
    for index, rule in enumerate(spec.rules):
        where = f"gate.rules.{index} ({rule.title})"
        try:
            check_rule_names(rule, where, models, datasets)
            judged.append(_JUDGES[rule.kind](_with_minimum(rule, spec), run, where))
        except (Undecidable, ValueError) as problem:
            judged.append(_unjudged(rule, "undecidable", str(problem), spec))
        except NoBaselineYet as waiting:
            judged.append(_unjudged(rule, "skipped", str(waiting), spec))
    return decide(judged, spec)


def rules_for_run(spec: GateSpec, candidate: str | None, reference: str | None, result: RunResult) -> GateSpec:
    """A suite's rules, speaking of the run's models: in a `bench --model` run the suite's candidate and reference
    are called `candidate` and `reference`, so rules about them are turned to those names by role."""
    names = {m.name for m in result.models}
    by_role = {m.role: m.name for m in result.models if m.role is not None}
    renamed = {
        suite_name: by_role[role]
        for suite_name, role in ((candidate, "candidate"), (reference, "reference"))
        if suite_name is not None and suite_name not in names and role in by_role
    }
    if not renamed:
        return spec

    def turned(rule: GateRule) -> GateRule:
        within_run = rule.kind in ("superiority", "capability_non_inferiority")  # `baseline` is a model of this run
        baseline = renamed.get(rule.baseline, rule.baseline) if within_run and rule.baseline else rule.baseline
        return rule.model_copy(update={"model": renamed.get(rule.model, rule.model), "baseline": baseline})

    return spec.model_copy(update={"rules": [turned(rule) for rule in spec.rules]})


class Undecidable(Exception):
    """The rule cannot be judged on this run: its verdict is `undecidable` (exit 2), never a pass."""


class NoBaselineYet(Exception):
    """The rule needs a baseline run and none is recorded yet: its verdict is `skipped`."""


def exit_code(verdicts: Sequence[GateVerdict]) -> int:
    """0 when no rule failed or was undecidable (skipped rules wait for a baseline), 1 when a rule failed, 2 when a
    rule could not be decided: fix that first, it may hide a failure."""
    return {"undecidable": 2, "failed": 1}.get(verdict_words.outcome(verdicts), 0)


def _open_verdict(rule: GateRule, reason: str, status: GateStatus = "failed", **fields: Any) -> GateVerdict:
    """A verdict not passed (yet): a judge's evidence before the decision, or a rule settled without a test."""
    return GateVerdict(rule=rule.title, kind=rule.kind, passed=False, status=status, reason=reason, **fields)


def _unjudged(rule: GateRule, status: GateStatus, why: str, spec: GateSpec) -> GateVerdict:
    where = {"dataset": rule.dataset or rule.task, "subset": rule.subset, "model": rule.model, "metric": rule.metric}
    return _open_verdict(rule, why, status, alpha=spec.alpha, **where)


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


def decide(judged: Sequence[Judged | GateVerdict], spec: GateSpec) -> list[GateVerdict]:
    """Verdicts: each tested rule's one-sided p, corrected together (Holm), compared with α.

    A rule already settled (undecidable, skipped) is passed through; an undecidable rule counts in Holm's
    family as p = 1, as it would have been tested, so fixing it never makes the other verdicts laxer."""
    raw = [_p_value(j) if isinstance(j, Judged) else None for j in judged]
    tested = [
        i
        for i, j in enumerate(judged)
        if (j.sampling is not None if isinstance(j, Judged) else j.status == "undecidable")
    ]
    family = [1.0 if p is None else p for p in (raw[i] for i in tested)]
    adjusted = dict(zip(tested, hypotheses.holm(family) if spec.correction == "holm" else family, strict=True))
    return [_verdict(j, raw[i], adjusted.get(i), spec) if isinstance(j, Judged) else j for i, j in enumerate(judged)]


def _p_value(j: Judged) -> float | None:
    if j.sampling is None or _too_few(j) is not None:
        return None
    test = hypotheses.p_greater if j.higher_passes else hypotheses.p_less
    return test(j.sampling, j.null)


def _too_few(j: Judged) -> str | None:
    minimum = j.rule.min_pairs
    n = j.verdict.n or 0
    if minimum is not None and n < minimum:
        return f"needs at least {minimum} {_unit(j.rule)}, has {n}"
    return None


def _unit(rule: GateRule) -> str:
    """What a rule's n counts."""
    if rule.kind in ("drift_budget", "length_budget"):
        return "prompts"
    return "documents" if rule.kind == "capability_non_inferiority" else "pairs"


def _verdict(j: Judged, p: float | None, adjusted: float | None, spec: GateSpec) -> GateVerdict:
    alpha, verdict = spec.alpha, j.verdict
    if j.sampling is None:
        too_few = _too_few(j)
        status: GateStatus = "undecidable" if too_few else "passed" if j.passes_on_value else "failed"
        why = too_few or "judged on the value alone (not a test: no error-rate guarantee)"
        settled = {"passed": status == "passed", "status": status, "reason": f"{verdict.reason}: {why}", "alpha": alpha}
        return verdict.model_copy(update=settled)
    bound_of = hypotheses.lower_bound if j.higher_passes else hypotheses.upper_bound
    bound = bound_of(j.sampling, alpha)
    problem = _too_few(j)
    if problem is None and (p is None or bound is None):
        problem = "its interval is undefined (too few pairs, or no spread at all)"
    if problem is not None:
        update: dict[str, object] = {
            "passed": False,
            "status": "undecidable",
            "reason": f"{verdict.reason}: {problem}",
            "alpha": alpha,
        }
        return verdict.model_copy(update=update)
    assert p is not None and adjusted is not None and bound is not None
    passed = adjusted <= alpha
    side, holds, fails = ("lower", ">", "<=") if j.higher_passes else ("upper", "<", ">=")
    clears = bound > j.null if j.higher_passes else bound < j.null
    corrected = f" (Holm {_p(adjusted)})" if spec.correction == "holm" else ""
    why = (
        f"one-sided {1 - alpha:.0%} {side} bound {bound:+.4g} {holds if clears else fails} {j.null:+.4g}; "
        f"p = {_p(p)}{corrected} {'<=' if passed else '>'} α = {alpha:g}"
    )
    return verdict.model_copy(
        update={
            "passed": passed,
            "status": "passed" if passed else "failed",
            "reason": f"{verdict.reason}: {why}",
            "p_value": p,
            "p_adjusted": adjusted,
            "bound": bound,
            "alpha": alpha,
        }
    )


def _p(p: float) -> str:
    return f"{p:.2g}"


def _dataset(rule: GateRule, result: RunResult) -> str:
    return rule.dataset or result.datasets[0].name


def _with_minimum(rule: GateRule, spec: GateSpec) -> GateRule:
    return rule if rule.min_pairs is not None else rule.model_copy(update={"min_pairs": spec.min_pairs})


def _recorded_sampling(record: Metric | Comparison, where: str) -> stats.Sampling:
    """The estimate a record's test replays, rebuilt from what `results.json` recorded of it."""
    if record.method is None:
        raise Undecidable(
            f"{where}: the results predate recorded interval methods (schema < 1.4), so no test can be replayed; "
            "run `evalkit bench` again to gate them"
        )
    if isinstance(record, Comparison) and record.method == "tango":
        assert record.flips is not None, "an accuracy comparison carries its flips"
        gained, lost = record.flips.wrong_to_right, record.flips.right_to_wrong
        return stats.Sampling("tango", record.value, record.n, gained=gained, lost=lost)
    return stats.Sampling(
        record.method,  # type: ignore[arg-type]
        record.value,
        record.n,
        se=record.se,
        df=record.df,
        n_effective=record.n_effective if isinstance(record, Metric) else None,
        skewness=record.skewness,
    )


def _absolute(rule: GateRule, run: Run, where: str) -> Judged:
    result = run.result
    dataset = _dataset(rule, result)
    assert rule.metric is not None
    metric = result.metric(dataset, rule.model, rule.metric, rule.subset)
    if metric is None:
        raise Undecidable(
            f"{where}: the results have no {rule.metric!r} for model {rule.model!r} on {dataset}/{rule.subset}"
            + (" (the reference has no reward metrics)" if rule.model == result.reference else "")
        )
    at_least = rule.at_least is not None
    threshold = rule.at_least if at_least else rule.at_most
    assert threshold is not None
    verdict = _open_verdict(
        rule,
        reason=f"{rule.metric} of {rule.model} on {dataset}/{rule.subset} = {_interval_of(metric)}, n = {metric.n}",
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
    if rule.judge_on == "value":
        on_value = metric.value >= threshold if at_least else metric.value <= threshold
        return Judged(rule, verdict, None, threshold, at_least, passes_on_value=on_value)
    sampling = _recorded_sampling(metric, where)
    if sampling.method not in stats.TESTABLE:
        raise Undecidable(f"{where}: {rule.metric!r} has no test ({sampling.method} interval); set judge_on: value")
    test = f"H0: {rule.metric} {'<=' if at_least else '>='} {threshold:g} ({hypotheses.describe_test(sampling)})"
    return Judged(rule, verdict.model_copy(update={"test": test}), sampling, threshold, at_least)


def _superiority(rule: GateRule, run: Run, where: str) -> Judged:
    result = run.result
    dataset = _dataset(rule, result)
    assert rule.metric is not None and rule.baseline is not None
    found = _find_comparison(result.comparisons, dataset, rule.subset, rule.model, rule.baseline, rule.metric)
    if found is None:
        raise Undecidable(
            f"{where}: the results compare no {rule.model!r} and {rule.baseline!r} on {rule.metric!r} in "
            f"{dataset}/{rule.subset} (reward metrics need both models to have rewards)"
        )
    return _paired(rule, found, _recorded_sampling(found, where), dataset, margin=0.0)


def _non_inferiority(rule: GateRule, run: Run, where: str) -> Judged:
    result, results_dir, baseline, baseline_dir = run.result, run.results_dir, run.baseline, run.baseline_dir
    if baseline is None or baseline_dir is None:
        raise NoBaselineYet(_NO_BASELINE)
    dataset = _dataset(rule, result)
    assert rule.metric is not None and rule.margin is not None
    baseline_model = _baseline_model(rule, result, baseline, where)
    baseline_name = f"{baseline_model} (baseline)"
    current = _pair_rows(result, results_dir, dataset, rule.model, where)
    before_dataset = dataset_counterpart(dataset, result, baseline) or dataset
    before = _pair_rows(baseline, baseline_dir, before_dataset, baseline_model, where + " in the baseline")
    renamed = [_renamed(row, baseline_name) for row in before]
    statistics = result.statistics or Statistics()
    comparisons = compare_models(dataset, [*renamed, *current], result.scoring.beta, statistics=statistics)
    found = _find_comparison(comparisons, dataset, rule.subset, rule.model, baseline_name, rule.metric)
    if found is None or found.n == 0:
        raise Undecidable(f"{where}: the run and the baseline share no scored pairs of {dataset}/{rule.subset}")
    judged = _paired(rule, found, _recorded_sampling(found, where), dataset, margin=rule.margin)
    prints = {d.name: d.fingerprint for d in result.datasets}, {d.name: d.fingerprint for d in baseline.datasets}
    if prints[0].get(dataset) != prints[1].get(before_dataset):
        note = judged.verdict.reason + " (the dataset changed since the baseline)"
        judged = replace(judged, verdict=judged.verdict.model_copy(update={"reason": note}))
    return judged


_NO_BASELINE = "no baseline yet: record one with `make baseline` (or pass --baseline BASELINE/results.json)"


def _baseline_model(rule: GateRule, result: RunResult, baseline: RunResult, where: str) -> str:
    """The baseline run's model the rule's model is held against: the rule's `baseline` when it names one, else
    the model's counterpart (same role, else same fingerprint, else same name)."""
    names = [m.name for m in baseline.models]
    if rule.baseline is not None:
        if rule.baseline not in names:
            raise Undecidable(f"{where}.baseline: the baseline run has no model {rule.baseline!r}; it has {names}")
        return rule.baseline
    match = counterparts(result, baseline).get(rule.model)
    if match is None:
        raise Undecidable(
            f"{where}: no model of the baseline run matches {rule.model!r} by role, fingerprint or name; it has "
            f"{names} (name one with the rule's `baseline`)"
        )
    return match.name


def _paired(rule: GateRule, comparison: Comparison, sampling: stats.Sampling, dataset: str, margin: float) -> Judged:
    """H₀: Δ ≤ −margin where higher is better (Δ ≥ +margin where lower is); superiority is margin 0."""
    higher = comparison.higher_is_better is not False
    null = (-margin if higher else margin) + 0.0  # + 0.0: never a "-0" in a verdict
    described = f"Δ {rule.metric} = {_interval(comparison.value, comparison.ci_low, comparison.ci_high, signed=True)}"
    test = f"H0: Δ {'<=' if higher else '>='} {null:+g} ({hypotheses.describe_test(sampling)})"
    verdict = _open_verdict(
        rule,
        reason=f"{rule.model} vs {comparison.baseline}: {described} over {comparison.n} {_unit(rule)}",
        dataset=dataset,
        subset=rule.subset,
        model=rule.model,
        baseline=comparison.baseline,
        metric=rule.metric,
        value=comparison.value,
        ci_low=comparison.ci_low,
        ci_high=comparison.ci_high,
        n=comparison.n,
        threshold=null,
        test=test,
    )
    return Judged(rule, verdict, sampling, null, higher)


def _drift_budget(rule: GateRule, run: Run, where: str) -> Judged:
    result = run.result
    drifts = [d for d in (result.generation.drift if result.generation else []) if d.model == rule.model]
    if not drifts:
        raise Undecidable(f"{where}: the results have no drift for {rule.model!r}; enable generation.drift")
    drift = drifts[0]
    assert rule.max_kl is not None
    cut = f", first {drift.max_new_tokens} tokens" if drift.max_new_tokens is not None else ""
    verdict = _open_verdict(
        rule,
        reason=f"KL({rule.model} ‖ {drift.reference}) = {_interval(drift.kl, drift.ci_low, drift.ci_high)} nats"
        f"{cut}, over {drift.n} prompts",
        model=rule.model,
        baseline=drift.reference,
        value=drift.kl,
        ci_low=drift.ci_low,
        ci_high=drift.ci_high,
        n=drift.n,
        threshold=rule.max_kl,
    )
    if rule.judge_on == "value":
        return Judged(rule, verdict, None, rule.max_kl, False, passes_on_value=drift.kl <= rule.max_kl)
    if drift.estimator is None:
        raise Undecidable(
            f"{where}: the results predate the per-token drift estimate (schema < 1.4); run `evalkit bench` again"
        )
    sampling = stats.Sampling("student_t", drift.kl, drift.n, se=drift.se, df=drift.df, skewness=drift.skewness)
    test = f"H0: KL >= {rule.max_kl:g} ({hypotheses.describe_test(sampling)}, over prompts)"
    return Judged(rule, verdict.model_copy(update={"test": test}), sampling, rule.max_kl, False)


def _length_budget(rule: GateRule, run: Run, where: str) -> Judged:
    """H₀: growth ≥ g, i.e. E[L_model − (1 + g)·L_before] ≥ 0 over the prompts both answered (a paired t-test)."""
    result, baseline = run.result, run.baseline
    current = _lengths(result, rule.model, where)
    if baseline is not None:
        before_model, before_run = _baseline_model(rule, result, baseline, where), "the baseline run"
        before = _lengths(baseline, before_model, where + " in the baseline")
    elif result.reference is not None:
        before_model, before_run = result.reference, "this run"
        before = _lengths(result, before_model, where)
    else:
        raise NoBaselineYet(_NO_BASELINE + " (or a reference model in the run to measure growth against)")
    assert rule.max_growth is not None
    shared = sorted(current.keys() & before.keys())
    if not shared:
        raise Undecidable(f"{where}: {rule.model!r} and {before_model!r} answered no prompt in common")
    ours = np.array([current[p] for p in shared])
    theirs = np.array([before[p] for p in shared])
    mean_before = float(theirs.mean())
    growth = float(ours.mean()) / mean_before - 1 if mean_before > 0 else float("inf")
    # A difference whose mean is < 0 exactly when the growth is below the budget: testable with a t-test.
    differences = ours - (1 + rule.max_growth) * theirs
    estimate = stats.mean(differences, 0.95)
    verdict = _open_verdict(
        rule,
        reason=(
            f"mean generation length of {rule.model} {ours.mean():.1f} tokens vs {mean_before:.1f} for {before_model} "
            f"({before_run}), {growth:+.1%} (budget {rule.max_growth:+.0%}) over {len(shared)} prompts; "
            f"tested on the mean of L − {1 + rule.max_growth:g}·L_before, in tokens"
        ),
        model=rule.model,
        baseline=before_model,
        value=growth,
        n=len(shared),
        threshold=rule.max_growth,
        test=f"H0: growth >= {rule.max_growth:+.0%} ({describe_test(estimate.sampling)} on L − (1 + g)·L_before)",
    )
    return Judged(rule, verdict, estimate.sampling, 0.0, False)


def _capability_non_inferiority(rule: GateRule, run: Run, where: str) -> Judged:
    """H₀: Δ ≤ −margin on the task's metric, `model` against `baseline` (both of this run) on the same documents."""
    capabilities = run.result.capabilities
    if capabilities is None:
        raise Undecidable(f"{where}: the results have no capability tasks (the suite's `capabilities` section)")
    assert rule.task is not None and rule.baseline is not None and rule.margin is not None
    metric = rule.metric or primary_metric(capabilities, rule.task)
    if metric is None:
        raise Undecidable(f"{where}: the results have no capability task {rule.task!r}")
    found = _find_comparison(capabilities.comparisons, rule.task, "all", rule.model, rule.baseline, metric)
    if found is None:
        raise Undecidable(
            f"{where}: the results compare no {rule.model!r} and {rule.baseline!r} on {rule.task} {metric}"
        )
    on_metric = rule.model_copy(update={"metric": metric})
    return _paired(on_metric, found, _recorded_sampling(found, where), rule.task, margin=rule.margin)


_JUDGES: dict[str, Callable[[GateRule, Run, str], Judged]] = {
    "absolute": _absolute,
    "superiority": _superiority,
    "non_inferiority": _non_inferiority,
    "drift_budget": _drift_budget,
    "length_budget": _length_budget,
    "capability_non_inferiority": _capability_non_inferiority,
}


def _find_comparison(
    comparisons: Sequence[Comparison], dataset: str, subset: str, model: str, other: str, metric: str
) -> Comparison | None:
    """`model` against `other`, whichever way round the run compared them: Δ, its interval and the flips
    turned with the sides, so the recorded test reads the same way."""
    for c in comparisons:
        if (c.dataset, c.subset, c.metric) != (dataset, subset, metric):
            continue
        if (c.model, c.baseline) == (model, other):
            return c
        if (c.model, c.baseline) == (other, model):
            return c.reversed()
    return None


def _pair_rows(result: RunResult, directory: Path, dataset: str, model: str, where: str) -> list[PairScore]:
    info = next((d for d in result.datasets if d.name == dataset), None)
    if info is None:
        raise Undecidable(f"{where}: no dataset {dataset!r} in the results")
    path = pairs_path(directory, info)
    if path is None:
        raise Undecidable(f"{where}: no per-pair file {info.pairs_file!r} inside {directory}")
    rows = [r for r in read_pair_scores(path) if r.model == model]
    if not rows:
        raise Undecidable(f"{where}: no per-pair scores of model {model!r} on {dataset}")
    return rows


def _renamed(row: PairScore, model: str) -> PairScore:
    return PairScore(**{**vars(row), "model": model})


def _lengths(result: RunResult, model: str, where: str) -> dict[str, float]:
    """Prompt id → mean completion length in tokens of `model`'s samples."""
    samples = [s for s in (result.generation.samples if result.generation else []) if s.model == model]
    if not samples:
        raise Undecidable(f"{where}: the results have no generation samples of {model!r}; add a generation section")
    by_prompt: dict[str, list[int]] = {}
    for s in samples:
        by_prompt.setdefault(s.prompt_id, []).append(s.n_tokens)
    return {prompt: float(np.mean(lengths)) for prompt, lengths in by_prompt.items()}


def _interval(value: float, low: float | None, high: float | None, signed: bool = False) -> str:
    fmt = "{:+.4g}" if signed else "{:.4g}"
    text = fmt.format(value)
    return f"{text} [{fmt.format(low)}, {fmt.format(high)}]" if low is not None and high is not None else text


def _interval_of(metric: Metric) -> str:
    return _interval(metric.value, metric.ci_low, metric.ci_high)


def write_junit(verdicts: Sequence[GateVerdict], path: Path, result: RunResult | None = None) -> None:
    """JUnit XML, one test case per rule: `<failure>` for a failed rule, `<error>` for an undecidable one,
    `<skipped>` for one waiting for a baseline, nothing for a pass. Valid against both the Jenkins xUnit schema
    and the Ant JUnit schema (tests/schemas), which is why the numbers of every rule (value, interval, n, p) sit
    in the suite's `<properties>` and `<system-out>`: Ant allows no output or properties inside a test case."""
    count = {status: sum(v.status == status for v in verdicts) for status in verdict_words.LABELS}
    created = _timestamp(result.created_at if result is not None else None)
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name="evalkit gate",
        package="evalkit.gate.rules",
        id="0",
        timestamp=created,
        hostname=_xml_text(socket.gethostname() or "localhost"),
        tests=str(len(verdicts)),
        failures=str(count["failed"]),
        errors=str(count["undecidable"]),
        time=f"{result.duration_s if result is not None else 0.0:.3f}",
    )
    if count["skipped"]:  # only then: the 2011 Ant schema, which many tools still ship, knows no skipped count
        suite.set("skipped", str(count["skipped"]))
    properties = ElementTree.SubElement(suite, "properties")
    if result is not None:
        ElementTree.SubElement(properties, "property", name="suite", value=_xml_text(result.suite.name))
    for index, verdict in enumerate(verdicts):
        for key in _JUNIT_PROPERTIES:
            value = getattr(verdict, key)
            if value is not None:
                name = f"rules.{index}.{key}"
                ElementTree.SubElement(properties, "property", name=name, value=_xml_text(str(value)))
    for verdict in verdicts:
        case = ElementTree.SubElement(
            suite, "testcase", name=_xml_text(verdict.rule), classname=f"evalkit.gate.rules.{verdict.kind}", time="0"
        )
        message = _xml_text(f"{_stated_value(verdict)}, n = {verdict.n}: {verdict.reason}")
        if verdict.status == "failed":
            ElementTree.SubElement(case, "failure", message=message, type=verdict.kind).text = message
        elif verdict.status == "undecidable":
            ElementTree.SubElement(case, "error", message=message, type="undecidable").text = message
        elif verdict.status == "skipped":
            ElementTree.SubElement(case, "skipped", message=_xml_text(verdict.reason))
    lines = [f"{verdict_words.LABELS[v.status]}: {v.rule}: {_stated_value(v)}, n = {v.n}: {v.reason}" for v in verdicts]
    ElementTree.SubElement(suite, "system-out").text = _xml_text("\n".join(lines))
    ElementTree.SubElement(suite, "system-err")
    ElementTree.indent(suites)
    atomic_write_text(path, ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n")


_JUNIT_PROPERTIES = (
    *("status", "dataset", "subset", "model", "baseline", "metric", "value", "ci_low", "ci_high"),
    *("bound", "threshold", "test", "p_value", "p_adjusted", "alpha", "n"),
)

# Characters XML 1.0 cannot carry at all (controls other than tab, newline and carriage return; surrogates;
# U+FFFE and U+FFFF): a rule name holding one would make the whole file unreadable.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _timestamp(created_at: str | None) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC, the one form the Ant schema accepts (no fraction, no zone)."""
    moment = datetime.datetime.now(datetime.timezone.utc)
    if created_at:
        with contextlib.suppress(ValueError):
            moment = datetime.datetime.fromisoformat(created_at)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def summary_markdown(verdicts: Sequence[GateVerdict], title: str, report_link: str | None = None) -> str:
    """A markdown verdict fit for `$GITHUB_STEP_SUMMARY` or a PR comment; `report_link` (an absolute URL, e.g.
    of the uploaded artifact) is where the full report is, since a relative file means nothing there."""
    lines = [
        f"## evalkit gate: {markdown.escape(title)}: {verdict_words.headline(verdicts)}",
        "",
        "| | rule | value [95% CI] | p (one-sided) | p adjusted | n | why |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for v in verdict_words.worst_first(verdicts):
        value = _stated_value(v)
        p = f"{v.p_value:.2g}" if v.p_value is not None else "—"
        adjusted = f"{v.p_adjusted:.2g}" if v.p_adjusted is not None else "—"
        n = str(v.n) if v.n is not None else "—"
        mark = f"{verdict_words.MARKS[v.status]} {verdict_words.LABELS[v.status]}"
        lines.append(
            f"| {mark} | {markdown.escape(v.rule)} | {value} | {p} | {adjusted} | {n} | {markdown.escape(v.reason)} |"
        )
    if report_link:
        lines += ["", f"Full report: {report_link}"]
    return "\n".join(lines) + "\n"


def _stated_value(v: GateVerdict) -> str:
    """The number a rule was judged on, in its unit: Δ with its sign, growth in percent, KL in nats."""
    if v.value is None:
        return "—"
    if v.kind == "length_budget":
        return f"{v.value:+.1%} growth"
    if v.kind in ("superiority", "non_inferiority", "capability_non_inferiority"):
        return "Δ " + _interval(v.value, v.ci_low, v.ci_high, signed=True)
    if v.kind == "drift_budget":
        return _interval(v.value, v.ci_low, v.ci_high) + " nats"
    return _interval(v.value, v.ci_low, v.ci_high)


def verdict_table(verdicts: Sequence[GateVerdict]) -> Table:
    table = Table(title=f"evalkit gate: {plain(verdict_words.headline(verdicts))}", title_justify="left")
    for column in ("", "rule", "why"):
        table.add_column(column)
    colours = {"passed": "green", "failed": "red", "undecidable": "yellow", "skipped": "dim"}
    for v in verdict_words.worst_first(verdicts):
        label = f"[{colours[v.status]}]{verdict_words.LABELS[v.status]}[/{colours[v.status]}]"
        table.add_row(label, plain(v.rule), plain(v.reason))
    return table


def publish(verdicts: Sequence[GateVerdict], out_dir: Path, result: RunResult) -> list[Path]:
    """Write `junit.xml` and `summary.md`; append the summary to `$GITHUB_STEP_SUMMARY` when set.

    `$EVALKIT_REPORT_URL`, when set (e.g. by a CI job, to the uploaded artifact), is linked as the full report."""
    junit, summary = out_dir / "junit.xml", out_dir / "summary.md"
    write_junit(verdicts, junit, result)
    report_url = os.environ.get("EVALKIT_REPORT_URL", "").strip()
    text = summary_markdown(verdicts, result.suite.name, report_url if report_url.startswith("https://") else None)
    atomic_write_text(summary, text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return [junit, summary]
