"""Completion log-probs out of a causal LM, with as little compute and memory as the model allows.

Three ways, chosen per model by a probe on a few real tokens (never assumed from the class):
- shared prompt: each pair is one row, prompt then chosen then rejected, under an attention mask
  that shows each completion its prompt and its own earlier tokens only, positions restarting for
  the rejected one. The prompt runs once, both completions in the same pass; the first completion
  token is scored from the prompt's last position. Models whose layers see a window shorter than
  such a row (sliding-window attention) are not packed;
- selective: one pass over whole sequences, the LM head applied only where a completion token
  is predicted, and the log-softmax taken a chunk of positions at a time, so no B×T×V logits
  ever exist (at a 128k vocabulary those dwarf the model's activations);
- plain: the model's own forward and full logits, for models whose logits are not `head(last
  hidden state)` (a scaled head; a soft cap is applied after the head) or that expose no decoder to call.
All three compute the same numbers up to float rounding (tests hold them within 1e-5).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from evalkit.console import console
from evalkit.results.schema import ScoringDtype, ScoringModeName

LENGTH_DEPENDENT_ROPE = ("dynamic", "longrope")
"""Rotary scalings whose frequencies follow the longest position of a forward pass (Phi-3.x and Phi-4-mini use
`longrope`), so a sequence's numbers change with what it is batched or packed with."""

LOGITS_CHUNK = 1 << 24
"""Logits per log-softmax chunk (64 MiB in fp32): 524 positions at a 32k vocabulary, 128 at 128k."""
PROBE_TOKENS = 8


@dataclass(frozen=True)
class Runner:
    """How one model is run for scoring, as found by `prepare`."""

    model: Any
    device: torch.device
    decoder: torch.nn.Module | None
    """The model without its LM head (None: the plain path, full logits from the model's forward)."""
    head: torch.nn.Module | None
    vocab_size: int
    share_prompt: bool
    """Whether each pair runs as one row, its prompt once (`packed_pair_logps`)."""
    autocast: torch.dtype | None
    """bfloat16 autocast for the forward passes, or None for the weights' own dtype."""
    additive_mask: bool = False
    """Whether the attention takes a float mask added to its scores (eager) rather than a boolean one (SDPA)."""
    one_per_pass: bool = False
    """Whether each sequence runs alone, shortest first (a model whose numbers depend on the longest in a pass)."""
    reason: str = ""
    """Why the probes chose this way, in words, for the results and reports."""
    soft_cap: float | None = None
    """The final soft cap applied after the head (Gemma 2 and 3), as the model's own forward applies it."""

    @property
    def mode(self) -> ScoringModeName:
        if self.share_prompt:
            return "prompt-shared"
        return "one sequence per pass" if self.one_per_pass else "whole sequences"

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        if self.autocast is None:
            yield
        else:
            with torch.autocast(self.device.type, dtype=self.autocast):
                yield


PairTokens = tuple[list[int], list[int], list[int]]
"""Token ids of a prompt, its chosen and its rejected completion."""


def prepare(
    model: Any, sample: Sequence[int], share_prompt: bool, dtype: ScoringDtype, longest: PairTokens | None = None
) -> Runner:
    """Probe `model` on the first tokens of `sample` for the fastest way that gives its own numbers.

    `longest`: the pair with the longest prompt + chosen + rejected to be scored. Prompts are shared
    only when every layer attends over at least that many tokens and the packed row of that pair
    gives the numbers of its whole sequences (effects that show only past some length, such as a
    window the config does not name or position scaling, cannot hide in the short probe).
    """
    device = model.device
    # A short pass first: it also resets a `dynamic` rotary cache that an earlier, longer pass grew.
    ids = torch.tensor([list(sample[:PROBE_TOKENS])], device=device)  # (1, T)
    full = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits  # (1, T, V)
    plain = Runner(model, device, None, None, full.shape[-1], False, _autocast_dtype(device, dtype))
    config = getattr(model, "config", None)
    scaling = length_dependent_rope(config)
    why = f"`{scaling}` rotary scaling changes with the longest position in a pass; each sequence runs alone"
    if scaling is not None:
        plain = dataclasses.replace(plain, one_per_pass=True)
    decoder, head = _decoder_and_head(model)
    if decoder is None or head is None or ids.shape[1] < 2:
        return dataclasses.replace(plain, reason=why if scaling else "the model exposes no decoder and head to call")
    scale = logit_scale(config)
    if scale is not None:
        return dataclasses.replace(plain, reason=why if scaling else f"its config's `{scale}` scales its logits")
    cap = soft_cap(config)
    tolerance = 1e-4 if full.dtype in (torch.float32, torch.float64) else 5e-2
    expected = full.float().log_softmax(-1)  # (1, T, V)
    hidden = decoder(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).last_hidden_state
    if not _close(capped(head(hidden).float(), cap).log_softmax(-1), expected, tolerance):
        # the model's logits are more than its head applied to the last hidden state
        return dataclasses.replace(plain, reason=why if scaling else "its logits are not its head on the last state")
    selective = dataclasses.replace(plain, decoder=decoder, head=head, soft_cap=cap)
    if scaling is not None:
        return dataclasses.replace(selective, reason=why)
    window = attention_window(config)
    longest_row = sum(map(len, longest)) if longest is not None else 0
    if not share_prompt:
        return dataclasses.replace(selective, reason="scoring.share_prompt is off")
    if window is not None and window < longest_row:
        why = f"an attention window of {window} tokens is shorter than the longest pair's row ({longest_row})"
        return dataclasses.replace(selective, reason=why)
    attention = getattr(config, "_attn_implementation", None)
    packed = dataclasses.replace(selective, share_prompt=True, additive_mask=attention != "sdpa")
    if not _packs_pairs(packed, ids, expected, tolerance):
        return dataclasses.replace(selective, reason="the probe found the model ignoring the packed attention mask")
    if longest is not None and not _packs_like_whole_sequences(packed, selective, longest, tolerance):
        return dataclasses.replace(selective, reason="the longest pair packed differs from its whole sequences")
    return dataclasses.replace(packed, reason="the probes found packed rows giving the numbers of whole sequences")


