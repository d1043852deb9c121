"""Decoding the panel reproducibly, and the text statistics of what came out.

Decoding is greedy by default. Seeded sampling draws `k` samples per prompt with a seed derived from the prompt's
position alone, so the samples do not depend on the batch size or on the other models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config.specs import SamplingSpec
from evalkit.console import progress_bar
from evalkit.data.rendering import PLAIN, Rendering
from evalkit.generate.panel import PanelPrompt, render_prompt
from evalkit.scoring.batching import process_rank, share_out
from evalkit.scoring.logps import length_dependent_rope


@dataclass(frozen=True)
class Sample:
    """One completion of one prompt by one model."""

    prompt_id: str
    model: str
    index: int
    """0 for the greedy (or first sampled) completion; 1..k-1 for further samples."""
    completion: str
    n_tokens: int
    ended: bool
    """True when the model stopped with its EOS token before `max_new_tokens`."""
    token_ids: list[int]


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    panel: Sequence[PanelPrompt],
    model_name: str,
    max_new_tokens: int,
    batch_size: int,
    sampling: SamplingSpec | None,
    *,
    own_distribution: bool = False,
    rendering: Rendering = PLAIN,
) -> list[Sample]:
    """Completions of every panel prompt: greedy in left-padded batches (`sampling` None), or
    `sampling.k` seeded samples per prompt. `own_distribution` switches off every sampling filter of
    the checkpoint's generation config (see `OWN_DISTRIBUTION`), so samples come from π itself."""
    prompts = [render_prompt(p.prompt, tokenizer, rendering) for p in panel]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    assert pad is not None, "a tokenizer without EOS or pad token cannot pad a batch"
    label = f"generating with {model_name}" + (f" ({sampling.k} samples per prompt)" if sampling else "")
    # Greedy: one unit per batch of prompts. Sampling: one per prompt, k copies of it, with its own seed, so
    # samples stay the same whatever the batch or the other models. Units are shared out between processes.
    size, copies = (batch_size, 1) if sampling is None else (1, sampling.k)
    if length_dependent_rope(getattr(model, "config", None)) is not None:
        size = 1  # its rotary scaling follows the longest position in a batch: each prompt alone, as it is scored
    units = [list(range(start, min(start + size, len(panel)))) for start in range(0, len(panel), size)]
    rank, world = process_rank()
    with progress_bar() as bar:
        task = bar.add_task(label, total=sum(len(unit) for unit in units[rank::world]), status="")

        def decode(unit: list[int]) -> list[Sample]:
            if sampling is not None:
                torch.manual_seed(_seed(sampling.seed, unit[0]))
            rows = [(i, j) for i in unit for j in range(copies)]  # (prompt, sample index)
            batch = [prompts[i] for i, _ in rows]
            outputs = _decode_batch(model, batch, max_new_tokens, pad, eos, sampling, own_distribution)
            bar.update(task, advance=len(unit))
            return [
                _sample(panel[i].id, model_name, j, ids, tokenizer, eos)
                for (i, j), ids in zip(rows, outputs, strict=True)
            ]

        return [sample for samples in share_out(units, decode) for sample in samples]


OWN_DISTRIBUTION: dict[str, Any] = {
    "top_k": 0,
    "top_p": 1.0,
    "min_p": None,
    "top_h": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "min_length": 0,
    "min_new_tokens": None,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "exponential_decay_length_penalty": None,
}
"""Decoding settings that leave π's next-token distribution as it is (at temperature 1). A checkpoint's
`generation_config.json` often sets a repetition penalty, an n-gram ban or a minimum length; left on,
samples would come from another distribution and the KL along them would not be KL(π‖π_ref)."""


def _seed(base: int, index: int) -> int:
    return (base * 1_000_003 + index) % (2**31)


def _decode_batch(
    model: PreTrainedModel,
    prompts: list[list[int]],
    max_new_tokens: int,
    pad: int,
    eos: int | None,
    sampling: SamplingSpec | None,
    own_distribution: bool = False,
) -> list[list[int]]:
    """New tokens for each prompt (left-padded together), cut after the first EOS."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros_like(input_ids)  # (B, T)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad}
    if eos is not None:
        options["eos_token_id"] = eos
    if sampling is not None:
        options |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        if own_distribution:
            options |= {**OWN_DISTRIBUTION, "temperature": 1.0}
    else:  # greedy; the None values silence a model's own generation_config sampling defaults
        options |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    device = model.device
    output = cast(Any, model).generate(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), **options
    )  # (B, T + new)
    completions = []
    for row in output[:, width:].tolist():
        if eos is not None and eos in row:
            row = row[: row.index(eos) + 1]
        completions.append(row)
    return completions


def _sample(
    prompt_id: str, model: str, index: int, ids: list[int], tokenizer: PreTrainedTokenizerBase, eos: int | None
) -> Sample:
    ended = bool(ids) and eos is not None and ids[-1] == eos
    text = str(tokenizer.decode(ids[:-1] if ended else ids, skip_special_tokens=True))
    return Sample(prompt_id, model, index, text, len(ids), ended, ids)


@dataclass(frozen=True)
class TextStats:
    """Shape of a model's completions."""

    mean_tokens: float
    eos_rate: float
    """Share of completions that ended with EOS rather than at `max_new_tokens`."""
    distinct_1: float
    """Distinct unigrams / all unigrams, over every completion of the model."""
    distinct_2: float
    repetition_rate: float
    """Share of tokens that repeat a 4-gram already seen earlier in the same completion."""


def text_stats(samples: Sequence[Sample]) -> TextStats:
    """Statistics over token ids (EOS excluded), so they do not depend on detokenization."""
    if not samples:
        return TextStats(0.0, 0.0, 0.0, 0.0, 0.0)
    bodies = [s.token_ids[:-1] if s.ended else s.token_ids for s in samples]
    unigrams = [t for body in bodies for t in body]
    bigrams = [tuple(body[i : i + 2]) for body in bodies for i in range(len(body) - 1)]
    repeated = 0
    for body in bodies:
        seen: set[tuple[int, ...]] = set()
        for i in range(len(body) - 3):
            gram = tuple(body[i : i + 4])
            repeated += gram in seen
            seen.add(gram)
    return TextStats(
        mean_tokens=sum(s.n_tokens for s in samples) / len(samples),
        eos_rate=sum(s.ended for s in samples) / len(samples),
        distinct_1=len(set(unigrams)) / len(unigrams) if unigrams else 0.0,
        distinct_2=len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
        repetition_rate=repeated / len(unigrams) if unigrams else 0.0,
    )


def per_prompt_means(samples: Sequence[Sample], values: list[float]) -> dict[str, dict[str, float]]:
    """model → prompt id → mean of `values` (aligned with `samples`) over that prompt's samples."""
    sums: dict[tuple[str, str], list[float]] = {}
    for sample, value in zip(samples, values, strict=True):
        sums.setdefault((sample.model, sample.prompt_id), []).append(value)
    out: dict[str, dict[str, float]] = {}
    for (model, prompt_id), found in sums.items():
        out.setdefault(model, {})[prompt_id] = float(np.mean(found))
    return out
