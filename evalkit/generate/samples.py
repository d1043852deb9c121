"""Generation samples: the same prompts for every model, decoded reproducibly, then measured.

Log-prob metrics say which answer a model prefers; samples show what it now writes. Every model
gets the same prompt panel, rendered the way it was trained (its chat template for message
prompts and for plain prompts when it has one; the raw text otherwise). Decoding is greedy by
default. Seeded sampling draws `k` samples per prompt with a seed derived from the prompt's
position alone, so the samples do not depend on the batch size or on the other models.

On top of the samples: per-model text statistics, optional judges (a Python callable with the
ground truth, or a reward model), and drift from the reference: KL(π‖π_ref) along completions
sampled from π itself, summing at every position the exact KL between the two models' full
next-token distributions (`per_token_kls`). That is the Rao-Blackwellised form of the
Monte-Carlo estimate E_{y~π}[log π(y|x) − log π_ref(y|x)]: the same expectation, never negative,
and with far less variance than the sampled log-ratio, which goes negative on small panels.
"""

from __future__ import annotations

import contextlib
import importlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config.specs import GenerationSpec, SamplingSpec
from evalkit.console import progress_bar
from evalkit.data.pairs import Message, PreferencePair, Text
from evalkit.data.rendering import PLAIN, Rendering, chat_token_ids
from evalkit.errors import EvalkitError
from evalkit.metrics import stats
from evalkit.results.schema import Drift, GenerationStats, JudgeSummary, Statistics, WinRate
from evalkit.scoring.batching import process_rank, share_out
from evalkit.scoring.logps import length_dependent_rope

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
    the mean over its samples. A judge's mean gets an interval over prompts (`_judge_mean`). A win rate
    compares a model with the baseline prompt by prompt, on the prompts both answered (a tie counts
    half), with a Wilson interval and the sign test beside it, so it does not depend on the order
    in which models are listed or on a prompt one of them lacks.
    """
    stats_rows = [GenerationStats(model=m, **vars(text_stats([s for s in samples if s.model == m]))) for m in models]
    confidence = statistics.confidence_level
    judges: list[JudgeSummary] = []
    win_rates: list[WinRate] = []
    for judge, values in scores.items():
        per_prompt = _per_prompt_means(samples, values)
        for model in models:
            found = per_prompt.get(model, {})
            if not found:
                continue
            estimate = _judge_mean(np.array(list(found.values())), confidence)
            judges.append(
                JudgeSummary(judge=judge, model=model, mean=estimate.value, n=estimate.n, **_bounds(estimate))
            )
        if baseline is None or baseline not in per_prompt:
            continue
        for model in models:
            if model == baseline or model not in per_prompt:
                continue
            shared = [p.id for p in panel if p.id in per_prompt[model] and p.id in per_prompt[baseline]]
            if not shared:
                continue
            delta = np.array([per_prompt[model][p] - per_prompt[baseline][p] for p in shared])
            wins, ties, losses = int((delta > 0).sum()), int((delta == 0).sum()), int((delta < 0).sum())
            rate = stats.proportion(np.where(delta > 0, 1.0, np.where(delta < 0, 0.0, 0.5)), confidence)
            difference = stats.mean(delta, confidence)
            win_rates.append(
                WinRate(
                    judge=judge,
                    model=model,
                    baseline=baseline,
                    win_rate=rate.value,
                    sign_test_p=stats.sign_test_p(wins, losses),
                    wins=wins,
                    ties=ties,
                    losses=losses,
                    score_delta=difference.value,
                    delta_ci_low=difference.interval.low if difference.interval else None,
                    delta_ci_high=difference.interval.high if difference.interval else None,
                    n=len(delta),
                    **_bounds(rate),
                )
            )
    return stats_rows, judges, win_rates


def _judge_mean(values: np.ndarray, confidence: float) -> stats.Estimate:
    """A judge's mean over prompts: scores in [0, 1] (right or wrong, partly right) are a share, with
    Wilson's interval on the effective n, so it stays inside [0, 1]; any other scale gets Student t."""
    if np.all((values >= 0) & (values <= 1)):
        return stats.proportion(values, confidence)
    return stats.mean(values, confidence)


