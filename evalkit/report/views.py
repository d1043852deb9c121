"""What every report shows, decided once: per dataset the headline, each model against the anchor, the other
models against each other, the same by subset, the diagnostics; the gate's rules; the tokenization audit.

`evalkit.report.document` writes these as markdown, `evalkit.report.html` as HTML (`grids.grid_of`), the
terminal as rich tables. Cells are plain text (`Table`): escaped when written as markdown, autoescaped in
HTML. Which comparisons come first and which flipped pairs keep their text is `evalkit.metrics.flips`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.metrics import names
from evalkit.metrics.flips import other_comparisons, primary_comparisons
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report.baseline_rows import (
    baseline_row,
    baselines_of,
    best_baseline,
    row_title,
    shortfalls,
)
from evalkit.report.diagnostics import (
    Found,
    calibration_table,
    displacement_table,
    length_notes,
    length_table,
)
from evalkit.report.formats import (
    MISSING,
    adjusted_p,
    format_adjusted_p,
    format_bracket,
    format_count,
    format_delta,
    format_estimate,
    format_number,
    format_p,
    format_signed,
)
from evalkit.report.objectives import objectives_note, objectives_table
from evalkit.report.tables import Table
from evalkit.report.unpaired import unpaired_objectives_note, unpaired_objectives_table, unpaired_table
from evalkit.results.completions import CompletionScore, read_completion_scores
from evalkit.results.estimates import Comparison
from evalkit.results.pairs import PairScore, pairs_path, read_pair_scores
from evalkit.results.schema import DATASET_UNITS, RunResult, TokenizationAudit

COLUMNS = ["preference/accuracy", "rewards/accuracies", "rewards/ties", "rewards/margins", "loss"]
"""The headline's metrics in the order a reviewer reads them."""

MATRIX_METRICS = ["preference/accuracy", "rewards/accuracies"]
"""Accuracies whose differences between the other models (not against the reference) are tabulated."""

MAX_IDS = 50
"""Flipped pair ids listed per direction; results.json has them all."""


TRAINER_TITLES = {
    "DPOTrainer": "DPO",
    "CPOTrainer": "CPO",
    "ORPOTrainer": "ORPO",
    "KTOTrainer": "KTO",
    "RewardTrainer": "reward model",
}
"""What a training run's steps were, by the TRL trainer that ran them (the objective's settings are in the
objectives table)."""


def read_pairs(result: RunResult, results_dir: Path) -> dict[str, list[PairScore]]:
    """Per-pair scores of each dataset whose file lies beside the results (`DatasetInfo.pairs_file`).

    A dataset whose file is missing (a results.json copied on its own) is left out; the charts that
    need per-pair values say so in one line.
    """
    found = {d.name: pairs_path(results_dir, d) for d in result.datasets if d.format == "pairs"}
    return {name: read_pair_scores(path) for name, path in found.items() if path is not None}


def read_completions(result: RunResult, results_dir: Path) -> dict[str, list[CompletionScore]]:
    """Per-completion scores of each dataset of labelled completions whose file lies beside the results (a missing
    file leaves its dataset out, as `read_pairs` does)."""
    found = {d.name: pairs_path(results_dir, d) for d in result.datasets if d.format == "unpaired"}
    return {name: read_completion_scores(path) for name, path in found.items() if path is not None}


def alpha_of(result: RunResult) -> float:
    """The tests' significance level: 1 − the confidence level of the intervals."""
    return 1 - result.effective_statistics.confidence_level


@dataclass(frozen=True)
class Significance:
    """How a comparison reads at the run's α, on its Benjamini–Hochberg adjusted p."""

    text: str
    """'▲ better', '▼ worse', '▲ changed' or 'n.s.': the arrow is the direction of Δ."""
    mark: str
    """`good`, `bad`, `flat`, or '' (a change neither good nor bad)."""
    tip: str = ""


def significance(c: Comparison, alpha: float) -> Significance:
    arrow = "▲" if c.value > 0 else "▼"
    if adjusted_p(c) >= alpha or c.value == 0:
        return Significance("n.s.", "flat", f"adjusted p ≥ {alpha:.2g}: not significant at this level")
    if c.higher_is_better is None:
        return Significance(f"{arrow} changed", "", "neither direction is better in itself")
    better = (c.value > 0) == c.higher_is_better
    return Significance(f"{arrow} better" if better else f"{arrow} worse", "good" if better else "bad")


