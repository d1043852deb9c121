"""The HTML report: one self-contained file a reviewer reads top to bottom, on a laptop, a phone or paper.

Sections in the order a release decision is read: the gate's verdict; per dataset the headline
(every model with its intervals, each model against the reference with Δ, its interval and
whether it is significant, the other models against each other); the same by subset; charts and
diagnostics; the flipped pairs with their prompt and answers; generation samples side by side;
the tokenization audit and provenance.

Nothing is fetched: the CSS is inline, the charts are inline SVG (`evalkit.report.charts`), and the one
script (it unfolds every folded block before printing) runs by its hash under a
Content-Security-Policy that forbids everything else. Every string from the data goes through
jinja2's autoescaping, chart labels through matplotlib's XML escaping: a prompt that reads
`<script>` shows as text.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jinja2
import numpy as np
from markupsafe import Markup

from evalkit.gate import verdicts
from evalkit.report import charts
from evalkit.report.judged import judged_view
from evalkit.report.views import (
    COLUMNS,
    FLIP_METRIC,
    MATRIX_METRICS,
    MAX_IDS,
    MISSING,
    Table,
    adjusted_p,
    calibration_table,
    capability_view,
    displacement_table,
    format_adjusted_p,
    format_bracket,
    format_number,
    format_p,
    generation_tables,
    length_notes,
    length_table,
    metric_title,
    other_comparisons,
    primary_comparisons,
    rendering_table,
    scoring_settings,
    spread,
)
from evalkit.results.estimates import Comparison, Metric, Statistics
from evalkit.results.pairs import PairScore
from evalkit.results.schema import GateVerdict, PairText, RunResult

TEXT_LIMIT = 4000
"""Characters of one prompt, answer or completion shown; the rest is cut with a note."""
OPEN_PROMPTS = 3
"""Generation prompts shown unfolded."""
SCATTER_PANELS = 4
"""Models in the chosen-against-rejected chart (one panel each; the margin chart shows them all)."""
PRINT_SCRIPT = 'addEventListener("beforeprint",()=>{for(const d of document.querySelectorAll("details"))d.open=true})'
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"script-src 'sha256-{base64.b64encode(hashlib.sha256(PRINT_SCRIPT.encode()).digest()).decode()}'"
)


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text`, cut after `limit` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


environment = jinja2.Environment(
    loader=jinja2.PackageLoader("evalkit.report", "templates"),
    autoescape=True,  # every string from datasets and models is data, never markup
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
environment.filters["clip"] = clip


@dataclass(frozen=True)
class Cell:
    text: str
    note: str = ""
    """Shown smaller after the text: an interval."""
    css: str = ""
    """`good`, `bad` (a significant change for the better or the worse), `flat`, `l` (left-aligned)."""
    title: str = ""
    """Tooltip."""


@dataclass(frozen=True)
class Grid:
    """An HTML table; its first `labels` columns are names, the rest numbers."""

    header: list[str]
    rows: list[list[Cell]]
    labels: int = 1


@dataclass(frozen=True)
class Chart:
    title: str
    svg: Markup
    caption: str


@dataclass(frozen=True)
class FlipView:
    id: str
    text: PairText | None
    """None when results.json does not carry the pair's text."""
    margins: str
    """The policy's own log-prob margin under the baseline and the model, when per-pair files are at hand."""


@dataclass(frozen=True)
class FlipGroup:
    title: str
    wrong_to_right: list[FlipView]
    right_to_wrong: list[FlipView]
    n_wrong_to_right: int
    n_right_to_wrong: int
    more_ids: str
    """Further flipped ids (up to `MAX_IDS` per direction), comma-separated."""


@dataclass(frozen=True)
class DatasetView:
    name: str
    anchor: str
    n_pairs: int
    headline: Grid
    versus: Grid | None
    matrices: list[Grid]
    subsets: Grid | None
    subset_deltas: Grid | None
    charts: list[Chart]
    charts_note: str
    diagnostics: list[tuple[str, Grid]]
    length_notes: list[str]
    flips: list[FlipGroup] = field(default_factory=list)


