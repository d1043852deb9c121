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

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config import GenerationSpec
from evalkit.console import progress_bar
from evalkit.data import Message, PreferencePair, Text
from evalkit.errors import EvalkitError
from evalkit.scoring import chat_token_ids, sequence_logps

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


def render_prompt(prompt: Text, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of `prompt` as this model was trained to see it, ending where its answer starts."""
    if tokenizer.chat_template is not None:
        messages: list[Message] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return chat_token_ids(tokenizer, messages, add_generation_prompt=True)
    return list(tokenizer(text=_plain(prompt) if isinstance(prompt, list) else prompt)["input_ids"])


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    panel: Sequence[PanelPrompt],
    model_name: str,
    spec: GenerationSpec,
    *,
    sampled: bool | None = None,
    samples_per_prompt: int | None = None,
) -> list[Sample]:
    """Completions of every panel prompt: greedy in left-padded batches, or seeded samples per prompt."""
    do_sample = spec.sampling is not None if sampled is None else sampled
    k = samples_per_prompt or (spec.sampling.k if spec.sampling is not None else 1)
    prompts = [render_prompt(p.prompt, tokenizer) for p in panel]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    samples: list[Sample] = []
    label = f"generating with {model_name}" + (f" ({k} samples per prompt)" if do_sample else "")
    with progress_bar() as bar:
        task = bar.add_task(label, total=len(panel), status="")
        if not do_sample:
            for start in range(0, len(panel), spec.batch_size):
                batch = list(range(start, min(start + spec.batch_size, len(panel))))
                outputs = _decode_batch(model, [prompts[i] for i in batch], spec, pad, eos, do_sample=False)
                for i, ids in zip(batch, outputs, strict=True):
                    samples.append(_sample(panel[i].id, model_name, 0, ids, tokenizer, eos))
                bar.update(task, advance=len(batch))
        else:
            for i, prompt in enumerate(panel):
                # A seed per prompt: samples stay the same whatever the batch or the other models.
                torch.manual_seed(_seed(spec.sampling.seed if spec.sampling else 0, i))
                outputs = _decode_batch(model, [prompts[i]] * k, spec, pad, eos, do_sample=True)
                samples += [_sample(prompt.id, model_name, j, ids, tokenizer, eos) for j, ids in enumerate(outputs)]
                bar.update(task, advance=1)
    return samples


def _seed(base: int, index: int) -> int:
    return (base * 1_000_003 + index) % (2**31)


def _decode_batch(
    model: PreTrainedModel, prompts: list[list[int]], spec: GenerationSpec, pad: int, eos: int | None, do_sample: bool
) -> list[list[int]]:
    """New tokens for each prompt (left-padded together), cut after the first EOS."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros_like(input_ids)  # (B, T)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    options: dict[str, Any] = {"max_new_tokens": spec.max_new_tokens, "do_sample": do_sample, "pad_token_id": pad}
    if eos is not None:
        options["eos_token_id"] = eos
    if do_sample and spec.sampling is not None:
        options |= {"temperature": spec.sampling.temperature, "top_p": spec.sampling.top_p, "top_k": 0}
    else:
        options |= {"temperature": None, "top_p": None, "top_k": None}
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


def reward_model_judge(model: Any, tokenizer: PreTrainedTokenizerBase, max_length: int = 1024) -> Judge:
    """A judge scoring prompt+completion with a sequence-classification reward model (first logit)."""

    @torch.inference_mode()
    def score(prompt: str, completion: str) -> float:
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
) -> list[float]:
    """Summed log-probs of each sample's completion (its EOS included) under `model`."""
    by_id = {p.id: p for p in panel}
    sequences = [(render_prompt(by_id[s.prompt_id].prompt, tokenizer), s.token_ids) for s in samples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return sequence_logps(model, sequences, batch_size, int(pad))
