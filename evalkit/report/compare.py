"""`evalkit compare`: two runs side by side, e.g. a candidate against the last release.

Two results files are compared on the (dataset, subset, model, metric) cells both have: each
run's value with its interval, Δ = candidate − baseline, and whether the two intervals overlap.
That is not a paired test: the runs may have scored other pairs (another sample or version of
the data: the fingerprints tell), with other code. Disjoint intervals are strong evidence of a
difference; overlapping ones are no evidence of none (two overlapping 95% intervals can still
differ significantly).

Models are matched by role and fingerprint (`evalkit.results.matching`), not by display name, so a
`bench --model` run (`candidate`, `reference`) compares with the suite run it is gated against
(`aligned`, `base`); datasets by name, else by fingerprint. Every match made under another name
is stated in the notes.

Where both runs' per-pair files are at hand and a model scored the same pair ids of the same
data (equal dataset fingerprints) in both, its accuracies and margin are also compared pair by
pair, as within one run (`evalkit.metrics.paired.paired_test`): Tango's score interval and test for
accuracies, a paired t interval and test for the margin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from markupsafe import Markup
from rich.table import Table as RichTable

from evalkit.config.objectives import objective_in
from evalkit.console import plain
from evalkit.errors import EvalkitError
from evalkit.metrics import names
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report.diagnostics import records_every_scoring_setting, scoring_settings
from evalkit.report.formats import (
    MISSING,
    format_count,
    format_delta,
    format_estimate,
    format_number,
    format_p,
    format_signed,
)
from evalkit.report.grids import Grid, grid_of
from evalkit.report.html import CSP, PRINT_SCRIPT
from evalkit.report.jinja import render
from evalkit.report.tables import Table
from evalkit.report.views import COLUMNS, read_completions, read_pairs
from evalkit.results.completions import CompletionScore
from evalkit.results.estimates import Comparison, Metric, Statistics
from evalkit.results.files import claim_output, read_results, write_texts
from evalkit.results.matching import Counterpart, counterparts, dataset_counterpart
from evalkit.results.pairs import PairScore
from evalkit.results.schema import RunResult

HEADLINE = COLUMNS
UNPAIRED_HEADLINE = ("objective/auc", "trl/rewards/chosen", "trl/rewards/rejected", "trl/kl")
"""The headline of a dataset of labelled completions: the reward AUC, the mean reward of each label, KTO's KL point."""
PAIRED = ("preference/accuracy", "rewards/accuracies", "rewards/margins")
"""What two runs are compared on pair by pair (rewards only where both runs have a reference); on labelled
completions, the same model's reward AUC on the same completion ids (`evalkit.metrics.unpaired.compare_unpaired`)."""


@dataclass(frozen=True)
class MetricDelta:
    """One cell present in both runs."""

    baseline: Metric
    candidate: Metric

    @property
    def delta(self) -> float:
        return self.candidate.value - self.baseline.value

    @property
    def overlap(self) -> bool | None:
        """Whether the two intervals overlap; None when either has none."""
        b, c = self.baseline, self.candidate
        if None in (b.ci_low, b.ci_high, c.ci_low, c.ci_high):
            return None
        return bool(b.ci_low <= c.ci_high and c.ci_low <= b.ci_high)  # type: ignore[operator]

    @property
    def verdict(self) -> str:
        """'overlap', or for disjoint intervals 'better'/'worse'/'changed' by the metric's direction."""
        if self.overlap is None:
            return MISSING
        if self.overlap:
            return "overlap"
        higher = self.candidate.higher_is_better
        if higher is None:
            return "disjoint: changed"
        return "disjoint: better" if (self.delta > 0) == higher else "disjoint: worse"


@dataclass(frozen=True)
class RunComparison:
    baseline: RunResult
    candidate: RunResult
    baseline_path: str
    candidate_path: str
    deltas: list[MetricDelta]
    paired: list[Comparison] = field(default_factory=list)
    """Each model on the same pairs in both runs: `model` is its name in the candidate run, `baseline` in the
    baseline run; Δ = candidate − baseline, as within one run."""
    notes: list[str] = field(default_factory=list)
    """What makes the runs hard to compare: other data, models or datasets in only one run."""