def length_dependent_rope(config: Any) -> str | None:
    """The rotary scaling type (`dynamic`, `longrope`) whose frequencies follow the longest position in a pass,
    read from the text config's `rope_parameters` (or the older `rope_scaling`, or one entry per layer type);
    None when positions are encoded the same whatever the batch."""
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    for name in ("rope_parameters", "rope_scaling"):
        value = getattr(config, name, None)
        if not isinstance(value, dict):
            continue
        entries = [value] if "rope_type" in value or "type" in value else list(value.values())
        for entry in entries:
            kind = entry.get("rope_type", entry.get("type")) if isinstance(entry, dict) else None
            if kind in LENGTH_DEPENDENT_ROPE:
                return str(kind)
    return None


LOGIT_SCALES = ("logit_scale", "logits_scaling")
"""Config fields that scale a model's logits after its head (Cohere, Granite): such a model runs its own forward."""


def logit_scale(config: Any) -> str | None:
    """The field of the text config that scales the logits after the head (not by 1), None when none does."""
    config = _text_config(config)
    for name in LOGIT_SCALES:
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 1:
            return name
    return None


def soft_cap(config: Any) -> float | None:
    """The cap of Gemma 2 and 3's final soft-capping, `cap·tanh(logits/cap)`, None without one.

    Read from the config, not left to the probe alone: a random or barely trained model's logits are so small
    that `30·tanh(x/30)` is `x` within the probe's tolerance, and the cap would be dropped unnoticed."""
    value = getattr(_text_config(config), "final_logit_softcapping", None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def capped(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    """`logits` soft-capped in place as the model does (`cap·tanh(logits/cap)`), or as they are without a cap."""
    return logits if cap is None else logits.div_(cap).tanh_().mul_(cap)


def _text_config(config: Any) -> Any:
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def attention_window(config: Any) -> int | None:
    """The fewest past tokens any layer attends over; None when every layer sees the whole sequence.

    Read from the text decoder's config (a multimodal model keeps it in `text_config`). `layer_types`
    names each layer's attention where a config has it; `use_sliding_window: false` (Qwen2) turns a
    configured window off. Otherwise any positive whole number the config names a window or a chunk
    (`sliding_window`, `attention_chunk_size`, GPT-Neo's `window_size`, ...) counts: guessing a
    window where there is none only costs speed, missing one would cost correct numbers. Any other
    restricted layer kind counts as a window of 0.
    """
    if config is None:
        return None  # no config to read: the probes alone decide
    if hasattr(config, "get_text_config"):
        config = config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and all(kind == "full_attention" for kind in layer_types):
        return None
    if getattr(config, "use_sliding_window", True) is False:
        return None
    names = config.to_dict() if hasattr(config, "to_dict") else vars(config)
    sizes = [
        value
        for name, value in names.items()
        if ("window" in name or "chunk" in name) and not ("layers" in name or "pattern" in name)  # not token counts
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    ]
    if sizes:
        return min(sizes)
    return 0 if layer_types is not None else None


def _decoder_and_head(model: Any) -> tuple[torch.nn.Module | None, torch.nn.Module | None]:
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError, ValueError):
        return None, None
    if not isinstance(decoder, torch.nn.Module) or not isinstance(head, torch.nn.Module):
        return None, None
    return decoder, head


def _packs_pairs(runner: Runner, ids: torch.Tensor, expected: torch.Tensor, tolerance: float) -> bool:
    """Whether `packed_pair_logps` gives this model's own numbers: two prompts of different lengths (so one
    row is padded), each with two completions, against one whole pass over `ids` (1, T)."""
    tokens = ids[0].tolist()
    if len(tokens) < 4:
        return False
    split = len(tokens) // 2
    prompts = [tokens[:split], tokens[: split + 1]]
    # Rows of 2T - split - 1 and 2T - split - 2 tokens: the second is padded.
    completions = [(tokens[split:], tokens[split:-1]), (tokens[split + 1 :], tokens[split + 1 : -1])]
    picked = expected[0, :-1].gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)  # (T-1,): log p(token t+1)
    wanted = [
        (float(picked[split - 1 :].sum()), float(picked[split - 1 : -1].sum())),
        (float(picked[split:].sum()), float(picked[split:-1].sum())),
    ]
    return _packed_gives(runner, prompts, completions, wanted, tolerance)


