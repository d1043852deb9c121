"""Best-of-N datasets in a suite run: read them as items, score their completions through the pair engine, and
summarise each model's implicit rewards (and the content-blind baselines) as RewardBench 2 scores them.

A model scored with an objective (`method`) ranks an item's completions by that objective's reward of a single
completion (`evalkit.metrics.objectives.REWARDS`: β·ℓ/T for SimPO, the log-odds for ORPO, ...); any other policy by
DPO's implicit reward at `scoring.beta`, a reward model by its score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.config.objectives import Objective
from evalkit.config.specs import DatasetSpec
from evalkit.data.best_of_n import BestOfNItem, is_best_of_n, load_items
from evalkit.metrics.best_of_n import ItemScores, best_of_n_metrics, compare_best_of_n, is_ties
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.metrics.objectives import completion_rewards, reward_label
from evalkit.results.estimates import BaselineName, BaselineScore, Comparison, Metric, Statistics, TiesScore
from evalkit.results.pairs import PairScore
from evalkit.scoring.completions import completion_values


def best_of_n_items(specs: Sequence[DatasetSpec]) -> dict[str, list[BestOfNItem]]:
    """The items of every best-of-N dataset among `specs`, by dataset name (read before any model loads)."""
    return {spec.name: load_items(spec) for spec in specs if is_best_of_n(spec)}


@dataclass
class BestOfNSummary:
    """What results.json records of the best-of-N datasets."""

    metrics: list[Metric] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    ties: list[TiesScore] = field(default_factory=list)
    baselines: list[BaselineScore] = field(default_factory=list)
    rewards: dict[str, str] = field(default_factory=dict)
    """Model → the reward its completions were ranked by (`RunResult.best_of_n_rewards`)."""

    def fields(self) -> dict[str, Any]:
        return {
            "best_of_n": self.metrics,
            "best_of_n_comparisons": self.comparisons,
            "best_of_n_ties": self.ties,
            "best_of_n_rewards": self.rewards,
        }


def summarise_best_of_n(
    items: Mapping[str, list[BestOfNItem]],
    scores: Mapping[str, list[PairScore]],
    models: Sequence[str],
    beta: float,
    statistics: Statistics,
    objectives: Mapping[str, Objective] | None = None,
    reward_models: frozenset[str] = frozenset(),
) -> BestOfNSummary:
    """Each model's scores per dataset and subset (its objective's rewards where `objectives` names one, else DPO's
    implicit rewards at `beta`, or a reward model's scores; the reference has no reference-based reward: its
    implicit rewards are 0), every later model against every earlier one on the same items, the content-blind
    baselines, and every model against each length baseline on the same items (`baseline` names it)."""
    summary = BestOfNSummary()
    objectives = objectives or {}
    for dataset, dataset_items in items.items():
        rewarded: dict[str, list[ItemScores]] = {}
        tokens_of: tuple[str, dict[str, list[float]]] | None = None
        for model in models:
            values = completion_values(dataset_items, scores[dataset], model, beta)
            if tokens_of is None and values:
                tokens_of = (model, {key: v["tokens"] for key, v in values.items()})
            objective = objectives.get(model) if model not in reward_models else None
            by_item = (
                objective_rewards(values, objective)
                if objective is not None
                else {key: v["reward"] for key, v in values.items() if "reward" in v}
            )
            if by_item:
                rewarded[model] = item_scores(dataset_items, by_item)
                summary.rewards[model] = _reward_label(objective, model in reward_models)
        for model, model_items in rewarded.items():
            metrics, ties = best_of_n_metrics(dataset, model, model_items, statistics)
            summary.metrics += metrics
            summary.ties += ties
        names = list(rewarded)
        for later, model in enumerate(names):
            for earlier in names[:later]:
                summary.comparisons += compare_best_of_n(
                    dataset, model, rewarded[model], earlier, rewarded[earlier], statistics
                )
        summary.baselines += best_of_n_baselines(dataset, dataset_items, tokens_of, statistics)
        for name, blind in length_choices(dataset_items, tokens_of).items():
            for model, model_items in rewarded.items():
                summary.comparisons += compare_best_of_n(dataset, model, model_items, name, blind, statistics)
    return summary


def objective_rewards(values: Mapping[str, Mapping[str, list[float]]], objective: Objective) -> dict[str, list[float]]:
    """Each item's completion rewards under `objective`, by item id, from `completion_values`' columns; items
    whose completions it cannot score (a reference-based objective without reference log-probs) are left out."""
    out = {}
    for key, columns in values.items():
        ref = np.asarray(columns["ref_logp"]) if "ref_logp" in columns else None
        rewards = completion_rewards(objective, np.asarray(columns["logp"]), ref, np.asarray(columns["tokens"]))
        if rewards is not None:
            out[key] = [float(r) for r in rewards]
    return out


def _reward_label(objective: Objective | None, reward_model: bool) -> str:
    if reward_model:
        return "reward model score"
    return reward_label(objective) if objective is not None else "dpo sigmoid: β·(ℓ − ℓ_ref), β = scoring.beta"


def length_choices(
    items: Sequence[BestOfNItem], tokens_of: tuple[str, Mapping[str, list[float]]] | None
) -> dict[str, list[ItemScores]]:
    """The content-blind baselines as scorers, by `BaselineName`: each completion scored by its length in characters
    (and in tokens, when a model's tokenizer counted them), positive to pick the longer, negative the shorter."""
    lengths = {"chars": {i.id: [float(len(c)) for c in i.completions] for i in items}}
    if tokens_of is not None:
        lengths["tokens"] = dict(tokens_of[1])
    return {
        f"{direction}_{unit}": item_scores(items, {key: [sign * v for v in values] for key, values in by_item.items()})
        for unit, by_item in lengths.items()
        for direction, sign in (("longer", 1.0), ("shorter", -1.0))
    }


def item_scores(items: Sequence[BestOfNItem], scores: Mapping[str, list[float]]) -> list[ItemScores]:
    """`ItemScores` of the items `scores` covers, in item order."""
    return [ItemScores(i.id, i.subset, scores[i.id], len(i.chosen), i.prompt) for i in items if i.id in scores]


def best_of_n_baselines(
    dataset: str,
    items: Sequence[BestOfNItem],
    tokens_of: tuple[str, Mapping[str, list[float]]] | None,
    statistics: Statistics,
) -> list[BaselineScore]:
    """Pick the longer or the shorter completion (by characters; by tokens of the first scored model's tokenizer),
    scored by the same item rule (a length tie at the top scores 1/k) and Ties composite, and chance (the expected
    score of a uniform pick, correct/N per item; not defined for the Ties composite, nor for an overall that has it)."""
    out = []
    for name, scored in length_choices(items, tokens_of).items():
        metrics, _ = best_of_n_metrics(dataset, "baseline", scored, statistics)
        owner = tokens_of[0] if tokens_of is not None and name.endswith("_tokens") else None
        for m in metrics:
            members = [s for s in scored if m.subset in (ALL_SUBSETS, s.subset)]
            tied = sum(s.scores.count(max(s.scores)) > 1 for s in members)
            out.append(_baseline(m, name, tied, owner))  # type: ignore[arg-type]  # length_choices names BaselineNames
    out += _chance(dataset, items)
    return out


def _baseline(metric: Metric, name: BaselineName, ties: int, tokens_of: str | None) -> BaselineScore:
    return BaselineScore(
        dataset=metric.dataset,
        subset=metric.subset,
        baseline=name,
        value=metric.value,
        ci_low=metric.ci_low,
        ci_high=metric.ci_high,
        n=metric.n,
        ties=ties,
        method=metric.method,
        se=metric.se,
        df=metric.df,
        n_effective=metric.n_effective,
        tokens_of=tokens_of,
    )


def _chance(dataset: str, items: Sequence[BestOfNItem]) -> list[BaselineScore]:
    groups: dict[str, list[float]] = {}
    for item in items:
        groups.setdefault(item.subset, []).append(len(item.chosen) / len(item.completions))
    out = [
        BaselineScore(dataset=dataset, subset=s, baseline="chance", value=float(np.mean(v)), n=len(v), method="none")
        for s, v in sorted(groups.items())
        if not is_ties(s)
    ]
    if len(groups) > 1 and not any(is_ties(s) for s in groups):
        value = float(np.mean([b.value for b in out]))
        out.append(BaselineScore(dataset=dataset, subset=ALL_SUBSETS, baseline="chance", value=value, n=len(items)))
    return out