@torch.inference_mode()
def per_token_kls(
    policy: PreTrainedModel,
    reference: Callable[[], contextlib.AbstractContextManager[PreTrainedModel]],
    tokenizer: PreTrainedTokenizerBase,
    panel: Sequence[PanelPrompt],
    samples: Sequence[Sample],
    batch_size: int,
    rendering: Rendering = PLAIN,
) -> list[float]:
    """Σ_t KL(π(·|x, y<t) ‖ π_ref(·|x, y<t)) over each sample's completion positions (its EOS included).

    `reference()` enters a context that yields the reference model (for an adapter on the reference's
    base: the same model with its adapter disabled), entered once per batch. Float64 sums. Both models
    read the prompt rendered the policy's way (`rendering`). A model whose rotary scaling depends on the
    longest position in a pass (`dynamic`, `longrope`) runs each sample alone, shortest first, as scoring does.
    """
    by_id = {p.id: p for p in panel}
    sequences = [(render_prompt(by_id[s.prompt_id].prompt, tokenizer, rendering), s.token_ids) for s in samples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    assert pad is not None, "a tokenizer without EOS or pad token cannot pad a batch"
    order = list(range(len(sequences)))
    if length_dependent_rope(getattr(policy, "config", None)) is not None:
        batch_size = 1
        order.sort(key=lambda i: (len(sequences[i][0]) + len(sequences[i][1]), i))
    sequences = [sequences[i] for i in order]
    policy.eval()

    def batch_kls(start: int) -> list[float]:
        batch = sequences[start : start + batch_size]
        width = max(len(prompt) + len(completion) for prompt, completion in batch)
        input_ids = torch.full((len(batch), width), int(pad), dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros_like(input_ids)  # (B, T)
        predicts = torch.zeros_like(input_ids, dtype=torch.bool)  # (B, T): position t predicts a completion token
        for row, (prompt, completion) in enumerate(batch):
            ids = prompt + completion
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            predicts[row, len(prompt) - 1 : len(ids) - 1] = True
        device = policy.device
        input_ids, attention_mask, predicts = input_ids.to(device), attention_mask.to(device), predicts.to(device)

        def log_probs(model: PreTrainedModel) -> torch.Tensor:
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # (B, T, V)
            return torch.log_softmax(logits[predicts].float(), dim=-1)  # (N, V): N predicted completion tokens

        own = log_probs(policy)
        with reference() as reference_model:
            theirs = log_probs(reference_model)
        kl = (own.exp() * (own - theirs)).sum(dim=-1).clamp(min=0.0)  # (N,): each ≥ 0 up to rounding
        rows = predicts.nonzero(as_tuple=True)[0]  # (N,)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=device).index_add_(0, rows, kl.double())
        return [float(v) for v in sums.cpu().tolist()]

    ordered = [kl for batch in share_out(range(0, len(sequences), batch_size), batch_kls) for kl in batch]
    kls = [0.0] * len(ordered)
    for index, kl in zip(order, ordered, strict=True):
        kls[index] = kl
    return kls


def drift_estimate(
    model: str,
    reference: str,
    samples: Sequence[Sample],
    kls: Sequence[float],
    samples_per_prompt: int,
    max_new_tokens: int,
    statistics: Statistics,
) -> Drift:
    """KL(π‖π_ref) ≈ mean over prompts of the mean per-token KL sum of that prompt's samples from π.

    The t interval's lower end is clipped at 0: a KL is never negative, and clipping only moves an end
    that lay outside the possible values, so coverage stays.
    """
    per_prompt = _per_prompt_means(samples, list(kls))[model]
    estimate = stats.mean(np.array(list(per_prompt.values())), statistics.confidence_level)
    bounds = _bounds(estimate)
    if bounds["ci_low"] is not None:
        bounds["ci_low"] = max(bounds["ci_low"], 0.0)
    own = [s for s in samples if s.model == model]
    return Drift(
        model=model,
        reference=reference,
        kl=estimate.value,
        n=estimate.n,
        samples_per_prompt=samples_per_prompt,
        estimator="per_token",
        se=estimate.sampling.se,
        df=estimate.sampling.df,
        skewness=estimate.sampling.skewness,
        max_new_tokens=max_new_tokens,
        truncated=sum(not s.ended for s in own) / len(own) if own else None,
        **bounds,
    )


def _per_prompt_means(samples: Sequence[Sample], values: list[float]) -> dict[str, dict[str, float]]:
    """model → prompt id → mean of `values` (aligned with `samples`) over that prompt's samples."""
    sums: dict[tuple[str, str], list[float]] = {}
    for sample, value in zip(samples, values, strict=True):
        sums.setdefault((sample.model, sample.prompt_id), []).append(value)
    out: dict[str, dict[str, float]] = {}
    for (model, prompt_id), found in sums.items():
        out.setdefault(model, {})[prompt_id] = float(np.mean(found))
    return out


def _bounds(estimate: stats.Estimate) -> dict[str, float | None]:
    interval = estimate.interval
    return {"ci_low": interval.low if interval else None, "ci_high": interval.high if interval else None}
