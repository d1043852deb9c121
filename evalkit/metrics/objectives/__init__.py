"""A model's numbers under the objective it was trained with (`method`): one module per trainer behind `SCORERS`.

Each scorer turns a cell's per-pair arrays (log-probs, reference log-probs, completion tokens) into what TRL's
trainer logs at eval for that objective and the quantity its loss optimises (`ObjectivePairs`), following TRL 1.16's
code (see each module). Here those per-pair values become metrics pooled over pairs, so none depends on the eval
batch size: `trl/<log key>` (the mean over pairs is TRL's eval log at batch size 1) and `objective/accuracy`,
`objective/ties`, `objective/margins`, `objective/loss` (the objective's margin above 0, at 0, its mean, the mean
loss). A new objective is a module and a `SCORERS` entry.

`REWARDS` holds each objective's reward of a single completion, beside its pairwise scorer: the term of the
objective's margin that each answer contributes, so that margin = reward(chosen) − reward(rejected) (up to SimPO's and
AlphaPO's constant γ). Best-of-N items rank their completions by it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evalkit.config.objectives import (
    AlphapoObjective,
    CpoObjective,
    DpoObjective,
    KtoObjective,
    Objective,
    SimpoObjective,
)
from evalkit.metrics import stats
from evalkit.metrics.cells import Cell
from evalkit.metrics.objectives import cpo, dpo, kto, orpo
from evalkit.metrics.objectives.records import ObjectivePairs
from evalkit.results.estimates import Statistics
from evalkit.results.pairs import implicit_reward

SCORERS: dict[str, Callable[[Cell, Any], ObjectivePairs | None]] = {
    "dpo": dpo.score,
    "cpo": cpo.score,
    "simpo": cpo.score,
    "alphapo": cpo.score,
    "orpo": orpo.score,
    "kto": kto.score,
}
"""Objective name → its scorer of pairs (KTO's, as TRL unpairs a paired dataset; its own data is unpaired:
`evalkit.metrics.unpaired`)."""

TRL_PREFIX = "trl/"

RewardOf = Callable[[Any, np.ndarray, np.ndarray | None, np.ndarray], np.ndarray | None]
"""(objective, ℓ, ℓ_ref or None, completion tokens T) → each completion's reward; None where it needs a reference
that is not there."""


def _kto_reward(objective: KtoObjective, logp: np.ndarray, ref: np.ndarray | None, _: np.ndarray) -> np.ndarray | None:
    return None if ref is None else np.asarray(implicit_reward(logp, ref, objective.beta))


REWARDS: dict[str, RewardOf] = {
    "dpo": dpo.completion_reward,
    "cpo": lambda objective, logp, _, tokens: cpo.completion_reward(objective, logp, tokens),
    "simpo": lambda objective, logp, _, tokens: cpo.completion_reward(objective, logp, tokens),
    "alphapo": lambda objective, logp, _, tokens: cpo.completion_reward(objective, logp, tokens),
    "orpo": lambda objective, logp, _, tokens: orpo.completion_reward(objective, logp, tokens),
    "kto": _kto_reward,  # KTO's implicit reward of one answer (its KL reference point shifts all answers alike)
}
"""Objective name → its reward of single completions (see the module's docstring)."""


def completion_rewards(
    objective: Objective, logp: np.ndarray, ref_logp: np.ndarray | None, tokens: np.ndarray
) -> np.ndarray | None:
    """Each completion's reward under `objective` (arrays in the completions' order); None where it needs reference
    log-probs that are not there (the reference's own completions, under a reference-based objective)."""
    return REWARDS[objective.name](objective, logp, ref_logp, tokens)


def reward_label(objective: Objective) -> str:
    """The formula `completion_rewards` uses for `objective`, for results and reports: ℓ the summed log-prob, ℓ_ref
    the reference's, T the completion tokens."""
    if isinstance(objective, DpoObjective):
        kind = objective.loss_types[0]
        ratio = (
            "(ℓ − ℓ_ref)"
            if objective.f_divergence_type == "reverse_kl"
            else f"f'(π/π_ref) of {objective.f_divergence_type}"
        )
        if kind in dpo.PER_ANSWER_LOSSES:
            return f"dpo {kind}: β·(ℓ − ℓ_ref)"
        if kind == "ipo":
            return f"dpo ipo: {ratio}/T"
        if kind == "sigmoid_norm":
            return f"dpo sigmoid_norm: β·{ratio}/T"
        return f"dpo {kind}: β·{ratio}"
    if isinstance(objective, SimpoObjective):
        return "simpo: β·ℓ/T (γ left out)"
    if isinstance(objective, AlphapoObjective):
        return "alphapo: β·(1 − e^(−α·ℓ/T))/α (γ left out)"
    if isinstance(objective, CpoObjective):
        inner = "ℓ/T" if objective.loss_type == "ipo" else "ℓ"
        shaped = f"(1 − e^(−α·{inner}))/α" if objective.alpha != 0.0 else inner
        return f"cpo {objective.loss_type}: {shaped if objective.loss_type == 'ipo' else 'β·' + shaped}"
    if isinstance(objective, KtoObjective):
        return "kto: β·(ℓ − ℓ_ref)"
    return "orpo: log-odds ℓ/T − log(1 − e^(ℓ/T))"


def objective_pairs(cell: Cell, objective: Objective) -> ObjectivePairs | None:
    """`cell` under `objective`; None where the objective has nothing to say of these pairs (no scorer, or a
    reference-based objective on the reference's own cell)."""
    scorer = SCORERS.get(objective.name)
    if scorer is None or cell.n == 0:
        return None
    return scorer(cell, objective)


def objective_estimates(cell: Cell, objective: Objective, statistics: Statistics) -> dict[str, stats.Estimate]:
    """Metric name → estimate of both sets over `cell`'s pairs, with intervals (shares: Wilson or cluster-robust,
    means: Student t, as every other metric)."""
    pairs = objective_pairs(cell, objective)
    if pairs is None:
        return {}
    confidence, clusters = statistics.confidence_level, cell.prompts
    out: dict[str, stats.Estimate] = {}
    for key, values in pairs.logged.items():
        name = TRL_PREFIX + key
        share = key == "rewards/accuracies"
        out[name] = (stats.proportion if share else stats.mean)(values, confidence, clusters)
    out["objective/accuracy"] = stats.proportion(pairs.margin > 0, confidence, clusters)
    out["objective/ties"] = stats.proportion(pairs.margin == 0, confidence, clusters)
    out["objective/margins"] = stats.mean(pairs.margin, confidence, clusters)
    if pairs.loss is not None:
        out["objective/loss"] = stats.mean(pairs.loss, confidence, clusters)
    return out


def objective_values(cell: Cell, objective: Objective) -> dict[str, np.ndarray]:
    """Per-pair values whose means are the compared metrics of both sets (accuracies as 0/1)."""
    pairs = objective_pairs(cell, objective)
    if pairs is None:
        return {}
    values = {
        "trl/rewards/margins": pairs.logged["rewards/margins"],
        "objective/accuracy": (pairs.margin > 0).astype(np.float64),
        "objective/margins": pairs.margin,
    }
    if "rewards/accuracies" in pairs.logged:  # KTO's trainer logs none
        values["trl/rewards/accuracies"] = pairs.logged["rewards/accuracies"]
    if pairs.loss is not None:
        values["objective/loss"] = pairs.loss
    return values
