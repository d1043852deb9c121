"""Scores of each completion of best-of-N items: the seam every scorer plugs into, DPO's implicit reward and a
classifier reward model's score.

A scorer takes a prompt and its completions and returns one float per completion, higher meaning better
(`CompletionScorer`): a classifier reward model's logit (`classifier_scorer`), a pointwise judge's rating. In a
suite run, models score through the pair engine instead (batched, cached, tokenized as TRL does): the items'
completions are scored as pairs (`evalkit.data.best_of_n.completion_pairs`) and read back here, a policy's as
its implicit reward β·(log π(y|x) − log π_ref(y|x)), a `kind: reward_model`'s as its score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.data.best_of_n import BestOfNItem, completion_index
from evalkit.data.rendering import PLAIN, Rendering
from evalkit.results.pairs import PairScore, implicit_reward
from evalkit.scoring.classifier import score_completions


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


def classifier_scorer(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN, max_length: int = 1024
) -> CompletionScorer:
    """A classifier reward model as a `CompletionScorer`: the logit at the last non-pad token of each prompt +
    completion, as RewardTrainer computes it (`evalkit.scoring.classifier.score_completions`)."""

    def score(prompt: str, completions: Sequence[str]) -> list[float]:
        pairs = [(prompt, completion) for completion in completions]
        return score_completions(model, tokenizer, pairs, rendering=rendering, max_length=max_length).scores

    return score


def pointwise_scorer(judge: Callable[[str, str], float]) -> CompletionScorer:
    """A pointwise judge `(prompt, completion) -> float` (`evalkit.judges.pointwise`: a callable, or a reward model's
    logit) as a `CompletionScorer`: each completion judged on its own."""

    def score(prompt: str, completions: Sequence[str]) -> list[float]:
        return [float(judge(prompt, completion)) for completion in completions]

    return score


def completion_values(
    items: Sequence[BestOfNItem], rows: Sequence[PairScore], model: str, beta: float
) -> dict[str, dict[str, list[float]]]:
    """`model`'s per-completion `reward` (β·(ℓ − ℓ_ref), when its rows have a reference; a reward model's score),
    `logp`, `ref_logp` (when its rows have a reference) and `tokens`, by item id, from its rows on the items'
    completion pairs. Items with a completion left unscored (a prompt that fills `max_length`) are left out."""
    sizes = {item.id: len(item.completions) for item in items}
    found: dict[str, dict[str, list[float | None]]] = {
        key: {name: [None] * size for name in ("reward", "logp", "ref_logp", "tokens")} for key, size in sizes.items()
    }
    for row in rows:
        if row.model != model:
            continue
        item_id, first = completion_index(row.id)
        values = found[item_id]
        sides = [(first, row.logp_chosen, row.ref_logp_chosen, row.score_chosen, row.n_tokens_chosen)]
        if first + 1 < sizes[item_id]:
            sides.append(
                (first + 1, row.logp_rejected, row.ref_logp_rejected, row.score_rejected, row.n_tokens_rejected)
            )
        for index, logp, ref_logp, score, tokens in sides:
            values["logp"][index] = logp
            values["ref_logp"][index] = ref_logp
            values["tokens"][index] = float(tokens)
            reward = implicit_reward(logp, ref_logp, beta) if ref_logp is not None else None
            values["reward"][index] = score if score is not None else reward
    complete: dict[str, dict[str, list[float]]] = {}
    for item_id, values in found.items():
        kept = {name: [v for v in column if v is not None] for name, column in values.items()}
        if len(kept["logp"]) == sizes[item_id]:
            complete[item_id] = {name: column for name, column in kept.items() if len(column) == sizes[item_id]}
    return complete
