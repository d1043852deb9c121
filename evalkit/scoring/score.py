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

How the forward passes run (length-sorted batches, prompts computed once, the log-softmax over
completion positions only, several processes) is `evalkit.scoring.batching` and `evalkit.scoring.logps`; none
of it changes the numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config.specs import ScoringSpec
from evalkit.console import progress_bar
from evalkit.data.pairs import PreferencePair, Text, as_plain_text
from evalkit.data.rendering import PLAIN, Rendering, chat_token_ids
from evalkit.results.pairs import PairScore
from evalkit.results.schema import ScoringDtype, ScoringMode
from evalkit.scoring.batching import PairShape, every_process, plan_batches, process_rank, row_length, share_out
from evalkit.scoring.logps import (
    PairSums,
    Runner,
    SequenceSums,
    packed_pair_logps,
    prepare,
    whole_sequence_logps,
)


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
    chosen_shared: float | None = None
    """The chosen completion's first min(T_c, T_r) tokens (LD-DPO's shared part); None in caches written before."""
    rejected_shared: float | None = None
    prompt: float | None = None
    """The prompt's tokens after its first (ORPO's NLL covers them); None unless asked for."""
    n_tokens_prompt: int | None = None


def tokenize_pair(
    pair: PreferencePair, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN
) -> TokenizedPair:
    """Token ids for `pair`, identical to what TRL's DPOTrainer feeds the model (chats rendered with `rendering`)."""
    if pair.is_conversational and tokenizer.chat_template is None:
        pair = as_plain_text(pair)
    chosen, rejected = pair.chosen, pair.rejected
    if not pair.is_conversational:
        eos = tokenizer.eos_token or ""
        assert isinstance(chosen, str) and isinstance(rejected, str)
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
    prompt_ids = encode_text(tokenizer, pair.prompt, rendering, add_generation_prompt=True)
    prompt_chosen_ids = encode_text(tokenizer, _join(pair.prompt, chosen), rendering)
    prompt_rejected_ids = encode_text(tokenizer, _join(pair.prompt, rejected), rendering)
    prompt_len = min(common_prefix(prompt_ids, prompt_chosen_ids), common_prefix(prompt_ids, prompt_rejected_ids))
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


def encode_text(
    tokenizer: PreTrainedTokenizerBase, text: Text, rendering: Rendering, add_generation_prompt: bool = False
) -> list[int]:
    if isinstance(text, list):
        return chat_token_ids(tokenizer, text, rendering, add_generation_prompt)
    return list(tokenizer(text=text)["input_ids"])


def _join(prompt: Text, completion: Text) -> Text:
    if isinstance(prompt, list) and isinstance(completion, list):
        return prompt + completion
    assert isinstance(prompt, str) and isinstance(completion, str), "pairs are all-text or all-messages"
    return prompt + completion


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
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
    settings: ScoringSpec,
    pad_token_id: int,
    label: str,
    *,
    padding_side: Literal["right", "left"] = "right",
    runner: Runner | None = None,
    with_prompt: bool = False,
) -> list[CompletionLogps]:
    """Summed completion log-probs of every pair under `model`, in the order of `pairs`, with the passes
    `settings` asks for (`max_length`, `batch_size` or `token_budget`, `share_prompt`, `dtype`).

    `runner`: how to run `model`, as `probe_scoring` found it for these pairs (probed here when None).
    `with_prompt`: also sum each prompt's log-probs (ORPO's NLL covers the prompt), at the cost of the LM head
    over every prompt position.

    Pairs are sorted by length and batched `batch_size` pairs at a time, or by `token_budget`
    tokens (padding included) when one is given. With `share_prompt`, each pair runs as one row, its
    prompt once and both completions after it (where the model allows; see `evalkit.scoring.logps`);
    otherwise whole sequences are padded on `padding_side`. Every pair's numbers depend on its own
    tokens only (causal attention, padding masked, positions counted from each sequence's first
    real token), so they do not change with the batching, the padding side, prompt sharing or the
    number of processes: under `torchrun`, whole batches are dealt out to the processes and every
    process gets all the results back, in order.
    """
    max_length = settings.max_length
    assert all(fits(p, max_length) for p in pairs), "pairs whose prompt fills max_length cannot be scored"
    model.eval()
    if not pairs:
        return []
    shapes = _shapes(pairs, max_length)
    runner = runner or probe_scoring(model, pairs, max_length, settings.share_prompt, settings.dtype)
    assert runner is not None  # there are pairs
    if runner.one_per_pass:
        return exact_ties(pairs, _one_per_pass(runner, pairs, shapes, pad_token_id, label, with_prompt))
    batches = plan_batches(shapes, settings.batch_size, settings.token_budget, runner.share_prompt)
    rank, world = process_rank()
    with progress_bar() as bar:
        task = bar.add_task(f"scoring {label}", total=sum(len(b) for b in batches[rank::world]), status="")

        def score(batch: list[int]) -> list[CompletionLogps]:
            with runner.computing():
                scored = _score_batch(
                    runner, [pairs[i] for i in batch], max_length, pad_token_id, padding_side, with_prompt
                )
            bar.update(task, advance=len(batch))
            return scored

        by_batch = share_out(batches, score)
    out: list[CompletionLogps | None] = [None] * len(pairs)
    for batch, scored in zip(batches, by_batch, strict=True):
        for index, logps in zip(batch, scored, strict=True):
            out[index] = logps
    return exact_ties(pairs, [logps for logps in out if logps is not None])


