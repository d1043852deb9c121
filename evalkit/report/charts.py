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
from markupsafe import Markup

from evalkit.results.estimates import Metric, ReliabilityBin
from evalkit.results.schema import CurvePoint

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
ACCURACIES = [("preference/accuracy", "pref. acc"), ("rewards/accuracies", "reward acc")]
LENGTH_BINS = [
    ("chosen_shorter", "chosen\nshorter"),
    ("same_length", "same\nlength"),
    ("chosen_longer", "chosen\nlonger"),
]
SWEEP_METRICS = [
    ("rewards/accuracies", "reward acc ↑"),
    ("preference/accuracy", "pref. acc ↑"),
    ("rewards/margins", "margin ↑"),
    ("loss", "DPO loss ↓"),
]
WIDTH = 5.4
"""Inches of a chart: about 520 px, two side by side on a laptop, scaled down to fit a phone."""

_STYLE = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 9,
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
def _style(salt: str) -> Iterator[Any]:
    import matplotlib  # lazily: only the HTML report draws

    settings: Any = _STYLE | {"svg.hashsalt": salt}  # matplotlib types its keys as literals
    with matplotlib.rc_context(settings):
        from matplotlib.figure import Figure

        yield Figure


def _svg(figure: Any, label: str) -> Markup:
    """The figure as an inline `<svg>` element: no XML prolog, no metadata, scalable to its container."""
    buffer = StringIO()
    figure.savefig(buffer, format="svg", dpi=110, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    text = re.sub(r'<g id="[^"]*"', "<g", text)  # per-figure counters (figure_1, axes_1): the same in every chart
    width = re.search(r'width="([\d.]+)pt"', text)
    assert width is not None, "matplotlib writes the figure width in points"
    attributes = f'class="chart" role="img" aria-label="{_attribute(label)}" style="max-width:{width.group(1)}pt"'
    text = re.sub(r'width="[\d.]+pt" height="[\d.]+pt"', attributes, text, count=1)
    return Markup(text)  # matplotlib escapes every text it writes


def _layout(figure: Any, left: float, bottom: float, top: float, right: float = 0.15, **space: float) -> None:
    """Margins in inches. Fixed margins instead of a layout engine: one draw pass instead of two,
    which halves the time of a report with dozens of charts."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, **space
    )


def _label_inches(labels: Sequence[str]) -> float:
    """Room for y tick labels: about 0.085 in per character at 9 pt (browsers' fonts run wider than matplotlib's)."""
    return min(2.4, 0.3 + 0.085 * max((len(label) for label in labels), default=4))


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def whiskers(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    """Lengths of an interval's whiskers below and above its point, never negative: an interval rounded or clamped
    to a bound can end a hair inside its point estimate, and matplotlib refuses negative error bars."""

    def length(distance: float) -> float:
        return distance if math.isfinite(distance) and distance > 0 else 0.0

    return length(value - (low if low is not None else value)), length((high if high is not None else value) - value)


def accuracy_chart(metrics: Sequence[Metric], models: Sequence[str], colors: Mapping[str, str], salt: str) -> Markup:
    """Accuracy of every model in every subset, with interval whiskers; one panel per accuracy."""
    found = {(m.model, m.subset, m.metric): m for m in metrics}
    subsets = ["all", *sorted({m.subset for m in metrics} - {"all"})]
    panels = [(key, title) for key, title in ACCURACIES if any(k[2] == key for k in found)]
    rows = len(subsets) * (len(models) + 1) - 1
    with _style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 1.2 + 0.13 * rows + _legend_inches(len(models))))
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, (key, title) in zip(axes, panels, strict=True):
            for i, model in enumerate(models):
                ys, xs, low, high = [], [], [], []
                for g, subset in enumerate(subsets):
                    m = found.get((model, subset, key))
                    if m is None:
                        continue
                    ys.append(g * (len(models) + 1) + i)
                    xs.append(m.value)
                    down, up = whiskers(m.value, m.ci_low, m.ci_high)
                    low.append(down)
                    high.append(up)
                if xs:
                    ax.errorbar(
                        xs, ys, xerr=[low, high], fmt="o", ms=4, capsize=2, color=_colour(colors, model), label=model
                    )
            ax.axvline(0.5, color="0.5", lw=0.8, ls="--")
            ax.set_xlim(-0.02, 1.02)
            ax.set_title(title + " ↑", loc="left")
            ax.grid(axis="y", visible=False)
        centres = [g * (len(models) + 1) + (len(models) - 1) / 2 for g in range(len(subsets))]
        axes[0].set_yticks(centres, [_short(s) for s in subsets])
        axes[0].set_ylim(rows + 0.6, -0.6)
        legend = _legend(figure, axes[0], len(models))
        _layout(figure, _label_inches([_short(s) for s in subsets]), 0.35, 0.3 + legend, wspace=0.08)
        return _svg(figure, "accuracy per model and subset, with intervals")


def margin_chart(series: Sequence[Series], colors: Mapping[str, str], salt: str) -> Markup:
    """Distribution of reward margins per model: one histogram row each, on a shared axis."""
    values = np.concatenate([s.margins for s in series])
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    low, high = min(low, 0.0), max(high, 0.0)
    edges = np.linspace(low, high, 41) if high > low else np.linspace(low - 1, high + 1, 41)
    with _style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 1.0 + 0.55 * len(series)))
        ax = figure.subplots()
        for row, s in enumerate(series):
            counts, _ = np.histogram(np.clip(s.margins, edges[0], edges[-1]), bins=edges)
            top = counts.max() or 1
            y = row - 0.85 * counts / top
            ax.fill_between(edges[:-1], row, y, step="post", color=_colour(colors, s.model), alpha=0.55, lw=0)
            median = float(np.median(s.margins))
            ax.plot([median, median], [row, row - 0.9], color="black", lw=1)
        ax.axvline(0, color="0.3", lw=0.8, ls="--")
        ax.set_yticks(range(len(series)), [_short(s.model) for s in series])
        ax.set_ylim(len(series) - 0.9, -1)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("reward margin r(chosen) − r(rejected); black: median")
        ax.grid(axis="y", visible=False)
        _layout(figure, _label_inches([_short(s.model) for s in series]), 0.5, 0.1)
        return _svg(figure, "distribution of reward margins per model")


def reward_scatter_chart(series: Sequence[Series], colors: Mapping[str, str], salt: str) -> Markup:
    """Reward of the chosen answer against that of the rejected one, per pair; one panel per model."""
    columns = 2 if len(series) == 4 else min(len(series), 3)
    rows = math.ceil(len(series) / columns)
    everything = np.concatenate([np.concatenate([s.chosen, s.rejected]) for s in series])
    low, high = (float(everything.min()), float(everything.max())) if everything.size else (-1.0, 1.0)
    pad = 0.05 * (high - low or 1.0)
    with _style(salt) as Figure:
        figure = Figure(figsize=(0.6 + 2.6 * columns, 0.5 + 2.6 * rows))
        axes = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
        for ax, s in zip(axes, series, strict=False):
            ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.4", lw=0.8, ls="--")
            ax.scatter(s.chosen, s.rejected, s=5, alpha=0.45, color=_colour(colors, s.model), lw=0, rasterized=True)
            right = float(np.mean(s.chosen > s.rejected)) if s.chosen.size else 0.0
            ax.set_title(f"{_short(s.model, 20)}: {right:.0%} below the line", loc="left", fontsize=8)
            ax.set_aspect("equal")
        for ax in axes[len(series) :]:
            ax.set_visible(False)
        for ax in axes[(rows - 1) * columns :]:
            ax.set_xlabel("reward chosen")
        for ax in axes[::columns]:
            ax.set_ylabel("reward rejected")
        axes[0].set_xlim(low - pad, high + pad)
        axes[0].set_ylim(low - pad, high + pad)
        _layout(figure, 0.6, 0.45, 0.3, wspace=0.15, hspace=0.35)
        return _svg(figure, "reward of the chosen against the rejected answer, per pair")


def length_chart(metrics: Sequence[Metric], models: Sequence[str], colors: Mapping[str, str], salt: str) -> Markup:
    """Accuracy within bins of Δlength (chosen − rejected tokens), per model, with intervals."""
    found = {(m.model, m.metric): m for m in metrics if m.subset == "all"}
    kinds = [("preference_accuracy", "pref. acc"), ("rewards_accuracy", "reward acc")]
    panels = [(kind, title) for kind, title in kinds if any(k[1].startswith(f"length/{kind}/") for k in found)]
    with _style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 2.6 + _legend_inches(len(models))))
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        width = 0.6 / max(len(models), 1)
        for ax, (kind, title) in zip(axes, panels, strict=True):
            for i, model in enumerate(models):
                xs, ys, low, high = [], [], [], []
                for b, (key, _) in enumerate(LENGTH_BINS):
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
                        xs, ys, yerr=[low, high], fmt="o-", ms=4, capsize=2, color=_colour(colors, model), label=model
                    )
            ax.axhline(0.5, color="0.5", lw=0.8, ls="--")
            ax.set_xticks(range(len(LENGTH_BINS)), [title for _, title in LENGTH_BINS], fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(title + " by Δlength", loc="left")
            ax.grid(axis="x", visible=False)
        legend = _legend(figure, axes[0], len(models))
        _layout(figure, 0.45, 0.5, 0.35 + legend, wspace=0.2)
        return _svg(figure, "accuracy against the length difference of the answers")


def calibration_chart(bins: Sequence[ReliabilityBin], colors: Mapping[str, str], salt: str) -> Markup:
    """Reliability curve: mean confidence σ(|margin|) against accuracy per bin, with Wilson whiskers."""
    models = list(dict.fromkeys(b.model for b in bins))
    with _style(salt) as Figure:
        figure = Figure(figsize=(min(WIDTH, 4.2), 3.4))
        ax = figure.subplots()
        ax.plot([0.5, 1], [0.5, 1], color="0.4", lw=0.8, ls="--", label="calibrated")
        for model in models:
            points = [b for b in bins if b.model == model]
            bars = [whiskers(b.accuracy, b.ci_low, b.ci_high) for b in points]
            low, high = [down for down, _ in bars], [up for _, up in bars]
            xs, ys = [b.confidence for b in points], [b.accuracy for b in points]
            ax.errorbar(xs, ys, yerr=[low, high], fmt="o-", ms=4, capsize=2, color=_colour(colors, model), label=model)
        ax.set_xlim(0.48, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("confidence σ(|margin|)")
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right", fontsize=8)
        _layout(figure, 0.55, 0.5, 0.1)
        return _svg(figure, "calibration: confidence against accuracy")


def training_chart(curve: Sequence[CurvePoint], salt: str) -> Markup:
    """Loss, reward accuracy and margin against step: training values (raw and smoothed) and evaluation."""
    panels = [
        ("loss", "eval_loss", "loss ↓"),
        ("reward_accuracy", "eval_reward_accuracy", "reward acc ↑"),
        ("margin", "eval_margin", "margin ↑"),
    ]
    window = max(1, len(curve) // 25)
    with _style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 2.3))
        axes = figure.subplots(1, 3)
        for ax, (train, evaluation, title) in zip(axes, panels, strict=True):
            points = [(p.step, getattr(p, train)) for p in curve if getattr(p, train) is not None]
            if points:
                steps, values = np.array(points).T
                ax.plot(steps, values, color=PALETTE[0], lw=0.6, alpha=0.3)
                if len(values) >= window > 1:
                    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                    ax.plot(steps[window - 1 :], smooth, color=PALETTE[0], lw=1.4, label=f"train, mean of {window}")
                else:
                    ax.plot(steps, values, color=PALETTE[0], lw=1.4, label="train")
            evaluated = [(p.step, getattr(p, evaluation)) for p in curve if getattr(p, evaluation) is not None]
            if evaluated:
                steps, values = np.array(evaluated).T
                ax.plot(steps, values, "o-", color=PALETTE[1], ms=3, lw=1.2, label="eval")
            ax.set_title(title, loc="left")
            ax.set_xlabel("step")
        axes[0].legend(fontsize=7)
        _layout(figure, 0.4, 0.45, 0.3, wspace=0.35)
        return _svg(figure, "training curves")


def sweep_chart(metrics: Sequence[Metric], steps: Mapping[str, int], salt: str) -> Markup:
    """Metrics of every checkpoint against its step, per dataset and training run, with interval bands."""
    points = [m for m in metrics if m.model in steps and m.subset == "all"]
    panels = [(key, title) for key, title in SWEEP_METRICS if any(m.metric == key for m in points)]
    lines = list(dict.fromkeys((m.dataset, m.model.rsplit("@", 1)[0]) for m in points))
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    with _style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 0.8 + 2.1 * rows + _legend_inches(len(lines))))
        axes = figure.subplots(rows, columns, sharex=True, squeeze=False).ravel()
        for ax, (key, title) in zip(axes, panels, strict=False):
            for i, (dataset, run) in enumerate(lines):
                cells = sorted(
                    (
                        (steps[m.model], m)
                        for m in points
                        if m.metric == key and m.dataset == dataset and m.model.rsplit("@", 1)[0] == run
                    ),
                    key=lambda cell: cell[0],
                )
                if not cells:
                    continue
                xs = [step for step, _ in cells]
                color = PALETTE[i % len(PALETTE)]
                label = dataset if len({r for _, r in lines}) == 1 else f"{run} · {dataset}"
                ax.plot(xs, [m.value for _, m in cells], "o-", ms=3, color=color, label=label)
                if all(m.ci_low is not None and m.ci_high is not None for _, m in cells):
                    ax.fill_between(
                        xs, [m.ci_low for _, m in cells], [m.ci_high for _, m in cells], color=color, alpha=0.15
                    )
            ax.set_title(title, loc="left")
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        for ax in axes[(rows - 1) * columns :]:
            ax.set_xlabel("step")
        legend = _legend(figure, axes[0], len(lines))
        _layout(figure, 0.45, 0.45, 0.3 + legend, wspace=0.25, hspace=0.35)
        return _svg(figure, "metrics across checkpoints")


LEGEND_COLUMNS = 5


def _legend_inches(entries: int) -> float:
    return 0.22 * math.ceil(entries / LEGEND_COLUMNS)


def _legend(figure: Any, ax: Any, entries: int) -> float:
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
        fontsize=8,
        borderaxespad=0.2,
        handletextpad=0.3,
        columnspacing=1.0,
    )
    return _legend_inches(len(handles))


def _colour(colors: Mapping[str, str], model: str) -> str:
    return colors.get(model, "#57606a")