def render_html(result: RunResult, pairs: Mapping[str, Sequence[PairScore]] | None = None) -> str:
    """The HTML report of `result`; `pairs` (per dataset) feed the per-pair charts and flip margins."""
    pairs = pairs or {}
    statistics = result.statistics or Statistics()
    colors = charts.palette(list(dict.fromkeys([m.name for m in result.models] + [m.model for m in result.metrics])))
    texts = {(t.dataset, t.id): t for t in result.flip_examples}
    datasets = [
        _dataset_view(result, d.name, d.n_pairs, pairs.get(d.name), colors, texts, i)
        for i, d in enumerate(result.datasets)
    ]
    steps = sweep_steps(result)
    training = None
    if result.training is not None and result.training.curve:
        training = Chart(
            "Loss, reward accuracy and margin against step",
            charts.training_chart(result.training.curve, "training"),
            "TRL's logged values against step: training values are means over one batch (faint), smoothed "
            "(solid); eval on the held-out split.",
        )
    sweep = None
    if steps:
        sweep = Chart(
            "Reward accuracy, preference accuracy, margin and loss of each checkpoint",
            charts.sweep_chart(result.metrics, steps, "sweep"),
            "Each checkpoint (a model named name@step) on all pairs of each dataset, with its interval as a band.",
        )
    return environment.get_template("report.html.j2").render(
        result=result,
        csp=CSP,
        script=Markup(PRINT_SCRIPT),
        level=f"{statistics.confidence_level:.0%}",
        alpha=f"{1 - statistics.confidence_level:.2g}",
        power=f"{statistics.power:.0%}",
        verdict=verdict_view(result.gate),
        datasets=datasets,
        flip_groups=sum(len(d.flips) for d in datasets),
        training=training,
        sweep=sweep,
        generation=_generation_view(result) if result.generation is not None else None,
        judged=_judged_view(result),
        capabilities=_capabilities_view(result, statistics),
        audit=_audit(result),
        packages=", ".join(f"{k} {v}" for k, v in result.environment.packages.items()),
        scoring=scoring_settings(result),
        rendering=grid_of(table) if (table := rendering_table(result.models)) is not None else None,
    )


def _capabilities_view(result: RunResult, statistics: Statistics) -> dict[str, object] | None:
    view = capability_view(result.capabilities, statistics.confidence_level)
    if view is None:
        return None
    paired = grid_of(view.paired) if view.paired is not None else None
    return {"note": view.note, "scores": grid_of(view.scores), "paired": paired, "tasks": grid_of(view.tasks)}


def verdict_view(gate: Sequence[GateVerdict] | None) -> dict[str, object] | None:
    """The banner: passed or failed, then every rule, failed ones first."""
    if gate is None:
        return None
    rules = []
    for v in verdicts.worst_first(gate):
        numbers = []
        if v.value is not None:
            numbers.append(f"value {format_number(v.value)} {format_bracket(v.ci_low, v.ci_high)}".strip())
        if v.threshold is not None:
            numbers.append(f"threshold {format_number(v.threshold)}")
        if v.p_value is not None:
            numbers.append(f"p = {format_p(v.p_value)}")
        if v.n is not None:
            numbers.append(f"n = {v.n}")
        where = " · ".join(
            part
            for part in (
                v.dataset,
                None if v.subset in (None, "all") else v.subset,
                f"{v.model} vs {v.baseline}" if v.model and v.baseline else v.model,
                v.metric,
            )
            if part
        )
        rules.append(
            {
                "status": v.status,
                "label": verdicts.LABELS[v.status],
                "rule": v.rule,
                "kind": v.kind.replace("_", "-"),
                "reason": v.reason,
                "where": where,
                "numbers": ", ".join(numbers),
            }
        )
    outcome = verdicts.outcome(gate)
    return {"outcome": outcome, "passed": outcome == "passed", "headline": verdicts.headline(gate), "rules": rules}


