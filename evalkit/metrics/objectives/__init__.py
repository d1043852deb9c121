"""A model's numbers under the objective it was trained with (`method`): one module per trainer behind `SCORERS`.

Each scorer turns a cell's per-pair arrays (log-probs, reference log-probs, completion tokens) into what TRL's
trainer logs at eval for that objective and the quantity its loss optimises (`ObjectivePairs`), following TRL 1.16's
code (see each module). Here those per-pair values become metrics pooled over pairs, so none depends on the eval
batch size: `trl/<log key>` (the mean over pairs is TRL's eval log at batch size 1) and `objective/accuracy`,
`objective/ties`, `objective/margins`, `objective/loss` (the objective's margin above 0, at 0, its mean, the mean
loss). A new objective is a module and a `SCORERS` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evalkit.config.objectives import Objective
from evalkit.metrics import stats
from evalkit.metrics.cells import Cell
from evalkit.metrics.objectives import cpo, dpo, orpo
from evalkit.metrics.objectives.records import ObjectivePairs
from evalkit.results.estimates import Statistics

SCORERS: dict[str, Callable[[Cell, Any], ObjectivePairs | None]] = {
    "dpo": dpo.score,
    "cpo": cpo.score,
    "simpo": cpo.score,
    "alphapo": cpo.score,
    "orpo": orpo.score,
}
"""Objective name → its scorer; an objective with none (`kto`, scored on unpaired data) has no pairwise metrics."""

TRL_PREFIX = "trl/"


def objective_pairs(cell: Cell, objective: Objective) -> ObjectivePairs | None:
    """`cell` under `objective`; None where the objective has nothing to say of these pairs (no scorer, or a
    reference-based objective on the reference's own cell)."""
    scorer = SCORERS.get(objective.name)
    return scorer(cell, objective) if scorer is not None and cell.n > 0 else None


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
    out["objective/loss"] = stats.mean(pairs.loss, confidence, clusters)
    return out


def objective_values(cell: Cell, objective: Objective) -> dict[str, np.ndarray]:
    """Per-pair values whose means are the compared metrics of both sets (accuracies as 0/1)."""
    pairs = objective_pairs(cell, objective)
    if pairs is None:
        return {}
    return {
        "trl/rewards/accuracies": pairs.logged["rewards/accuracies"],
        "trl/rewards/margins": pairs.logged["rewards/margins"],
        "objective/accuracy": (pairs.margin > 0).astype(np.float64),
        "objective/margins": pairs.margin,
        "objective/loss": pairs.loss,
    }
