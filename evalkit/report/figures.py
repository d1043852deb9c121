"""The charts of one dataset in the HTML report, with their titles and captions (`evalkit.report.charts` draws)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from evalkit.metrics.cells import Cell
from evalkit.metrics.flips import primary_comparisons
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report import charts
from evalkit.report.baseline_rows import best_baseline
from evalkit.results.estimates import Metric
from evalkit.results.pairs import PairScore
from evalkit.results.schema import RunResult


@dataclass(frozen=True)
class Chart:
    title: str
    svg: Markup
    caption: str


def level_of(result: RunResult) -> str:
    return f"{result.effective_statistics.confidence_level:.0%}"


def dataset_charts(
    result: RunResult,
    dataset: str,
    models: Sequence[str],
    pairs: Sequence[PairScore] | None,
    colors: Mapping[str, str],
    salt: str,
) -> tuple[list[Chart], str]:
    """The charts of `dataset`, each answering one question, and a note where per-pair charts could not be drawn."""
    metrics = [m for m in result.metrics if m.dataset == dataset]
    comparisons = primary_comparisons([c for c in result.comparisons if c.dataset == dataset], result.reference)
    level = level_of(result)
    if comparisons:
        anchor = comparisons[0].baseline
        figures = [
            Chart(
                f"How much better than {anchor}, and where",
                charts.forest_chart(comparisons, colors, f"{salt}f"),
                f"Δ = model − {anchor} on the pairs both scored, with its paired {level} interval, on all pairs and "
                "per subset; right of the dashed line the model is better. An interval crossing 0 is no evidence of a "
                "difference (subset rows are exploratory: small, many).",
            )
        ]
    else:
        figures = [
            Chart(
                "Accuracy by subset",
                charts.accuracy_chart(metrics, models, colors, f"{salt}a"),
                f"Each model in each subset with its {level} interval; dashed: chance (0.5).",
            )
        ]
    beside = baseline_metrics(result, dataset, metrics)
    if beside:
        figures.append(
            Chart(
                "Models beside content-blind baselines",
                charts.accuracy_chart([*metrics, *beside], [*models, BEST_BASELINE], colors, f"{salt}b"),
                f"Each model's accuracy with its {level} interval, and the best content-blind baseline of each subset "
                "(grey: pick the longer or the shorter answer, by tokens or characters, or at random). Where the grey "
                "point is as far right as a model's, length alone does as well as the model.",
            )
        )
    note = ""
    series = reward_series(pairs, result.scoring.beta, models) if pairs else []
    if series:
        figures.append(
            Chart(
                "How far apart the answers are",
                charts.margin_chart(series, colors, f"{salt}m"),
                "Distribution of the implicit reward margin r(chosen) − r(rejected) over pairs, per model with a "
                "reference; right of 0 the chosen answer wins. The outermost 1% of values are drawn at the edges.",
            )
        )
    elif pairs is None:
        note = "Reward-margin charts need the per-pair file beside results.json; it was not found."
    figures += _length_and_calibration(result, dataset, metrics, models, colors, salt)
    return figures, note


BEST_BASELINE = "best content-blind baseline"
"""The series the baseline chart draws beside the models."""


def baseline_metrics(result: RunResult, dataset: str, metrics: Sequence[Metric]) -> list[Metric]:
    """The best baseline of each subset as a series of the accuracy charts, under every accuracy the models have."""
    accuracies = [key for key in charts.ACCURACIES if any(m.metric == key for m in metrics)]
    out = []
    for subset in dict.fromkeys(b.subset for b in result.baselines if b.dataset == dataset):
        best = best_baseline(result, dataset, subset)
        if best is None:
            continue
        for key in accuracies:
            out.append(
                Metric(
                    dataset=dataset,
                    subset=subset,
                    model=BEST_BASELINE,
                    metric=key,
                    value=best.value,
                    ci_low=best.ci_low,
                    ci_high=best.ci_high,
                    n=best.n,
                    higher_is_better=True,
                )
            )
    return out


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
                "Does length decide?",
                charts.length_chart(metrics, models, colors, f"{salt}l"),
                "Accuracy within bins of Δlength = chosen − rejected completion tokens. High accuracy only "
                "where the chosen answer is longer points to a length preference.",
            )
        )
    bins = [r for r in result.reliability if r.dataset == dataset and r.subset == ALL_SUBSETS]
    if bins:
        left_out = charts.tiny_bins(bins)
        tiny = f" Bins of fewer than {charts.MIN_BIN} pairs are left out ({left_out} pairs)." if left_out else ""
        figures.append(
            Chart(
                "Can the margin be read as a probability?",
                charts.calibration_chart(bins, colors, f"{salt}c"),
                "σ(margin) read as the probability that the chosen answer is preferred: mean confidence against "
                "accuracy per bin, with Wilson intervals, each point's area by its pairs; on the dashed line the "
                "model is calibrated." + tiny,
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