def sweep_steps(result: RunResult) -> dict[str, int]:
    """Step of every checkpoint model (`name@step`), and of the final `name` when it was trained here."""
    steps = {}
    for m in result.models:
        name, at, step = m.name.rpartition("@")
        if at and name and step.isdigit():
            steps[m.name] = int(step)
    runs = {name.rpartition("@")[0] for name in steps}
    training = result.training
    final_is_new = training is not None and training.steps not in steps.values()  # else a checkpoint has it
    if (
        training is not None
        and final_is_new
        and training.model in runs
        and training.model in {m.name for m in result.models}
    ):
        steps[training.model] = training.steps
    return steps if len(steps) >= 2 else {}


@dataclass(frozen=True)
class HeadlineView:
    """The tables a reader sees first for one dataset: every model with its intervals, each model against the
    anchor (Δ, interval, significance), the other models against each other, and the same by subset."""

    models: list[str]
    anchor: str
    headline: Grid
    versus: Grid | None
    matrices: list[Grid]
    subsets: Grid | None
    subset_deltas: Grid | None


def headline_view(result: RunResult, dataset: str) -> HeadlineView:
    """The headline tables of `dataset`, as the HTML report and the notebook display both show them."""
    metrics = [m for m in result.metrics if m.dataset == dataset]
    comparisons = [c for c in result.comparisons if c.dataset == dataset]
    primary = primary_comparisons(comparisons, result.reference)
    found = {(m.model, m.subset, m.metric): m for m in metrics}
    models = list(dict.fromkeys(m.model for m in metrics))
    subsets = sorted({m.subset for m in metrics} - {"all"})
    columns = [(key, title) for key, title in COLUMNS if any(m.metric == key for m in metrics)]
    direction = {m.metric: m.higher_is_better for m in metrics}
    header = [metric_title(key, direction[key]) for key, _ in columns] + ["n"]
    alpha = 1 - (result.statistics or Statistics()).confidence_level

    def cells(model: str, subset: str) -> list[Cell]:
        n = found.get((model, subset, "preference/accuracy"))
        return [_estimate(found.get((model, subset, key))) for key, _ in columns] + [Cell(str(n.n) if n else MISSING)]

    versus = [c for c in primary if c.subset == "all"]
    by_subset = [c for c in primary if c.subset != "all" and c.metric in {k for k, _ in COLUMNS} | set(MATRIX_METRICS)]
    return HeadlineView(
        models=models,
        anchor=versus[0].baseline if versus else (result.reference or ""),
        headline=Grid(["model", *header], [[Cell(model, css="l"), *cells(model, "all")] for model in models]),
        versus=_versus(versus, alpha) if versus else None,
        matrices=_matrices(other_comparisons(comparisons, result.reference), models, alpha),
        subsets=Grid(
            ["subset", "model", *header],
            [[Cell(s, css="l"), Cell(m, css="l"), *cells(m, s)] for s in subsets for m in models],
            labels=2,
        )
        if subsets
        else None,
        subset_deltas=_subset_deltas(by_subset, alpha) if by_subset else None,
    )


