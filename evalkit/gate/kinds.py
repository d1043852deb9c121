"""One judge per rule kind: a rule and a run in, the rule's evidence (`Judged`) out, or why it cannot be judged.

Each judge finds what its kind tests in `results.json` (a metric, a comparison, the drift, the
generation lengths, a capability comparison) or, against a baseline run, recomputes the paired
comparison from both runs' per-pair files. The test each rule replays is the one recorded beside the
numbers (`evalkit.metrics.stats`), so a rule passes exactly when its one-sided bound clears its threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from evalkit.capabilities.scores import primary_metric
from evalkit.config.objectives import objective_in
from evalkit.config.rules import (
    AbsoluteRule,
    BeatsBaselineRule,
    CapabilityRule,
    DriftBudgetRule,
    GateRule,
    LengthBudgetRule,
    NonInferiorityRule,
    SuperiorityRule,
    WinRateRule,
)
from evalkit.gate.evidence import (
    NO_BASELINE,
    NOT_A_NUMBER,
    Judged,
    NoBaselineYet,
    Run,
    Undecidable,
    nan_in,
    open_verdict,
)
from evalkit.metrics import hypotheses, stats
from evalkit.metrics.baselines import baseline_tests, weakest_win
from evalkit.metrics.hypotheses import describe_test
from evalkit.metrics.paired import compare_models
from evalkit.metrics.unpaired import compare_with_earlier_run
from evalkit.report.verdicts import interval
from evalkit.results.completions import CompletionScore, read_completion_scores
from evalkit.results.estimates import Comparison, Metric
from evalkit.results.generation import PairwiseWinRate
from evalkit.results.matching import counterparts, dataset_counterpart
from evalkit.results.pairs import PairScore, pairs_path, read_pair_scores
from evalkit.results.schema import RunResult


def judge_rule(rule: GateRule, run: Run, where: str) -> Judged:
    """The evidence on `rule` in `run`; raises `Undecidable` or `NoBaselineYet` when there is none to weigh."""
    match rule:
        case AbsoluteRule():
            return _absolute(rule, run, where)
        case SuperiorityRule():
            return _superiority(rule, run, where)
        case NonInferiorityRule():
            return _non_inferiority(rule, run, where)
        case DriftBudgetRule():
            return _drift_budget(rule, run, where)
        case LengthBudgetRule():
            return _length_budget(rule, run, where)
        case CapabilityRule():
            return _capability_non_inferiority(rule, run, where)
        case WinRateRule():
            return _win_rate(rule, run, where)
        case BeatsBaselineRule():
            return _beats_baseline(rule, run, where)


def _dataset(rule: AbsoluteRule | SuperiorityRule | NonInferiorityRule | BeatsBaselineRule, result: RunResult) -> str:
    return rule.dataset or result.datasets[0].name


def _recorded_sampling(record: Metric | Comparison, where: str) -> stats.Sampling:
    """The estimate a record's test replays, rebuilt from what `results.json` recorded of it."""
    if nan_in(record.value, record.ci_low, record.ci_high, record.se, record.df, record.skewness):
        raise Undecidable(f"{where}: {NOT_A_NUMBER}")
    if record.method is None:
        raise Undecidable(
            f"{where}: the results predate recorded interval methods (schema < 1.4), so no test can be replayed; "
            "run `evalkit bench` again to gate them"
        )
    sampling = hypotheses.recorded_sampling(record)
    assert sampling is not None, "a record with a method has a sampling"
    return sampling


