"""Classifier reward models: a one-label sequence classifier's score of each answer, as TRL 1.16's `RewardTrainer`
and RewardBench compute it, so that evalkit's numbers equal what training logged.

- The sequence is prompt and answer rendered whole: a chat with the template (no generation prompt, the suite's
  template options and pinned date), a text with the EOS string appended when missing and the tokenizer's
  defaults. These are exactly the prompt+answer ids DPO scoring builds (`tokenize_pair`), so the two scorers read
  the same tokens and the same audit counts apply (prompts too long, prompts that are not a token prefix).
- The score is the raw logit (no sigmoid) the model gives at the last non-pad token: the model picks that position
  itself from `config.pad_token_id`, as in training, on right-padded batches of chosen and rejected rows.
- `max_length` keeps the first tokens of a longer sequence and the pair is counted as truncated. TRL's
  RewardTrainer drops such pairs from training and evaluation instead; the audit's count says how many.
- Each row's logit depends on its own tokens only (causal attention, right padding masked), so scores do not
  change with the batch size or the number of processes, up to float rounding (~1e-6).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config.specs import ScoringSpec
from evalkit.console import progress_bar
from evalkit.data.pairs import PreferencePair, Text
from evalkit.data.rendering import PLAIN, Rendering
from evalkit.results.pairs import PairScore
from evalkit.results.schema import ScoringDtype, ScoringMode, TokenizationAudit
from evalkit.scoring.batching import share_out
from evalkit.scoring.dataset import ScoredDataset, TokenizedSet
from evalkit.scoring.score import TokenizedPair, prompt_key, tokenize_pair

REWARD_MODE = ScoringMode(
    dataset="",
    mode="whole sequences",
    reason="reward model: prompt+answer rows, right-padded, the logit at the last non-pad token",
)
"""How a reward model's passes run, as recorded per dataset."""


@dataclass(frozen=True)
class SequenceScores:
    """A reward model's scores of some sequences, in their order, with what `max_length` cut."""

    scores: list[float]
    truncated: list[bool]
    """True where `max_length` cut the end of the sequence."""
    prompt_not_prefix: int = 0
    """Completions whose prompt rendered alone is not a token prefix of prompt+completion (the audit's count)."""
    doubled_bos: int = 0
    """Sequences that start with two BOS tokens (a template and the tokenizer both added one)."""

    @property
    def n_truncated(self) -> int:
        return sum(self.truncated)


def tokenize_completion(
    prompt: Text, completion: Text, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN
) -> TokenizedPair:
    """`completion` after `prompt` (text or messages, as in a pair) tokenized as a pair's chosen answer: its
    `prompt_ids + chosen_ids` are the ids RewardTrainer scores."""
    return tokenize_pair(PreferencePair("", prompt, completion, completion), tokenizer, rendering)


@torch.inference_mode()
def score_sequences(
    model: PreTrainedModel,
    sequences: Sequence[Sequence[int]],
    pad_token_id: int,
    *,
    max_length: int,
    batch_size: int = 8,
    dtype: ScoringDtype = "float32",
    label: str = "reward model",
) -> SequenceScores:
    """The raw logit of `model` (one label) for each of `sequences`, cut to `max_length` tokens.

    Sequences are sorted by length and run `batch_size` at a time, right-padded with `pad_token_id`; under
    `torchrun` the batches are dealt out to the processes and every process gets all the scores back, in order.
    """
    was_training = model.training
    model.eval()
    cut = [list(s[:max_length]) for s in sequences]
    order = sorted(range(len(cut)), key=lambda i: (-len(cut[i]), i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    device = next(model.parameters()).device
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"scoring {label}", total=len(cut), status="")

            def run(batch: list[int]) -> list[float]:
                rows = [cut[i] for i in batch]
                width = max(len(r) for r in rows)
                ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (B, T)
                mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
                for row, tokens in enumerate(rows):
                    ids[row, : len(tokens)] = torch.tensor(tokens)
                    mask[row, : len(tokens)] = 1
                with _autocast(device, dtype):
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, 1)
                bar.update(task, advance=len(batch))
                return [float(v) for v in logits[:, 0].float().cpu()]

            by_batch = share_out(batches, run)
    finally:
        model.train(was_training)
    scores = [0.0] * len(cut)
    for batch, values in zip(batches, by_batch, strict=True):
        for index, value in zip(batch, values, strict=True):
            scores[index] = value
    return SequenceScores(scores, [len(s) > max_length for s in sequences])