def _dataset_view(
    result: RunResult,
    dataset: str,
    n_pairs: int,
    pairs: Sequence[PairScore] | None,
    colors: Mapping[str, str],
    texts: Mapping[tuple[str, str], PairText],
    index: int,
) -> DatasetView:
    metrics = [m for m in result.metrics if m.dataset == dataset]
    comparisons = [c for c in result.comparisons if c.dataset == dataset]
    versus = [c for c in primary_comparisons(comparisons, result.reference) if c.subset == "all"]
    found = {(m.model, m.subset, m.metric): m for m in metrics}
    tables = headline_view(result, dataset)
    models = tables.models
    diagnostics = [
        (title, grid_of(table))
        for title, table in (
            ("Length", length_table(found, models)),
            ("Calibration", calibration_table(found, models, [r for r in result.reliability if r.dataset == dataset])),
            ("Rewards and likelihood displacement", displacement_table(found, models)),
        )
        if table is not None
    ]
    figures, note = _charts(result, dataset, metrics, models, pairs, colors, f"d{index}")
    return DatasetView(
        name=dataset,
        anchor=tables.anchor,
        n_pairs=n_pairs,
        headline=tables.headline,
        versus=tables.versus,
        matrices=tables.matrices,
        subsets=tables.subsets,
        subset_deltas=tables.subset_deltas,
        charts=figures,
        charts_note=note,
        diagnostics=diagnostics,
        length_notes=length_notes(found, models),
        flips=_flips(versus, texts, pairs, dataset),
    )


def _estimate(m: Metric | None) -> Cell:
    if m is None:
        return Cell(MISSING, css="flat")
    return Cell(format_number(m.value), format_bracket(m.ci_low, m.ci_high))


def _significance(c: Comparison, alpha: float) -> Cell:
    """'▲ better' / '▼ worse' when the BH-adjusted p < α (the arrow: the direction of Δ), 'n.s.' otherwise."""
    arrow = "▲" if c.value > 0 else "▼"
    if adjusted_p(c) >= alpha or c.value == 0:
        return Cell("n.s.", css="flat", title=f"adjusted p ≥ {alpha:.2g}: not significant at this level")
    if c.higher_is_better is None:
        return Cell(f"{arrow} changed", title="neither direction is better in itself")
    better = (c.value > 0) == c.higher_is_better
    return Cell(f"{arrow} better" if better else f"{arrow} worse", css="good" if better else "bad")


def _delta(c: Comparison, alpha: float) -> Cell:
    value = f"{c.value:+.3f}" if abs(c.value) < 100 else f"{c.value:+.1f}"
    sign = _significance(c, alpha)
    interval = format_bracket(c.ci_low, c.ci_high, signed=True)
    title = f"p = {format_p(c.p_value)}, adjusted (BH) {format_adjusted_p(c)}, n = {c.n}"
    return Cell(value, interval, css=sign.css, title=title)


def _versus(comparisons: Sequence[Comparison], alpha: float) -> Grid:
    """Each model against the anchor, a row per metric."""
    rows = []
    for c in comparisons:
        rows.append(
            [
                Cell(c.model, css="l"),
                Cell(metric_title(c.metric, c.higher_is_better), css="l"),
                Cell(format_number(c.baseline_value)),
                Cell(format_number(c.model_value)),
                _delta(c, alpha),
                Cell(format_p(c.p_value), title=c.test.replace("_", " ")),
                Cell(format_adjusted_p(c), title="Benjamini–Hochberg, over every comparison of the run"),
                _significance(c, alpha),
                Cell(str(c.flips.wrong_to_right) if c.flips else MISSING),
                Cell(str(c.flips.right_to_wrong) if c.flips else MISSING),
                Cell(format_number(c.mde)),
            ]
        )
    header = ["model", "metric", comparisons[0].baseline, "model", "Δ", "p", "p (BH)", "significance", "wrong→right"]
    return Grid([*header, "right→wrong", "MDE"], rows, labels=2)


def _matrices(comparisons: Sequence[Comparison], models: Sequence[str], alpha: float) -> list[Grid]:
    """Δ accuracy between the other models: row − column, coloured where significant."""
    grids = []
    for metric in MATRIX_METRICS:
        found = {(c.model, c.baseline): c for c in comparisons if c.subset == "all" and c.metric == metric}
        if not found:
            continue
        rows = [m for m in models if any(k[0] == m for k in found)]
        columns = [m for m in models if any(k[1] == m for k in found)]
        higher = next(iter(found.values())).higher_is_better
        grid_rows = [
            [Cell(row, css="l")]
            + [_matrix_cell(found[(row, column)], alpha) if (row, column) in found else Cell("") for column in columns]
            for row in rows
        ]
        grids.append(Grid([f"Δ {metric_title(metric, higher).strip()}, row − column", *columns], grid_rows))
    return grids