def exact_ties(pairs: Sequence[TokenizedPair], scored: list[CompletionLogps]) -> list[CompletionLogps]:
    """Token-identical answers get one log-prob: packed after one prompt they sit at other positions, and the
    float arithmetic there differs by ~1e-6, enough to turn an exact tie into a "preference" either way."""
    return [
        replace(logps, rejected=logps.chosen, rejected_shared=logps.chosen_shared)
        if pair.chosen_ids == pair.rejected_ids
        else logps
        for pair, logps in zip(pairs, scored, strict=True)
    ]


@dataclass(frozen=True)
class ModelLogps:
    """One model's summed completion log-probs on some pairs, and how its passes ran (None: no pair to score), so
    that a run that takes them from a cache records the same as the run that computed them."""

    logps: list[CompletionLogps]
    mode: ScoringMode | None


def score_configured(
    model: PreTrainedModel,
    pairs: Sequence[TokenizedPair],
    settings: ScoringSpec,
    pad_token_id: int,
    label: str,
    with_prompt: bool = False,
) -> ModelLogps:
    """`score_pairs` with the settings of a suite's `scoring` section, after the probes choose how to run `model`.

    The mode names no dataset: the caller, which knows it, records it."""
    runner = probe_scoring(model, pairs, settings.max_length, settings.share_prompt, settings.dtype)
    if runner is None:
        return ModelLogps([], None)
    logps = score_pairs(model, pairs, settings, pad_token_id, label, runner=runner, with_prompt=with_prompt)
    return ModelLogps(logps, ScoringMode(dataset="", mode=runner.mode, reason=runner.reason))


@torch.inference_mode()
def probe_scoring(
    model: PreTrainedModel,
    pairs: Sequence[TokenizedPair],
    max_length: int,
    share_prompt: bool = True,
    dtype: ScoringDtype = "float32",
) -> Runner | None:
    """How `model` will score `pairs`: the probes of `evalkit.scoring.logps.prepare` on the first pair, and the pair
    with the longest row, and the way they chose (`Runner.mode`, `Runner.reason`); None without pairs."""
    if not pairs:
        return None
    shapes = _shapes(pairs, max_length)
    widest = max(range(len(pairs)), key=lambda i: (row_length(shapes[i], share_prompt=True), -i))
    longest = (
        pairs[widest].prompt_ids,
        pairs[widest].chosen_ids[: shapes[widest].chosen],
        pairs[widest].rejected_ids[: shapes[widest].rejected],
    )
    runner = prepare(model, pairs[0].prompt_ids + pairs[0].chosen_ids, share_prompt, dtype, longest)
    # One batch plan for all processes: rows are packed only where every process's probes allow it.
    shared = every_process(runner.share_prompt)
    if shared == runner.share_prompt:
        return runner
    return replace(runner, share_prompt=False, reason="another process's probes found packing unsafe")


def _shapes(pairs: Sequence[TokenizedPair], max_length: int) -> list[PairShape]:
    return [
        PairShape(
            len(p.prompt_ids), *(min(len(c), max_length - len(p.prompt_ids)) for c in (p.chosen_ids, p.rejected_ids))
        )
        for p in pairs
    ]


