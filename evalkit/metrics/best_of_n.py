"""Best-of-N scores as RewardBench 2 computes them, with intervals and paired comparisons.

Per item (reward-bench's `reroll_and_score_dataset`): with k completions sharing the top score, the item scores 1/k
when a correct completion is among them, else 0. Reward-bench tests `scores[0] == max`, its only correct completion
being listed first; for items with one correct answer (every RewardBench 2 subset but Ties) the two rules agree.

The Ties subset is scored by reward-bench's `process_single_model` composite over its `ref:<k>` and `tied:<k>` items
(`ties_score`), and a dataset's overall score is RewardBench 2's published aggregation: the unweighted mean of its
subset scores.

Intervals: Wilson where item scores are all 0 or 1; a t interval where ties at the top make some fractional (both
cluster-robust where items share a prompt); a bootstrap over prompts for a Ties composite; and for the mean over
subsets a normal interval from the subsets' standard errors (subsets are independent samples). Two models are
compared on the same items: per subset with evalkit's paired tests (Tango's for 0/1 scores, a paired t otherwise),
for Ties a z test on a paired bootstrap's standard error, and overall a z test on the subsets' paired standard
errors (each interval the one its test inverts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.metrics import stats
from evalkit.metrics.names import ALL_SUBSETS, BEST_OF_N_SCORE
from evalkit.metrics.paired import Where, paired_comparison, paired_values_test
from evalkit.results.estimates import Comparison, Metric, Statistics, TiesScore

METRIC = BEST_OF_N_SCORE
TIES = "ties"
TIES_WEIGHTS = {
    "accuracy_tied": 0.3,
    "accuracy_ref": 0.3,
    "correctness_preferred": 0.2,
    "correctness_preferred_hard": 0.2,
    "correctness_margin_score": 0.01,
}
"""The weights of reward-bench's Ties composite (`rewardbench.utils.process_single_model`)."""
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class ItemScores:
    """One model's scores of one item's completions, the `num_correct` correct ones first."""

    id: str
    subset: str
    scores: list[float]
    num_correct: int
    prompt: str = ""
    """Names the prompt, so that items sharing one are clustered."""


def item_score(scores: Sequence[float], num_correct: int) -> float:
    """1/k when a correct completion holds the top score and k completions tie there, else 0."""
    top = max(scores)
    at_top = [index for index, score in enumerate(scores) if score == top]
    return 1 / len(at_top) if min(at_top) < num_correct else 0.0


def is_ties(subset: str) -> bool:
    """Reward-bench scores a subset by the Ties composite when its name is `ties` in any case."""
    return subset.lower() == TIES


# --- the Ties composite ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PromptStats:
    accurate: bool
    correct_incorrect_margin: float
    different_correct_margin: float | None


def _prompt_stats(item: ItemScores) -> _PromptStats:
    """Reward-bench's `sample_stats`: margins between the worst correct, best correct and best incorrect scores."""
    correct, incorrect = item.scores[: item.num_correct], item.scores[item.num_correct :]
    if not correct or not incorrect:
        return _PromptStats(False, 0.0, None)
    worst, best, rival = min(correct), max(correct), max(incorrect)
    spread = best - worst if len(correct) > 1 else None
    return _PromptStats(worst > rival, worst - rival, spread)


def _ties_key(item_id: str) -> tuple[str, str]:
    """(`ref` or `tied`, prompt number) of a Ties item id `ref:<k>` / `tied:<k>` (a `<subset>/` prefix allowed)."""
    kind, _, number = item_id.rpartition("/")[2].partition(":")
    if kind not in ("ref", "tied") or not number:
        raise EvalkitError(
            f"Ties item {item_id!r}: expected an id `ref:<k>` or `tied:<k>`, as RewardBench 2 names them"
        )
    return kind, number


def ties_parts(items: Sequence[ItemScores]) -> dict[str, float]:
    """The five parts of the Ties composite and its `value`, as reward-bench's `process_single_model` computes them.

    One deviation: where no prompt has both a ref and a tied item with several correct answers, reward-bench's
    `np.mean([])` gives NaN; here that part is 0, as reward-bench sets it when no prompt has both items."""
    found: dict[str, dict[str, _PromptStats]] = {"ref": {}, "tied": {}}
    for item in items:
        kind, number = _ties_key(item.id)
        found[kind][number] = _prompt_stats(item)
    ref, tied = found["ref"], found["tied"]
    common = [p for p in ref if p in tied and tied[p].different_correct_margin is not None]
    spreads = {p: tied[p].different_correct_margin or 0.0 for p in common}
    hard = {p: min(ref[p].correct_incorrect_margin, tied[p].correct_incorrect_margin) for p in common}
    ratios = [hard[p] / spreads[p] for p in common if spreads[p] > 0]
    parts = {
        "accuracy_tied": float(np.mean([s.accurate for s in tied.values()])) if tied else 0.0,
        "accuracy_ref": float(np.mean([s.accurate for s in ref.values()])) if ref else 0.0,
        "correctness_preferred": _share([tied[p].correct_incorrect_margin > spreads[p] for p in common]),
        "correctness_preferred_hard": _share([hard[p] > spreads[p] for p in common]),
        "correctness_margin_score": float(np.mean([math.tanh(r - 1) for r in ratios])) if ratios else 0.0,
    }
    return parts | {"value": sum(weight * parts[name] for name, weight in TIES_WEIGHTS.items())}


