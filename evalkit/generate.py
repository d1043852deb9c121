"""Generation samples: the same prompts for every model, decoded reproducibly, then measured.

Log-prob metrics say which answer a model prefers; samples show what it now writes. Every model
gets the same prompt panel, rendered the way it was trained (its chat template for message
prompts and for plain prompts when it has one; the raw text otherwise). Decoding is greedy by
default. Seeded sampling draws `k` samples per prompt with a seed derived from the prompt's
position alone, so the samples do not depend on the batch size or on the other models.

On top of the samples: per-model text statistics, optional judges (a Python callable with the
ground truth, or a reward model), and drift from the reference, a Monte-Carlo estimate of
KL(π‖π_ref) = E_{y~π}[log π(y|x) − log π_ref(y|x)] from sampled completions.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.batching import process_rank, share_out
from evalkit.config import GenerationSpec, SamplingSpec
from evalkit.console import progress_bar
from evalkit.data import Message, PreferencePair, Text
from evalkit.errors import EvalkitError
from evalkit.logps import length_dependent_rope
from evalkit.rendering import PLAIN, Rendering, chat_token_ids
from evalkit.results import Drift, GenerationStats, JudgeSummary, Statistics, WinRate
from evalkit.scoring import sequence_logps
from evalkit.stats import Estimate, bootstrap_estimate, mean_of

Judge = Callable[[str, str], float]


@dataclass(frozen=True)
class PanelPrompt:
    """One prompt of the panel, as given (text or messages), with the text judges read."""

    id: str
    prompt: Text
    text: str
    """The prompt as plain text: the string itself, or the last message's content."""


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


def build_panel(spec: GenerationSpec, datasets: dict[str, list[PreferencePair]]) -> list[PanelPrompt]:
    """The suite's fixed prompts, then `n` prompts drawn with `seed` from the named dataset."""
    panel = [PanelPrompt(f"prompt-{i}", p, _plain(p)) for i, p in enumerate(spec.prompts)]
    if spec.from_dataset is not None:
        source = spec.from_dataset
        if source.dataset not in datasets:
            known = sorted(datasets)
            raise EvalkitError(
                f"generation.from_dataset.dataset: no dataset named {source.dataset!r}; datasets are {known}"
            )
        pairs = datasets[source.dataset]
        chosen = sorted(random.Random(source.seed).sample(range(len(pairs)), min(source.n, len(pairs))))
        panel += [PanelPrompt(pairs[i].id, pairs[i].prompt, _plain(pairs[i].prompt)) for i in chosen]
    return panel


def _plain(prompt: Text) -> str:
    if isinstance(prompt, str):
        return prompt
    return prompt[-1]["content"] if prompt else ""


def render_prompt(prompt: Text, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN) -> list[int]:
    """Token ids of `prompt` as this model was trained to see it (its template options and pinned date),
    ending where its answer starts."""
    if tokenizer.chat_template is not None:
        messages: list[Message] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return chat_token_ids(tokenizer, messages, rendering, add_generation_prompt=True)
    return list(tokenizer(text=_plain(prompt) if isinstance(prompt, list) else prompt)["input_ids"])


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    panel: Sequence[PanelPrompt],
    model_name: str,
    max_new_tokens: int,
    batch_size: int,
    sampling: SamplingSpec | None,
    rendering: Rendering = PLAIN,
) -> list[Sample]:
    """Completions of every panel prompt: greedy in left-padded batches (`sampling` None), or
    `sampling.k` seeded samples per prompt."""
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
            outputs = _decode_batch(model, [prompts[i] for i, _ in rows], max_new_tokens, pad, eos, sampling)
            bar.update(task, advance=len(unit))
            return [
                _sample(panel[i].id, model_name, j, ids, tokenizer, eos)
                for (i, j), ids in zip(rows, outputs, strict=True)
            ]

        return [sample for samples in share_out(units, decode) for sample in samples]


def _seed(base: int, index: int) -> int:
    return (base * 1_000_003 + index) % (2**31)


