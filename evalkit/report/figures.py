"""The charts of one dataset in the HTML report, with their titles and captions (`evalkit.report.charts` draws)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup

from evalkit.metrics.compute import Cell
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report import charts
from evalkit.results.schema import Metric, PairScore, RunResult, Statistics

SCATTER_PANELS = 4
"""Models in the chosen-against-rejected chart (one panel each; the margin chart shows them all)."""


@dataclass(frozen=True)
class Chart:
    title: str
    svg: Markup
    caption: str


def level_of(result: RunResult) -> str:
    return f"{(result.statistics or Statistics()).confidence_level:.0%}"


def dataset_charts(
    result: RunResult,
    dataset: str,
    models: Sequence[str],
    pairs: Sequence[PairScore] | None,
    colors: Mapping[str, str],
    salt: str,
) -> tuple[list[Chart], str]:
    """The charts of `dataset`, and a note where per-pair charts could not be drawn."""
    metrics = [m for m in result.metrics if m.dataset == dataset]
    figures = [
        Chart(
            "Accuracy by subset",
            charts.accuracy_chart(metrics, models, colors, f"{salt}a"),
            f"Each model in each subset with its {level_of(result)} interval; dashed: chance (0.5).",
        )
    ]
    note = ""
    series = reward_series(pairs, result.scoring.beta, models) if pairs else []
    if series:
        figures += _reward_charts(series, colors, salt)
    elif pairs is None:
        note = "Reward-margin charts need the per-pair file beside results.json; it was not found."
    figures += _length_and_calibration(result, dataset, metrics, models, colors, salt)
    return figures, note


def _reward_charts(series: list[charts.Series], colors: Mapping[str, str], salt: str) -> list[Chart]:
    shown = [series[round(i)] for i in np.linspace(0, len(series) - 1, min(len(series), SCATTER_PANELS))]
    some = "" if len(shown) == len(series) else f" {len(shown)} of {len(series)} models, evenly spaced."
    return [
        Chart(
            "Reward margins",
            charts.margin_chart(series, colors, f"{salt}m"),
            "Distribution of r(chosen) − r(rejected) over pairs, per model with a reference; "
            "the outermost 1% of values are drawn at the edges.",
        ),
        Chart(
            "Chosen against rejected rewards",
            charts.reward_scatter_chart(shown, colors, f"{salt}r"),
            "One point per pair: below the dashed line the chosen answer has the higher reward. Both "
            "rewards below 0 means the model made both answers less likely than the reference did." + some,
        ),
    ]


def _length_and_calibration(
    result: RunResult,
    dataset: str,
    metrics: Sequence[Metric],
    models: Sequence[str],
    colors: Mapping[str, str],
    salt: str,
) -> list[Chart]:
    figures = []
    if any(m.metric.startswith("length/") for m in metrics):
        figures.append(
            Chart(
                "Accuracy against Δlength",
                charts.length_chart(metrics, models, colors, f"{salt}l"),
                "Accuracy within bins of Δlength = chosen − rejected completion tokens. High accuracy only "
                "where the chosen answer is longer points to a length preference.",
            )
        )
    bins = [r for r in result.reliability if r.dataset == dataset and r.subset == ALL_SUBSETS]
    if bins:
        figures.append(
            Chart(
                "Calibration",
                charts.calibration_chart(bins, colors, f"{salt}c"),
                "σ(margin) read as the probability that the chosen answer is preferred: mean confidence "
                "against accuracy per bin, with Wilson intervals; on the dashed line the model is calibrated.",
            )
        )
    return figures


def reward_series(pairs: Sequence[PairScore], beta: float, models: Sequence[str]) -> list[charts.Series]:
    """Rewards and margins per model with a reference, from the per-pair rows."""
    out = []
    for model in models:
        rows = [p for p in pairs if p.model == model]
        rewards = Cell.from_rows(rows).rewards(beta) if rows else None
        if rewards is not None:
            out.append(charts.Series(model, rewards.margin, rewards.chosen, rewards.rejected))
    return out
