"""Reports rendered from `results.json` alone: no model, no torch.

`write_reports` writes `report.md` and the self-contained `report.html` (`evalkit.report.html`).
`render_markdown` gives a GitHub-flavoured summary fit for a PR comment or a CI step summary:
the gate's verdict, per dataset a headline with intervals, each model against the reference
(p-values, flips, minimum detectable effects) and the other models against each other, the
same by subset, then compact diagnostics (length, calibration, likelihood displacement). When
it would not fit a PR comment it leaves out what `report.html` shows anyway (flipped pairs,
comparisons by subset, diagnostics, samples, the training curve). `summary_table` gives the
headline as a rich table for the terminal. What both reports show is decided in
`evalkit.report.views`. Every string that comes from the data (names, subsets, pair ids, text) is
escaped.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table as RichTable

from evalkit.console import plain
from evalkit.gate import verdicts
from evalkit.report import markdown
from evalkit.report.judged import judged_view
from evalkit.report.markdown import Markdown, escape
from evalkit.report.views import (
    ARROWS,
    COLUMNS,
    MATRIX_METRICS,
    MAX_IDS,
    MISSING,
    TITLES,
    CapabilityView,
    Table,
    adjusted_p,
    calibration_table,
    capability_view,
    displacement_table,
    format_adjusted_p,
    format_delta,
    format_estimate,
    format_number,
    format_p,
    generation_tables,
    length_notes,
    length_table,
    metric_title,
    other_comparisons,
    primary_comparisons,
    read_pairs,
    rendering_table,
    scoring_settings,
)
from evalkit.results.estimates import Comparison, Statistics
from evalkit.results.files import atomic_write_text
from evalkit.results.generation import GenerationResult
from evalkit.results.schema import CurvePoint, GateVerdict, RunResult

MARKDOWN_BUDGET = 60_000
"""Characters of `report.md` above which its lists are left out: GitHub takes 65,536 in a PR comment."""
HTML_LINK = "Charts, flipped pairs with their text, and generations side by side: [report.html]({target})."
REPORT_URL = "EVALKIT_REPORT_URL"
"""Where the uploaded reports can be opened (e.g. a CI run's artifacts), set by the job that uploads them: a
markdown report posted as a PR comment or step summary links there, since `report.html` beside it means nothing."""


def html_link() -> Markdown:
    target = os.environ.get(REPORT_URL, "").strip()
    safe = target.startswith("https://") and not re.search(r"[\s()<>\[\]`|\\]", target)
    return Markdown(HTML_LINK.format(target=target if safe else "report.html"))


_environment = markdown.environment()  # every printed string escaped unless it is `Markdown`


@dataclass(frozen=True)
class FlipList:
    title: str
    wrong_to_right: int
    right_to_wrong: int
    wrong_to_right_ids: str
    right_to_wrong_ids: str


@dataclass(frozen=True)
class ComparisonSection:
    title: str
    n: int
    table: Table
    flips: list[FlipList]


@dataclass(frozen=True)
class DatasetSection:
    name: str
    n_pairs: int
    headline: Table
    comparisons: list[ComparisonSection] = field(default_factory=list)
    matrices: list[Table] = field(default_factory=list)
    """Accuracy differences between the models other than the reference: row − column."""
    matrices_note: str = ""
    subsets: Table | None = None
    subset_comparisons: Table | None = None
    subset_comparisons_title: str = ""
    length: Table | None = None
    length_notes: list[str] = field(default_factory=list)
    calibration: Table | None = None
    displacement: Table | None = None


CURVE_ROWS = 12
"""Training-curve rows in the markdown report (evenly spaced, always with the last step)."""


def _thin(points: list[CurvePoint], rows: int) -> list[CurvePoint]:
    """At most `rows` points: consecutive runs of steps, each the mean of its logged values,
    labelled with its last step (single-batch training values are too noisy to read alone)."""
    if len(points) <= rows:
        return points
    bounds = [round(i * len(points) / rows) for i in range(rows + 1)]
    merged = []
    for start, end in itertools.pairwise(bounds):
        run = points[start:end]
        fields = {}
        for name in CurvePoint.model_fields:
            if name == "step":
                continue
            values = [v for v in (getattr(p, name) for p in run) if v is not None]
            fields[name] = sum(values) / len(values) if values else None
        merged.append(CurvePoint(step=run[-1].step, **fields))
    return merged


def render_markdown(result: RunResult, budget: int = MARKDOWN_BUDGET) -> str:
    """The markdown report of `result`; without its lists when the whole would exceed `budget` characters."""
    full = _render_markdown(result, compact=False)
    if len(full) <= budget:
        return full
    return _render_markdown(result, compact=True, full_length=len(full))


def _render_markdown(result: RunResult, compact: bool, full_length: int = 0) -> str:
    env = result.environment
    packages = ", ".join(f"{name} {version}" for name, version in env.packages.items() if name != "evalkit")
    training = None
    if result.training is not None:
        t = result.training
        training = {
            "model": t.model,
            "steps": t.steps,
            "seconds": f"{t.seconds:.0f}s",
            "final_loss": format_number(t.final_loss),
            "final_reward_accuracy": format_number(t.final_reward_accuracy),
            "log_history": t.log_history,
            "curve": [
                {
                    "step": point.step,
                    "cells": [
                        format_number(point.loss),
                        format_number(point.reward_accuracy),
                        format_number(point.margin),
                        format_number(point.eval_loss),
                        format_number(point.eval_reward_accuracy),
                        format_number(point.eval_margin),
                    ],
                }
                for point in _thin(t.curve, CURVE_ROWS)
            ],
            "has_eval": any(point.eval_loss is not None for point in t.curve),
        }
    reference = (
        Markdown(f"reference: {markdown.code(result.reference)}")
        if result.reference
        else "no reference (policy metrics only)"
    )
    return _environment.get_template("report.md.j2").render(
        suite_name=escape(result.suite.name),
        description=result.suite.description.strip(),
        reference_line=reference,
        beta=result.scoring.beta,
        max_length=result.scoring.max_length,
        dtype=result.scoring.dtype,
        scoring=escape(scoring_settings(result)),
        created_at=result.created_at,
        duration=f"{result.duration_s:.0f}s",
        intervals=_intervals_line(result.statistics),
        verdict=_verdict(result.gate) if result.gate is not None else None,
        html_link=html_link(),
        compact=compact,
        full_length=full_length,
        stats=_settings(result.statistics or Statistics()),
        sections=[dataset_section(result, d.name, d.n_pairs) for d in result.datasets],
        training=training,
        generation=_generation_view(result.generation) if result.generation is not None else None,
        judged=judged_view(result.generation) if result.generation is not None else None,
        capabilities=_capabilities(result),
        audit=[
            {
                "dataset": escape(a.dataset),
                "model": escape(a.model),
                "n_pairs": a.n_pairs,
                "n_scored": a.n_scored,
                "truncated": a.truncated,
                "prompt_too_long": len(a.prompt_too_long),
                "prompt_not_prefix": a.prompt_not_prefix,
                "doubled_bos": a.doubled_bos,
            }
            for a in result.audit
        ],
        models=[m.model_copy(update={"name": escape(m.name)}) for m in result.models],
        rendering=rendering_table(result.models),
        datasets=[d.model_copy(update={"name": escape(d.name)}) for d in result.datasets],
        evalkit_version=result.evalkit_version,
        packages=packages,
        device=env.device,
        git_sha=env.git_sha,
        schema_version=result.schema_version,
    )


def _capabilities(result: RunResult) -> CapabilityView | None:
    view = capability_view(result.capabilities, (result.statistics or Statistics()).confidence_level)
    return dataclasses.replace(view, note=escape(view.note)) if view is not None else None


def dataset_section(result: RunResult, dataset: str, n_pairs: int) -> DatasetSection:
    """Everything the report shows about one dataset."""
    metrics = [m for m in result.metrics if m.dataset == dataset]
    comparisons = [c for c in result.comparisons if c.dataset == dataset]
    primary = primary_comparisons(comparisons, result.reference)
    found = {(m.model, m.subset, m.metric): m for m in metrics}
    models = list(dict.fromkeys(m.model for m in metrics))
    subsets = sorted({m.subset for m in metrics} - {"all"})
    present = {m.metric for m in metrics}
    columns = [(key, title) for key, title in COLUMNS if key in present]
    direction = {m.metric: m.higher_is_better for m in metrics}
    header = [title + ARROWS[direction[key]] for key, title in columns] + ["n"]
    delta = f"Δ [{_settings(result.statistics or Statistics())['level']} CI]"

    def cells(model: str, subset: str) -> list[str]:
        row = [format_estimate(found.get((model, subset, key))) for key, _ in columns]
        cell = found.get((model, subset, "preference/accuracy"))  # every model has it, over every pair
        return [*row, str(cell.n) if cell else MISSING]

    return DatasetSection(
        name=escape(dataset),
        n_pairs=n_pairs,
        headline=Table(["model", *header], [[model, *cells(model, "all")] for model in models]),
        comparisons=_comparison_sections([c for c in primary if c.subset == "all"], delta),
        matrices=delta_matrices(other_comparisons(comparisons, result.reference), models, _alpha(result)),
        matrices_note=_matrices_note(result.statistics or Statistics()),
        subsets=Table(
            ["subset", "model", *header],
            [[subset, model, *cells(model, subset)] for subset in subsets for model in models],
            align="ll" + "r" * len(header),
        )
        if subsets
        else None,
        subset_comparisons=_subset_comparisons([c for c in primary if c.subset != "all"], delta),
        subset_comparisons_title=_subset_comparisons_title(primary),
        length=length_table(found, models),
        length_notes=[escape(note) for note in length_notes(found, models)],
        calibration=calibration_table(found, models, [r for r in result.reliability if r.dataset == dataset]),
        displacement=displacement_table(found, models),
    )


def delta_matrices(comparisons: Sequence[Comparison], models: Sequence[str], alpha: float) -> list[Table]:
    """Accuracy differences between the models in `comparisons` on all pairs: row model − column model.

    A cell reads '+0.044*', the star when the BH-adjusted p < `alpha`. One table per accuracy in `MATRIX_METRICS`.
    """
    tables = []
    for metric in MATRIX_METRICS:
        cells = {(c.model, c.baseline): c for c in comparisons if c.subset == "all" and c.metric == metric}
        if not cells:
            continue
        rows = [m for m in models if any(key[0] == m for key in cells)]
        columns = [m for m in models if any(key[1] == m for key in cells)]
        higher = next(iter(cells.values())).higher_is_better

        def cell(c: Comparison | None) -> str:
            return "" if c is None else f"{c.value:+.3f}" + ("*" if adjusted_p(c) < alpha else "")

        table_rows = [[row, *(cell(cells.get((row, column))) for column in columns)] for row in rows]
        tables.append(Table([f"Δ {metric_title(metric, higher).strip()}", *columns], table_rows))
    return tables


def _matrices_note(statistics: Statistics) -> str:
    return (
        f"Between the other models, on all pairs: row − column; * where p < {1 - statistics.confidence_level:.2g} "
        "after the Benjamini–Hochberg adjustment over every comparison of the run (Tango's score test)."
    )


def _verdict(gate: Sequence[GateVerdict]) -> dict[str, Any]:
    """The gate's verdict: a headline, and one row per rule, the worst first."""
    rows = [
        [f"{verdicts.MARKS[v.status]} {verdicts.LABELS[v.status]}", v.rule, v.kind.replace("_", "-"), v.reason]
        for v in verdicts.worst_first(gate)
    ]
    headline = Markdown(f"**Gate: {escape(verdicts.headline(gate))}**.")
    return {"headline": headline, "table": Table(["", "rule", "kind", "reason"], rows, "llll") if rows else None}


def _comparison_sections(comparisons: list[Comparison], delta: str) -> list[ComparisonSection]:
    """One table per (model, baseline): a row per metric, with the baseline's and the model's values."""
    sections = []
    for model, baseline in dict.fromkeys((c.model, c.baseline) for c in comparisons):
        rows = [c for c in comparisons if (c.model, c.baseline) == (model, baseline)]
        header = ["metric", baseline, model, delta, "p", "p (BH)", "Wilcoxon p", "wrong→right", "right→wrong", "MDE"]
        table = Table(
            header,
            [
                [
                    metric_title(c.metric, c.higher_is_better),
                    format_number(c.baseline_value),
                    format_number(c.model_value),
                    format_delta(c),
                    format_p(c.p_value),
                    format_adjusted_p(c),
                    format_p(c.wilcoxon_p_value) if c.wilcoxon_p_value is not None else MISSING,
                    str(c.flips.wrong_to_right) if c.flips else MISSING,
                    str(c.flips.right_to_wrong) if c.flips else MISSING,
                    format_number(c.mde),
                ]
                for c in rows
            ],
        )
        flips = [
            FlipList(
                title=TITLES.get(c.metric, c.metric),
                wrong_to_right=c.flips.wrong_to_right,
                right_to_wrong=c.flips.right_to_wrong,
                wrong_to_right_ids=_ids(c.flips.wrong_to_right_ids),
                right_to_wrong_ids=_ids(c.flips.right_to_wrong_ids),
            )
            for c in rows
            if c.flips is not None and (c.flips.wrong_to_right or c.flips.right_to_wrong)
        ]
        sections.append(ComparisonSection(Markdown(f"{escape(model)} vs {escape(baseline)}"), rows[0].n, table, flips))
    return sections


def _subset_comparisons(comparisons: list[Comparison], delta: str) -> Table | None:
    """Every comparison per subset; the comparison column only when there is more than one."""
    if not comparisons:
        return None
    rows = sorted(comparisons, key=lambda c: c.subset)  # stable: keeps the model and metric order
    several = len({(c.model, c.baseline) for c in rows}) > 1
    header = ["subset", *(["comparison"] if several else []), "metric"]
    header += [delta, "p", "p (BH)", "wrong→right", "right→wrong", "n"]
    return Table(
        header,
        [
            [
                c.subset,
                *([f"{c.model} vs {c.baseline}"] if several else []),
                metric_title(c.metric, c.higher_is_better),
                format_delta(c),
                format_p(c.p_value),
                format_adjusted_p(c),
                str(c.flips.wrong_to_right) if c.flips else MISSING,
                str(c.flips.right_to_wrong) if c.flips else MISSING,
                str(c.n),
            ]
            for c in rows
        ],
        align="l" * (len(header) - 6) + "rrrrrr",
    )


def _subset_comparisons_title(comparisons: list[Comparison]) -> str:
    pairs = list(dict.fromkeys((c.model, c.baseline) for c in comparisons if c.subset != "all"))
    if len(pairs) == 1:
        return Markdown(f"{escape(pairs[0][0])} vs {escape(pairs[0][1])}, by subset:")
    return "Comparisons by subset:"


def _alpha(result: RunResult) -> float:
    """The tests' significance level: 1 − the confidence level of the intervals."""
    return 1 - (result.statistics or Statistics()).confidence_level


def _intervals_line(statistics: Statistics | None) -> str:
    if statistics is None:
        return "No intervals: these results predate them (results schema 1.0)."
    level = f"{statistics.confidence_level:.0%}"
    return (
        f"In brackets: {level} intervals: Wilson for shares, Student t for means, Tango's score interval for "
        "differences of accuracies (each test matches its interval); pairs that share a prompt are clustered."
    )


def _settings(statistics: Statistics) -> dict[str, str]:
    return {
        "level": f"{statistics.confidence_level:.0%}",
        "power": f"{statistics.power:.0%}",
        "alpha": f"{1 - statistics.confidence_level:.2g}",
        "bins": str(statistics.calibration_bins),
    }


def _ids(ids: list[str]) -> str:
    shown = ", ".join(escape(i) for i in ids[:MAX_IDS])
    if len(ids) > MAX_IDS:
        shown += f" … and {len(ids) - MAX_IDS} more (all in results.json)"
    return Markdown(shown or MISSING)


OPEN_SAMPLES = 5
"""Prompts whose samples the markdown report shows openly; the rest fold into a details block."""


def _generation_view(generation: GenerationResult) -> dict[str, Any]:
    """The generation section: its summary tables, then the samples of each prompt side by side."""
    tables = generation_tables(generation)
    judge_names = list(dict.fromkeys(name for s in generation.samples for name in s.scores))
    prompts = []
    for prompt in generation.prompts:
        rows = [
            [
                s.model + (f" #{s.index + 1}" if s.index else ""),
                s.completion or "(empty)",
                *(format_number(s.scores.get(name)) for name in judge_names),
            ]
            for s in generation.samples
            if s.prompt_id == prompt.id
        ]
        table = Table(["model", "completion", *judge_names], rows, align="ll" + "r" * len(judge_names))
        prompts.append({"id": escape(prompt.id), "text": escape(prompt.text), "table": table})
    return {
        "decoding": generation.decoding,
        "max_new_tokens": generation.max_new_tokens,
        "n_prompts": len(generation.prompts),
        "stats": tables.stats,
        "judges": tables.judges,
        "drift": tables.drift,
        "open": prompts[:OPEN_SAMPLES],
        "folded": prompts[OPEN_SAMPLES:],
    }


TERMINAL_COLUMNS = ["preference/accuracy", "rewards/accuracies", "rewards/margins", "loss"]


def summary_table(result: RunResult) -> RichTable:
    """The headline numbers of every dataset and model as a rich table for the terminal."""
    table = RichTable(title=f"evalkit · {plain(result.suite.name)}", title_justify="left")
    table.add_column("dataset")
    table.add_column("model")
    direction = {m.metric: m.higher_is_better for m in result.metrics}
    for key in TERMINAL_COLUMNS:
        table.add_column(TITLES[key] + ARROWS[direction.get(key)], justify="right")
    table.add_column("n", justify="right")
    for dataset in result.datasets:
        for model in dict.fromkeys(m.model for m in result.metrics if m.dataset == dataset.name):
            values = [result.value(dataset.name, model, key) for key in TERMINAL_COLUMNS]
            n = next(m.n for m in result.metrics if (m.dataset, m.model, m.subset) == (dataset.name, model, "all"))
            table.add_row(plain(dataset.name), plain(model), *(format_number(v) for v in values), str(n))
    return table


def write_reports(result: RunResult, out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    """Render `report.md` and `report.html` of `result` into `out_dir`; returns the files written.

    Per-pair files are looked up relative to `results_dir`, the directory of the results file
    (by default `out_dir`, where `evalkit bench` writes results, per-pair files and reports).
    """
    from evalkit.report.html import render_html  # the HTML side needs this module's helpers: imported late

    markdown, html = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(markdown, render_markdown(result))
    atomic_write_text(html, render_html(result, read_pairs(result, results_dir or out_dir)))
    return [markdown, html]