def _autocast(device: torch.device, dtype: ScoringDtype) -> contextlib.AbstractContextManager[None]:
    if dtype == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def score_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[tuple[Text, Text]],
    *,
    rendering: Rendering = PLAIN,
    max_length: int = 1024,
    batch_size: int = 8,
    dtype: ScoringDtype = "float32",
) -> SequenceScores:
    """A reward model's score of each (prompt, completion), one float each, as RewardTrainer computes it (for
    best-of-N items: every completion of an item after its prompt), with the tokenization audit's counts:
    `truncated` says which `max_length` cut."""
    tokens = [tokenize_completion(prompt, completion, tokenizer, rendering) for prompt, completion in items]
    scored = score_sequences(
        model,
        [t.prompt_ids + t.chosen_ids for t in tokens],
        reward_pad_id(model, tokenizer),
        max_length=max_length,
        batch_size=batch_size,
        dtype=dtype,
    )
    return replace(
        scored,
        prompt_not_prefix=sum(not t.prompt_is_prefix for t in tokens),
        doubled_bos=sum(t.doubled_bos for t in tokens),
    )


def reward_pad_id(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The id the classifier treats as padding (`config.pad_token_id`, which locates the last real token), set
    from the tokenizer as RewardTrainer sets it (its pad token, else EOS) where the checkpoint names none."""
    config = model.config.get_text_config()
    if getattr(config, "pad_token_id", None) is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        assert pad is not None, "a tokenizer with neither a pad nor an EOS token"
        config.pad_token_id = pad
    return int(config.pad_token_id)


@dataclass(frozen=True)
class RewardRows:
    """A reward model's per-pair rows on one dataset and its tokenization audit."""

    rows: list[PairScore]
    audit: TokenizationAudit


def reward_pair_rows(
    dataset: str,
    model_name: str,
    pairs: Sequence[TokenizedPair],
    scores: SequenceScores,
    *,
    n_pairs: int,
    too_long: Sequence[str] = (),
    prompt_not_prefix: int = 0,
    doubled_bos: int = 0,
) -> RewardRows:
    """Rows of `pairs` from `scores` of their chosen sequences followed by their rejected ones (as
    `pair_sequences` lays them out), with the audit; token-identical answers get one score."""
    half = len(pairs)
    rows = []
    for index, pair in enumerate(pairs):
        chosen, rejected = scores.scores[index], scores.scores[half + index]
        rejected = chosen if pair.chosen_ids == pair.rejected_ids else rejected
        rows.append(
            PairScore(
                id=pair.id,
                subset=pair.subset,
                model=model_name,
                logp_chosen=0.0,
                logp_rejected=0.0,
                n_tokens_chosen=len(pair.chosen_ids),
                n_tokens_rejected=len(pair.rejected_ids),
                truncated=scores.truncated[index] or scores.truncated[half + index],
                prompt_key=prompt_key(pair.prompt_ids),
                score_chosen=chosen,
                score_rejected=rejected,
            )
        )
    audit = TokenizationAudit(
        dataset=dataset,
        model=model_name,
        n_pairs=n_pairs,
        n_scored=len(pairs),
        truncated=sum(r.truncated for r in rows),
        prompt_too_long=list(too_long),
        prompt_not_prefix=prompt_not_prefix,
        doubled_bos=doubled_bos,
    )
    return RewardRows(rows, audit)


def reward_model_dataset(
    dataset: str,
    name: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tokens: TokenizedSet,
    settings: ScoringSpec,
    label: str,
) -> ScoredDataset:
    """The reward model `name`'s rows on one dataset: its score of every scorable pair's chosen and rejected
    sequence (the same rows in a suite run, `evalkit score` and `evalkit.score`)."""
    scores = score_sequences(
        model,
        list(pair_sequences(tokens.scorable)),
        reward_pad_id(model, tokenizer),
        max_length=settings.max_length,
        batch_size=2 * settings.batch_size,  # sequences: a pair's two, as RewardTrainer's collator batches them
        dtype=settings.dtype,
        label=label,
    )
    result = reward_pair_rows(
        dataset,
        name,
        tokens.scorable,
        scores,
        n_pairs=tokens.n_pairs,
        too_long=tokens.too_long,
        prompt_not_prefix=tokens.prompt_not_prefix,
        doubled_bos=tokens.doubled_bos,
    )
    mode = REWARD_MODE.model_copy(update={"dataset": dataset}) if tokens.scorable else None
    return ScoredDataset(result.rows, result.audit, mode)


def pair_sequences(pairs: Sequence[TokenizedPair]) -> Iterator[list[int]]:
    """Every pair's chosen sequence, then every pair's rejected one (the layout of RewardTrainer's collator)."""
    yield from (p.prompt_ids + p.chosen_ids for p in pairs)
    yield from (p.prompt_ids + p.rejected_ids for p in pairs)