def _absolute(rule: AbsoluteRule, run: Run, where: str) -> Judged:
    result = run.result
    dataset = _dataset(rule, result)
    metric = result.metric(dataset, rule.model, rule.metric, rule.subset)
    if metric is None:
        raise Undecidable(
            f"{where}: the results have no {rule.metric!r} for model {rule.model!r} on {dataset}/{rule.subset}"
            + (" (the reference has no reward metrics)" if rule.model == result.reference else "")
        )
    at_least, threshold = rule.higher_passes, rule.threshold
    verdict = open_verdict(
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
    if rule.judge_on == "value":  # a NaN value is undecidable by `check_numbers`, as every judged rule's numbers are
        on_value = metric.value >= threshold if at_least else metric.value <= threshold
        return Judged(rule, verdict, None, threshold, at_least, passes_on_value=on_value)
    sampling = _recorded_sampling(metric, where)
    if sampling.method not in stats.TESTABLE:
        raise Undecidable(f"{where}: {rule.metric!r} has no test ({sampling.method} interval); set judge_on: value")
    test = f"H0: {rule.metric} {'<=' if at_least else '>='} {threshold:g} ({hypotheses.describe_test(sampling)})"
    return Judged(rule, verdict.model_copy(update={"test": test}), sampling, threshold, at_least)


def _superiority(rule: SuperiorityRule, run: Run, where: str) -> Judged:
    result = run.result
    dataset = _dataset(rule, result)
    found = _find_comparison(result.comparisons, dataset, rule.subset, rule.model, rule.baseline, rule.metric)
    if found is None:
        raise Undecidable(
            f"{where}: the results compare no {rule.model!r} and {rule.baseline!r} on {rule.metric!r} in "
            f"{dataset}/{rule.subset} (reward metrics need both models to have rewards)"
        )
    return _paired(rule, found, _recorded_sampling(found, where), margin=0.0)


def _non_inferiority(rule: NonInferiorityRule, run: Run, where: str) -> Judged:
    result, results_dir, baseline, baseline_dir = run.result, run.results_dir, run.baseline, run.baseline_dir
    if baseline is None or baseline_dir is None:
        raise NoBaselineYet(NO_BASELINE)
    dataset = _dataset(rule, result)
    baseline_model = _baseline_model(rule, result, baseline, where)
    baseline_name = f"{baseline_model} (baseline)"
    before_dataset = dataset_counterpart(dataset, result, baseline) or dataset
    statistics = result.effective_statistics
    recorded = {baseline_name: objective_in(baseline, baseline_model), rule.model: objective_in(result, rule.model)}
    objectives = {name: objective for name, objective in recorded.items() if objective is not None}
    if _holds_completions(result, dataset):  # labelled completions: the two AUCs on the completions both scored
        current_rows = _completion_rows(result, results_dir, dataset, rule.model, where)
        earlier = _completion_rows(baseline, baseline_dir, before_dataset, baseline_model, where + " in the baseline")
        both_objectives = recorded[baseline_name], recorded[rule.model]
        comparisons = compare_with_earlier_run(
            dataset, current_rows, earlier, baseline_name, both_objectives, result.scoring.beta, statistics
        )
    else:
        current = _pair_rows(result, results_dir, dataset, rule.model, where)
        before = _pair_rows(baseline, baseline_dir, before_dataset, baseline_model, where + " in the baseline")
        renamed = [row.as_model(baseline_name) for row in before]
        comparisons = compare_models(
            dataset, [*renamed, *current], result.scoring.beta, statistics=statistics, objectives=objectives
        )
    found = _find_comparison(comparisons, dataset, rule.subset, rule.model, baseline_name, rule.metric)
    if found is None or found.n == 0:
        raise Undecidable(f"{where}: the run and the baseline share no scored pairs of {dataset}/{rule.subset}")
    judged = _paired(rule, found, _recorded_sampling(found, where), margin=rule.margin)
    prints = {d.name: d.fingerprint for d in result.datasets}, {d.name: d.fingerprint for d in baseline.datasets}
    if prints[0].get(dataset) != prints[1].get(before_dataset):
        note = judged.verdict.reason + " (the dataset changed since the baseline)"
        judged = replace(judged, verdict=judged.verdict.model_copy(update={"reason": note}))
    return judged


def _baseline_model(
    rule: NonInferiorityRule | LengthBudgetRule, result: RunResult, baseline: RunResult, where: str
) -> str:
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


def _paired(rule: GateRule, comparison: Comparison, sampling: stats.Sampling, margin: float) -> Judged:
    """H₀: Δ ≤ −margin where higher is better (Δ ≥ +margin where lower is); superiority is margin 0. The verdict's
    dataset (a capability rule's task), subset and metric are the comparison's."""
    higher = comparison.higher_is_better is not False
    null = (-margin if higher else margin) + 0.0  # + 0.0: never a "-0" in a verdict
    difference = interval(comparison.value, comparison.ci_low, comparison.ci_high, signed=True)
    unit = "completions" if comparison.method == "mover_auc" else rule.unit  # two AUCs of labelled completions
    described = f"Δ {comparison.metric} = {difference}"
    test = f"H0: Δ {'<=' if higher else '>='} {null:+g} ({hypotheses.describe_test(sampling)})"
    verdict = open_verdict(
        rule,
        reason=f"{rule.model} vs {comparison.baseline}: {described} over {comparison.n} {unit}",
        dataset=comparison.dataset,
        subset=comparison.subset,
        model=rule.model,
        baseline=comparison.baseline,
        metric=comparison.metric,
        value=comparison.value,
        ci_low=comparison.ci_low,
        ci_high=comparison.ci_high,
        n=comparison.n,
        threshold=null,
        test=test,
    )
    return Judged(rule, verdict, sampling, null, higher)


def _beats_baseline(rule: BeatsBaselineRule, run: Run, where: str) -> Judged:
    """H₀: the model is no better than the named content-blind baseline; with `best`, than the one hardest to beat
    (the intersection-union test: the rule passes only when the model beats every baseline at α, so testing several
    owes no correction). Length baselines: Δ ≤ 0 on the recorded paired test; chance: accuracy ≤ ½ (a best-of-N
    score ≤ the items' mean share of correct answers) on the accuracy's own test."""
    result = run.result
    dataset = _dataset(rule, result)
    tests = baseline_tests(result, dataset, rule.subset, rule.model, rule.metric, rule.baseline)
    if not tests:
        against = "any content-blind baseline" if rule.baseline == "best" else f"the {rule.baseline} baseline"
        raise Undecidable(
            f"{where}: the results compare {rule.model!r} with {against} on no {rule.metric!r} in {dataset}/"
            f"{rule.subset} (results written before baselines existed, or a model without that accuracy)"
        )
    weakest = weakest_win(tests)
    record = weakest.record
    sampling = _recorded_sampling(record, where)
    if isinstance(record, Comparison):
        judged = _paired(rule, record, sampling, margin=0.0)
    else:
        chance = weakest.null
        units = "items" if record in result.best_of_n else "pairs"
        verdict = open_verdict(
            rule,
            reason=f"{rule.metric} of {rule.model} on {dataset}/{rule.subset} = {_interval_of(record)} against "
            f"chance {chance:.3g}, over {record.n} {units}",
            dataset=dataset,
            subset=rule.subset,
            model=rule.model,
            baseline="chance",
            metric=rule.metric,
            value=record.value,
            ci_low=record.ci_low,
            ci_high=record.ci_high,
            n=record.n,
            threshold=chance,
            test=f"H0: {rule.metric} <= {chance:.3g} ({hypotheses.describe_test(sampling)})",
        )
        judged = Judged(rule, verdict, sampling, chance, True)
    if rule.baseline == "best" and len(tests) > 1:
        note = f" (the hardest of {len(tests)} baselines to beat)"
        judged = replace(judged, verdict=judged.verdict.model_copy(update={"reason": judged.verdict.reason + note}))
    return judged


def _drift_budget(rule: DriftBudgetRule, run: Run, where: str) -> Judged:
    result = run.result
    drifts = [d for d in (result.generation.drift if result.generation else []) if d.model == rule.model]
    if not drifts:
        raise Undecidable(f"{where}: the results have no drift for {rule.model!r}; enable generation.drift")
    drift = drifts[0]
    cut = f", first {drift.max_new_tokens} tokens" if drift.max_new_tokens is not None else ""
    verdict = open_verdict(
        rule,
        reason=f"KL({rule.model} ‖ {drift.reference}) = {interval(drift.kl, drift.ci_low, drift.ci_high)} nats"
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


def _length_budget(rule: LengthBudgetRule, run: Run, where: str) -> Judged:
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
        raise NoBaselineYet(NO_BASELINE + " (or a reference model in the run to measure growth against)")
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
    verdict = open_verdict(
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


def _capability_non_inferiority(rule: CapabilityRule, run: Run, where: str) -> Judged:
    """H₀: Δ ≤ −margin on the task's metric, `model` against `baseline` (both of this run) on the same documents."""
    capabilities = run.result.capabilities
    if capabilities is None:
        raise Undecidable(f"{where}: the results have no capability tasks (the suite's `capabilities` section)")
    metric = rule.metric or primary_metric(capabilities, rule.task)
    if metric is None:
        raise Undecidable(f"{where}: the results have no capability task {rule.task!r}")
    found = _find_comparison(capabilities.comparisons, rule.task, "all", rule.model, rule.baseline, metric)
    if found is None:
        raise Undecidable(
            f"{where}: the results compare no {rule.model!r} and {rule.baseline!r} on {rule.task} {metric}"
        )
    on_metric = rule.model_copy(update={"metric": metric})  # an unnamed rule's title names the metric judged
    return _paired(on_metric, found, _recorded_sampling(found, where), margin=rule.margin)


def _win_rate(rule: WinRateRule, run: Run, where: str) -> Judged:
    """H₀: the judged win rate ≤ `at_least`: on the logit scale for the length-controlled rate, on the rate itself
    (the score test on Wilson's effective n) for the raw one."""
    generation = run.result.generation
    found = [
        w
        for w in (generation.pairwise if generation is not None else [])
        if (w.judge, w.model) == (rule.judge, rule.model) and rule.baseline in (None, w.baseline)
    ]
    if not found:
        against = f" against {rule.baseline!r}" if rule.baseline else ""
        raise Undecidable(
            f"{where}: the results have no pairwise judgments of {rule.model!r}{against} by {rule.judge!r}"
        )
    record = found[0]
    if record.n == 0:
        raise Undecidable(
            f"{where}: judge {rule.judge!r} gave no readable verdict on {rule.model!r} ({record.unparsed} prompts "
            "unparsed); check the judge and its template"
        )
    sampling, null = win_rate_sampling(record, rule.on, rule.at_least)
    controlled = record.length_controlled
    if rule.on == "length_controlled":
        assert controlled is not None, "a record with read prompts has its length-controlled rate"
        value, low, high, which = (
            controlled.win_rate,
            controlled.ci_low,
            controlled.ci_high,
            "length-controlled win rate",
        )
        scale = f"; tested on the logit scale, logit({rule.at_least:g}) = {null:+.3g}"
        test = f"H0: LC win rate <= {rule.at_least:g} (delta method, t on n − 2, logit scale)"
    else:
        assert record.win_rate is not None, "a record with read prompts has its win rate"
        value, low, high, which, scale = record.win_rate, record.ci_low, record.ci_high, "win rate", ""
        test = f"H0: win rate <= {rule.at_least:g} ({hypotheses.describe_test(sampling)})"
    unparsed = f", {record.unparsed} unparsed" if record.unparsed else ""
    verdict = open_verdict(
        rule,
        reason=f"{which} of {rule.model} over {record.baseline} by {rule.judge} = {interval(value, low, high)}, "
        f"over {record.n} prompts{unparsed}{scale}",
        model=rule.model,
        baseline=record.baseline,
        metric=f"{rule.judge}/{rule.on}",
        value=value,
        ci_low=low,
        ci_high=high,
        n=record.n,
        threshold=rule.at_least,
        test=test,
    )
    return Judged(rule, verdict, sampling, null, True)


def win_rate_sampling(record: PairwiseWinRate, on: str, at_least: float) -> tuple[stats.Sampling, float]:
    """The estimate a `win_rate` rule tests and its null boundary. The length-controlled rate is σ(θ): its test is
    on θ, a t on n − 2 degrees of freedom (the sandwich variance's) against logit(at_least); the raw rate is a share
    of 0/½/1 (or probability) preferences, tested on its effective n."""
    if on == "length_controlled":
        controlled = record.length_controlled
        assert controlled is not None
        df = float(controlled.n - 2) if controlled.n > 2 else None
        sampling = stats.Sampling("student_t", controlled.intercept, controlled.n, se=controlled.se, df=df)
        return sampling, float(np.log(at_least / (1 - at_least)))
    assert record.win_rate is not None
    return stats.Sampling("wilson", record.win_rate, record.n, n_effective=record.n_effective), at_least


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
    if info.format != "pairs":
        raise Undecidable(f"{where}: {dataset} holds labelled completions, not pairs; gate its metrics (objective/auc)")
    path = pairs_path(directory, info)
    if path is None:
        raise Undecidable(f"{where}: no per-pair file {info.pairs_file!r} inside {directory}")
    rows = [r for r in read_pair_scores(path) if r.model == model]
    if not rows:
        raise Undecidable(f"{where}: no per-pair scores of model {model!r} on {dataset}")
    return rows


def _holds_completions(result: RunResult, dataset: str) -> bool:
    info = next((d for d in result.datasets if d.name == dataset), None)
    return info is not None and info.format == "unpaired"


def _completion_rows(result: RunResult, directory: Path, dataset: str, model: str, where: str) -> list[CompletionScore]:
    """`model`'s per-completion rows of an unpaired dataset, read from the file results.json names; they need the
    reference's log-probs (rewards), which every model but the reference has."""
    info = next((d for d in result.datasets if d.name == dataset), None)
    if info is None or info.format != "unpaired":
        raise Undecidable(f"{where}: no dataset of labelled completions {dataset!r} in the results")
    path = pairs_path(directory, info)
    if path is None:
        raise Undecidable(f"{where}: no per-completion file {info.pairs_file!r} inside {directory}")
    rows = [r for r in read_completion_scores(path) if r.model == model]
    if not rows or any(r.ref_logp is None for r in rows):
        raise Undecidable(f"{where}: no rewards of model {model!r} on {dataset} (the reference has none)")
    return rows


def _lengths(result: RunResult, model: str, where: str) -> dict[str, float]:
    """Prompt id → mean completion length in tokens of `model`'s samples."""
    samples = [s for s in (result.generation.samples if result.generation else []) if s.model == model]
    if not samples:
        raise Undecidable(f"{where}: the results have no generation samples of {model!r}; add a generation section")
    by_prompt: dict[str, list[int]] = {}
    for s in samples:
        by_prompt.setdefault(s.prompt_id, []).append(s.n_tokens)
    return {prompt: float(np.mean(lengths)) for prompt, lengths in by_prompt.items()}


def _interval_of(metric: Metric) -> str:
    return interval(metric.value, metric.ci_low, metric.ci_high)
