"""Charts of training: TRL's logged curves, and the metrics of a run's checkpoints against their step.

Drawn like every chart of the report (`evalkit.report.charts`: a bare matplotlib `Figure` to inline SVG).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from markupsafe import Markup

from evalkit.metrics import names
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report.charts import PALETTE, WIDTH, layout, legend, legend_inches, style, svg
from evalkit.results.estimates import Metric
from evalkit.results.schema import CurvePoint

SWEEP_METRICS = ["rewards/accuracies", "preference/accuracy", "rewards/margins", "loss"]


def training_chart(curve: Sequence[CurvePoint], salt: str, scored: Mapping[str, int] | None = None) -> Markup:
    """Loss, reward accuracy and margin against step: training values (raw and smoothed) and evaluation; the steps
    of the checkpoints this run scored (`scored`: name → step) as dotted lines."""
    panels = [
        ("loss", "eval_loss", "loss ↓"),
        ("reward_accuracy", "eval_reward_accuracy", "reward acc ↑"),
        ("margin", "eval_margin", "margin ↑"),
    ]
    window = max(1, len(curve) // 25)
    with style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 3.4 + legend_inches(3)))
        axes = figure.subplots(1, 3)
        for ax, (train, evaluation, title) in zip(axes, panels, strict=True):
            points = [(p.step, getattr(p, train)) for p in curve if getattr(p, train) is not None]
            if points:
                steps, values = np.array(points).T
                ax.plot(steps, values, color=PALETTE[0], lw=0.7, alpha=0.3)
                if len(values) >= window > 1:
                    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                    ax.plot(steps[window - 1 :], smooth, color=PALETTE[0], lw=1.6, label=f"train, mean of {window}")
                else:
                    ax.plot(steps, values, color=PALETTE[0], lw=1.6, label="train")
            evaluated = [(p.step, getattr(p, evaluation)) for p in curve if getattr(p, evaluation) is not None]
            if evaluated:
                steps, values = np.array(evaluated).T
                ax.plot(steps, values, "o-", color=PALETTE[1], ms=4, lw=1.4, label="eval (held-out split)")
            for i, step in enumerate(sorted(set((scored or {}).values()))):
                ax.axvline(step, color="0.35", lw=1, ls=":", label="scored checkpoint" if i == 0 else None)
            ax.set_title(title, loc="left")
            ax.set_xlabel("step")
            ax.locator_params(axis="x", nbins=4)
        above = legend(figure, axes[0], 3)
        layout(figure, 0.6, 0.65, 0.45 + above, wspace=0.4)
        return svg(figure, "training curves")


def sweep_chart(metrics: Sequence[Metric], steps: Mapping[str, int], salt: str) -> Markup:
    """Metrics of every checkpoint against its step, per dataset and training run, with interval bands."""
    points = [m for m in metrics if m.model in steps and m.subset == ALL_SUBSETS]
    panels = [key for key in SWEEP_METRICS if any(m.metric == key for m in points)]
    lines = list(dict.fromkeys((m.dataset, m.model.rsplit("@", 1)[0]) for m in points))
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    with style(salt) as Figure:
        figure = Figure(figsize=(WIDTH, 1.0 + 2.8 * rows + legend_inches(len(lines))))
        axes = figure.subplots(rows, columns, sharex=True, squeeze=False).ravel()
        for ax, key in zip(axes, panels, strict=False):
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
                ax.plot(xs, [m.value for _, m in cells], "o-", ms=4, color=color, label=label)
                if all(m.ci_low is not None and m.ci_high is not None for _, m in cells):
                    ax.fill_between(
                        xs, [m.ci_low for _, m in cells], [m.ci_high for _, m in cells], color=color, alpha=0.15
                    )
            ax.set_title(names.metric(key).heading, loc="left")
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        for ax in axes[(rows - 1) * columns :]:
            ax.set_xlabel("step")
        above = legend(figure, axes[0], len(lines))
        layout(figure, 0.6, 0.6, 0.45 + above, wspace=0.25, hspace=0.4)
        return svg(figure, "metrics across checkpoints")