def _packs_like_whole_sequences(packed: Runner, whole: Runner, pair: PairTokens, tolerance: float) -> bool:
    """Whether the packed row of `pair` gives the numbers of its two whole sequences (the selective path)."""
    prompt, chosen, rejected = pair
    if not prompt or not chosen or not rejected:
        return True  # a batch with such a pair scores whole sequences anyway
    sequences = [prompt + chosen, prompt + rejected]
    wanted = whole_sequence_logps(whole, sequences, [len(prompt)] * 2, max(map(len, sequences)), prompt[0], "right")
    return _packed_gives(packed, [prompt], [(chosen, rejected)], [(wanted.logps[0], wanted.logps[1])], tolerance)


def _packed_gives(
    runner: Runner,
    prompts: list[list[int]],
    completions: list[tuple[list[int], list[int]]],
    wanted: list[tuple[float, float]],
    tolerance: float,
) -> bool:
    """Whether `packed_pair_logps` gives `wanted`, within `tolerance` per token of each whole sequence."""
    try:
        got = packed_pair_logps(runner, prompts, completions, pad_token_id=prompts[0][0])
    except Exception:  # a model that takes no custom attention mask: score whole sequences instead
        return False
    return all(
        abs(g - w) <= tolerance * (len(prompt) + len(completion))
        for prompt, pair, sums, targets in zip(prompts, completions, got, wanted, strict=True)
        for completion, g, w in zip(pair, (sums.chosen, sums.rejected), targets, strict=True)
    )


