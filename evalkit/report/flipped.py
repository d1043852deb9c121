"""The flipped pairs the HTML report shows with their text: a few per comparison and direction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evalkit.metrics.flips import FLIP_METRIC, spread
from evalkit.report.views import MAX_IDS
from evalkit.results.estimates import Comparison
from evalkit.results.pairs import PairScore
from evalkit.results.texts import ShownText


@dataclass(frozen=True)
class FlipView:
    id: str
    text: ShownText | None
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


def flip_groups(
    comparisons: Sequence[Comparison],
    texts: Mapping[tuple[str, str], ShownText],
    pairs: Sequence[PairScore] | None,
    dataset: str,
) -> list[FlipGroup]:
    """One group per comparison (each model against the anchor, on all pairs) whose `FLIP_METRIC` flipped."""
    margins = {(p.model, p.id): p.own_margin for p in pairs or ()}
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
    c: Comparison, pair_id: str, text: ShownText | None, margins: Mapping[tuple[str, str], float]
) -> FlipView:
    before, after = margins.get((c.baseline, pair_id)), margins.get((c.model, pair_id))
    moved = ""
    if before is not None and after is not None:
        moved = f"logp margin {c.baseline} {before:+.2f} → {c.model} {after:+.2f}"
    return FlipView(pair_id, text, moved)