def _test_tip(c: Comparison) -> str:
    return f"p = {format_p(c.p_value)}, adjusted (BH) {format_adjusted_p(c)}, n = {c.n}"


@dataclass(frozen=True)
class FlipList:
    title: str
    wrong_to_right: int
    right_to_wrong: int
    wrong_to_right_ids: str
    right_to_wrong_ids: str


@dataclass(frozen=True)
class ComparisonSection:
    """One model against one baseline on all pairs: a row per metric."""

    model: str
    baseline: str
    n: int
    table: Table
    flips: list[FlipList]
    comparisons: list[Comparison]

    @property
    def title(self) -> str:
        return f"{self.model} vs {self.baseline}"


@dataclass(frozen=True)
class DatasetView:
    """Everything both reports show about one dataset, as tables of plain text."""

    name: str
    n_pairs: int
    models: list[str]
    anchor: str
    headline: Table
    comparisons: list[ComparisonSection] = field(default_factory=list)
    matrices: list[Table] = field(default_factory=list)
    """Accuracy differences between the models other than the anchor: row − column."""
    matrices_note: str = ""
    subsets: Table | None = None
    subset_comparisons: Table | None = None
    subset_comparisons_title: str = ""
    length: Table | None = None
    length_notes: list[str] = field(default_factory=list)
    calibration: Table | None = None
    displacement: Table | None = None
    objectives: Table | None = None
    """Which objective each model was scored with and its metrics; None when the run names none."""
    objectives_note: str = ""
    """Whether the models share an objective, and what is comparable when they do not."""
    unit: str = "pairs"
    """What `n_pairs` counts: `completions` for an unpaired dataset, whose headline is its table
    (`evalkit.report.unpaired`)."""
    baselines_note: str = ""
    """How the content-blind baselines' rows read, and which models do not beat them; "" for results without them."""


BASELINES_NOTE = (
    "Rows “baseline: …” pick an answer without reading it: the longer or the shorter (by tokens or characters; a tie "
    "in length scores ½) or at random. † marks a model that does not beat every baseline at α = {alpha:.2g} (one-sided "
    "paired tests on the same pairs; the p of the hardest baseline): where † stands, length alone explains the "
    "accuracy as well as the model does."
)