def compare_runs(
    baseline: RunResult,
    candidate: RunResult,
    baseline_pairs: Mapping[str, Sequence[PairScore]] | None = None,
    candidate_pairs: Mapping[str, Sequence[PairScore]] | None = None,
    paths: tuple[str, str] = ("baseline", "candidate"),
    completions: tuple[Mapping[str, Sequence[CompletionScore]], Mapping[str, Sequence[CompletionScore]]] = ({}, {}),
) -> RunComparison:
    """Compare two runs on the cells both have; pair by pair where both per-pair files allow it, and on labelled
    completions completion by completion where both per-completion files (`completions`: baseline's, candidate's) do."""
    matched = counterparts(candidate, baseline)
    models = {name: match.name for name, match in matched.items()}
    datasets = {d.name: dataset_counterpart(d.name, candidate, baseline) for d in candidate.datasets}
    before = {(m.dataset, m.subset, m.model, m.metric): m for m in baseline.metrics}
    deltas = [
        MetricDelta(before[key], m)
        for m in candidate.metrics
        if (key := (datasets.get(m.dataset), m.subset, models.get(m.model), m.metric)) in before
    ]
    notes = _notes(baseline, candidate, matched, datasets)
    paired = []
    fingerprints = {d.name: d.fingerprint for d in baseline.datasets}
    for d in candidate.datasets:
        name_before = datasets[d.name]
        if name_before is None or fingerprints.get(name_before) != d.fingerprint:
            continue
        if d.format == "unpaired":
            scored = completions[0].get(name_before), completions[1].get(d.name)
            if scored[0] and scored[1]:
                paired += _paired_auc(d.name, scored[0], scored[1], baseline, candidate, models)
            continue
        rows_before, rows_after = (baseline_pairs or {}).get(name_before), (candidate_pairs or {}).get(d.name)
        if rows_before and rows_after:
            statistics = candidate.effective_statistics
            beta = baseline.scoring.beta, candidate.scoring.beta
            paired += _paired(d.name, rows_before, rows_after, *beta, statistics, models)
    return RunComparison(baseline, candidate, paths[0], paths[1], deltas, paired, notes)


def _notes(
    baseline: RunResult, candidate: RunResult, matched: Mapping[str, Counterpart], datasets: Mapping[str, str | None]
) -> list[str]:
    notes = []
    models = {name: match.name for name, match in matched.items()}
    before = {d.name: d for d in baseline.datasets}
    for d in candidate.datasets:
        name = datasets.get(d.name)
        if name is not None and before[name].fingerprint != d.fingerprint:
            notes.append(f"Dataset {d.name}: other data in the two runs (fingerprints differ); Δ mixes data and model.")
    notes += [
        f"Model {name} of the candidate run is compared with {match.name} of the baseline run (same {match.by})."
        for name, match in matched.items()
        if match.name != name
    ]
    notes += [
        f"Dataset {name} of the candidate run is compared with {other} of the baseline run (same data)."
        for name, other in datasets.items()
        if other is not None and other != name
    ]
    for what, matches, names_before, names_after in (
        ("datasets", datasets, [d.name for d in baseline.datasets], [d.name for d in candidate.datasets]),
        ("models", models, [m.name for m in baseline.models], [m.name for m in candidate.models]),
    ):
        if only := [n for n in names_before if n not in matches.values()]:
            notes.append(f"Only in the baseline run, {what}: {', '.join(only)}.")
        if only := [n for n in names_after if matches.get(n) is None]:
            notes.append(f"Only in the candidate run, {what}: {', '.join(only)}.")
    if baseline.scoring.beta != candidate.scoring.beta:
        notes.append(
            f"β differs ({baseline.scoring.beta} and {candidate.scoring.beta}): reward metrics differ in scale."
        )
    if baseline.scoring.max_length != candidate.scoring.max_length:
        notes.append(
            f"max_length differs ({baseline.scoring.max_length} and {candidate.scoring.max_length}):"
            " long completions were cut at different points, so their log-probs cover different tokens."
        )
    both_recorded = records_every_scoring_setting(baseline) and records_every_scoring_setting(candidate)
    if both_recorded and baseline.scoring.dtype != candidate.scoring.dtype:
        notes.append(
            f"Scoring dtype differs ({baseline.scoring.dtype} and {candidate.scoring.dtype}):"
            " log-probs differ by ~1e-2 from the arithmetic alone."
        )
    return notes