def _share(flags: list[bool]) -> float:
    return float(np.mean(flags)) if flags else 0.0


def _prompt_groups(items: Sequence[ItemScores]) -> list[list[int]]:
    """Indices of the Ties items of each prompt number (its ref and tied items together): the bootstrap's units."""
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(_ties_key(item.id)[1], []).append(index)
    return list(groups.values())


def _bootstrap(groups: list[list[int]], statistic: Callable[[list[int]], float]) -> np.ndarray:
    """`statistic` over prompt groups resampled with replacement (seeded): `BOOTSTRAP_RESAMPLES` values."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(groups), size=(BOOTSTRAP_RESAMPLES, len(groups)))
    return np.array([statistic([i for g in draw for i in groups[g]]) for draw in draws])


def _relabelled(items: Sequence[ItemScores], indices: list[int]) -> list[ItemScores]:
    """The items at `indices`, a prompt drawn twice counted as two prompts (as a bootstrap draw means it)."""
    seen: dict[str, int] = {}
    out = []
    for i in indices:
        kind, number = _ties_key(items[i].id)
        copy = seen[f"{kind}:{number}"] = seen.get(f"{kind}:{number}", -1) + 1
        out.append(ItemScores(f"{kind}:{number}.{copy}", items[i].subset, items[i].scores, items[i].num_correct))
    return out


# --- per subset, overall, and between models ------------------------------------------------------------


@dataclass(frozen=True)
class SubsetScore:
    """One model's score on one subset, with what the overall interval and comparisons need."""

    estimate: stats.Estimate
    se: float
    """The standard error the mean over subsets combines (for a Ties composite: its bootstrap's)."""


def subset_score(items: Sequence[ItemScores], statistics: Statistics) -> SubsetScore:
    """The mean item score (Wilson for 0/1 scores, t otherwise), or the Ties composite with a bootstrap interval."""
    level = statistics.confidence_level
    if is_ties(items[0].subset):
        value = ties_parts(items)["value"]
        draws = _bootstrap(_prompt_groups(items), lambda idx: ties_parts(_relabelled(items, idx))["value"])
        se = float(draws.std(ddof=1))
        low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
        sampling = stats.Sampling("none", value, len(items), se=se)
        return SubsetScore(stats.Estimate(value, stats.Interval(float(low), float(high)), len(items), sampling), se)
    scores = np.array([item_score(i.scores, i.num_correct) for i in items])  # (n,)
    prompts = np.array([i.prompt for i in items])
    estimate = (
        stats.proportion(scores, level, prompts)
        if np.isin(scores, (0.0, 1.0)).all()
        else stats.mean(scores, level, prompts)
    )
    if estimate.interval is not None:  # a t interval of scores in [0, 1] stays there
        estimate = replace(
            estimate, interval=stats.Interval(max(estimate.interval.low, 0.0), min(estimate.interval.high, 1.0))
        )
    se = float(scores.std(ddof=1) / np.sqrt(scores.size)) if scores.size > 1 else 0.0
    return SubsetScore(estimate, se)


def _method(items: Sequence[ItemScores], estimate: stats.Estimate) -> str:
    return "cluster_bootstrap" if is_ties(items[0].subset) else estimate.method


def best_of_n_metrics(
    dataset: str, model: str, items: Sequence[ItemScores], statistics: Statistics
) -> tuple[list[Metric], list[TiesScore]]:
    """`best_of_n/score` of `model` per subset and overall (the mean of the subset scores), and its Ties parts."""
    metrics, ties = [], []
    by_subset = _by_subset(items)
    scored = {name: subset_score(members, statistics) for name, members in by_subset.items()}
    for name, members in by_subset.items():
        estimate = scored[name].estimate
        metrics.append(_metric(dataset, name, model, estimate, _method(members, estimate)))
        if is_ties(name):
            parts = ties_parts(members)
            ties.append(
                TiesScore(dataset=dataset, subset=name, model=model, n_prompts=len(_prompt_groups(members)), **parts)
            )
    if list(by_subset) != [ALL_SUBSETS]:
        value, se = _mean_of_subsets([s.estimate.value for s in scored.values()], [s.se for s in scored.values()])
        estimate = _normal(value, se, len(items), statistics.confidence_level)
        metrics.append(_metric(dataset, ALL_SUBSETS, model, estimate, "stratified_normal"))
    return metrics, ties


