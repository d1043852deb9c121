"""Which objective each model was scored with, and its numbers: the table and the note both reports show.

Models trained with different objectives have rewards, margins and losses on different scales (β·Δlog-prob summed
for DPO, β·mean log-prob − γ for SimPO, a log-odds ratio for ORPO): the note says so, and points to the metrics that
are comparable across objectives (shares of pairs: accuracies, win rates, capabilities).
"""

from __future__ import annotations

from evalkit.metrics import names
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report.diagnostics import Found
from evalkit.report.formats import format_estimate
from evalkit.report.tables import Table
from evalkit.results.schema import RunResult

OBJECTIVE_COLUMNS = [
    "objective/accuracy",
    "objective/margins",
    "objective/loss",
    "trl/rewards/accuracies",
    "trl/rewards/margins",
]
"""The objective's own accuracy, margin and loss, then what TRL logs as reward accuracy and margin."""


def objective_labels(result: RunResult) -> dict[str, str]:
    """Model name → the objective it was scored with, in words; {} when the run names none (every model then has
    the sigmoid DPO metrics at `scoring.beta`, as before objectives existed)."""
    if not any(m.objective is not None for m in result.models):
        return {}
    default = f"dpo (sigmoid, β={result.scoring.beta:g}), the default"
    return {m.name: m.objective.label if m.objective is not None else default for m in result.models}


def objectives_table(result: RunResult, found: Found, models: list[str]) -> Table | None:
    """A row per model: its objective and that objective's metrics over all pairs; None when the run names none."""
    labels = objective_labels(result)
    if not labels:
        return None
    direction = {key: names.metric(key).higher_is_better for key in OBJECTIVE_COLUMNS}
    header = ["model", "objective", *(names.heading(key, direction[key]) for key in OBJECTIVE_COLUMNS)]
    rows = [[model, labels.get(model.split("@")[0], labels.get(model, "")), *_cells(found, model)] for model in models]
    return Table(header, rows, align="ll" + "r" * len(OBJECTIVE_COLUMNS))


def _cells(found: Found, model: str) -> list[str]:
    return [format_estimate(found.get((model, ALL_SUBSETS, key))) for key in OBJECTIVE_COLUMNS]


def objectives_note(result: RunResult) -> str:
    """What the reader must know to compare the models' objectives; empty when the run names none."""
    labels = objective_labels(result)
    if not labels:
        return ""
    distinct = sorted(set(labels.values()))
    if len(distinct) == 1:
        return f"Every model was scored with {distinct[0]}."
    return (
        f"The models were scored with different objectives ({'; '.join(distinct)}). Rewards, margins and losses on "
        "different scales are not comparable: compare these models on the scale-free metrics, the accuracies "
        "(pref. acc, objective acc, TRL reward acc), win rates and capabilities. Comparisons between models of "
        "different objectives leave their margins and losses out."
    )
