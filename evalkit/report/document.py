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
from pathlib import Path
from typing import Any

from rich.table import Table as RichTable

from evalkit.console import plain
from evalkit.metrics import names
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report import markdown
from evalkit.report.baseline_rows import baseline_row, baselines_of, row_title, shortfalls
from evalkit.report.best_of_n import BEST_OF_N, best_of_n_views
from evalkit.report.diagnostics import (
    CapabilityView,
    capability_view,
    generation_tables,
    rendering_table,
    scoring_settings,
)
from evalkit.report.formats import format_estimate, format_number
from evalkit.report.jinja import render
from evalkit.report.judged import judged_view
from evalkit.report.links import report_url
from evalkit.report.markdown import Markdown, escape
from evalkit.report.rewardbench import sections_views
from evalkit.report.served import served_table
from evalkit.report.statements import rows_within, verdict_sentence, verdict_view
from evalkit.report.tables import Table
from evalkit.report.views import TRAINER_TITLES, alpha_of, audit_table, dataset_view, read_pairs
from evalkit.results.estimates import Statistics
from evalkit.results.files import write_texts
from evalkit.results.generation import GenerationResult
from evalkit.results.schema import CurvePoint, RunResult
from evalkit.results.texts import read_pair_texts

MARKDOWN_BUDGET = 60_000
"""Characters of `report.md` above which its lists are left out: GitHub takes 65,536 in a PR comment."""
HTML_LINK = "Charts, flipped pairs with their text, and generations side by side: [report.html]({target})."
"""Where the uploaded reports can be opened (e.g. a CI run's artifacts), set by the job that uploads them: a
markdown report posted as a PR comment or step summary links there, since `report.html` beside it means nothing."""


def html_link() -> Markdown:
    """The link to the full report: `--report-url` (which sets `$EVALKIT_REPORT_URL`) when it is an https address
    with nothing that could break out of the link, else `report.html` beside this file."""
    return Markdown(HTML_LINK.format(target=report_url() or "report.html"))


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
    compact = _render_markdown(result, compact=True, full_length=len(full))
    if len(compact) <= budget or not result.gate:
        return compact
    # Still too long: the gate's rules (the worst first) as many as fit, the rest left to report.html.
    view = verdict_view(result.gate)
    assert view is not None and view.table is not None, "a gate with rules has a verdict table"
    rows = view.table.markdown.split("\n")[2:]
    excess = len(compact) - budget + 300  # 300: the note saying so
    shown = rows_within(rows, sum(len(row) + 1 for row in rows) - excess)  # the rows left when `excess` is cut
    return _render_markdown(result, compact=True, full_length=len(full), rules_shown=shown)


