"""Per-pair sequence log-probs, tokenized exactly as TRL's DPOTrainer tokenizes them.

The log-prob of a completion is the SUM of the next-token log-probs of its tokens, the prompt
masked out. Tokenization follows TRL 1.16 (`DPOTrainer._prepare_dataset`), so the numbers here
equal the ones TRL computes during training:
- conversational rows: the prompt is rendered with the chat template and a generation prompt,
  prompt+completion is rendered whole, and the completion is every token after the common
  prefix of the two renderings (end-of-turn tokens are scored; merges across the boundary are
  handled);
- standard rows: the EOS string is appended to each completion when missing, and prompt and
  prompt+completion are encoded with the tokenizer's defaults;
- conversational rows scored with a tokenizer that has no chat template fall back to plain text:
  the prompt string (or the last prompt message) and the last message of each answer, joined by
  a newline unless whitespace already separates them.
Sequences longer than `max_length` lose the end of their completion, as with TRL's default
`keep_start`. A pair whose prompt alone fills `max_length` has nothing left to score; TRL drops
such pairs silently, evalkit leaves them out of the metrics and reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.console import progress_bar
from evalkit.data import Message, PreferencePair, Text
from evalkit.results import PairScore


@dataclass(frozen=True)
class TokenizedPair:
    """Token ids of one pair: a shared prompt and two completions."""

    id: str
    subset: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    prompt_is_prefix: bool
    """False when the prompt rendered alone is not a token prefix of prompt+completion."""
    doubled_bos: bool = False
    """True when the sequence starts with two BOS tokens (a template and the tokenizer both added one)."""


@dataclass(frozen=True)
class CompletionLogps:
    """Summed completion log-probs of one pair under one model."""

    chosen: float
    rejected: float
    n_tokens_chosen: int
    n_tokens_rejected: int
    truncated: bool
    """True when `max_length` cut the end of either completion."""


def tokenize_pair(pair: PreferencePair, tokenizer: PreTrainedTokenizerBase) -> TokenizedPair:
    """Token ids for `pair`, identical to what TRL's DPOTrainer feeds the model."""
    if pair.is_conversational and tokenizer.chat_template is None:
        pair = as_plain_text(pair)
    chosen, rejected = pair.chosen, pair.rejected
    if not pair.is_conversational:
        eos = tokenizer.eos_token or ""
        assert isinstance(chosen, str) and isinstance(rejected, str)
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
    prompt_ids = _encode(tokenizer, pair.prompt, add_generation_prompt=True)
    prompt_chosen_ids = _encode(tokenizer, _join(pair.prompt, chosen))
    prompt_rejected_ids = _encode(tokenizer, _join(pair.prompt, rejected))
    prompt_len = min(_common_prefix(prompt_ids, prompt_chosen_ids), _common_prefix(prompt_ids, prompt_rejected_ids))
    bos = tokenizer.bos_token_id
    return TokenizedPair(
        id=pair.id,
        subset=pair.subset,
        prompt_ids=prompt_ids[:prompt_len],
        chosen_ids=prompt_chosen_ids[prompt_len:],
        rejected_ids=prompt_rejected_ids[prompt_len:],
        prompt_is_prefix=prompt_len == len(prompt_ids),
        doubled_bos=bos is not None and prompt_chosen_ids[:2] == [bos, bos],
    )


def as_plain_text(pair: PreferencePair) -> PreferencePair:
    """The plain-text form of a conversational pair: the prompt string and each answer's last message.

    Roles and earlier turns are dropped (this is the form older recipes trained GPT-2-style models
    on). An answer is joined to the prompt by a newline unless whitespace already separates them,
    so the two never run together into one word.
    """
    assert isinstance(pair.prompt, list) and isinstance(pair.chosen, list) and isinstance(pair.rejected, list)
    prompt = pair.prompt_text if pair.prompt_text is not None else pair.prompt[-1]["content"]

    def answer(messages: list[Message]) -> str:
        text = messages[-1]["content"]
        joined = not prompt or prompt[-1].isspace() or not text or text[0].isspace()
        return text if joined else "\n" + text

    return PreferencePair(pair.id, prompt, answer(pair.chosen), answer(pair.rejected), pair.subset)


def _encode(tokenizer: PreTrainedTokenizerBase, text: Text, add_generation_prompt: bool = False) -> list[int]:
    if isinstance(text, list):
        return chat_token_ids(tokenizer, text, add_generation_prompt)
    return list(tokenizer(text=text)["input_ids"])


def chat_token_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], add_generation_prompt: bool = False
) -> list[int]:
    """Token ids of `messages` rendered with the tokenizer's chat template (as TRL renders them)."""
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
    )
    return list(cast(dict[str, Any], rendered)["input_ids"])


def _join(prompt: Text, completion: Text) -> Text:
    if isinstance(prompt, list) and isinstance(completion, list):
        return prompt + completion
    assert isinstance(prompt, str) and isinstance(completion, str), "pairs are all-text or all-messages"
    return prompt + completion


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):  # stops at the shorter one, by design
        if x != y:
            break
        n += 1
    return n


