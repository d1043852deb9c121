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

from markupsafe import Markup

from evalkit.metrics.flips import primary_comparisons
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report import charts, curves
from evalkit.report.best_of_n import BEST_OF_N, best_of_n_views
from evalkit.report.diagnostics import (
    CapabilityView,
    capability_view,
    generation_tables,
    rendering_table,
    scoring_settings,
)
from evalkit.report.explorer import SCRIPT as EXPLORER_SCRIPT
from evalkit.report.explorer import explorer_data, json_block
from evalkit.report.figures import Chart, dataset_charts
from evalkit.report.flipped import FlipGroup, flip_groups
from evalkit.report.formats import format_number
from evalkit.report.grids import Grid, grid_of
from evalkit.report.jinja import clip, environment, render
from evalkit.report.judged import judged_view
from evalkit.report.rewardbench import sections_views
from evalkit.report.served import served_table
from evalkit.report.statements import verdict_sentence, verdict_view
from evalkit.report.views import (
    TRAINER_TITLES,
    DatasetView,
    audit_table,
    dataset_view,
)
from evalkit.results.pairs import PairScore
from evalkit.results.schema import DATASET_UNITS, RunResult, TrainingInfo
from evalkit.results.texts import ShownText

OPEN_PROMPTS = 3
"""Generation prompts shown unfolded."""
PRINT_SCRIPT = 'addEventListener("beforeprint",()=>{for(const d of document.querySelectorAll("details"))d.open=true})'
REPORT_SCRIPT = PRINT_SCRIPT + ";\n" + EXPLORER_SCRIPT
"""The report's one script: the print helper, then the pair explorer (`evalkit.report.explorer`)."""


