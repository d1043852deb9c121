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

import numpy as np
from markupsafe import Markup

from evalkit.report import markdown
from evalkit.report.html import CSP, PRINT_SCRIPT, Grid, grid_of
from evalkit.report.html import environment as html_environment
from evalkit.report.views import (
    COLUMNS,
    MISSING,
    Table,
    format_bracket,
    format_estimate,
    format_number,
    format_p,
    metric_title,
    read_pairs,
    records_every_scoring_setting,
    scoring_settings,
)
from evalkit.results.estimates import Metric, Statistics
from evalkit.results.files import atomic_write_text, read_results
from evalkit.results.matching import Counterpart, counterparts, dataset_counterpart
from evalkit.results.pairs import PairScore
from evalkit.results.schema import RunResult

HEADLINE = [key for key, _ in COLUMNS]


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
class PairedDelta:
    """One model on the same pairs in both runs: candidate − baseline, pair by pair."""

    dataset: str
    model: str
    metric: str
    higher_is_better: bool
    n: int
    baseline: float
    candidate: float
    delta: float
    ci_low: float | None
    ci_high: float | None
    p_value: float
    test: str
    wrong_to_right: int | None = None
    right_to_wrong: int | None = None


@dataclass(frozen=True)
class RunComparison:
    baseline: RunResult
    candidate: RunResult
    baseline_path: str
    candidate_path: str
    deltas: list[MetricDelta]
    paired: list[PairedDelta] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What makes the runs hard to compare: other data, models or datasets in only one run."""


def compare_runs(
    baseline: RunResult,
    candidate: RunResult,
    baseline_pairs: Mapping[str, Sequence[PairScore]] | None = None,
    candidate_pairs: Mapping[str, Sequence[PairScore]] | None = None,
    paths: tuple[str, str] = ("baseline", "candidate"),
) -> RunComparison:
    """Compare two runs on the cells both have; pair by pair where both per-pair files allow it."""
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
        rows_before, rows_after = (baseline_pairs or {}).get(name_before), (candidate_pairs or {}).get(d.name)
        if rows_before and rows_after:
            statistics = candidate.statistics or Statistics()
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
) -> list[PairedDelta]:
    """Each candidate model against its counterpart in the baseline run (`matched`: name → name there)."""
    from evalkit.metrics.paired import paired_test

    out = []
    old = {(p.model, p.id): p for p in before}
    models = [m for m in dict.fromkeys(p.model for p in after) if m in matched]
    for model in models:
        was = matched[model]
        joined = [(old[(was, p.id)], p) for p in after if p.model == model and (was, p.id) in old]
        if not joined:
            continue
        a = [p for p, _ in joined]
        b = [p for _, p in joined]
        outcomes = [("preference/accuracy", _logp_right(a), _logp_right(b))]
        if all(p.ref_logp_chosen is not None for p in a + b):
            margin_a, margin_b = _margins(a, beta_before), _margins(b, beta_after)
            outcomes.append(("rewards/accuracies", (margin_a > 0).astype(float), (margin_b > 0).astype(float)))
            outcomes.append(("rewards/margins", margin_a, margin_b))
        prompts = np.array([p.prompt_key for p in b]) if all(p.prompt_key for p in b) else None
        for metric, x, y in outcomes:
            test = paired_test(metric, y, x, prompts, statistics)
            interval = test.delta.interval
            accuracy = metric != "rewards/margins"
            gained, lost = int(np.sum(test.differences > 0)), int(np.sum(test.differences < 0))
            out.append(
                PairedDelta(
                    dataset=dataset,
                    model=model,
                    metric=metric,
                    higher_is_better=True,
                    n=len(test.differences),
                    baseline=float(x.mean()),
                    candidate=float(y.mean()),
                    delta=test.delta.value,
                    ci_low=interval.low if interval else None,
                    ci_high=interval.high if interval else None,
                    p_value=test.p_value,
                    test=test.name.replace("_", " "),
                    wrong_to_right=gained if accuracy else None,
                    right_to_wrong=lost if accuracy else None,
                )
            )
    return out


def _logp_right(rows: Sequence[PairScore]) -> np.ndarray:
    return np.array([p.logp_chosen > p.logp_rejected for p in rows], dtype=float)


def _margins(rows: Sequence[PairScore], beta: float) -> np.ndarray:
    return beta * np.array(
        [
            (p.logp_chosen - p.ref_logp_chosen) - (p.logp_rejected - p.ref_logp_rejected)  # type: ignore[operator]
            for p in rows
        ]
    )


def headline_tables(comparison: RunComparison, keys: Sequence[str] = HEADLINE) -> list[tuple[str, Table]]:
    """Per dataset (and subset, when not 'all'), a row per model and metric in `keys`."""
    groups: dict[str, list[MetricDelta]] = {}
    for d in comparison.deltas:
        if d.candidate.metric in keys:
            title = d.candidate.dataset + ("" if d.candidate.subset == "all" else f" · {d.candidate.subset}")
            groups.setdefault(title, []).append(d)
    tables = []
    for title, deltas in groups.items():
        deltas.sort(key=lambda d: keys.index(d.candidate.metric))
        rows = [
            [
                d.candidate.model
                if d.candidate.model == d.baseline.model
                else f"{d.candidate.model} ↔ {d.baseline.model}",
                metric_title(d.candidate.metric, d.candidate.higher_is_better),
                format_estimate(d.baseline),
                format_estimate(d.candidate),
                f"{d.delta:+.3f}" if abs(d.delta) < 100 else f"{d.delta:+.1f}",
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
    level = f"{(comparison.candidate.statistics or Statistics()).confidence_level:.0%}"
    rows = [
        [
            p.dataset,
            p.model,
            metric_title(p.metric, p.higher_is_better),
            format_number(p.baseline),
            format_number(p.candidate),
            f"{p.delta:+.3f} {format_bracket(p.ci_low, p.ci_high, signed=True)}".strip(),
            format_p(p.p_value),
            str(p.wrong_to_right) if p.wrong_to_right is not None else MISSING,
            str(p.right_to_wrong) if p.right_to_wrong is not None else MISSING,
            str(p.n),
        ]
        for p in comparison.paired
    ]
    header = ["dataset", "model", "metric", "baseline", "candidate", f"Δ [{level} CI]", "p"]
    return Table([*header, "wrong→right", "right→wrong", "n"], rows, "lll" + "r" * 7)


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


_markdown = markdown.environment()  # every printed string escaped unless it is `Markdown`


def render_comparison_markdown(comparison: RunComparison) -> str:
    tables = headline_tables(comparison)
    return _markdown.get_template("compare.md.j2").render(
        c=comparison,
        headline=[(title, table) for title, table in tables if " · " not in title],
        paired=paired_table(comparison),
        provenance=provenance_table(comparison),
        level=f"{(comparison.candidate.statistics or Statistics()).confidence_level:.0%}",
    )


def render_comparison_html(comparison: RunComparison) -> str:
    """The comparison as one self-contained HTML page, styled like the report."""
    headline = [(title, _coloured(grid_of(table))) for title, table in headline_tables(comparison)]
    others = [key for key in dict.fromkeys(d.candidate.metric for d in comparison.deltas) if key not in HEADLINE]
    paired = paired_table(comparison)
    return html_environment.get_template("compare.html.j2").render(
        c=comparison,
        csp=CSP,
        script=Markup(PRINT_SCRIPT),
        headline=[(title, grid) for title, grid in headline if " · " not in title],
        subsets=[(title, grid) for title, grid in headline if " · " in title],
        others=[(title, _coloured(grid_of(table))) for title, table in headline_tables(comparison, others)],
        paired=grid_of(paired) if paired else None,
        provenance=grid_of(provenance_table(comparison)),
        level=f"{(comparison.candidate.statistics or Statistics()).confidence_level:.0%}",
    )


def _coloured(grid: Grid) -> Grid:
    """Colour the last column (intervals): disjoint and better, disjoint and worse."""
    css = {"disjoint: better": "good", "disjoint: worse": "bad", "overlap": "flat"}
    rows = [[*row[:-1], replace(row[-1], css=css.get(row[-1].text, row[-1].css))] for row in grid.rows]
    return replace(grid, rows=rows)


def write_comparison(baseline_path: Path, candidate_path: Path, out_dir: Path | None = None) -> list[Path]:
    """Write `compare.md` and `compare.html` (by default beside the candidate's results)."""
    baseline, candidate = read_results(baseline_path), read_results(candidate_path)
    comparison = compare_runs(
        baseline,
        candidate,
        read_pairs(baseline, baseline_path.parent),
        read_pairs(candidate, candidate_path.parent),
        (str(baseline_path), str(candidate_path)),
    )
    out_dir = out_dir or candidate_path.parent
    markdown, html = out_dir / "compare.md", out_dir / "compare.html"
    atomic_write_text(markdown, render_comparison_markdown(comparison))
    atomic_write_text(html, render_comparison_html(comparison))
    return [markdown, html]