def fits(pair: TokenizedPair, max_length: int) -> bool:
    """Whether at least one completion token of each answer survives truncation to `max_length`."""
    return len(pair.prompt_ids) < max_length


@torch.inference_mode()
def score_pairs(
    model: PreTrainedModel,
    pairs: Sequence[TokenizedPair],
    max_length: int,
    batch_size: int,
    pad_token_id: int,
    label: str,
    padding_side: Literal["right", "left"] = "right",
) -> list[CompletionLogps]:
    """Summed completion log-probs of every pair under `model`, in the order of `pairs`.

    Each batch holds the chosen and the rejected sequence of `batch_size` pairs, padded on
    `padding_side`. Every pair's numbers depend on its own tokens only (causal attention, padding
    masked, positions counted from each sequence's first real token), so they do not change with
    the batch size, the padding side or the other pairs in the batch.
    """
    assert all(fits(p, max_length) for p in pairs), "pairs whose prompt fills max_length cannot be scored"
    model.eval()
    results: list[CompletionLogps] = []
    with progress_bar() as bar:
        task = bar.add_task(f"scoring {label}", total=len(pairs), status="")
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            sequences = [p.prompt_ids + p.chosen_ids for p in batch] + [p.prompt_ids + p.rejected_ids for p in batch]
            starts = [len(p.prompt_ids) for p in batch] * 2
            logps, counts = _sequence_logps(model, sequences, starts, max_length, pad_token_id, padding_side)
            half = len(batch)
            for i in range(half):
                results.append(
                    CompletionLogps(
                        chosen=logps[i],
                        rejected=logps[half + i],
                        n_tokens_chosen=counts[i],
                        n_tokens_rejected=counts[half + i],
                        truncated=max(len(sequences[i]), len(sequences[half + i])) > max_length,
                    )
                )
            bar.update(task, advance=len(batch))
    return results


def _sequence_logps(
    model: PreTrainedModel,
    sequences: list[list[int]],
    completion_starts: list[int],
    max_length: int,
    pad_token_id: int,
    padding_side: str,
) -> tuple[list[float], list[int]]:
    """Sum of log p(token) over the completion part of each sequence, and the number of such tokens."""
    sequences = [ids[:max_length] for ids in sequences]
    width = max(len(ids) for ids in sequences)
    device = model.device
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros_like(input_ids)  # (B, T)
    completion_mask = torch.zeros_like(input_ids)  # (B, T)
    for row, (ids, start) in enumerate(zip(sequences, completion_starts, strict=True)):
        offset = width - len(ids) if padding_side == "left" else 0
        input_ids[row, offset : offset + len(ids)] = torch.tensor(ids)
        attention_mask[row, offset : offset + len(ids)] = 1
        completion_mask[row, offset + start : offset + len(ids)] = 1
    # Positions count real tokens only, so a left-padded sequence sees the positions it would alone.
    position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)  # (B, T)
    input_ids, attention_mask, position_ids = input_ids.to(device), attention_mask.to(device), position_ids.to(device)
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).logits  # (B, T, V)
    # Position t predicts token t+1: drop the last logit and the first label.
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    targets = input_ids[:, 1:]  # (B, T-1)
    token_logps = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    mask = completion_mask[:, 1:].to(device)  # (B, T-1)
    # `where`, not a product, so that padding can never add NaN; float64 sums keep the batch-size noise < 1e-6.
    sums = torch.where(mask.bool(), token_logps.double(), 0.0).sum(dim=-1)  # (B,)
    return sums.cpu().double().tolist(), mask.sum(dim=-1).cpu().tolist()


def pair_scores(
    model_name: str,
    pairs: Sequence[TokenizedPair],
    policy: Sequence[CompletionLogps],
    reference: Sequence[CompletionLogps] | None,
) -> list[PairScore]:
    """Zip a model's log-probs (and the reference's, on the same tokens) into per-pair rows."""
    rows = []
    for index, (pair, logps) in enumerate(zip(pairs, policy, strict=True)):
        ref = reference[index] if reference is not None else None
        rows.append(
            PairScore(
                id=pair.id,
                subset=pair.subset,
                model=model_name,
                logp_chosen=logps.chosen,
                logp_rejected=logps.rejected,
                n_tokens_chosen=logps.n_tokens_chosen,
                n_tokens_rejected=logps.n_tokens_rejected,
                truncated=logps.truncated,
                ref_logp_chosen=ref.chosen if ref else None,
                ref_logp_rejected=ref.rejected if ref else None,
            )
        )
    return rows


@torch.inference_mode()
def sequence_logps(
    model: PreTrainedModel, sequences: Sequence[tuple[list[int], list[int]]], batch_size: int, pad_token_id: int
) -> list[float]:
    """Summed log-probs of each (prompt ids, completion ids) sequence's completion under `model`."""
    model.eval()
    out: list[float] = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        full = [prompt + completion for prompt, completion in batch]
        logps, _ = _sequence_logps(model, full, [len(p) for p, _ in batch], max(map(len, full)), pad_token_id, "right")
        out.extend(logps)
    return out