def dataset_view(result: RunResult, dataset: str, n_pairs: int) -> DatasetView:
    """Everything the reports show about one dataset."""
    metrics = [m for m in result.metrics if m.dataset == dataset]
    comparisons = [c for c in result.comparisons if c.dataset == dataset]
    primary = primary_comparisons(comparisons, result.reference)
    found: Found = {(m.model, m.subset, m.metric): m for m in metrics}
    models = list(dict.fromkeys(m.model for m in metrics))
    subsets = sorted({m.subset for m in metrics} - {ALL_SUBSETS})
    level = f"{result.effective_statistics.confidence_level:.0%}"
    if any(d.name == dataset and d.format == "unpaired" for d in result.datasets):
        # Models with rewards against each other on the reward AUC, on all completions (per subset: results.json).
        overall = [c for c in comparisons if c.subset == ALL_SUBSETS]
        return DatasetView(
            name=dataset,
            n_pairs=n_pairs,
            models=models,
            anchor=overall[0].baseline if overall else (result.reference or ""),
            headline=unpaired_table(found, models, subsets),
            comparisons=_comparison_sections(overall, f"Δ [{level} CI]", alpha_of(result)),
            objectives=unpaired_objectives_table(result, found, models),
            objectives_note=unpaired_objectives_note(result),
            unit=DATASET_UNITS["unpaired"],
        )
    present = {m.metric for m in metrics}
    columns = [key for key in COLUMNS if key in present]
    direction = {m.metric: m.higher_is_better for m in metrics}
    header = [names.heading(key, direction[key]) for key in columns] + ["n"]
    alpha = alpha_of(result)
    short = {(f.model, f.subset, f.metric) for f in shortfalls(result, alpha) if f.dataset == dataset}
    accuracies = [key for key in columns if names.metric(key).accuracy]

    def cells(model: str, subset: str) -> list[str]:
        row = [
            format_estimate(found.get((model, subset, key))) + (" †" if (model, subset, key) in short else "")
            for key in columns
        ]
        cell = found.get((model, subset, "preference/accuracy"))  # every model has it, over every pair
        return [*row, str(cell.n) if cell else MISSING]

    headline_baselines = [
        [row_title(b), *baseline_row(b, columns, accuracies), str(b.n)]
        for b in baselines_of(result, dataset, ALL_SUBSETS)
    ]
    subset_baselines = {
        subset: [subset, "best " + row_title(b), *baseline_row(b, columns, accuracies), str(b.n)]
        for subset in subsets
        if (b := best_baseline(result, dataset, subset)) is not None
    }

    overall = [c for c in primary if c.subset == ALL_SUBSETS]
    by_subset = [c for c in primary if c.subset != ALL_SUBSETS]
    return DatasetView(
        name=dataset,
        n_pairs=n_pairs,
        models=models,
        anchor=overall[0].baseline if overall else (result.reference or ""),
        headline=Table(
            ["model", *header], [[model, *cells(model, ALL_SUBSETS)] for model in models] + headline_baselines
        ),
        comparisons=_comparison_sections(overall, f"Δ [{level} CI]", alpha),
        matrices=delta_matrices(other_comparisons(comparisons, result.reference), models, alpha),
        matrices_note=(
            f"Between the other models, on all pairs: row − column; * where p < {alpha:.2g} "
            "after the Benjamini–Hochberg adjustment over every comparison of the run (Tango's score test)."
        ),
        subsets=Table(
            ["subset", "model", *header],
            [
                row
                for subset in subsets
                for row in [[subset, model, *cells(model, subset)] for model in models]
                + ([subset_baselines[subset]] if subset in subset_baselines else [])
            ],
            align="ll" + "r" * len(header),
        )
        if subsets
        else None,
        subset_comparisons=_subset_comparisons(by_subset, f"Δ [{level} CI]", alpha),
        subset_comparisons_title=_subset_comparisons_title(by_subset),
        length=length_table(found, models),
        length_notes=length_notes(found, models),
        calibration=calibration_table(found, models, [r for r in result.reliability if r.dataset == dataset]),
        displacement=displacement_table(found, models),
        objectives=objectives_table(result, found, models),
        objectives_note=objectives_note(result),
        baselines_note=BASELINES_NOTE.format(alpha=alpha) if headline_baselines else "",
    )


def delta_matrices(comparisons: Sequence[Comparison], models: Sequence[str], alpha: float) -> list[Table]:
    """Accuracy differences between the models in `comparisons` on all pairs: row model − column model.

    A cell reads '+0.044*', the star when the BH-adjusted p < `alpha`. One table per accuracy in `MATRIX_METRICS`.
    """
    tables = []
    for metric in MATRIX_METRICS:
        cells = {(c.model, c.baseline): c for c in comparisons if c.subset == ALL_SUBSETS and c.metric == metric}
        if not cells:
            continue
        rows = [m for m in models if any(key[0] == m for key in cells)]
        columns = [m for m in models if any(key[1] == m for key in cells)]
        higher = next(iter(cells.values())).higher_is_better
        table_rows, marks, tips = [], {}, {}
        for i, row in enumerate(rows):
            line = [row]
            for j, column in enumerate(columns, start=1):
                c = cells.get((row, column))
                if c is None:
                    line.append("")
                    continue
                line.append(format_signed(c.value) + ("*" if adjusted_p(c) < alpha else ""))
                marks[(i, j)] = significance(c, alpha).mark
                tips[(i, j)] = f"{format_bracket(c.ci_low, c.ci_high, signed=True)} {_test_tip(c)}".strip()
            table_rows.append(line)
        title = f"Δ {names.heading(metric, higher).strip()}"
        tables.append(Table([title, *columns], table_rows, marks=marks, tips=tips))
    return tables


