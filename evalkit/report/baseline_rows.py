"""The content-blind baselines as the reports show them: rows beside the models, and which models do not beat them.

A model "beats the baselines" in a cell (dataset, subset, accuracy) when it beats every one of them: the
intersection-union test, whose one-sided p is the largest of the one-sided p's against each baseline
(`evalkit.metrics.baselines.weakest_win`), at the report's α = 1 − confidence level, per cell and without correction:
the same test a gate's `beats_baseline` rule with `best` replays on one cell (the gate corrects its rules together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.metrics.baselines import BASELINE_TITLES, BaselineTest, baseline_tests, weakest_win
from evalkit.metrics.names import BASELINE_ACCURACIES
from evalkit.report.formats import MISSING, format_bracket, format_number
from evalkit.results.estimates import BaselineScore
from evalkit.results.schema import RunResult

ROW_PREFIX = "baseline: "
"""How a baseline's row is told from a model's in a table of models."""


def baselines_of(result: RunResult, dataset: str, subset: str) -> list[BaselineScore]:
    return [b for b in result.baselines if (b.dataset, b.subset) == (dataset, subset)]


def best_baseline(result: RunResult, dataset: str, subset: str) -> BaselineScore | None:
    """The baseline with the highest accuracy in the cell (the first listed, on a tie); None without baselines."""
    found = baselines_of(result, dataset, subset)
    return max(found, key=lambda b: b.value) if found else None


def format_baseline(b: BaselineScore) -> str:
    """'0.625 [0.47, 0.76]', as a model's estimate reads."""
    return " ".join(filter(None, [format_number(b.value), format_bracket(b.ci_low, b.ci_high)]))


def baseline_row(b: BaselineScore, columns: Sequence[str], accuracies: Sequence[str]) -> list[str]:
    """A baseline's cells under a table's metric `columns`: its accuracy under each accuracy, nothing elsewhere."""
    return [format_baseline(b) if key in accuracies else MISSING for key in columns]


def row_title(b: BaselineScore) -> str:
    ties = f", {b.ties} ties" if b.ties else ""
    return f"{ROW_PREFIX}{BASELINE_TITLES[b.baseline]}{ties}"


@dataclass(frozen=True)
class Shortfall:
    """A model that does not beat every content-blind baseline in a cell: the baseline hardest to beat."""

    model: str
    dataset: str
    subset: str
    metric: str
    weakest: BaselineTest
    p_value: float | None
    """The intersection-union one-sided p: the largest of the baselines'; None where that test is undefined."""


def shortfalls(result: RunResult, alpha: float) -> list[Shortfall]:
    """Every (model, dataset, subset, accuracy) where the model does not beat every baseline at `alpha`."""
    out = []
    for m in result.metrics:
        if m.metric not in BASELINE_ACCURACIES:
            continue
        tests = baseline_tests(result, m.dataset, m.subset, m.model, m.metric)
        if not tests:
            continue
        weakest = weakest_win(tests)
        p = weakest.p_value
        if p is None or p > alpha:
            out.append(Shortfall(m.model, m.dataset, m.subset, m.metric, weakest, p))
    return out
