"""What the reports show of a RewardBench 1 dataset: its section scores (Chat, Chat Hard, Safety, Reasoning) from
each model's reward accuracy per subset, derived from results.json's metrics (`evalkit.metrics.rewardbench`)."""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.metrics.rewardbench import EXAMPLE_COUNTS, SECTIONS, reward_bench_1_score, section_scores
from evalkit.report.best_of_n import BEST_OF_N
from evalkit.report.formats import format_number
from evalkit.report.tables import Table
from evalkit.results.schema import RunResult


@dataclass(frozen=True)
class SectionsView:
    """RewardBench 1's section scores of a pair dataset whose subsets carry its names."""

    name: str
    table: Table
    note: str = (
        "RewardBench 1's sections from each model's reward accuracy per subset, the subsets weighted by "
        "reward-bench's example counts; score: the mean of the four sections (a section with no subset here counts "
        "0, as reward-bench leaves it). Descriptive: no interval."
    )


def sections_views(result: RunResult) -> list[SectionsView]:
    """A view per pair dataset with RewardBench 1 subsets (`evalkit.metrics.rewardbench`), models with rewards only."""
    views = []
    for d in result.datasets:
        if d.format == BEST_OF_N or not set(d.subsets) & set(EXAMPLE_COUNTS):
            continue
        rows = []
        for model in dict.fromkeys(m.model for m in result.metrics if m.dataset == d.name):
            accuracies = {
                m.subset: m.value
                for m in result.metrics
                if (m.dataset, m.model, m.metric) == (d.name, model, "rewards/accuracies")
                and m.subset in EXAMPLE_COUNTS
            }
            if accuracies:
                sections = section_scores(accuracies)
                cells = [format_number(v) for v in sections.values()]
                rows.append([model, *cells, format_number(reward_bench_1_score(accuracies))])
        if rows:
            views.append(SectionsView(d.name, Table(["model", *SECTIONS, "score"], rows)))
    return views
