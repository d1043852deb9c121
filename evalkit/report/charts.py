"""Charts of the HTML report: matplotlib figures rendered to inline SVG strings.

matplotlib is imported only when a chart is drawn (the markdown report and `evalkit gate` never
pay for it), and never through pyplot: each chart is a bare `Figure` saved by the SVG backend
(points of large scatters are rasterized by Agg into the SVG), so rendering a report neither
needs a display nor switches the backend of a process that imported evalkit. Text stays text
(`svg.fonttype: none`): smaller files, selectable labels, the page's font. Names from the data
are never parsed as mathtext, and matplotlib escapes them as XML, so an inline chart cannot
inject markup. Element ids are salted per chart: several charts in one page never share one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from evalkit.metrics import names
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.results.estimates import Comparison, Metric, ReliabilityBin

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
ACCURACIES = ["preference/accuracy", "rewards/accuracies"]
WIDTH = 8.8
"""Inches of a chart: 845 px at its natural size, one chart to a row on a laptop (the page's column is 1,176 px
at 1,280), scaled down to fit a phone."""
FONT = 10
"""Points of the smallest text (ticks, legends): 13.3 px at the chart's natural size, so ≥ 12 px at 1,280 px."""
MIN_BIN = 5
"""Reliability bins holding fewer pairs are left out of the calibration chart (their accuracy is noise)."""

_STYLE = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": FONT,
    "axes.titlesize": FONT + 1.5,
    "axes.labelsize": FONT,
    "xtick.labelsize": FONT,
    "ytick.labelsize": FONT,
    "legend.fontsize": FONT,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "figure.dpi": 96,
}


@dataclass(frozen=True)
class Series:
    """Per-pair values of one model, for the distribution charts."""

    model: str
    margins: np.ndarray
    """Implicit reward margins, shape (n,)."""
    chosen: np.ndarray
    """Rewards of the chosen answers, shape (n,)."""
    rejected: np.ndarray


def palette(models: Sequence[str]) -> dict[str, str]:
    """One colour per model, the same in every chart."""
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}


@contextmanager
def style(salt: str) -> Iterator[Any]:
    import matplotlib  # lazily: only the HTML report draws

    settings: Any = _STYLE | {"svg.hashsalt": salt}  # matplotlib types its keys as literals
    with matplotlib.rc_context(settings):
        from matplotlib.figure import Figure

        yield Figure