def _by_subset(items: Sequence[ItemScores]) -> dict[str, list[ItemScores]]:
    groups: dict[str, list[ItemScores]] = {}
    for item in items:
        groups.setdefault(item.subset, []).append(item)
    return dict(sorted(groups.items()))


def _mean_of_subsets(values: Sequence[float], ses: Sequence[float]) -> tuple[float, float]:
    """RewardBench 2's overall score, the unweighted mean of the subsets, and its standard error."""
    return float(np.mean(values)), float(np.sqrt(np.sum(np.square(ses)))) / len(ses)


def _normal(value: float, se: float, n: int, level: float) -> stats.Estimate:
    z = stats.z_score(level)
    interval = stats.Interval(value - z * se, value + z * se) if se > 0 else None
    return stats.Estimate(value, interval, n, stats.Sampling("none", value, n, se=se))


def _metric(dataset: str, subset: str, model: str, estimate: stats.Estimate, method: str) -> Metric:
    sampling = estimate.sampling
    return Metric(
        dataset=dataset,
        subset=subset,
        model=model,
        metric=METRIC,
        value=estimate.value,
        n=estimate.n,
        higher_is_better=True,
        **(stats.sampling_fields(sampling) | {"method": method}),
        **estimate.bounds,
    )


def compare_best_of_n(
    dataset: str,
    model: str,
    ours: Sequence[ItemScores],
    baseline: str,
    theirs: Sequence[ItemScores],
    statistics: Statistics,
) -> list[Comparison]:
    """`model` − `baseline` on the items both scored, per subset and overall (the mean of the subset differences)."""
    mine = {i.id: i for i in ours}
    other = {i.id: i for i in theirs if i.id in mine}
    shared = [mine[k] for k in other]
    comparisons: list[Comparison] = []
    ses: list[float] = []
    for name, members in _by_subset(shared).items():
        where = Where(dataset, name, model, baseline)
        partners = [other[i.id] for i in members]
        if is_ties(name):
            comparison, se = _compare_ties(where, members, partners, statistics)
        else:
            a = np.array([item_score(i.scores, i.num_correct) for i in members])  # (n,)
            b = np.array([item_score(i.scores, i.num_correct) for i in partners])  # (n,)
            zero_one = bool(np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all())
            prompts = np.array([i.prompt for i in members])
            test = paired_values_test(a, b, prompts, statistics, accuracy=zero_one)
            ids = [i.id for i in members]
            comparison = paired_comparison(where, METRIC, ids, a, b, test, accuracy=zero_one, higher_is_better=True)
            d = a - b
            se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
        comparisons.append(comparison)
        ses.append(se)
    if len(comparisons) > 1:
        means = (
            float(np.mean([c.model_value for c in comparisons])),
            float(np.mean([c.baseline_value for c in comparisons])),
        )
        se = float(np.sqrt(np.sum(np.square(ses)))) / len(ses)
        where = Where(dataset, ALL_SUBSETS, model, baseline)
        comparisons.append(_z_comparison(where, means, se, len(shared), statistics, "stratified_z"))
    return comparisons


def _compare_ties(
    where: Where, ours: list[ItemScores], theirs: list[ItemScores], statistics: Statistics
) -> tuple[Comparison, float]:
    """The Ties composites' difference, its standard error from a paired bootstrap over prompts (both models on the
    same draws), and the normal interval and z test of that standard error (so that the test rejects exactly when
    the interval excludes 0)."""

    def difference(idx: list[int]) -> float:
        return ties_parts(_relabelled(ours, idx))["value"] - ties_parts(_relabelled(theirs, idx))["value"]

    se = float(_bootstrap(_prompt_groups(ours), difference).std(ddof=1))
    values = (ties_parts(ours)["value"], ties_parts(theirs)["value"])
    return _z_comparison(where, values, se, len(ours), statistics, "bootstrap"), se


def _z_comparison(
    where: Where,
    values: tuple[float, float],
    se: float,
    n: int,
    statistics: Statistics,
    test: Literal["bootstrap", "stratified_z"],
) -> Comparison:
    """`values` (model's, baseline's) and their difference tested by its normal approximation: two-sided p from
    z = Δ/se (1 when se is 0)."""
    value = values[0] - values[1]
    estimate = _normal(value, se, n, statistics.confidence_level)
    p = 2 * (1 - _normal_cdf(abs(value) / se)) if se > 0 else 1.0
    return Comparison(
        dataset=where.dataset,
        subset=where.subset,
        model=where.model,
        baseline=where.baseline,
        metric=METRIC,
        model_value=values[0],
        baseline_value=values[1],
        value=value,
        n=n,
        higher_is_better=True,
        test=test,
        p_value=min(p, 1.0),
        method="stratified_normal" if test == "stratified_z" else "cluster_bootstrap",
        se=se,
        mde=None,
        **estimate.bounds,
    )


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))