def _matrix_cell(c: Comparison, alpha: float) -> Cell:
    """Δ alone, coloured by significance; its interval and p in the tooltip (the matrix stays narrow)."""
    cell = _delta(c, alpha)
    return Cell(cell.text, css=cell.css, title=f"{cell.note} {cell.title}".strip())


def _subset_deltas(comparisons: Sequence[Comparison], alpha: float) -> Grid:
    """Δ per subset and model against the anchor: a column per metric."""
    metrics = list(dict.fromkeys(c.metric for c in comparisons))
    found = {(c.subset, c.model, c.metric): c for c in comparisons}
    keys = list(dict.fromkeys((c.subset, c.model) for c in sorted(comparisons, key=lambda c: c.subset)))
    direction = {c.metric: c.higher_is_better for c in comparisons}
    rows = [
        [Cell(subset, css="l"), Cell(model, css="l")]
        + [_delta(found[(subset, model, m)], alpha) if (subset, model, m) in found else Cell(MISSING) for m in metrics]
        for subset, model in keys
    ]
    return Grid(["subset", "model", *(f"Δ {metric_title(m, direction[m]).strip()}" for m in metrics)], rows, 2)


def grid_of(table: Table) -> Grid:
    """A markdown-side table as an HTML grid: numeric cells split into value and interval."""
    labels = len(table.alignment) - len(table.alignment.lstrip("l"))
    rows = []
    for row in table.rows:
        cells = []
        for i, text in enumerate(row):
            if i < labels or table.alignment[i] == "l":
                cells.append(Cell(text, css="l wrap" if len(text) > 40 else "l"))
            else:
                value, _, interval = text.partition(" [")
                cells.append(Cell(value, f"[{interval}" if interval else ""))
        rows.append(cells)
    return Grid(table.header, rows, labels)


def _charts(
    result: RunResult,
    dataset: str,
    metrics: Sequence[Metric],
    models: Sequence[str],
    pairs: Sequence[PairScore] | None,
    colors: Mapping[str, str],
    salt: str,
) -> tuple[list[Chart], str]:
    figures = [
        Chart(
            "Accuracy by subset",
            charts.accuracy_chart(metrics, models, colors, f"{salt}a"),
            f"Each model in each subset with its {_level(result)} interval; dashed: chance (0.5).",
        )
    ]
    note = ""
    series = _series(pairs, result.scoring.beta, models) if pairs else []
    if series:
        figures.append(
            Chart(
                "Reward margins",
                charts.margin_chart(series, colors, f"{salt}m"),
                "Distribution of r(chosen) − r(rejected) over pairs, per model with a reference; "
                "the outermost 1% of values are drawn at the edges.",
            )
        )
        shown = [series[round(i)] for i in np.linspace(0, len(series) - 1, min(len(series), SCATTER_PANELS))]
        some = "" if len(shown) == len(series) else f" {len(shown)} of {len(series)} models, evenly spaced."
        figures.append(
            Chart(
                "Chosen against rejected rewards",
                charts.reward_scatter_chart(shown, colors, f"{salt}r"),
                "One point per pair: below the dashed line the chosen answer has the higher reward. Both "
                "rewards below 0 means the model made both answers less likely than the reference did." + some,
            )
        )
    elif pairs is None:
        note = "Reward-margin charts need the per-pair file beside results.json; it was not found."
    if any(m.metric.startswith("length/") for m in metrics):
        figures.append(
            Chart(
                "Accuracy against Δlength",
                charts.length_chart(metrics, models, colors, f"{salt}l"),
                "Accuracy within bins of Δlength = chosen − rejected completion tokens. High accuracy only "
                "where the chosen answer is longer points to a length preference.",
            )
        )
    bins = [r for r in result.reliability if r.dataset == dataset and r.subset == "all"]
    if bins:
        figures.append(
            Chart(
                "Calibration",
                charts.calibration_chart(bins, colors, f"{salt}c"),
                "σ(margin) read as the probability that the chosen answer is preferred: mean confidence "
                "against accuracy per bin, with Wilson intervals; on the dashed line the model is calibrated.",
            )
        )
    return figures, note