def svg(figure: Any, label: str) -> Markup:
    """The figure as an inline `<svg>` element: no XML prolog, no metadata, scalable to its container."""
    buffer = StringIO()
    figure.savefig(buffer, format="svg", dpi=110, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    text = re.sub(r'<g id="[^"]*"', "<g", text)  # per-figure counters (figure_1, axes_1): the same in every chart
    width = re.search(r'width="([\d.]+)pt"', text)
    assert width is not None, "matplotlib writes the figure width in points"
    attributes = f'class="chart" role="img" aria-label="{escape(label)}" style="max-width:{width.group(1)}pt"'
    text = re.sub(r'width="[\d.]+pt" height="[\d.]+pt"', attributes, text, count=1)
    return Markup(text)  # matplotlib escapes every text it writes


def layout(figure: Any, left: float, bottom: float, top: float, right: float = 0.15, **space: float) -> None:
    """Margins in inches. Fixed margins instead of a layout engine: one draw pass instead of two,
    which halves the time of a report with dozens of charts."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, **space
    )


def _label_inches(labels: Sequence[str]) -> float:
    """Room for y tick labels: about 0.095 in per character at 10 pt (browsers' fonts run wider than matplotlib's)."""
    return min(2.8, 0.35 + 0.095 * max((len(label) for label in labels), default=4))


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def whiskers(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    """Lengths of an interval's whiskers below and above its point, never negative: an interval rounded or clamped
    to a bound can end a hair inside its point estimate, and matplotlib refuses negative error bars."""

    def length(distance: float) -> float:
        return distance if math.isfinite(distance) and distance > 0 else 0.0

    return length(value - (low if low is not None else value)), length((high if high is not None else value) - value)


@dataclass(frozen=True)
class Panel:
    """One panel of a grouped-interval chart: an estimate per (group, model), drawn as a point with whiskers."""

    title: str
    estimates: Mapping[tuple[str, str], Metric | Comparison]
    line: float
    """Where the dashed reference line goes: 0 for a difference, 0.5 (chance) for an accuracy."""
    limits: tuple[float, float]
    xlabel: str = ""
    ticks: Sequence[float] = ()


def _grouped_chart(
    panels: Sequence[Panel],
    groups: Sequence[str],
    models: Sequence[str],
    colors: Mapping[str, str],
    salt: str,
    label: str,
) -> Markup:
    """Panels side by side sharing the y axis: blocks of rows per group (subset), a row per model in each."""
    with style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 1.3 + 0.3 * len(groups) * (len(models) + 1) + legend_inches(len(models))))
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, panel in zip(axes, panels, strict=True):
            for i, model in enumerate(models):
                rows = [
                    (g * (len(models) + 1) + i, e.value, e.ci_low, e.ci_high)
                    for g, group in enumerate(groups)
                    if (e := panel.estimates.get((group, model))) is not None
                ]
                if rows:
                    bars = [whiskers(value, low, high) for _, value, low, high in rows]
                    errors = [[d for d, _ in bars], [u for _, u in bars]]
                    xs, ys = [r[1] for r in rows], [r[0] for r in rows]
                    ax.errorbar(xs, ys, xerr=errors, fmt="o", ms=5, capsize=3, color=colour(colors, model), label=model)
            ax.axvline(panel.line, color="0.4", lw=1, ls="--")
            ax.set_xlim(*panel.limits)
            if panel.ticks:  # plain ticks: "1.00" of one panel beside "0.00" of the next read "1.000.00"
                ax.set_xticks(list(panel.ticks), [f"{t:g}" for t in panel.ticks])
            ax.set_title(panel.title, loc="left")
            ax.set_xlabel(panel.xlabel)
            ax.grid(axis="y", visible=False)
        centres = [g * (len(models) + 1) + (len(models) - 1) / 2 for g in range(len(groups))]
        axes[0].set_yticks(centres, [_short(g) for g in groups])
        axes[0].set_ylim(len(groups) * (len(models) + 1) - 0.4, -0.6)
        above = legend(figure, axes[0], len(models))
        layout(figure, _label_inches(groups), 0.6, 0.45 + above, wspace=0.3)
        return svg(figure, label)


def forest_chart(comparisons: Sequence[Comparison], colors: Mapping[str, str], salt: str) -> Markup:
    """Δ of each model against the anchor with its interval, per subset (all pairs first): one panel per accuracy.

    `comparisons` are turned so that the anchor is the baseline (`evalkit.metrics.flips.primary_comparisons`).
    """
    metrics = [m for m in dict.fromkeys(c.metric for c in comparisons) if names.metric(m).accuracy]
    models = list(dict.fromkeys(c.model for c in comparisons))
    subsets = [ALL_SUBSETS, *sorted({c.subset for c in comparisons} - {ALL_SUBSETS})]
    reach = max((abs(v) for c in comparisons for v in (c.ci_low, c.ci_high, c.value) if v is not None), default=0.1)
    reach = min(1.0, 1.15 * reach)
    anchor = _short(comparisons[0].baseline if comparisons else "", 16)
    panels = [
        Panel(
            f"Δ {names.metric(metric).heading} vs {anchor}",
            {(c.subset, c.model): c for c in comparisons if c.metric == metric},
            line=0.0,
            limits=(-reach, reach),
            xlabel=f"model − {anchor}",
        )
        for metric in metrics
    ]
    return _grouped_chart(
        panels, subsets, models, colors, salt, f"difference of each model against {anchor}, per subset"
    )


def accuracy_chart(metrics: Sequence[Metric], models: Sequence[str], colors: Mapping[str, str], salt: str) -> Markup:
    """Accuracy of every model in every subset, with interval whiskers; one panel per accuracy (for a run with one
    model, where there is no difference to plot)."""
    subsets = [ALL_SUBSETS, *sorted({m.subset for m in metrics} - {ALL_SUBSETS})]
    panels = [
        Panel(
            names.metric(key).heading,
            {(m.subset, m.model): m for m in metrics if m.metric == key},
            line=0.5,
            limits=(-0.02, 1.02),
            ticks=(0, 0.25, 0.5, 0.75, 1),
        )
        for key in ACCURACIES
        if any(m.metric == key for m in metrics)
    ]
    return _grouped_chart(panels, subsets, models, colors, salt, "accuracy per model and subset, with intervals")


def margin_chart(series: Sequence[Series], colors: Mapping[str, str], salt: str) -> Markup:
    """Distribution of reward margins per model: one histogram row each, on a shared axis."""
    values = np.concatenate([s.margins for s in series])
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    low, high = min(low, 0.0), max(high, 0.0)
    edges = np.linspace(low, high, 51) if high > low else np.linspace(low - 1, high + 1, 51)
    with style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 1.4 + 0.9 * len(series)))
        ax = figure.subplots()
        for row, s in enumerate(series):
            counts, _ = np.histogram(np.clip(s.margins, edges[0], edges[-1]), bins=edges)
            top = counts.max() or 1
            y = row - 0.85 * counts / top
            ax.fill_between(edges[:-1], row, y, step="post", color=colour(colors, s.model), alpha=0.55, lw=0)
            median = float(np.median(s.margins))
            ax.plot([median, median], [row, row - 0.9], color="black", lw=1.2)
            right = float(np.mean(s.margins > 0))
            ax.text(edges[-1], row - 0.45, f"{right:.0%} > 0 ", ha="right", va="center", color="0.25")
        ax.axvline(0, color="0.3", lw=1, ls="--")
        ax.set_yticks(range(len(series)), [_short(s.model) for s in series])
        ax.set_ylim(len(series) - 0.9, -1)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("reward margin r(chosen) − r(rejected); black: median")
        ax.grid(axis="y", visible=False)
        layout(figure, _label_inches([_short(s.model) for s in series]), 0.65, 0.15)
        return svg(figure, "distribution of reward margins per model")


def length_chart(metrics: Sequence[Metric], models: Sequence[str], colors: Mapping[str, str], salt: str) -> Markup:
    """Accuracy within bins of Δlength (chosen − rejected tokens), per model, with intervals."""
    found = {(m.model, m.metric): m for m in metrics if m.subset == ALL_SUBSETS}
    kinds = [("preference_accuracy", "preference/accuracy"), ("rewards_accuracy", "rewards/accuracies")]
    panels = [(kind, metric) for kind, metric in kinds if any(k[1].startswith(f"length/{kind}/") for k in found)]
    bins = list(names.LENGTH_BINS.items())
    with style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 3.4 + legend_inches(len(models))))
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        width = 0.6 / max(len(models), 1)
        for ax, (kind, metric) in zip(axes, panels, strict=True):
            for i, model in enumerate(models):
                xs, ys, low, high = [], [], [], []
                for b, (key, _) in enumerate(bins):
                    m = found.get((model, f"length/{kind}/{key}"))
                    if m is None:
                        continue
                    xs.append(b - 0.3 + width * (i + 0.5))
                    ys.append(m.value)
                    down, up = whiskers(m.value, m.ci_low, m.ci_high)
                    low.append(down)
                    high.append(up)
                if xs:
                    ax.errorbar(
                        xs, ys, yerr=[low, high], fmt="o-", ms=5, capsize=3, color=colour(colors, model), label=model
                    )
            ax.axhline(0.5, color="0.5", lw=1, ls="--")
            ax.set_xticks(range(len(bins)), [title.replace(" ", "\n") for _, title in bins])
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{names.title(metric)} by Δlength", loc="left")
            ax.grid(axis="x", visible=False)
        above = legend(figure, axes[0], len(models))
        layout(figure, 0.55, 0.7, 0.45 + above, wspace=0.2)
        return svg(figure, "accuracy against the length difference of the answers")


def calibration_chart(bins: Sequence[ReliabilityBin], colors: Mapping[str, str], salt: str) -> Markup:
    """Reliability: mean confidence σ(|margin|) against accuracy per bin, with Wilson whiskers, each point's area
    by the pairs it holds; bins of fewer than `MIN_BIN` pairs are left out (`tiny_bins` counts them)."""
    models = list(dict.fromkeys(b.model for b in bins))
    most = max((b.n for b in bins), default=1)
    with style(salt) as Figure:
        figure = Figure(figsize=(WIDTH * 0.7, 4.6))
        ax = figure.subplots()
        ax.plot([0.5, 1], [0.5, 1], color="0.4", lw=1, ls="--", label="calibrated")
        for model in models:
            points = [b for b in bins if b.model == model and b.n >= MIN_BIN]
            if not points:
                continue
            bars = [whiskers(b.accuracy, b.ci_low, b.ci_high) for b in points]
            xs, ys = [b.confidence for b in points], [b.accuracy for b in points]
            color = colour(colors, model)
            ax.errorbar(xs, ys, yerr=[[d for d, _ in bars], [u for _, u in bars]], fmt="none", capsize=3, color=color)
            ax.plot(xs, ys, color=color, lw=1, alpha=0.5)
            ax.scatter(xs, ys, s=[20 + 280 * b.n / most for b in points], color=color, alpha=0.8, label=model, zorder=3)
        ax.set_xlim(0.48, 1.02)
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel("confidence σ(|margin|)")
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right", markerscale=0.6)
        layout(figure, 0.75, 0.65, 0.15)
        return svg(figure, "calibration: confidence against accuracy, points sized by pairs")


def tiny_bins(bins: Sequence[ReliabilityBin]) -> int:
    """Pairs in the bins the calibration chart leaves out."""
    return sum(b.n for b in bins if b.n < MIN_BIN)


LEGEND_COLUMNS = 5


def legend_inches(entries: int) -> float:
    return 0.3 * math.ceil(entries / LEGEND_COLUMNS)


def legend(figure: Any, ax: Any, entries: int) -> float:
    """A legend above the panels; returns the inches it takes."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return 0.0
    labels = [_short(label, 20) for label in labels]
    figure.legend(
        handles,
        labels,
        loc="upper center",
        ncols=min(entries, LEGEND_COLUMNS),
        borderaxespad=0.2,
        handletextpad=0.3,
        columnspacing=1.0,
    )
    return legend_inches(len(handles))


def colour(colors: Mapping[str, str], model: str) -> str:
    return colors.get(model, "#57606a")