def _paired(
    dataset: str,
    before: Sequence[PairScore],
    after: Sequence[PairScore],
    beta_before: float,
    beta_after: float,
    statistics: Statistics,
    matched: Mapping[str, str],
) -> list[Comparison]:
    """Each candidate model against its counterpart in the baseline run (`matched`: name → name there)."""
    from evalkit.metrics.cells import Cell, per_pair_values
    from evalkit.metrics.paired import Where, paired_comparison, paired_test

    out = []
    old = {(p.model, p.id): p for p in before}
    models = [m for m in dict.fromkeys(p.model for p in after) if m in matched]
    for model in models:
        was = matched[model]
        joined = [(old[(was, p.id)], p) for p in after if p.model == model and (was, p.id) in old]
        if not joined:
            continue
        # Both cells sort by pair id, so their arrays stay aligned pair by pair.
        a, b = Cell.from_rows([p for p, _ in joined]), Cell.from_rows([p for _, p in joined])
        theirs, ours = per_pair_values(a, beta_before), per_pair_values(b, beta_after)
        where = Where(dataset=dataset, subset=ALL_SUBSETS, model=model, baseline=was)
        for metric in PAIRED:
            if metric not in ours or metric not in theirs:
                continue
            test = paired_test(metric, ours[metric], theirs[metric], b.prompts, statistics)
            known = names.metric(metric)
            out.append(
                paired_comparison(
                    where,
                    metric,
                    b.ids,
                    ours[metric],
                    theirs[metric],
                    test,
                    accuracy=known.accuracy,
                    higher_is_better=known.higher_is_better,
                )
            )
    return out


def _paired_auc(
    dataset: str,
    before: Sequence[CompletionScore],
    after: Sequence[CompletionScore],
    baseline: RunResult,
    candidate: RunResult,
    matched: Mapping[str, str],
) -> list[Comparison]:
    """Each candidate model's reward AUC against its counterpart's in the baseline run, on the completion ids both
    scored (MOVER, as between two models of one run), each with the reward of its own recorded objective."""
    from evalkit.metrics.unpaired import compare_with_earlier_run

    out = []
    for model in dict.fromkeys(r.model for r in after):
        was = matched.get(model)
        if was is None:
            continue
        earlier = [r for r in before if r.model == was]
        objectives = objective_in(baseline, was), objective_in(candidate, model)
        compared = compare_with_earlier_run(
            dataset,
            [r for r in after if r.model == model],
            earlier,
            f"{was} (baseline run)",
            objectives,
            candidate.scoring.beta,  # a model with no objective of its own: the AUC does not change with β
            candidate.effective_statistics,
        )
        out += [c.model_copy(update={"baseline": was}) for c in compared if c.subset == ALL_SUBSETS]
    return out


def headline_keys(comparison: RunComparison) -> dict[str, Sequence[str]]:
    """Dataset → the metrics of its headline: a dataset of labelled completions has no pairs to be right about."""
    return {d.name: UNPAIRED_HEADLINE if d.format == "unpaired" else HEADLINE for d in comparison.candidate.datasets}


def headline_tables(
    comparison: RunComparison, keys: Mapping[str, Sequence[str]] | None = None
) -> list[tuple[str, Table]]:
    """Per dataset (and subset, when not 'all'), a row per model and metric in its `keys` (default: its headline)."""
    keys = keys if keys is not None else headline_keys(comparison)
    groups: dict[str, list[MetricDelta]] = {}
    order: dict[str, Sequence[str]] = {}
    for d in comparison.deltas:
        if d.candidate.metric in keys.get(d.candidate.dataset, ()):
            title = d.candidate.dataset + ("" if d.candidate.subset == "all" else f" · {d.candidate.subset}")
            groups.setdefault(title, []).append(d)
            order[title] = keys[d.candidate.dataset]
    tables = []
    for title, deltas in groups.items():
        shown = order[title]
        deltas.sort(key=lambda d: shown.index(d.candidate.metric))
        rows = [
            [
                d.candidate.model
                if d.candidate.model == d.baseline.model
                else f"{d.candidate.model} ↔ {d.baseline.model}",
                names.heading(d.candidate.metric, d.candidate.higher_is_better),
                format_estimate(d.baseline),
                format_estimate(d.candidate),
                format_signed(d.delta),
                d.verdict,
            ]
            for d in sorted(deltas, key=lambda d: _model_order(comparison, d.candidate.model))
        ]
        header = ["model", "metric", "baseline", "candidate", "Δ", "intervals"]
        tables.append((title, Table(header, rows, "llrrrl")))
    # 'all' first, then the subsets of each dataset
    return sorted(tables, key=lambda t: (" · " in t[0], t[0]))