def csp(script: str) -> str:
    """A Content-Security-Policy that runs `script` (by its hash) and nothing else, and fetches nothing."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"


CSP = csp(PRINT_SCRIPT)
"""The policy of a page whose only script is the print helper (`evalkit compare`'s page)."""
REPORT_CSP = csp(REPORT_SCRIPT)


@dataclass(frozen=True)
class HtmlDataset:
    """One dataset as the HTML report shows it: the shared view's tables as grids, then charts and flips."""

    name: str
    anchor: str
    n_pairs: int
    headline: Grid
    versus: list[tuple[str, Grid]]
    """Each model against the anchor: (title, grid)."""
    matrices: list[Grid]
    subsets: Grid | None
    subset_deltas: Grid | None
    objectives: Grid | None
    """Each model's objective and its metrics, when the run names objectives."""
    objectives_note: str
    charts: list[Chart]
    charts_note: str
    diagnostics: list[tuple[str, Grid]]
    length_notes: list[str]
    flips: list[FlipGroup] = field(default_factory=list)
    baselines_note: str = ""
    unit: str = "pairs"
    """What `n_pairs` counts (`completions` for an unpaired dataset)."""


def html_grids(view: DatasetView) -> dict[str, object]:
    """The shared view's tables of one dataset as grids (the report and the notebook display show them)."""
    return {
        "anchor": view.anchor,
        "headline": grid_of(view.headline),
        "versus": [(s.title, grid_of(s.table)) for s in view.comparisons],
        "matrices": [grid_of(m) for m in view.matrices],
        "subsets": grid_of(view.subsets) if view.subsets else None,
        "subset_deltas": grid_of(view.subset_comparisons) if view.subset_comparisons else None,
        "objectives": grid_of(view.objectives) if view.objectives else None,
        "objectives_note": view.objectives_note,
        "unit": view.unit,
    }


def render_html(
    result: RunResult,
    pairs: Mapping[str, Sequence[PairScore]] | None = None,
    texts: Mapping[str, Mapping[str, ShownText]] | None = None,
) -> str:
    """The HTML report of `result`; `pairs` (per dataset) feed the per-pair charts, flip margins and the pair
    explorer, `texts` (per dataset, by pair id: `evalkit.results.texts`) the explorer's prompts and answers
    (without them, it shows the texts results.json keeps of flipped pairs)."""
    pairs = pairs or {}
    statistics = result.effective_statistics
    colors = charts.palette(list(dict.fromkeys([m.name for m in result.models] + [m.model for m in result.metrics])))
    kept = {(t.dataset, t.id): t for t in result.flip_examples}
    datasets = [
        _dataset(result, d.name, d.n_pairs, pairs.get(d.name), colors, kept, i)
        for i, d in enumerate(result.datasets)
        if d.format != BEST_OF_N
    ]
    steps = sweep_steps(result)
    trainings = [
        {
            "run": run,
            "what": TRAINER_TITLES[run.trainer or "DPOTrainer"],
            "chart": Chart(
                "Loss, reward accuracy and margin against step",
                curves.training_chart(run.curve, "training" if i == 0 else f"training{i}", scored_steps(result, run)),
                "TRL's logged values against step: training values are means over one batch (faint), smoothed "
                "(solid); eval on the held-out split; dotted: the checkpoints this report scored.",
            )
            if run.curve
            else None,
        }
        for i, run in enumerate(result.training_runs)
    ]
    sweep = None
    if steps:
        sweep = Chart(
            "Reward accuracy, preference accuracy, margin and loss of each checkpoint",
            curves.sweep_chart(result.metrics, steps, "sweep"),
            "Each checkpoint (a model named name@step) on all pairs of each dataset, with its interval as a band.",
        )
    capabilities = capability_view(result.capabilities, statistics.confidence_level)
    return render(
        "html",
        "report.html.j2",
        result=result,
        csp=REPORT_CSP,
        script=Markup(REPORT_SCRIPT),
        explorer=_explorer(result, pairs, texts, datasets),
        level=f"{statistics.confidence_level:.0%}",
        alpha=f"{1 - statistics.confidence_level:.2g}",
        power=f"{statistics.power:.0%}",
        sentence=verdict_sentence(result),
        verdict=verdict_view(result.gate),
        datasets=datasets,
        rewardbench_sections=[
            {"name": view.name, "table": grid_of(view.table), "note": view.note} for view in sections_views(result)
        ],
        best_of_n=[
            {
                "name": view.name,
                "n_items": view.n_items,
                "scores": grid_of(view.scores),
                "ties": grid_of(view.ties) if view.ties is not None else None,
                "rewards": grid_of(view.rewards) if view.rewards is not None else None,
                "comparisons": grid_of(view.comparisons) if view.comparisons is not None else None,
                "note": view.note,
            }
            for view in best_of_n_views(result)
        ],
        flip_groups=sum(len(d.flips) for d in datasets),
        trainings=trainings,
        sweep=sweep,
        generation=_generation_view(result) if result.generation is not None else None,
        judged=_judged_view(result),
        capabilities=_capabilities_grids(capabilities) if capabilities is not None else None,
        audit=grid_of(audit_table(result.audit)),
        packages=", ".join(f"{k} {v}" for k, v in result.environment.packages.items()),
        scoring=scoring_settings(result),
        rendering=grid_of(table) if (table := rendering_table(result.models)) is not None else None,
        served=grid_of(served) if (served := served_table(result.models)) is not None else None,
    )


def _explorer(
    result: RunResult,
    pairs: Mapping[str, Sequence[PairScore]],
    texts: Mapping[str, Mapping[str, ShownText]] | None,
    datasets: Sequence[HtmlDataset],
) -> Markup | None:
    kept: dict[str, dict[str, ShownText]] = {}
    for t in result.flip_examples:
        kept.setdefault(t.dataset, {})[t.id] = t
    found = {name: (texts or {}).get(name) or kept.get(name, {}) for name in pairs}
    data = explorer_data(result, pairs, found, {d.name: d.anchor for d in datasets if d.anchor})
    return json_block(data) if data is not None else None


def _capabilities_grids(view: CapabilityView) -> dict[str, object]:
    paired = grid_of(view.paired) if view.paired is not None else None
    return {"note": view.note, "scores": grid_of(view.scores), "paired": paired, "tasks": grid_of(view.tasks)}


def scored_steps(result: RunResult, training: TrainingInfo) -> dict[str, int]:
    """Step of every scored checkpoint (`name@step`) of the training run, and of the trained model itself."""
    steps = {}
    for m in result.models:
        name, at, step = m.name.rpartition("@")
        # With several runs, a checkpoint is drawn on the curve of the run that trained its model.
        if at and step.isdigit() and (name == training.model or len(result.training_runs) == 1):
            steps[m.name] = int(step)
    if training.model in {m.name for m in result.models}:
        steps[training.model] = training.steps
    return steps


def sweep_steps(result: RunResult) -> dict[str, int]:
    """Step of every checkpoint model (`name@step`), and of the final `name` when it was trained here."""
    steps = {}
    for m in result.models:
        name, at, step = m.name.rpartition("@")
        if at and name and step.isdigit():
            steps[m.name] = int(step)
    runs = {name.rpartition("@")[0] for name in steps}
    for training in result.training_runs:
        final_is_new = training.steps not in steps.values()  # else a checkpoint has it
        if final_is_new and training.model in runs and training.model in {m.name for m in result.models}:
            steps[training.model] = training.steps
    return steps if len(steps) >= 2 else {}


def _dataset(
    result: RunResult,
    dataset: str,
    n_pairs: int,
    pairs: Sequence[PairScore] | None,
    colors: Mapping[str, str],
    texts: Mapping[tuple[str, str], ShownText],
    index: int,
) -> HtmlDataset:
    view = dataset_view(result, dataset, n_pairs)
    comparisons = [c for c in result.comparisons if c.dataset == dataset]
    versus = [c for c in primary_comparisons(comparisons, result.reference) if c.subset == ALL_SUBSETS]
    diagnostics = [
        (title, grid_of(table))
        for title, table in (
            ("Length", view.length),
            ("Calibration", view.calibration),
            ("Rewards and likelihood displacement", view.displacement),
        )
        if table is not None
    ]
    # Labelled completions have their table only: the charts are of pairs' accuracies and margins.
    unpaired = view.unit == DATASET_UNITS["unpaired"]
    figures, note = ([], "") if unpaired else dataset_charts(result, dataset, view.models, pairs, colors, f"d{index}")
    return HtmlDataset(
        name=dataset,
        n_pairs=n_pairs,
        **html_grids(view),  # type: ignore[arg-type]
        charts=figures,
        charts_note=note,
        diagnostics=diagnostics,
        length_notes=view.length_notes,
        flips=flip_groups(versus, texts, pairs, dataset),
        baselines_note=view.baselines_note,
    )


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
.evalkit-inline .toggle { display: none; }
"""
"""The notebook display's style, every rule under `.evalkit-inline` so the notebook's own page is left alone."""


def render_inline(result: RunResult) -> str:
    """The report's headline tables as an HTML fragment for a notebook (`_repr_html_`): the gate's verdict,
    then per dataset every model with its intervals and each model against the anchor. Escaped like
    report.html (jinja2's autoescaping), with no script and nothing fetched."""
    views = [
        (d.name, d.n_pairs, html_grids(dataset_view(result, d.name, d.n_pairs)))
        for d in result.datasets
        if d.format != BEST_OF_N
    ]
    statistics = result.effective_statistics
    return render(
        "html",
        "inline.html.j2",
        result=result,
        style=Markup(INLINE_STYLE),
        level=f"{statistics.confidence_level:.0%}",
        alpha=f"{1 - statistics.confidence_level:.2g}",
        sentence=verdict_sentence(result),
        verdict=verdict_view(result.gate),
        datasets=views,
    )


def framed(document: str, height: int = 720) -> str:
    """A whole HTML report, shown inline: an iframe whose sandbox runs no script (the report's print helper
    included) and whose styles stay inside it. The document travels escaped in `srcdoc`."""
    return (
        environment("html")
        .from_string(
            '<iframe sandbox="" referrerpolicy="no-referrer" style="width:100%;height:{{ height }}px;'
            'border:1px solid #d1d9e0" srcdoc="{{ document }}"></iframe>'
        )
        .render(document=document, height=height)
    )