def _one_per_pass(
    runner: Runner,
    pairs: Sequence[TokenizedPair],
    shapes: list[PairShape],
    pad_token_id: int,
    label: str,
    with_prompt: bool,
) -> list[CompletionLogps]:
    """Each (truncated) sequence in a pass of its own, shortest first, so that a rotary scaling that follows the
    longest position of a pass gives every sequence the numbers it has alone. Shortest first matters for
    `dynamic` scaling, which keeps the frequencies of the longest pass so far until a pass within the original
    length resets them: growing passes recompute them for each new length (the probe's short pass reset them)."""
    units = [  # (pair, 0 chosen / 1 rejected, sequence ids)
        (
            index,
            side,
            pair.prompt_ids + (pair.chosen_ids, pair.rejected_ids)[side][: (shape.chosen, shape.rejected)[side]],
        )
        for index, (pair, shape) in enumerate(zip(pairs, shapes, strict=True))
        for side in (0, 1)
    ]
    units.sort(key=lambda unit: (len(unit[2]), unit[0], unit[1]))
    with progress_bar() as bar:
        rank, world = process_rank()
        task = bar.add_task(f"scoring {label} (one sequence per pass)", total=len(units[rank::world]), status="")

        def score(unit: tuple[int, int, list[int]]) -> SequenceSums:
            index, side, ids = unit
            shape = shapes[index]
            with runner.computing():
                sums = whole_sequence_logps(
                    runner,
                    [ids],
                    [len(pairs[index].prompt_ids)],
                    len(ids),
                    pad_token_id,
                    "right",
                    shared_lengths=[min(shape.chosen, shape.rejected)],
                    with_prompt=[with_prompt and side == 0],  # the prompt once, with the chosen sequence
                )
            bar.update(task, advance=1)
            return sums

        scored = share_out(units, score)
    sums: dict[tuple[int, int], SequenceSums] = {(u[0], u[1]): s for u, s in zip(units, scored, strict=True)}
    return [
        CompletionLogps(
            chosen=sums[(i, 0)].logps[0],
            rejected=sums[(i, 1)].logps[0],
            n_tokens_chosen=sums[(i, 0)].tokens[0],
            n_tokens_rejected=sums[(i, 1)].tokens[0],
            truncated=len(pair.chosen_ids) > shape.chosen or len(pair.rejected_ids) > shape.rejected,
            chosen_shared=sums[(i, 0)].shared[0],
            rejected_shared=sums[(i, 1)].shared[0],
            prompt=sums[(i, 0)].prompt[0],
            n_tokens_prompt=_prompt_tokens(pair) if with_prompt else None,
        )
        for i, (pair, shape) in enumerate(zip(pairs, shapes, strict=True))
    ]


def _prompt_tokens(pair: TokenizedPair) -> int:
    """The prompt tokens that have a log-prob: all but the first, which nothing comes before."""
    return max(len(pair.prompt_ids) - 1, 0)


def _score_batch(
    runner: Runner,
    batch: list[TokenizedPair],
    max_length: int,
    pad_token_id: int,
    padding_side: str,
    with_prompt: bool,
) -> list[CompletionLogps]:
    room = [max_length - len(p.prompt_ids) for p in batch]
    completions = [(p.chosen_ids[:r], p.rejected_ids[:r]) for p, r in zip(batch, room, strict=True)]
    truncated = [len(p.chosen_ids) > r or len(p.rejected_ids) > r for p, r in zip(batch, room, strict=True)]
    prompts = [p.prompt_ids for p in batch]
    if runner.share_prompt and all(prompts):
        sums = packed_pair_logps(runner, prompts, completions, pad_token_id, with_prompt)
        counts = [(len(c), len(r)) for c, r in completions]
    else:  # whole sequences: chosen rows, then rejected rows
        sequences = [p + c for p, (c, _) in zip(prompts, completions, strict=True)]
        sequences += [p + r for p, (_, r) in zip(prompts, completions, strict=True)]
        shared = [min(len(c), len(r)) for c, r in completions]
        whole = whole_sequence_logps(
            runner,
            sequences,
            [len(p) for p in prompts] * 2,
            max_length,
            pad_token_id,
            padding_side,
            shared_lengths=shared * 2,
            with_prompt=[with_prompt] * len(batch) + [False] * len(batch),  # the prompt once, with the chosen rows
        )
        half = len(batch)
        sums = [
            PairSums(whole.logps[i], whole.logps[half + i], whole.shared[i], whole.shared[half + i], whole.prompt[i])
            for i in range(half)
        ]
        counts = [(whole.tokens[i], whole.tokens[half + i]) for i in range(half)]
    return [
        CompletionLogps(
            chosen=pair_sums.chosen,
            rejected=pair_sums.rejected,
            n_tokens_chosen=n_chosen,
            n_tokens_rejected=n_rejected,
            truncated=cut,
            chosen_shared=pair_sums.chosen_shared,
            rejected_shared=pair_sums.rejected_shared,
            prompt=pair_sums.prompt,
            n_tokens_prompt=_prompt_tokens(pair) if with_prompt else None,
        )
        for pair, pair_sums, (n_chosen, n_rejected), cut in zip(batch, sums, counts, truncated, strict=True)
    ]


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
                prompt_key=prompt_key(pair.prompt_ids),
                logp_chosen_shared=logps.chosen_shared,
                logp_rejected_shared=logps.rejected_shared,
                ref_logp_chosen_shared=ref.chosen_shared if ref else None,
                ref_logp_rejected_shared=ref.rejected_shared if ref else None,
                logp_prompt=logps.prompt,
                n_tokens_prompt=logps.n_tokens_prompt,
            )
        )
    return rows


def prompt_key(prompt_ids: Sequence[int]) -> str:
    """16 hex digits naming a prompt by its tokens: pairs that share it are clustered by the metrics."""
    return hashlib.sha256(json.dumps(list(prompt_ids)).encode()).hexdigest()[:16]