def _series(pairs: Sequence[PairScore], beta: float, models: Sequence[str]) -> list[charts.Series]:
    """Rewards and margins per model with a reference, from the per-pair rows."""
    out = []
    for model in models:
        rows = [
            p for p in pairs if p.model == model and p.ref_logp_chosen is not None and p.ref_logp_rejected is not None
        ]
        if not rows:
            continue
        chosen = beta * np.array([p.logp_chosen - p.ref_logp_chosen for p in rows])  # type: ignore[operator]
        rejected = beta * np.array([p.logp_rejected - p.ref_logp_rejected for p in rows])  # type: ignore[operator]
        out.append(charts.Series(model, chosen - rejected, chosen, rejected))
    return out


def _flips(
    comparisons: Sequence[Comparison],
    texts: Mapping[tuple[str, str], PairText],
    pairs: Sequence[PairScore] | None,
    dataset: str,
) -> list[FlipGroup]:
    margins = {(p.model, p.id): p.logp_chosen - p.logp_rejected for p in pairs or ()}
    groups = []
    for c in comparisons:
        if c.metric != FLIP_METRIC or c.flips is None or not (c.flips.wrong_to_right or c.flips.right_to_wrong):
            continue

        def views(ids: list[str], c: Comparison = c) -> list[FlipView]:
            return [_flip_view(c, pair_id, texts.get((dataset, pair_id)), margins) for pair_id in spread(ids)]

        shown = set(spread(c.flips.wrong_to_right_ids)) | set(spread(c.flips.right_to_wrong_ids))
        rest = [
            i for i in c.flips.wrong_to_right_ids[:MAX_IDS] + c.flips.right_to_wrong_ids[:MAX_IDS] if i not in shown
        ]
        groups.append(
            FlipGroup(
                title=f"{c.model} vs {c.baseline}",
                wrong_to_right=views(c.flips.wrong_to_right_ids),
                right_to_wrong=views(c.flips.right_to_wrong_ids),
                n_wrong_to_right=c.flips.wrong_to_right,
                n_right_to_wrong=c.flips.right_to_wrong,
                more_ids=", ".join(rest),
            )
        )
    return groups


def _flip_view(
    c: Comparison, pair_id: str, text: PairText | None, margins: Mapping[tuple[str, str], float]
) -> FlipView:
    before, after = margins.get((c.baseline, pair_id)), margins.get((c.model, pair_id))
    moved = ""
    if before is not None and after is not None:
        moved = f"logp margin {c.baseline} {before:+.2f} → {c.model} {after:+.2f}"
    return FlipView(pair_id, text, moved)


def _generation_view(result: RunResult) -> dict[str, object]:
    generation = result.generation
    assert generation is not None
    tables = generation_tables(generation)
    by_prompt: dict[str, list[dict[str, object]]] = {}
    for s in generation.samples:
        by_prompt.setdefault(s.prompt_id, []).append(
            {
                "model": s.model + (f" #{s.index + 1}" if s.index else ""),
                "completion": clip(s.completion) or "(empty)",
                "meta": f"{s.n_tokens} tokens" + ("" if s.ended else ", cut at max_new_tokens"),
                "scores": [(judge, format_number(score)) for judge, score in s.scores.items()],
            }
        )
    prompts = [
        {"id": p.id, "text": clip(p.text), "samples": by_prompt.get(p.id, []), "open": i < OPEN_PROMPTS}
        for i, p in enumerate(generation.prompts)
    ]
    return {
        "decoding": generation.decoding,
        "max_new_tokens": generation.max_new_tokens,
        "stats": grid_of(tables.stats),
        "judges": grid_of(tables.judges) if tables.judges else None,
        "drift": grid_of(tables.drift) if tables.drift else None,
        "prompts": prompts,
    }