def _render_markdown(result: RunResult, compact: bool, full_length: int = 0, rules_shown: int | None = None) -> str:
    env = result.environment
    packages = ", ".join(f"{name} {version}" for name, version in env.packages.items() if name != "evalkit")
    trainings = [
        {
            "model": t.model,
            "steps": t.steps,
            "what": TRAINER_TITLES[t.trainer or "DPOTrainer"],
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
        for t in result.training_runs
    ]
    reference = (
        Markdown(f"reference: {markdown.code(result.reference)}")
        if result.reference
        else "no reference (policy metrics only)"
    )
    verdict = verdict_view(result.gate)
    if verdict is not None and rules_shown is not None:
        verdict = dataclasses.replace(verdict, rules=verdict.rules[:rules_shown])
    return render(
        "markdown",
        "report.md.j2",
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
        sentence=verdict_sentence(result),
        verdict=verdict,
        rules_shown=rules_shown,
        all_rules=len(result.gate or []),
        html_link=html_link(),
        compact=compact,
        full_length=full_length,
        stats=_settings(result.effective_statistics),
        sections=[dataset_view(result, d.name, d.n_pairs) for d in result.datasets if d.format != BEST_OF_N],
        best_of_n=best_of_n_views(result),
        rewardbench_sections=sections_views(result),
        trainings=trainings,
        generation=_generation_view(result.generation) if result.generation is not None else None,
        judged=judged_view(result.generation) if result.generation is not None else None,
        capabilities=_capabilities(result),
        audit=audit_table(result.audit),
        models=[m.model_copy(update={"name": escape(m.name)}) for m in result.models],
        rendering=rendering_table(result.models),
        served=served_table(result.models),
        datasets=[d.model_copy(update={"name": escape(d.name)}) for d in result.datasets],
        evalkit_version=result.evalkit_version,
        packages=packages,
        device=env.device,
        git_sha=env.git_sha,
        schema_version=result.schema_version,
    )


def _capabilities(result: RunResult) -> CapabilityView | None:
    view = capability_view(result.capabilities, result.effective_statistics.confidence_level)
    return dataclasses.replace(view, note=escape(view.note)) if view is not None else None


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
    """The headline numbers of every dataset and model, each with its interval, as a rich table for the terminal."""
    table = RichTable(title=f"evalkit · {plain(result.suite.name)}", title_justify="left")
    table.add_column("dataset")
    table.add_column("model")
    direction = {m.metric: m.higher_is_better for m in result.metrics}
    for key in TERMINAL_COLUMNS:
        table.add_column(names.heading(key, direction.get(key)), justify="right")
    table.add_column("n", justify="right")
    short = {(f.dataset, f.model, f.metric) for f in shortfalls(result, alpha_of(result)) if f.subset == ALL_SUBSETS}
    accuracies = [key for key in TERMINAL_COLUMNS if names.metric(key).accuracy]
    for dataset in (d for d in result.datasets if d.format == "pairs"):  # best-of-N, labelled: tables of their own
        for model in dict.fromkeys(m.model for m in result.metrics if m.dataset == dataset.name):
            cells = [
                format_estimate(result.metric(dataset.name, model, key))
                + (" †" if (dataset.name, model, key) in short else "")
                for key in TERMINAL_COLUMNS
            ]
            n = next(m.n for m in result.metrics if (m.dataset, m.model, m.subset) == (dataset.name, model, "all"))
            table.add_row(plain(dataset.name), plain(model), *cells, str(n))
        for b in baselines_of(result, dataset.name, ALL_SUBSETS):
            row = baseline_row(b, TERMINAL_COLUMNS, accuracies)
            table.add_row(plain(dataset.name), row_title(b), *row, str(b.n), style="dim")
    if short:
        table.caption = "† does not beat every content-blind baseline (baseline rows) at α; see report.md"
    return table


def best_of_n_tables(result: RunResult) -> list[RichTable]:
    """Each best-of-N dataset's scores beside its baselines, as rich tables for the terminal."""
    tables = []
    for view in best_of_n_views(result):
        table = RichTable(title=f"{plain(view.name)}: best-of-N score", title_justify="left")
        for index, column in enumerate(view.scores.header):
            table.add_column(plain(column), justify="left" if index == 0 else "right")
        for row in view.scores.rows:
            table.add_row(*(plain(cell) for cell in row))
        tables.append(table)
    return tables


def unpaired_tables(result: RunResult) -> list[RichTable]:
    """Each unpaired dataset's table (`evalkit.report.unpaired`), all completions only, for the terminal."""
    tables = []
    for dataset in (d for d in result.datasets if d.format == "unpaired"):
        view = dataset_view(result, dataset.name, dataset.n_pairs)
        table = RichTable(
            title=f"evalkit · {plain(dataset.name)} ({dataset.n_pairs} labelled completions)", title_justify="left"
        )
        for index, column in enumerate(view.headline.header[1:]):
            table.add_column(column, justify="left" if index == 0 else "right")
        for row in view.headline.rows:
            if row[0] == ALL_SUBSETS:
                table.add_row(*(plain(cell) for cell in row[1:]))
        tables.append(table)
    return tables


def write_reports(result: RunResult, out_dir: Path, results_dir: Path | None = None) -> list[Path]:
    """Render `report.md` and `report.html` of `result` into `out_dir`; returns the files written.

    Per-pair files are looked up relative to `results_dir`, the directory of the results file
    (by default `out_dir`, where `evalkit bench` writes results, per-pair files and reports).
    """
    return write_texts(out_dir, render_reports(result, results_dir or out_dir))


def render_reports(result: RunResult, results_dir: Path) -> dict[str, str]:
    """`report.md` and `report.html`, rendered (the per-pair files read from beside the results, in `results_dir`)."""
    from evalkit.report.html import render_html  # the HTML side needs this module's helpers: imported late

    texts = {d.name: found for d in result.datasets if (found := read_pair_texts(results_dir, d)) is not None}
    return {
        "report.md": render_markdown(result),
        "report.html": render_html(result, read_pairs(result, results_dir), texts),
    }