def paired_table(comparison: RunComparison) -> Table | None:
    if not comparison.paired:
        return None
    level = f"{comparison.candidate.effective_statistics.confidence_level:.0%}"
    rows = [
        [
            p.dataset,
            p.model if p.model == p.baseline else f"{p.model} ↔ {p.baseline}",
            names.heading(p.metric, p.higher_is_better),
            format_number(p.baseline_value),
            format_number(p.model_value),
            format_delta(p),
            format_p(p.p_value),
            format_p(p.wilcoxon_p_value) if p.wilcoxon_p_value is not None else MISSING,
            format_count(p.flips.wrong_to_right if p.flips else None),
            format_count(p.flips.right_to_wrong if p.flips else None),
            format_number(p.mde),
            str(p.n),
        ]
        for p in comparison.paired
    ]
    header = ["dataset", "model", "metric", "baseline", "candidate", f"Δ [{level} CI]", "p", "Wilcoxon p"]
    return Table([*header, "wrong→right", "right→wrong", "MDE", "n"], rows, "lll" + "r" * 9)


def provenance_table(comparison: RunComparison) -> Table:
    b, c = comparison.baseline, comparison.candidate

    def models(result: RunResult) -> str:
        return ", ".join(f"{m.name} ({m.fingerprint[:12]})" for m in result.models)

    def datasets(result: RunResult) -> str:
        return ", ".join(f"{d.name} ({d.fingerprint[:12]}, {d.n_pairs} pairs)" for d in result.datasets)

    rows = [
        ["results", comparison.baseline_path, comparison.candidate_path],
        ["suite", f"{b.suite.name} ({b.suite.sha256[:12]})", f"{c.suite.name} ({c.suite.sha256[:12]})"],
        ["written", b.created_at, c.created_at],
        ["command", b.command or MISSING, c.command or MISSING],
        ["evalkit", b.evalkit_version, c.evalkit_version],
        ["git", (b.environment.git_sha or MISSING)[:12], (c.environment.git_sha or MISSING)[:12]],
        ["device", b.environment.device, c.environment.device],
        ["models", models(b), models(c)],
        ["datasets", datasets(b), datasets(c)],
        ["scoring", scoring_settings(b), scoring_settings(c)],
    ]
    return Table(["", "baseline", "candidate"], rows, "lll")


def _model_order(comparison: RunComparison, model: str) -> int:
    names = [m.name for m in comparison.candidate.models]
    return names.index(model) if model in names else len(names)


def render_comparison_markdown(comparison: RunComparison) -> str:
    tables = headline_tables(comparison)
    return render(
        "markdown",
        "compare.md.j2",
        c=comparison,
        headline=[(title, table) for title, table in tables if " · " not in title],
        paired=paired_table(comparison),
        provenance=provenance_table(comparison),
        level=f"{comparison.candidate.effective_statistics.confidence_level:.0%}",
    )


def render_comparison_html(comparison: RunComparison) -> str:
    """The comparison as one self-contained HTML page, styled like the report."""
    headline = [(title, _coloured(grid_of(table))) for title, table in headline_tables(comparison)]
    every = list(dict.fromkeys(d.candidate.metric for d in comparison.deltas))
    others = {dataset: [m for m in every if m not in keys] for dataset, keys in headline_keys(comparison).items()}
    paired = paired_table(comparison)
    return render(
        "html",
        "compare.html.j2",
        c=comparison,
        csp=CSP,
        script=Markup(PRINT_SCRIPT),
        headline=[(title, grid) for title, grid in headline if " · " not in title],
        subsets=[(title, grid) for title, grid in headline if " · " in title],
        others=[(title, _coloured(grid_of(table))) for title, table in headline_tables(comparison, others)],
        paired=grid_of(paired) if paired else None,
        provenance=grid_of(provenance_table(comparison)),
        level=f"{comparison.candidate.effective_statistics.confidence_level:.0%}",
    )


def _coloured(grid: Grid) -> Grid:
    """Colour the last column (intervals): disjoint and better, disjoint and worse."""
    css = {"disjoint: better": "good", "disjoint: worse": "bad", "overlap": "flat"}
    rows = [[*row[:-1], replace(row[-1], css=css.get(row[-1].text, row[-1].css))] for row in grid.rows]
    return replace(grid, rows=rows)