def _close(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    return a.shape == b.shape and bool((a - b).abs().max() <= tolerance)


def _autocast_dtype(device: torch.device, dtype: ScoringDtype) -> torch.dtype | None:
    if dtype == "float32":
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        console.print("[yellow]scoring.dtype: this GPU has no bfloat16; scoring in float32[/yellow]")
        return None
    return torch.bfloat16


def token_logps(runner: Runner, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) for each row of `hidden` (N, H) under the head, a chunk of rows at a time.

    A plain float32 head writes every chunk's logits into one reused buffer and the log-sum-exp
    works in place on it: a fresh chunk-sized tensor per chunk would cost a page fault per page.
    """
    assert runner.head is not None
    rows = hidden.shape[0]
    out = torch.empty(rows, dtype=torch.float32, device=hidden.device)  # (N,)
    chunks = -(-rows * runner.vocab_size // LOGITS_CHUNK)  # as few chunks as fit, of equal size
    step = max(1, -(-rows // max(chunks, 1)))
    weight = _plain_head_weight(runner)  # (V, H) or None
    buffer = None
    if weight is not None:
        buffer = torch.empty(min(step, rows), runner.vocab_size, dtype=torch.float32, device=hidden.device)
    for start in range(0, rows, step):
        chunk = hidden[start : start + step]  # (C, H)
        if buffer is not None and weight is not None:
            logits = torch.mm(chunk, weight.t(), out=buffer[: chunk.shape[0]])  # (C, V)
        else:
            logits = runner.head(chunk).float()  # (C, V): a fresh tensor, safe to cap in place
        logits = capped(logits, runner.soft_cap)
        picked = logits.gather(-1, targets[start : start + step].unsqueeze(-1)).squeeze(-1)  # (C,)
        peak = logits.amax(dim=-1, keepdim=True)  # (C, 1)
        out[start : start + step] = picked - logits.sub_(peak).exp_().sum(dim=-1).log_().add_(peak.squeeze(-1))
    return out


def _plain_head_weight(runner: Runner) -> torch.Tensor | None:
    """The weight of a bias-free float32 linear head computed in float32, else None (call the head)."""
    head = runner.head
    if runner.autocast is not None or type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    return head.weight if head.weight.dtype == torch.float32 else None


PROMPT, CHOSEN, REJECTED, PADDING = 0, 1, 2, 3
"""What each position of a packed row holds."""


@dataclass(frozen=True)
class PairSums:
    """Summed log-probs of one pair's completions under one model, and what LD-DPO and ORPO read besides."""

    chosen: float
    rejected: float
    chosen_shared: float
    """The chosen completion's first min(T_c, T_r) tokens: LD-DPO's shared part (all of the shorter completion)."""
    rejected_shared: float
    prompt: float | None = None
    """The prompt's tokens after its first, each given those before it (ORPO's NLL covers them); None unless
    asked for (`with_prompt`): the LM head then runs over every prompt position too."""


def packed_pair_logps(
    runner: Runner,
    prompts: list[list[int]],
    completions: list[tuple[list[int], list[int]]],
    pad_token_id: int,
    with_prompt: bool = False,
) -> list[PairSums]:
    """Summed log-probs of each (chosen, rejected) completion, its prompt computed once.

    Each pair is one right-padded row: prompt, chosen, rejected. A chosen token attends to the
    prompt and the chosen tokens before it; a rejected token to the prompt and the rejected tokens
    before it, never to the chosen ones, and its positions count on from the prompt's end. So each
    completion sees exactly what it would see after its prompt alone; a padding position sees only
    itself (no row of the mask is empty). Token k of a completion is predicted at the position
    before it: the prompt's last position for k = 0, for both completions. With `with_prompt`, prompt
    token j > 0 is predicted at position j − 1 as well.
    """
    assert runner.decoder is not None and all(prompts)  # the probe calls this before `share_prompt` is set
    pairs = len(prompts)
    width = max(len(p) + len(c) + len(r) for p, (c, r) in zip(prompts, completions, strict=True))
    input_ids = torch.full((pairs, width), pad_token_id, dtype=torch.long)  # (B, W)
    position_ids = torch.zeros_like(input_ids)  # (B, W)
    segment = torch.full_like(input_ids, PADDING)  # (B, W)
    rows: list[int] = []
    columns: list[int] = []
    targets: list[int] = []
    owners: list[int] = []  # 3i: pair i's chosen, 3i+1: its rejected, 3i+2: its prompt
    shared: list[bool] = []  # whether the token is within the shorter completion's length
    for row, (prompt, (chosen, rejected)) in enumerate(zip(prompts, completions, strict=True)):
        p, c, r = len(prompt), len(chosen), len(rejected)
        input_ids[row, : p + c + r] = torch.tensor(prompt + chosen + rejected)
        position_ids[row, : p + c] = torch.arange(p + c)
        position_ids[row, p + c : p + c + r] = torch.arange(p, p + r)
        segment[row, :p], segment[row, p : p + c], segment[row, p + c : p + c + r] = PROMPT, CHOSEN, REJECTED
        rows += [row] * (c + r)
        columns += [p - 1 + k for k in range(c)] + [p - 1 if k == 0 else p + c + k - 1 for k in range(r)]
        targets += chosen + rejected
        owners += [3 * row] * c + [3 * row + 1] * r
        shared += [k < min(c, r) for k in range(c)] + [k < min(c, r) for k in range(r)]
        if with_prompt:
            rows += [row] * (p - 1)
            columns += list(range(p - 1))
            targets += prompt[1:]
            owners += [3 * row + 2] * (p - 1)
            shared += [False] * (p - 1)
    device = runner.device
    segment = segment.to(device)
    query, key = segment[:, :, None], segment[:, None, :]  # (B, W, 1), (B, 1, W)
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()  # (W, W)
    allowed = causal & ((key == PROMPT) | (key == query)) & (query != PADDING)  # (B, W, W)
    allowed |= torch.eye(width, dtype=torch.bool, device=device)
    mask = allowed.unsqueeze(1)  # (B, 1, W, W)
    if runner.additive_mask:
        dtype = runner.autocast or runner.model.dtype
        mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, torch.finfo(dtype).min)
    hidden = runner.decoder(
        input_ids=input_ids.to(device), attention_mask=mask, position_ids=position_ids.to(device), use_cache=False
    ).last_hidden_state  # (B, W, H)
    at_row, at_column = torch.tensor(rows, device=device), torch.tensor(columns, device=device)
    logps = token_logps(runner, hidden[at_row, at_column], torch.tensor(targets, device=device)).double()  # (N,)
    slots, within = torch.tensor(owners, device=device), torch.tensor(shared, device=device)
    sums = torch.zeros(3 * pairs, dtype=torch.float64, device=device).index_add_(0, slots, logps)  # (3B,)
    heads = torch.zeros(3 * pairs, dtype=torch.float64, device=device)  # (3B,)
    heads.index_add_(0, slots[within], logps[within])
    values, shared_values = sums.cpu().tolist(), heads.cpu().tolist()
    return [
        PairSums(
            values[3 * i],
            values[3 * i + 1],
            shared_values[3 * i],
            shared_values[3 * i + 1],
            values[3 * i + 2] if with_prompt else None,
        )
        for i in range(pairs)
    ]


