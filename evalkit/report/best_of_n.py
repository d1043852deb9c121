"""What the reports show of a best-of-N dataset: each model's RewardBench 2 score per subset and overall beside the
content-blind baselines, the models against each other on the same items, and the parts of each Ties composite.

Markdown, HTML and the terminal format these `Table`s; none of them computes a number."""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report.formats import MISSING, format_bracket, format_delta, format_estimate, format_number, format_p
from evalkit.report.tables import Table
from evalkit.results.estimates import BaselineScore, Comparison
from evalkit.results.schema import RunResult

BEST_OF_N = "best_of_n"
"""`DatasetInfo.format` of a best-of-N dataset: the reports show it here, not as pairs."""
BASELINE_COLUMNS = {
    "longer_tokens": "longer (tokens)",
    "shorter_tokens": "shorter (tokens)",
    "longer_chars": "longer (chars)",
    "shorter_chars": "shorter (chars)",
    "chance": "chance",
}
OVERALL = "overall (mean of subsets)"
METHOD_NOTE = (
    "Per item: 1/k when a correct completion holds the top score and k completions tie there, else 0 (RewardBench 2's "
    "rule); Ties: RewardBench 2's weighted composite; overall: the unweighted mean of the subsets, as RewardBench 2 "
    "publishes it. Intervals: Wilson where item scores are 0/1, Student t where ties make them fractional, a bootstrap "
    "over prompts for Ties, a normal interval from the subsets' standard errors overall. Baselines never read the "
    "answers: they pick the longer or shorter completion (a length tie at the top scores 1/k), or pick at random."
)


@dataclass(frozen=True)
class BestOfNView:
    """One best-of-N dataset as the reports show it."""

    name: str
    n_items: int
    scores: Table
    """Subsets (overall last) × models and baselines."""
    comparisons: Table | None
    ties: Table | None
    rewards: Table | None = None
    """What each model ranked the completions by (its objective's reward, or a reward model's score)."""
    note: str = METHOD_NOTE


def is_best_of_n_dataset(result: RunResult, dataset: str) -> bool:
    return any(d.name == dataset and d.format == BEST_OF_N for d in result.datasets)


def best_of_n_views(result: RunResult) -> list[BestOfNView]:
    """A view per best-of-N dataset, in the order results.json lists the datasets."""
    return [_view(result, d.name, d.n_pairs) for d in result.datasets if d.format == BEST_OF_N]


def _view(result: RunResult, dataset: str, n_items: int) -> BestOfNView:
    metrics = [m for m in result.best_of_n if m.dataset == dataset]
    baselines = [b for b in result.baselines if b.dataset == dataset]
    models = list(dict.fromkeys(m.model for m in metrics))
    subsets = sorted({m.subset for m in metrics} | {b.subset for b in baselines}, key=lambda s: (s == ALL_SUBSETS, s))
    kinds = [k for k in BASELINE_COLUMNS if any(b.baseline == k for b in baselines)]
    found = {(m.subset, m.model): m for m in metrics}
    shown: dict[tuple[str, str], BaselineScore] = {(b.subset, b.baseline): b for b in baselines}
    rows = []
    for subset in subsets:
        n = next((m.n for m in metrics if m.subset == subset), None) or next(
            (b.n for b in baselines if b.subset == subset), 0
        )
        rows.append(
            [
                OVERALL if subset == ALL_SUBSETS else subset,
                *(format_estimate(found.get((subset, model))) for model in models),
                *(_baseline(shown.get((subset, kind))) for kind in kinds),
                str(n),
            ]
        )
    header = ["subset", *models, *(BASELINE_COLUMNS[k] for k in kinds), "n"]
    ranked = [[model, result.best_of_n_rewards[model]] for model in models if model in result.best_of_n_rewards]
    rewards = Table(["model", "ranks the completions by"], ranked, align="ll") if ranked else None
    scores = Table(header, rows)
    return BestOfNView(dataset, n_items, scores, _comparisons(result, dataset), _ties(result, dataset), rewards)


def _baseline(b: BaselineScore | None) -> str:
    if b is None:
        return MISSING
    return " ".join(filter(None, [format_number(b.value), format_bracket(b.ci_low, b.ci_high)]))


def _comparisons(result: RunResult, dataset: str) -> Table | None:
    found: list[Comparison] = [c for c in result.best_of_n_comparisons if c.dataset == dataset]
    if not found:
        return None
    rows = [
        [
            f"{c.model} − {BASELINE_COLUMNS.get(c.baseline, c.baseline)}",
            OVERALL if c.subset == ALL_SUBSETS else c.subset,
            format_delta(c),
            format_p(c.p_value),
            c.test,
            str(c.n),
        ]
        for c in found
    ]
    return Table(["model − other", "subset", "Δ score", "p", "test", "n"], rows, align="llrrlr")


def _ties(result: RunResult, dataset: str) -> Table | None:
    found = [t for t in result.best_of_n_ties if t.dataset == dataset]
    if not found:
        return None
    header = ["model", "score", "acc. ref", "acc. tied", "correct > spread", "hard", "margin score", "prompts"]
    rows = [
        [
            t.model,
            format_number(t.value),
            format_number(t.accuracy_ref),
            format_number(t.accuracy_tied),
            format_number(t.correctness_preferred),
            format_number(t.correctness_preferred_hard),
            format_number(t.correctness_margin_score),
            str(t.n_prompts),
        ]
        for t in found
    ]
    return Table(header, rows)


def best_of_n_clauses(result: RunResult, alpha: float) -> list[str]:
    """One clause per model and best-of-N dataset whose overall score does not beat every length baseline on the
    same items (one-sided, at `alpha`): the weakest win is named, as for pairs."""
    found: dict[tuple[str, str], list[Comparison]] = {}
    for c in result.best_of_n_comparisons:
        if c.subset == ALL_SUBSETS and c.baseline in BASELINE_COLUMNS:
            found.setdefault((c.model, c.dataset), []).append(c)
    clauses = []
    for (model, dataset), comparisons in found.items():
        weakest = max(comparisons, key=_one_sided)
        if _one_sided(weakest) < alpha:
            continue
        clauses.append(
            f"{model} does not beat the content-blind baselines on {dataset} (best-of-N score "
            f"{format_number(weakest.model_value)} vs {BASELINE_COLUMNS[weakest.baseline]} "
            f"{format_number(weakest.baseline_value)}, one-sided p = {format_p(_one_sided(weakest))})"
        )
    return clauses


def _one_sided(c: Comparison) -> float:
    """p of H1: the model scores above the baseline, from the two-sided p of a symmetric test."""
    return c.p_value / 2 if c.value > 0 else 1 - c.p_value / 2
