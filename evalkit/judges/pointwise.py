"""Pointwise judges of generation samples: a Python callable with the ground truth, or a reward model's first logit;
their means per model and win rates against the baseline, prompt by prompt."""

from __future__ import annotations

import contextlib
import datetime
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from evalkit.checkpoints import load_reward_model
from evalkit.data.rendering import PLAIN, Rendering, chat_token_ids
from evalkit.errors import EvalkitError
from evalkit.generate.decode import Sample, per_prompt_means, text_stats
from evalkit.generate.panel import PanelPrompt
from evalkit.metrics import hypotheses, stats
from evalkit.results.estimates import Statistics
from evalkit.results.generation import GenerationStats, JudgeSummary, WinRate

Judge = Callable[[str, str], float]


@dataclass(frozen=True)
class PanelSummary:
    """What the samples of a panel say: text statistics per model, each judge's mean per model, and win rates."""

    stats: list[GenerationStats]
    judges: list[JudgeSummary]
    win_rates: list[WinRate]


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


@contextlib.contextmanager
def reward_model(
    path: str, where: str, template_options: dict[str, Any] | None = None, template_date: datetime.date | None = None
) -> Iterator[Judge]:
    """A sequence-classification reward model as a judge `(prompt, completion) -> score`, freed on exit; a chat
    template it has is rendered with `template_options` and, if it reads the clock, `template_date`."""
    with load_reward_model(path, where, template_options, template_date) as loaded:
        yield reward_model_judge(loaded.model, loaded.tokenizer, rendering=loaded.rendering)


def summarise(
    panel: Sequence[PanelPrompt],
    samples: Sequence[Sample],
    scores: dict[str, list[float]],
    models: Sequence[str],
    baseline: str | None,
    statistics: Statistics,
) -> PanelSummary:
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
        per_prompt = per_prompt_means(samples, values)
        for model in models:
            found = per_prompt.get(model, {})
            if not found:
                continue
            estimate = _judge_mean(np.array(list(found.values())), confidence)
            judges.append(JudgeSummary(judge=judge, model=model, mean=estimate.value, n=estimate.n, **estimate.bounds))
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
                    sign_test_p=hypotheses.sign_test_p(wins, losses),
                    wins=wins,
                    ties=ties,
                    losses=losses,
                    score_delta=difference.value,
                    delta_ci_low=difference.bounds["ci_low"],
                    delta_ci_high=difference.bounds["ci_high"],
                    n=len(delta),
                    **rate.bounds,
                )
            )
    return PanelSummary(stats_rows, judges, win_rates)


def _judge_mean(values: np.ndarray, confidence: float) -> stats.Estimate:
    """A judge's mean over prompts: scores in [0, 1] (right or wrong, partly right) are a share, with
    Wilson's interval on the effective n, so it stays inside [0, 1]; any other scale gets Student t."""
    if np.all((values >= 0) & (values <= 1)):
        return stats.proportion(values, confidence)
    return stats.mean(values, confidence)
