"""Capability numbers from task runs: each task's score per model with an interval, and paired comparisons between
models on the documents both scored (the same paired test as preference pairs), with the flipped documents."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalkit.capabilities.runs import TaskRun
from evalkit.metrics import hypotheses, stats
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.metrics.paired import Where, paired_comparison, paired_values_test
from evalkit.metrics.stats import sampling_fields
from evalkit.results.capabilities import CapabilityResult
from evalkit.results.estimates import Comparison, Metric, Statistics


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def score_runs(runs: Sequence[TaskRun], statistics: Statistics) -> list[Metric]:
    """Each (task, model, metric) over its documents: Wilson's interval for 0/1 values, Student t otherwise."""
    out = []
    for run in runs:
        for metric, direction in run.higher_is_better.items():
            values = np.array([d.values[metric] for d in run.documents if metric in d.values])  # (n,)
            if values.size == 0:
                continue
            estimate = (stats.proportion if _is_binary(values) else stats.mean)(values, statistics.confidence_level)
            out.append(
                Metric(
                    dataset=run.task,
                    subset="all",
                    model=run.model,
                    metric=metric,
                    value=estimate.value,
                    ci_low=estimate.interval.low if estimate.interval else None,
                    ci_high=estimate.interval.high if estimate.interval else None,
                    n=estimate.n,
                    higher_is_better=direction,
                    **sampling_fields(estimate.sampling),
                )
            )
    return out


def compare_runs(runs: Sequence[TaskRun], statistics: Statistics) -> list[Comparison]:
    """Every later-listed model against every earlier-listed one, per task and metric, on shared documents."""
    out = []
    models = list(dict.fromkeys(r.model for r in runs))
    for task in dict.fromkeys(r.task for r in runs):
        by_model = {r.model: r for r in runs if r.task == task}
        for position, model in enumerate(models):
            for baseline in models[:position]:
                if model in by_model and baseline in by_model:
                    out += _compare(by_model[model], by_model[baseline], statistics)
    return out


def _compare(ours: TaskRun, theirs: TaskRun, statistics: Statistics) -> list[Comparison]:
    mine = {(d.id, d.doc_hash): d.values for d in ours.documents}
    other = {(d.id, d.doc_hash): d.values for d in theirs.documents}
    where = Where(dataset=ours.task, subset=ALL_SUBSETS, model=ours.model, baseline=theirs.model)
    out = []
    for metric, direction in ours.higher_is_better.items():
        shared = sorted(k for k in mine.keys() & other.keys() if metric in mine[k] and metric in other[k])
        if not shared:
            continue
        a = np.array([mine[k][metric] for k in shared])  # (n,)
        b = np.array([other[k][metric] for k in shared])  # (n,)
        accuracy = _is_binary(a) and _is_binary(b)
        test = paired_values_test(a, b, None, statistics, accuracy=accuracy)
        ids = [k[0] for k in shared]
        out.append(paired_comparison(where, metric, ids, a, b, test, accuracy=accuracy, higher_is_better=direction))
    return out


def with_fdr(comparisons: list[Comparison]) -> list[Comparison]:
    """`p_adjusted`: Benjamini–Hochberg over the run's capability comparisons (the reports' marks read it)."""
    adjusted = hypotheses.benjamini_hochberg([c.p_value for c in comparisons])
    return [c.model_copy(update={"p_adjusted": p}) for c, p in zip(comparisons, adjusted, strict=True)]


def primary_metric(result: CapabilityResult, task: str) -> str | None:
    """The task's first metric: what a gate rule without `metric` is about."""
    found = next((t for t in result.tasks if t.name == task), None)
    return found.metrics[0] if found is not None and found.metrics else None