@dataclass(frozen=True)
class SequenceSums:
    """Per whole sequence (lists in the order given): its completion's summed log-prob and tokens, and the parts
    `whole_sequence_logps` was asked for besides."""

    logps: list[float]
    tokens: list[int]
    shared: list[float]
    """The completion's first `shared_lengths` tokens (all of them when no length is given)."""
    prompt: list[float | None]
    """The prompt's tokens after its first, for the sequences `with_prompt` names; None for the others."""


def whole_sequence_logps(
    runner: Runner,
    sequences: list[list[int]],
    completion_starts: list[int],
    max_length: int,
    pad_token_id: int,
    padding_side: str,
    shared_lengths: list[int] | None = None,
    with_prompt: list[bool] | None = None,
) -> SequenceSums:
    """Sum of log p(token) over the completion part of each whole sequence, and the number of such tokens; over
    the first `shared_lengths[i]` completion tokens of sequence i; over its prompt where `with_prompt[i]`."""
    sequences = [ids[:max_length] for ids in sequences]
    width = max(len(ids) for ids in sequences)
    device = runner.device
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros_like(input_ids)  # (B, T)
    completion_mask = torch.zeros_like(input_ids)  # (B, T)
    prompt_mask = torch.zeros_like(input_ids)  # (B, T): prompt tokens after the first, where asked for
    for row, (ids, start) in enumerate(zip(sequences, completion_starts, strict=True)):
        offset = width - len(ids) if padding_side == "left" else 0
        input_ids[row, offset : offset + len(ids)] = torch.tensor(ids)
        attention_mask[row, offset : offset + len(ids)] = 1
        completion_mask[row, offset + start : offset + len(ids)] = 1
        if with_prompt is not None and with_prompt[row]:
            prompt_mask[row, offset + 1 : offset + start] = 1
    # Positions count real tokens only, so a left-padded sequence sees the positions it would alone.
    position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)  # (B, T)
    input_ids, attention_mask, position_ids = input_ids.to(device), attention_mask.to(device), position_ids.to(device)
    mask = completion_mask[:, 1:].to(device).bool()  # (B, T-1): position t predicts token t+1
    heads = torch.tensor(shared_lengths if shared_lengths is not None else [width] * len(sequences), device=device)
    head_mask = mask & (mask.cumsum(dim=-1) <= heads[:, None])  # (B, T-1): the first `heads` completion tokens
    masks = torch.stack([mask, head_mask, prompt_mask[:, 1:].to(device).bool()])  # (3, B, T-1)
    if runner.decoder is None:
        logits = runner.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).logits  # (B, T, V)
        # Position t predicts token t+1: drop the last logit and the first label.
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
        picked = log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T-1)
        # `where`, not a product, so that padding can never add NaN; float64 sums keep the batch-size noise < 1e-6.
        sums = torch.where(masks, picked.double(), 0.0).sum(dim=-1)  # (3, B)
    else:
        hidden = runner.decoder(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state  # (B, T, H)
        at_row, at_col = (masks[0] | masks[2]).nonzero(as_tuple=True)
        logps = token_logps(runner, hidden[at_row, at_col], input_ids[at_row, at_col + 1]).double()  # (N,)
        sums = torch.zeros(3, len(sequences), dtype=torch.float64, device=device)  # (3, B)
        for kind in range(3):
            picked = masks[kind][at_row, at_col]  # (N,): the scored tokens this sum takes
            sums[kind].index_add_(0, at_row[picked], logps[picked])
    totals, shared, prompts = sums.cpu().tolist()
    asked = with_prompt if with_prompt is not None else [False] * len(sequences)
    return SequenceSums(
        totals, mask.sum(dim=-1).cpu().tolist(), shared, [p if a else None for p, a in zip(prompts, asked, strict=True)]
    )
