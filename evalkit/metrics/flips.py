"""Which comparison a reader meets first, and which flipped pairs keep their text.

Every two models are compared in results.json (later against earlier); a reader first wants each
model against the anchor (the reference, else the first model), turned so that the anchor is the
baseline. `evalkit bench` and the Python API store the text of the flipped pairs `flips_to_show`
picks (`RunResult.flip_examples`), and the reports show exactly those, so the choice lives here,
where both the pipeline and the reports can import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.metrics.names import ALL_SUBSETS
from evalkit.results.estimates import Comparison

FLIP_METRIC = "preference/accuracy"
"""The accuracy whose flips the reports show with their text: the one every two models are compared on."""

FLIP_EXAMPLES = 6
"""Flipped pairs shown with their text per comparison and direction (spread over the sorted ids)."""


def anchor_of(comparisons: Sequence[Comparison], reference: str | None) -> str | None:
    """The model every other is read against: the reference when it was compared, else the first model.

    `comparisons` are those of one dataset, as `compare_models` lists them (later against earlier models).
    """
    if not comparisons:
        return None
    if reference is not None and any(reference in (c.model, c.baseline) for c in comparisons):
        return reference
    return comparisons[0].baseline  # the first model: `compare_models` starts with the second against it


def orient(c: Comparison, baseline: str) -> Comparison:
    """`c` with `baseline` as its baseline (`Comparison.reversed`)."""
    if c.baseline == baseline:
        return c
    assert c.model == baseline, f"{baseline!r} is not part of {c.model!r} vs {c.baseline!r}"
    return c.reversed()


def primary_comparisons(comparisons: Sequence[Comparison], reference: str | None) -> list[Comparison]:
    """Each model against the anchor (`anchor_of`), turned so that the anchor is the baseline."""
    anchor = anchor_of(comparisons, reference)
    return [orient(c, anchor) for c in comparisons if anchor is not None and anchor in (c.model, c.baseline)]


def other_comparisons(comparisons: Sequence[Comparison], reference: str | None) -> list[Comparison]:
    """The comparisons between models other than the anchor (see `primary_comparisons`)."""
    anchor = anchor_of(comparisons, reference)
    return [c for c in comparisons if anchor not in (c.model, c.baseline)]


def spread(ids: Sequence[str], k: int = FLIP_EXAMPLES) -> list[str]:
    """At most `k` of `ids`, evenly spaced (ids are sorted, so this reaches across subsets)."""
    if len(ids) <= k:
        return list(ids)
    return [ids[i * len(ids) // k] for i in range(k)]


def flips_to_show(comparisons: Sequence[Comparison], reference: str | None) -> dict[str, list[str]]:
    """Per dataset, the ids of the flipped pairs whose text the reports show.

    For each model against the anchor (`primary_comparisons`), on all pairs, `FLIP_EXAMPLES` per
    direction of `FLIP_METRIC`.
    """
    shown: dict[str, list[str]] = {}
    for dataset in dict.fromkeys(c.dataset for c in comparisons):
        ids = shown.setdefault(dataset, [])
        for c in primary_comparisons([c for c in comparisons if c.dataset == dataset], reference):
            if c.subset == ALL_SUBSETS and c.metric == FLIP_METRIC and c.flips is not None:
                for pair_id in spread(c.flips.wrong_to_right_ids) + spread(c.flips.right_to_wrong_ids):
                    if pair_id not in ids:
                        ids.append(pair_id)
    return shown
