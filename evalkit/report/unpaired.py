"""The table of an unpaired dataset (KTO style: labelled completions), which every report shows in place of the
pairs' headline: per model the mean reward of the desirable and of the undesirable completions with their t
intervals, how well the rewards separate the two (the AUC, Newcombe's interval), and KTO's KL point where the model
is KTO's. A model with no reward (the reference; no reference in the run) shows its mean log-probs instead."""

from __future__ import annotations

from evalkit.metrics import names
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report.diagnostics import Found
from evalkit.report.formats import MISSING, format_estimate
from evalkit.report.objectives import objective_labels
from evalkit.report.tables import Table
from evalkit.results.schema import RunResult

UNPAIRED_COLUMNS = {
    "trl/rewards/chosen": "reward desirable",
    "trl/rewards/rejected": "reward undesirable",
    "objective/auc": "reward AUC ↑",
    "trl/kl": "KTO KL point",
    "trl/logps/chosen": "logp desirable",
    "trl/logps/rejected": "logp undesirable",
}
"""Metric → its column, in the order a reader compares them (the log-probs last: no reward without a reference)."""


def unpaired_table(found: Found, models: list[str], subsets: list[str]) -> Table:
    """A row per (subset, model): all completions first, then each subset; columns no model has are left out."""
    present = {metric for (_, _, metric) in found}
    columns = [key for key in UNPAIRED_COLUMNS if key in present]
    header = ["subset", "model", *(UNPAIRED_COLUMNS[key] for key in columns), "n desirable", "n undesirable"]
    rows = [
        [
            subset,
            model,
            *(format_estimate(found.get((model, subset, key))) for key in columns),
            *_sizes(found, model, subset),
        ]
        for subset in [ALL_SUBSETS, *subsets]
        for model in models
    ]
    return Table(header, rows, align="ll" + "r" * (len(header) - 2))


def _sizes(found: Found, model: str, subset: str) -> list[str]:
    """Completions of each label scored under `model` (every model has their log-probs)."""
    return [
        str(m.n) if (m := found.get((model, subset, f"trl/logps/{side}"))) is not None else MISSING
        for side in ("chosen", "rejected")
    ]


UNPAIRED_OBJECTIVE_COLUMNS = ["trl/rewards/margins", "objective/loss"]
"""What depends on a model's objective on labelled completions: the difference of the label means, KTO's loss."""


def unpaired_objectives_table(result: RunResult, found: Found, models: list[str]) -> Table | None:
    """A row per model: the objective its rewards on the completions are of, and those numbers; None when the run
    names no objective."""
    labels = objective_labels(result)
    if not labels:
        return None
    header = ["model", "objective", *(names.metric(key).heading for key in UNPAIRED_OBJECTIVE_COLUMNS)]
    rows = [
        [
            model,
            labels.get(model.split("@")[0], labels.get(model, "")),
            *(format_estimate(found.get((model, ALL_SUBSETS, key))) for key in UNPAIRED_OBJECTIVE_COLUMNS),
        ]
        for model in models
    ]
    return Table(header, rows, align="ll" + "r" * len(UNPAIRED_OBJECTIVE_COLUMNS))


def unpaired_objectives_note(result: RunResult) -> str:
    """Which reward each model has on labelled completions, and what compares across objectives; empty without
    objectives."""
    if not objective_labels(result):
        return ""
    return (
        "Each model's reward is β·(log π − log π_ref) at its objective's β (KTO's or DPO's; otherwise "
        f"scoring.beta = {result.scoring.beta:g}); the KL point and the loss are KTO's alone. Rewards and margins are "
        "on each β's scale: compare models of different objectives on the reward AUC, which does not depend on it."
    )
