"""Reports rendered from `results.json` alone: no model, no torch.

`render_markdown` gives a GitHub-flavoured summary fit for a PR comment or a CI step summary:
per dataset a headline with intervals, the paired comparisons between models (p-values, flips,
minimum detectable effects), the same by subset, then compact diagnostics (length,
calibration, likelihood displacement). `summary_table` gives the headline as a rich table for
the terminal. Every string that comes from the data (names, subsets, pair ids) is escaped.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from rich.table import Table as RichTable

from evalkit.results import (
    Comparison,
    CurvePoint,
    GenerationResult,
    Metric,
    ReliabilityBin,
    RunResult,
    Statistics,
    WinRate,
    atomic_write_text,
)

# (metric, column title) in the order a reviewer reads them.
COLUMNS = [
    ("preference/accuracy", "pref. acc"),
    ("rewards/accuracies", "reward acc"),
    ("rewards/ties", "ties"),
    ("rewards/margins", "margin"),
    ("loss", "DPO loss"),
]
TITLES = dict(COLUMNS) | {"preference/accuracy_per_token": "pref. acc/token", "logps/margins": "logp margin"}
LENGTH_BINS = [("chosen_shorter", "chosen shorter"), ("same_length", "same length"), ("chosen_longer", "chosen longer")]
DISPLACEMENT_COLUMNS = [
    ("displacement/chosen", "chosen fell below ref"),
    ("rewards/chosen", "reward chosen"),
    ("rewards/rejected", "reward rejected"),
    ("rewards/margins_median", "median margin"),
    ("logps/chosen", "logp chosen"),
    ("logps/rejected", "logp rejected"),
]
ARROWS = {True: " ↑", False: " ↓", None: ""}
MISSING = "—"
MAX_IDS = 50
"""Flipped pair ids listed per direction; results.json has them all."""

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("evalkit", "templates"),
    autoescape=False,  # markdown; cells are escaped by `_md` below
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Table:
    """A markdown table of escaped cells."""

    header: list[str]
    rows: list[list[str]]
    align: str = ""
    """'l' or 'r' per column; by default the first column left, the others (numbers) right."""

    @property
    def markdown(self) -> str:
        align = self.align or "l" + "r" * (len(self.header) - 1)
        rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
        lines = ["| " + " | ".join(self.header) + " |", rule]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])


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


def render_markdown(result: RunResult) -> str:
    """The markdown report of `result`."""
    env = result.environment
    packages = ", ".join(f"{name} {version}" for name, version in env.packages.items() if name != "evalkit")
    training = None
    if result.training is not None:
        t = result.training
        training = {
            "model": _md(t.model),
            "steps": t.steps,
            "seconds": f"{t.seconds:.0f}s",
            "final_loss": _number(t.final_loss),
            "final_reward_accuracy": _number(t.final_reward_accuracy),
            "log_history": _md(t.log_history),
            "curve": [
                {
                    "step": point.step,
                    "cells": [
                        _number(point.loss),
                        _number(point.reward_accuracy),
                        _number(point.margin),
                        _number(point.eval_loss),
                        _number(point.eval_reward_accuracy),
                        _number(point.eval_margin),
                    ],
                }
                for point in _thin(t.curve, CURVE_ROWS)
            ],
            "has_eval": any(point.eval_loss is not None for point in t.curve),
        }
    reference = f"reference: `{_md(result.reference)}`" if result.reference else "no reference (policy metrics only)"
    return _environment.get_template("report.md.j2").render(
        suite_name=_md(result.suite.name),
        description=result.suite.description.strip(),
        reference_line=reference,
        beta=result.scoring.beta,
        max_length=result.scoring.max_length,
        created_at=result.created_at,
        duration=f"{result.duration_s:.0f}s",
        intervals=_intervals_line(result.statistics),
        stats=_settings(result.statistics or Statistics()),
        sections=[dataset_section(result, d.name, d.n_pairs) for d in result.datasets],
        training=training,
        generation=_generation_view(result.generation) if result.generation is not None else None,
        audit=[
            {
                "dataset": _md(a.dataset),
                "model": _md(a.model),
                "n_pairs": a.n_pairs,
                "n_scored": a.n_scored,
                "truncated": a.truncated,
                "prompt_too_long": len(a.prompt_too_long),
                "prompt_not_prefix": a.prompt_not_prefix,
                "doubled_bos": a.doubled_bos,
            }
            for a in result.audit
        ],
        models=[m.model_copy(update={"name": _md(m.name)}) for m in result.models],
        datasets=[d.model_copy(update={"name": _md(d.name)}) for d in result.datasets],
        evalkit_version=result.evalkit_version,
        packages=packages,
        device=env.device,
        git_sha=env.git_sha,
        schema_version=result.schema_version,
    )


def dataset_section(result: RunResult, dataset: str, n_pairs: int) -> DatasetSection:
    """Everything the report shows about one dataset."""
    metrics = [m for m in result.metrics if m.dataset == dataset]
    comparisons = [c for c in result.comparisons if c.dataset == dataset]
    found = {(m.model, m.subset, m.metric): m for m in metrics}
    models = list(dict.fromkeys(m.model for m in metrics))
    subsets = sorted({m.subset for m in metrics} - {"all"})
    present = {m.metric for m in metrics}
    columns = [(key, title) for key, title in COLUMNS if key in present]
    direction = {m.metric: m.higher_is_better for m in metrics}
    header = [title + ARROWS[direction[key]] for key, title in columns] + ["n"]
    delta = f"Δ [{_settings(result.statistics or Statistics())['level']} CI]"

    def cells(model: str, subset: str) -> list[str]:
        row = [_estimate(found.get((model, subset, key))) for key, _ in columns]
        cell = found.get((model, subset, "preference/accuracy"))  # every model has it, over every pair
        return [*row, str(cell.n) if cell else MISSING]

    return DatasetSection(
        name=_md(dataset),
        n_pairs=n_pairs,
        headline=Table(["model", *header], [[_md(model), *cells(model, "all")] for model in models]),
        comparisons=_comparison_sections([c for c in comparisons if c.subset == "all"], delta),
        subsets=Table(
            ["subset", "model", *header],
            [[_md(subset), _md(model), *cells(model, subset)] for subset in subsets for model in models],
            align="ll" + "r" * len(header),
        )
        if subsets
        else None,
        subset_comparisons=_subset_comparisons([c for c in comparisons if c.subset != "all"], delta),
        subset_comparisons_title=_subset_comparisons_title(comparisons),
        length=_length_table(found, models),
        length_notes=_length_notes(found, models),
        calibration=_calibration_table(found, models, [r for r in result.reliability if r.dataset == dataset]),
        displacement=_displacement_table(found, models),
    )


def _comparison_sections(comparisons: list[Comparison], delta: str) -> list[ComparisonSection]:
    """One table per (model, baseline): a row per metric, with the baseline's and the model's values."""
    sections = []
    for model, baseline in dict.fromkeys((c.model, c.baseline) for c in comparisons):
        rows = [c for c in comparisons if (c.model, c.baseline) == (model, baseline)]
        header = ["metric", _md(baseline), _md(model), delta, "p", "Wilcoxon p", "wrong→right", "right→wrong", "MDE"]
        table = Table(
            header,
            [
                [
                    _metric_title(c.metric, c.higher_is_better),
                    _number(c.baseline_value),
                    _number(c.model_value),
                    _delta(c),
                    _p_value(c.p_value),
                    _p_value(c.wilcoxon_p_value) if c.wilcoxon_p_value is not None else MISSING,
                    str(c.flips.wrong_to_right) if c.flips else MISSING,
                    str(c.flips.right_to_wrong) if c.flips else MISSING,
                    _number(c.mde),
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
        sections.append(ComparisonSection(f"{_md(model)} vs {_md(baseline)}", rows[0].n, table, flips))
    return sections


def _subset_comparisons(comparisons: list[Comparison], delta: str) -> Table | None:
    """Every comparison per subset; the comparison column only when there is more than one."""
    if not comparisons:
        return None
    rows = sorted(comparisons, key=lambda c: c.subset)  # stable: keeps the model and metric order
    several = len({(c.model, c.baseline) for c in rows}) > 1
    header = ["subset", *(["comparison"] if several else []), "metric"]
    header += [delta, "p", "wrong→right", "right→wrong", "n"]
    return Table(
        header,
        [
            [
                _md(c.subset),
                *([f"{_md(c.model)} vs {_md(c.baseline)}"] if several else []),
                _metric_title(c.metric, c.higher_is_better),
                _delta(c),
                _p_value(c.p_value),
                str(c.flips.wrong_to_right) if c.flips else MISSING,
                str(c.flips.right_to_wrong) if c.flips else MISSING,
                str(c.n),
            ]
            for c in rows
        ],
        align="l" * (len(header) - 5) + "rrrrr",
    )


def _subset_comparisons_title(comparisons: list[Comparison]) -> str:
    pairs = list(dict.fromkeys((c.model, c.baseline) for c in comparisons if c.subset != "all"))
    if len(pairs) == 1:
        return f"{_md(pairs[0][0])} vs {_md(pairs[0][1])}, by subset:"
    return "Comparisons by subset:"


def _length_table(found: dict[tuple[str, str, str], Metric], models: list[str]) -> Table | None:
    kinds = [("preference_accuracy", "pref. acc"), ("rewards_accuracy", "reward acc")]
    rows = []
    for model in models:
        for kind, title in kinds:
            bins = [found.get((model, "all", f"length/{kind}/{key}")) for key, _ in LENGTH_BINS]
            if not any(bins):  # the reference has no reward accuracy
                continue
            rho = found.get((model, "all", "length/margin_spearman")) if kind == "rewards_accuracy" else None
            rows.append([_md(model), title, *(_estimate(m) for m in bins), _estimate(rho)])
    if not rows:
        return None
    return Table(["model", "accuracy", *(title for _, title in LENGTH_BINS), "ρ(margin, Δlength)"], rows, "llrrrr")


def _length_notes(found: dict[tuple[str, str, str], Metric], models: list[str]) -> list[str]:
    """Pairs per bin, the longer-answer baseline and the per-token accuracy, in sentences.

    Bins and the baseline depend on the data and the tokenizer only: one sentence for all
    models when they agree (the usual case: one tokenizer), else one per tokenizer.
    """
    if not any(k[2].startswith("length/") for k in found):
        return []
    notes: dict[str, list[str]] = {}
    for model in models:
        counts = [found.get((model, "all", f"length/preference_accuracy/{key}")) for key, _ in LENGTH_BINS]
        note = "pairs per bin: " + ", ".join(
            f"{m.n if m else 0} {title}" for m, (_, title) in zip(counts, LENGTH_BINS, strict=True)
        )
        longer = found.get((model, "all", "length/longer_accuracy"))
        if longer is not None:
            note += f"; always preferring the longer answer scores {_estimate(longer)}"
            note += f" on the {longer.n} pairs of unequal length"
        notes.setdefault(note, []).append(_md(model))
    if len(notes) == 1:
        only = next(iter(notes))
        sentences = [only[0].upper() + only[1:] + "."]
    else:
        sentences = [f"Under the tokenizer of {', '.join(names)}: {note}." for note, names in notes.items()]
    per_token = [
        f"{_md(model)} {_estimate(m)}"
        for model in models
        if (m := found.get((model, "all", "preference/accuracy_per_token"))) is not None
    ]
    if per_token:
        sentences.append(
            "Preference accuracy on the mean log-prob per completion token, which does not reward an answer "
            "for being short: " + ", ".join(per_token) + "."
        )
    return sentences


def _calibration_table(
    found: dict[tuple[str, str, str], Metric], models: list[str], reliability: Sequence[ReliabilityBin]
) -> Table | None:
    rows = []
    for model in models:
        brier, ece = found.get((model, "all", "calibration/brier")), found.get((model, "all", "calibration/ece"))
        if brier is None and ece is None:
            continue
        points = [r for r in reliability if (r.model, r.subset) == (model, "all")]
        curve = " · ".join(f"{r.confidence:.2f}→{r.accuracy:.2f} ({r.n})" for r in points) or MISSING
        rows.append([_md(model), _estimate(brier), _estimate(ece), curve])
    if not rows:
        return None
    return Table(["model", "Brier ↓", "ECE ↓", "reliability: confidence→accuracy (pairs)"], rows, "lrrl")


def _displacement_table(found: dict[tuple[str, str, str], Metric], models: list[str]) -> Table | None:
    rows = [
        [_md(model), *(_estimate(found.get((model, "all", key))) for key, _ in DISPLACEMENT_COLUMNS)]
        for model in models
        if any((model, "all", key) in found for key, _ in DISPLACEMENT_COLUMNS)
    ]
    if not rows:
        return None
    direction = {metric: m.higher_is_better for (_, _, metric), m in found.items()}
    header = [title + ARROWS[direction.get(key)] for key, title in DISPLACEMENT_COLUMNS]
    return Table(["model", *header], rows)


def _intervals_line(statistics: Statistics | None) -> str:
    if statistics is None:
        return "No intervals: these results predate them (results schema 1.0)."
    level = f"{statistics.confidence_level:.0%}"
    return (
        f"In brackets: {level} intervals, Wilson for shares, percentile bootstrap over pairs for the rest "
        f"({statistics.bootstrap_resamples} resamples, seed {statistics.bootstrap_seed})."
    )


def _settings(statistics: Statistics) -> dict[str, str]:
    return {
        "level": f"{statistics.confidence_level:.0%}",
        "power": f"{statistics.power:.0%}",
        "alpha": f"{1 - statistics.confidence_level:.2g}",
        "bins": str(statistics.calibration_bins),
    }


def _metric_title(metric: str, higher_is_better: bool | None) -> str:
    return TITLES.get(metric, _md(metric)) + ARROWS[higher_is_better]


def _estimate(metric: Metric | None) -> str:
    """'0.947 [0.91, 0.97]': the value to three decimals, the interval to two (or more, to tell its ends apart)."""
    if metric is None:
        return MISSING
    if metric.ci_low is None or metric.ci_high is None:
        return _number(metric.value)
    return f"{_number(metric.value)} [{_interval(metric.ci_low, metric.ci_high)}]"


def _delta(c: Comparison) -> str:
    """'+0.476 [+0.40, +0.55]'."""
    value = f"{c.value:+.3f}" if abs(c.value) < 100 else f"{c.value:+.1f}"
    if c.ci_low is None or c.ci_high is None:
        return value
    return f"{value} [{_interval(c.ci_low, c.ci_high, signed=True)}]"


def _interval(low: float, high: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if max(abs(low), abs(high)) >= 100:
        return f"{low:{sign}.0f}, {high:{sign}.0f}"
    for spec in (".2f", ".3f", ".3g"):
        ends = f"{low:{sign}{spec}}", f"{high:{sign}{spec}}"
        if ends[0] != ends[1]:
            break
    return ", ".join(ends)


def _p_value(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3g}"


def _ids(ids: list[str]) -> str:
    shown = ", ".join(_md(i) for i in ids[:MAX_IDS])
    if len(ids) > MAX_IDS:
        shown += f" … and {len(ids) - MAX_IDS} more (all in results.json)"
    return shown or MISSING


def _number(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


OPEN_SAMPLES = 5
"""Prompts whose samples the markdown report shows openly; the rest fold into a details block."""


def _generation_view(generation: GenerationResult) -> dict[str, Any]:
    """Tables of the generation section: text statistics, judges against the reference, drift, samples."""
    stats = Table(
        ["model", "mean tokens", "EOS rate", "distinct-1", "distinct-2", "repetition"],
        [
            [
                _md(g.model),
                _number(g.mean_tokens),
                _number(g.eos_rate),
                _number(g.distinct_1),
                _number(g.distinct_2),
                _number(g.repetition_rate),
            ]
            for g in generation.stats
        ],
        align="lrrrrr",
    )
    wins = {(w.judge, w.model): w for w in generation.win_rates}

    def against_reference(win: WinRate | None) -> list[str]:
        if win is None:
            return [MISSING] * 3
        return [
            _with_interval(win.win_rate, win.ci_low, win.ci_high),
            f"{win.wins} / {win.ties} / {win.losses}",
            _with_interval(win.score_delta, win.delta_ci_low, win.delta_ci_high, signed=True),
        ]

    judges = Table(
        ["judge", "model", "mean score", "win rate vs reference", "wins / ties / losses", "Δ score"],
        [
            [
                _md(j.judge),
                _md(j.model),
                _with_interval(j.mean, j.ci_low, j.ci_high),
                *against_reference(wins.get((j.judge, j.model))),
            ]
            for j in generation.judges
        ],
        align="llrrrr",
    )
    drift = Table(
        ["model", "reference", "KL(model ‖ reference), nats", "samples per prompt", "prompts"],
        [
            [
                _md(d.model),
                _md(d.reference),
                _with_interval(d.kl, d.ci_low, d.ci_high),
                str(d.samples_per_prompt),
                str(d.n),
            ]
            for d in generation.drift
        ],
        align="llrrr",
    )
    judge_names = list(dict.fromkeys(name for s in generation.samples for name in s.scores))
    prompts = []
    for prompt in generation.prompts:
        rows = [
            [
                _md(s.model) + (f" #{s.index + 1}" if s.index else ""),
                _md(s.completion) or "(empty)",
                *(_number(s.scores.get(name)) for name in judge_names),
            ]
            for s in generation.samples
            if s.prompt_id == prompt.id
        ]
        table = Table(["model", "completion", *map(_md, judge_names)], rows, align="ll" + "r" * len(judge_names))
        prompts.append({"id": _md(prompt.id), "text": _md(prompt.text), "table": table})
    return {
        "decoding": generation.decoding,
        "max_new_tokens": generation.max_new_tokens,
        "n_prompts": len(generation.prompts),
        "stats": stats,
        "judges": judges if generation.judges else None,
        "drift": drift if generation.drift else None,
        "open": prompts[:OPEN_SAMPLES],
        "folded": prompts[OPEN_SAMPLES:],
    }


def _with_interval(value: float, low: float | None, high: float | None, signed: bool = False) -> str:
    text = f"{value:+.3f}" if signed else _number(value)
    if low is None or high is None:
        return text
    return f"{text} [{low:+.2f}, {high:+.2f}]" if signed else f"{text} [{low:.2f}, {high:.2f}]"


def _md(text: str) -> str:
    """Escape text for a markdown table cell or an HTML block."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


TERMINAL_COLUMNS = ["preference/accuracy", "rewards/accuracies", "rewards/margins", "loss"]


def summary_table(result: RunResult) -> RichTable:
    """The headline numbers of every dataset and model as a rich table for the terminal."""
    table = RichTable(title=f"evalkit · {result.suite.name}", title_justify="left")
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
            table.add_row(dataset.name, model, *(_number(v) for v in values), str(n))
    return table


def write_reports(result: RunResult, out_dir: Path) -> list[Path]:
    """Render every report of `result` into `out_dir`; returns the files written."""
    path = out_dir / "report.md"
    atomic_write_text(path, render_markdown(result))
    return [path]