def _comparison_sections(comparisons: list[Comparison], delta: str, alpha: float) -> list[ComparisonSection]:
    """One table per (model, baseline): a row per metric. The key columns first (metric, Δ with its interval,
    p, verdict), what a phone folds away after them."""
    sections = []
    for model, baseline in dict.fromkeys((c.model, c.baseline) for c in comparisons):
        rows = [c for c in comparisons if (c.model, c.baseline) == (model, baseline)]
        header = ["metric", delta, "p", "verdict", baseline, model, "p (BH)", "Wilcoxon p"]
        marks = {(i, j): significance(c, alpha).mark for i, c in enumerate(rows) for j in (1, 3)}
        table = Table(
            [*header, "wrong→right", "right→wrong", "MDE"],
            [
                [
                    names.heading(c.metric, c.higher_is_better),
                    format_delta(c),
                    format_p(c.p_value),
                    significance(c, alpha).text,
                    format_number(c.baseline_value),
                    format_number(c.model_value),
                    format_adjusted_p(c),
                    format_p(c.wilcoxon_p_value) if c.wilcoxon_p_value is not None else MISSING,
                    format_count(c.flips.wrong_to_right if c.flips else None),
                    format_count(c.flips.right_to_wrong if c.flips else None),
                    format_number(c.mde),
                ]
                for c in rows
            ],
            align="l" + "r" * 10,
            marks=marks,
            tips={(i, 1): _test_tip(c) for i, c in enumerate(rows)}
            | {(i, 3): significance(c, alpha).tip for i, c in enumerate(rows)},
            key_columns=4,
        )
        flips = [
            FlipList(
                title=names.title(c.metric),
                wrong_to_right=c.flips.wrong_to_right,
                right_to_wrong=c.flips.right_to_wrong,
                wrong_to_right_ids=_ids(c.flips.wrong_to_right_ids),
                right_to_wrong_ids=_ids(c.flips.right_to_wrong_ids),
            )
            for c in rows
            if c.flips is not None and (c.flips.wrong_to_right or c.flips.right_to_wrong)
        ]
        sections.append(ComparisonSection(model, baseline, rows[0].n, table, flips, rows))
    return sections


def _subset_comparisons(comparisons: list[Comparison], delta: str, alpha: float) -> Table | None:
    """Every comparison per subset (the comparison column only when there is more than one); key columns first."""
    if not comparisons:
        return None
    rows = sorted(comparisons, key=lambda c: c.subset)  # stable: keeps the model and metric order
    several = len({(c.model, c.baseline) for c in rows}) > 1
    header = ["subset", *(["comparison"] if several else []), "metric"]
    at = len(header)
    header += [delta, "p", "verdict", "p (BH)", "wrong→right", "right→wrong", "n"]
    return Table(
        header,
        [
            [
                c.subset,
                *([f"{c.model} vs {c.baseline}"] if several else []),
                names.heading(c.metric, c.higher_is_better),
                format_delta(c),
                format_p(c.p_value),
                significance(c, alpha).text,
                format_adjusted_p(c),
                format_count(c.flips.wrong_to_right if c.flips else None),
                format_count(c.flips.right_to_wrong if c.flips else None),
                str(c.n),
            ]
            for c in rows
        ],
        align="l" * at + "r" * 7,
        marks={(i, j): significance(c, alpha).mark for i, c in enumerate(rows) for j in (at, at + 2)},
        tips={(i, at): _test_tip(c) for i, c in enumerate(rows)},
        key_columns=at + 3,
    )


def _subset_comparisons_title(comparisons: list[Comparison]) -> str:
    pairs = list(dict.fromkeys((c.model, c.baseline) for c in comparisons))
    if len(pairs) == 1:
        return f"{pairs[0][0]} vs {pairs[0][1]}, by subset:"
    return "Comparisons by subset:"


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS])
    if len(ids) > MAX_IDS:
        shown += f" … and {len(ids) - MAX_IDS} more (all in results.json)"
    return shown or MISSING


AUDIT_COUNTS = [
    "completion truncated",
    "prompt fills max_length (left out)",
    "prompt not a token prefix",
    "doubled BOS",
]


def audit_counts(a: TokenizationAudit) -> list[int]:
    """The audit's counts in the order of `AUDIT_COUNTS`."""
    return [a.truncated, len(a.prompt_too_long), a.prompt_not_prefix, a.doubled_bos]


def audit_table(audits: Sequence[TokenizationAudit]) -> Table:
    """The tokenization audit: per dataset and model, what scoring had to cut or could not score as rendered."""
    rows = [[a.dataset, a.model, str(a.n_pairs), str(a.n_scored), *map(str, audit_counts(a))] for a in audits]
    tips = {(i, 5): ", ".join(a.prompt_too_long[:MAX_IDS]) for i, a in enumerate(audits) if a.prompt_too_long}
    return Table(["dataset", "model", "pairs", "scored", *AUDIT_COUNTS], rows, "llrrrrrr", tips=tips)