def _judged_view(result: RunResult) -> dict[str, object] | None:
    """The pairwise judges and backends (`evalkit.report.judged`), their tables as grids."""
    view = judged_view(result.generation) if result.generation is not None else None
    if view is None:
        return None
    win_rates = grid_of(view.win_rates) if view.win_rates else None
    backends = grid_of(view.backends) if view.backends else None
    return {"win_rates": win_rates, "meanings": view.meanings, "backends": backends, "cautions": view.cautions}


def _audit(result: RunResult) -> Grid:
    header = ["dataset", "model", "pairs", "scored", "completion truncated", "prompt fills max_length"]
    rows = [
        [
            Cell(a.dataset, css="l"),
            Cell(a.model, css="l"),
            Cell(str(a.n_pairs)),
            Cell(str(a.n_scored)),
            Cell(str(a.truncated)),
            Cell(str(len(a.prompt_too_long)), title=", ".join(a.prompt_too_long[:MAX_IDS])),
            Cell(str(a.prompt_not_prefix)),
            Cell(str(a.doubled_bos)),
        ]
        for a in result.audit
    ]
    return Grid([*header, "prompt not a token prefix", "doubled BOS"], rows, labels=2)


def _level(result: RunResult) -> str:
    return f"{(result.statistics or Statistics()).confidence_level:.0%}"


INLINE_STYLE = """
.evalkit-inline { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; }
.evalkit-inline h4 { margin: .9rem 0 .3rem; font-size: 1rem; }
.evalkit-inline p.note { color: #59636e; margin: .3rem 0; }
.evalkit-inline table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .3rem 0 .8rem; }
.evalkit-inline th, .evalkit-inline td { padding: .25rem .5rem; border-bottom: 1px solid #d1d9e0; text-align: right;
  white-space: nowrap; }
.evalkit-inline th { background: #f6f8fa; }
.evalkit-inline th.l, .evalkit-inline td.l { text-align: left; }
.evalkit-inline .ci { color: #59636e; font-size: .85em; margin-left: .3em; }
.evalkit-inline td.good { color: #1a7f37; background: #dafbe1; font-weight: 600; }
.evalkit-inline td.bad { color: #cf222e; background: #ffebe9; font-weight: 600; }
.evalkit-inline td.flat { color: #59636e; }
"""
"""The notebook display's style, every rule under `.evalkit-inline` so the notebook's own page is left alone."""


def render_inline(result: RunResult) -> str:
    """The report's headline tables as an HTML fragment for a notebook (`_repr_html_`): the gate's verdict,
    then per dataset every model with its intervals and each model against the anchor. Escaped like
    report.html (jinja2's autoescaping), with no script and nothing fetched."""
    views = [(d.name, d.n_pairs, headline_view(result, d.name)) for d in result.datasets]
    statistics = result.statistics or Statistics()
    return environment.get_template("inline.html.j2").render(
        result=result,
        style=Markup(INLINE_STYLE),
        level=f"{statistics.confidence_level:.0%}",
        alpha=f"{1 - statistics.confidence_level:.2g}",
        verdict=verdict_view(result.gate),
        datasets=views,
    )


def framed(document: str, height: int = 720) -> str:
    """A whole HTML report, shown inline: an iframe whose sandbox runs no script (the report's print helper
    included) and whose styles stay inside it. The document travels escaped in `srcdoc`."""
    return environment.from_string(
        '<iframe sandbox="" referrerpolicy="no-referrer" style="width:100%;height:{{ height }}px;'
        'border:1px solid #d1d9e0" srcdoc="{{ document }}"></iframe>'
    ).render(document=document, height=height)
