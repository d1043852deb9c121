"""Scores of each completion of best-of-N items: the seam every scorer plugs into, and DPO's implicit reward.

A scorer takes a prompt and its completions and returns one float per completion, higher meaning better
(`CompletionScorer`): a classifier reward model's logit, a pointwise judge's rating. DPO's implicit reward
β·(log π(y|x) − log π_ref(y|x)) comes from the pair engine instead (batched, cached, tokenized as TRL does): the
items' completions are scored as pairs (`evalkit.data.best_of_n.completion_pairs`) and read back here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from evalkit.data.best_of_n import BestOfNItem, completion_index
from evalkit.results.pairs import PairScore, implicit_reward


class CompletionScorer(Protocol):
    """Scores completions of one prompt: one float each, in their order, higher is better."""

    def __call__(self, prompt: str, completions: Sequence[str]) -> list[float]: ...


def scorer_scores(items: Sequence[BestOfNItem], scorer: CompletionScorer) -> dict[str, list[float]]:
    """Each item's completion scores under `scorer`, by item id; a scorer that returns another count is a bug."""
    out = {}
    for item in items:
        scores = [float(s) for s in scorer(item.prompt, item.completions)]
        assert len(scores) == len(item.completions), "a scorer returns one score per completion"
        out[item.id] = scores
    return out


def completion_values(
    items: Sequence[BestOfNItem], rows: Sequence[PairScore], model: str, beta: float
) -> dict[str, dict[str, list[float]]]:
    """`model`'s per-completion `reward` (β·(ℓ − ℓ_ref), when its rows have a reference), `logp` and `tokens`, by item
    id, from its rows on the items' completion pairs. Items with a completion left unscored (a prompt that fills
    `max_length`) are left out."""
    sizes = {item.id: len(item.completions) for item in items}
    found: dict[str, dict[str, list[float | None]]] = {
        key: {name: [None] * size for name in ("reward", "logp", "tokens")} for key, size in sizes.items()
    }
    for row in rows:
        if row.model != model:
            continue
        item_id, first = completion_index(row.id)
        values = found[item_id]
        sides = [(first, row.logp_chosen, row.ref_logp_chosen, row.n_tokens_chosen)]
        if first + 1 < sizes[item_id]:
            sides.append((first + 1, row.logp_rejected, row.ref_logp_rejected, row.n_tokens_rejected))
        for index, logp, ref_logp, tokens in sides:
            values["logp"][index] = logp
            values["tokens"][index] = float(tokens)
            values["reward"][index] = implicit_reward(logp, ref_logp, beta) if ref_logp is not None else None
    complete: dict[str, dict[str, list[float]]] = {}
    for item_id, values in found.items():
        kept = {name: [v for v in column if v is not None] for name, column in values.items()}
        if len(kept["logp"]) == sizes[item_id]:
            complete[item_id] = {name: column for name, column in kept.items() if len(column) == sizes[item_id]}
    return complete