def read_comparison(baseline_path: Path, candidate_path: Path) -> RunComparison:
    """The two runs at these paths compared, pair by pair where their per-pair files are at hand; runs that share no
    model or no dataset have nothing to compare, which is a user error (exit 2), said before any per-pair file is
    read."""
    baseline, candidate = read_results(baseline_path), read_results(candidate_path)
    shared_datasets = {d.name for d in candidate.datasets if dataset_counterpart(d.name, candidate, baseline)}
    for what, shared, before, after in (
        ("dataset", shared_datasets, baseline.datasets, candidate.datasets),
        ("model", counterparts(candidate, baseline), baseline.models, candidate.models),
    ):
        if not shared:
            raise EvalkitError(
                f"{candidate_path}: shares no {what} with {baseline_path} ({', '.join(x.name for x in after)} against "
                f"{', '.join(x.name for x in before)}); expected two runs of the same {what}s to compare"
            )
    return compare_runs(
        baseline,
        candidate,
        read_pairs(baseline, baseline_path.parent),
        read_pairs(candidate, candidate_path.parent),
        (str(baseline_path), str(candidate_path)),
        (read_completions(baseline, baseline_path.parent), read_completions(candidate, candidate_path.parent)),
    )


def write_comparison(baseline_path: Path, candidate_path: Path, out_dir: Path | None = None) -> list[Path]:
    """Write `compare.md` and `compare.html` (by default beside the candidate's results)."""
    comparison = read_comparison(baseline_path, candidate_path)
    return write_comparison_files(comparison, out_dir or candidate_path.parent)


def write_comparison_files(comparison: RunComparison, out_dir: Path) -> list[Path]:
    outputs = {"compare.md": render_comparison_markdown(comparison), "compare.html": render_comparison_html(comparison)}
    claim_output(out_dir, comparison.candidate)
    return write_texts(out_dir, outputs)


def comparison_table(comparison: RunComparison) -> RichTable:
    """The headline table of every dataset (all pairs) for the terminal: the same cells as compare.md's."""
    table = RichTable(title="evalkit compare", title_justify="left")
    tables = [(title, t) for title, t in headline_tables(comparison) if " · " not in title]
    header = tables[0][1].header if tables else ["model", "metric", "baseline", "candidate", "Δ", "intervals"]
    for index, column in enumerate(["dataset", *header]):
        table.add_column(column, justify="right" if 3 <= index <= 5 else "left")
    for title, t in tables:
        for row in t.rows:
            table.add_row(plain(title), *(plain(cell) for cell in row))
    return table


OVERLAP_WORDS = {
    "overlap": "no evidence of a change (the intervals overlap)",
    "disjoint: better": "better (the intervals do not overlap)",
    "disjoint: worse": "worse (the intervals do not overlap)",
    "disjoint: changed": "changed (the intervals do not overlap)",
    MISSING: "no intervals to compare",
}
"""`MetricDelta.verdict` as the conclusion says it."""


def conclusion(comparison: RunComparison) -> str:
    """One sentence per compared model on preference accuracy (on labelled completions, on reward AUC): pair by pair
    where the runs scored the same pairs (a paired test), else by whether the two intervals overlap. The candidate
    model's only, when the runs name one."""
    candidates = {m.name for m in comparison.candidate.models if m.role == "candidate"}
    alpha = 1 - comparison.candidate.effective_statistics.confidence_level
    clauses = []
    headline = {name: keys[0] for name, keys in headline_keys(comparison).items()}
    paired = {(p.dataset, p.model, p.metric): p for p in comparison.paired}
    for d in comparison.deltas:
        c = d.candidate
        if c.metric != headline.get(c.dataset) or c.subset != ALL_SUBSETS or (candidates and c.model not in candidates):
            continue
        said = names.metric(c.metric).title if c.metric != "preference/accuracy" else "preference accuracy"
        change = f"{said} {format_number(d.baseline.value)} → {format_number(c.value)}"
        if (p := paired.get((c.dataset, c.model, c.metric))) is not None:
            significant = p.p_value < alpha and p.value != 0
            verdict = ("better" if p.value > 0 else "worse") if significant else "no measurable change"
            same = "completion by completion" if c.metric == "objective/auc" else "pair by pair"
            test = f"Δ {format_delta(p)} {same}, p = {format_p(p.p_value)}"
        else:
            verdict = OVERLAP_WORDS[d.verdict]
            test = f"Δ {format_signed(d.delta)}"
        clauses.append(f"{c.model} on {c.dataset}: {change}, {test}, {verdict}")
    return "; ".join(clauses) + "." if clauses else "no preference accuracy in both runs to compare."