def _decode_batch(
    model: PreTrainedModel,
    prompts: list[list[int]],
    max_new_tokens: int,
    pad: int,
    eos: int | None,
    sampling: SamplingSpec | None,
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


def load_callable_judge(reference: str) -> Judge:
    """`package.module:function`, a callable `(prompt, completion) -> float`."""
    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name:
        raise EvalkitError(f"generation.judges: {reference!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EvalkitError(f"generation.judges: cannot import {module_name!r}: {exc}") from None
    judge = getattr(module, function_name, None)
    if not callable(judge):
        raise EvalkitError(f"generation.judges: {module_name!r} has no callable {function_name!r}")
    return cast(Judge, judge)


def reward_model_judge(
    model: Any, tokenizer: PreTrainedTokenizerBase, max_length: int = 1024, rendering: Rendering = PLAIN
) -> Judge:
    """A judge scoring prompt+completion with a sequence-classification reward model (first logit).

    A reward model with a chat template reads the exchange as it was trained to, a user turn and an assistant
    turn rendered with its template (`rendering`: the suite's options, a pinned date); without one, the
    prompt and completion as one text."""

    @torch.inference_mode()
    def score(prompt: str, completion: str) -> float:
        if tokenizer.chat_template is not None:
            exchange = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
            input_ids = torch.tensor([chat_token_ids(tokenizer, exchange, rendering)[:max_length]])  # (1, T)
            logits = model(input_ids=input_ids.to(model.device)).logits  # (1, labels)
        else:
            encoded = tokenizer(prompt + completion, return_tensors="pt", truncation=True, max_length=max_length)
            logits = model(**{k: v.to(model.device) for k, v in encoded.items()}).logits  # (1, labels)
        return float(logits[0, 0])

    return score


def completion_logps(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    panel: Sequence[PanelPrompt],
    samples: Sequence[Sample],
    batch_size: int,
    rendering: Rendering = PLAIN,
) -> list[float]:
    """Summed log-probs of each sample's completion (its EOS included) under `model`."""
    by_id = {p.id: p for p in panel}
    sequences = [(render_prompt(by_id[s.prompt_id].prompt, tokenizer, rendering), s.token_ids) for s in samples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return sequence_logps(model, sequences, batch_size, int(pad))


def summarise(
    panel: Sequence[PanelPrompt],
    samples: Sequence[Sample],
    scores: dict[str, list[float]],
    models: Sequence[str],
    baseline: str | None,
    statistics: Statistics,
) -> tuple[list[GenerationStats], list[JudgeSummary], list[WinRate]]:
    """Per-model text statistics, judge means, and win rates against `baseline`.

    `scores[judge][i]` is the judge's score of `samples[i]`. Each prompt counts once: its score is
    the mean over its samples. A win rate compares a model with the baseline prompt by prompt
    (a tie counts half), so it does not depend on the order in which models are listed.
    """
    stats = [GenerationStats(model=m, **vars(text_stats([s for s in samples if s.model == m]))) for m in models]
    prompt_ids = [p.id for p in panel]
    judges: list[JudgeSummary] = []
    win_rates: list[WinRate] = []
    for judge, values in scores.items():
        per_prompt = _per_prompt_means(samples, values, prompt_ids)
        for model in models:
            estimate = _mean_estimate(per_prompt[model], statistics)
            judges.append(
                JudgeSummary(judge=judge, model=model, mean=estimate.value, n=estimate.n, **_bounds(estimate))
            )
        if baseline is None:
            continue
        for model in models:
            if model == baseline:
                continue
            delta = per_prompt[model] - per_prompt[baseline]
            outcome = np.where(delta > 0, 1.0, np.where(delta < 0, 0.0, 0.5))
            rate, difference = _mean_estimate(outcome, statistics), _mean_estimate(delta, statistics)
            win_rates.append(
                WinRate(
                    judge=judge,
                    model=model,
                    baseline=baseline,
                    win_rate=rate.value,
                    wins=int((delta > 0).sum()),
                    ties=int((delta == 0).sum()),
                    losses=int((delta < 0).sum()),
                    score_delta=difference.value,
                    delta_ci_low=difference.interval.low if difference.interval else None,
                    delta_ci_high=difference.interval.high if difference.interval else None,
                    n=len(delta),
                    **_bounds(rate),
                )
            )
    return stats, judges, win_rates


def drift_estimate(
    model: str,
    reference: str,
    prompt_ids: Sequence[str],
    samples: Sequence[Sample],
    log_ratios: Sequence[float],
    samples_per_prompt: int,
    statistics: Statistics,
) -> Drift:
    """KL(π‖π_ref) ≈ mean over prompts of the mean log-ratio of that prompt's samples from π."""
    per_prompt = _per_prompt_means(samples, list(log_ratios), list(prompt_ids))[model]
    estimate = _mean_estimate(per_prompt, statistics)
    return Drift(
        model=model,
        reference=reference,
        kl=estimate.value,
        n=estimate.n,
        samples_per_prompt=samples_per_prompt,
        **_bounds(estimate),
    )


def _per_prompt_means(samples: Sequence[Sample], values: list[float], prompt_ids: list[str]) -> dict[str, np.ndarray]:
    """model → per-prompt mean of `values` (aligned with `samples`), in panel order."""
    sums: dict[tuple[str, str], list[float]] = {}
    for sample, value in zip(samples, values, strict=True):
        sums.setdefault((sample.model, sample.prompt_id), []).append(value)
    models = dict.fromkeys(s.model for s in samples)
    return {m: np.array([float(np.mean(sums[(m, p)])) for p in prompt_ids if (m, p) in sums]) for m in models}


def _mean_estimate(values: np.ndarray, statistics: Statistics) -> Estimate:
    if len(values) == 0:
        return Estimate(float("nan"), None, 0)
    return bootstrap_estimate(
        mean_of(values),
        len(values),
        statistics.confidence_level,
        statistics.bootstrap_resamples,
        statistics.bootstrap_seed,
    )


def _bounds(estimate: Estimate) -> dict[str, float | None]:
    interval = estimate.interval
    return {"ci_low": interval.low if interval else None, "ci_high": interval.high if interval else None}
