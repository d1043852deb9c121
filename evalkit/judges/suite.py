"""Judging a suite's generation samples once every model has answered, and the generation section of results.json.

Pointwise judges score each sample (each process its share). Pairwise judges compare every model's answer with
the baseline's, prompt by prompt, in both orders; they run in the main process only (a judge behind an endpoint
is one client and one cache; a local judge model is loaded once) and the other processes get the judgments.
With sampling, the first sample of each prompt (index 0) is the one judged.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

from evalkit.checkpoints import load_model, release
from evalkit.config.specs import GenerationSpec, JudgeSpec, ModelSpec
from evalkit.config.suite import Suite
from evalkit.generate.decode import Sample
from evalkit.generate.endpoint import EndpointClient
from evalkit.generate.panel import PanelPrompt
from evalkit.generate.suite import endpoint_backend, endpoint_of
from evalkit.judges.pairwise import (
    EndpointJudge,
    LocalJudge,
    PairToJudge,
    PairwiseJudge,
    PairwiseJudgment,
    Verdict,
    judge_pairs,
    summarise_pairwise,
)
from evalkit.judges.pointwise import Judge, load_callable_judge, reward_model, summarise
from evalkit.judges.prompt import load_template
from evalkit.results.generation import (
    Backend,
    Drift,
    GenerationPrompt,
    GenerationResult,
    GenerationSample,
    JudgeReading,
    PairwiseJudgmentRecord,
    PairwiseWinRate,
)
from evalkit.results.schema import ModelInfo
from evalkit.scoring.batching import from_main, share_out


def judge_and_summarise(
    suite: Suite,
    spec: GenerationSpec,
    panel: list[PanelPrompt],
    samples: list[Sample],
    drift: list[Drift],
    models: list[ModelInfo],
) -> GenerationResult:
    texts = {p.id: p.text for p in panel}
    scores: dict[str, list[float]] = {}

    def judged(function: Judge) -> list[float]:  # each process judges its share of the samples
        return share_out(samples, lambda s: float(function(texts[s.prompt_id], s.completion)))

    pairwise: list[PairwiseWinRate] = []
    judgments: list[PairwiseJudgmentRecord] = []
    backends: list[Backend] = []
    for judge in spec.judges:
        if judge.pairwise:
            judged_pairs = from_main(functools.partial(judge_pairwise, suite, judge, panel, samples, models))
            pairwise += judged_pairs.win_rates
            judgments += judged_pairs.judgments
            backends.append(judged_pairs.backend)
        elif judge.callable is not None:
            scores[judge.name] = judged(load_callable_judge(judge.callable))
        else:
            assert judge.reward_model is not None
            where, options = f"generation.judges.{judge.name}", suite.rendering.chat_template_kwargs
            with reward_model(judge.reward_model, where, options, suite.rendering.date) as function:
                scores[judge.name] = judged(function)
    names = [m.name for m in models]
    baseline = suite.reference if suite.reference in names else None
    summary = summarise(panel, samples, scores, names, baseline, suite.statistics)
    sampling = spec.sampling
    decoding = "greedy"
    if sampling is not None:
        decoding = f"sampling (k={sampling.k}, temperature={sampling.temperature}, top_p={sampling.top_p}"
        decoding += f", seed={sampling.seed})"
    return GenerationResult(
        decoding=decoding,
        max_new_tokens=spec.max_new_tokens,
        prompts=[GenerationPrompt(id=p.id, text=p.text) for p in panel],
        samples=[
            GenerationSample(
                prompt_id=s.prompt_id,
                model=s.model,
                index=s.index,
                completion=s.completion,
                n_tokens=s.n_tokens,
                ended=s.ended,
                scores={name: values[i] for name, values in scores.items()},
            )
            for i, s in enumerate(samples)
        ],
        stats=summary.stats,
        judges=summary.judges,
        win_rates=summary.win_rates,
        drift=drift,
        backends=backends,
        pairwise=pairwise,
        pairwise_judgments=judgments,
    )


@dataclass(frozen=True)
class PairwiseRun:
    """What one pairwise judge found: per-model summaries, every judgment, and how it was asked."""

    win_rates: list[PairwiseWinRate]
    judgments: list[PairwiseJudgmentRecord]
    backend: Backend


def judge_pairwise(
    suite: Suite, spec: JudgeSpec, panel: list[PanelPrompt], samples: list[Sample], models: list[ModelInfo]
) -> PairwiseRun:
    """Every model against the judge's baseline (default: the suite's reference) on the prompts both answered."""
    baseline = spec.baseline or suite.reference
    assert baseline is not None, "validated: a pairwise judge has a baseline"
    template = load_template(spec.template)
    first = {(s.model, s.prompt_id): s.completion for s in samples if s.index == 0}
    win_rates: list[PairwiseWinRate] = []
    records: list[PairwiseJudgmentRecord] = []
    with _pairwise_judge(suite, spec) as ready:
        for model in [m.name for m in models if m.name != baseline]:
            pairs = [
                PairToJudge(p.id, p.text, first[(model, p.id)], first[(baseline, p.id)])
                for p in panel
                if (model, p.id) in first and (baseline, p.id) in first
            ]
            if not pairs:
                continue
            found = judge_pairs(ready.judge, template, pairs)
            win_rates.append(summarise_pairwise(spec.name, model, baseline, found, suite.statistics.confidence_level))
            records += [_judgment_record(spec.name, model, baseline, j) for j in found]
        client = ready.client
        counts = {"requests_sent": client.requests_sent, "answers_redacted": client.answers_redacted} if client else {}
    return PairwiseRun(win_rates, records, ready.backend.model_copy(update=counts))


@dataclass(frozen=True)
class _ReadyJudge:
    """A pairwise judge ready to read prompts, how it is asked, and its client when it is behind an endpoint."""

    judge: PairwiseJudge
    backend: Backend
    client: EndpointClient | None = None


@contextlib.contextmanager
def _pairwise_judge(suite: Suite, spec: JudgeSpec) -> Iterator[_ReadyJudge]:
    """The judge and its determinism statement; a client is closed and a local judge model freed on exit."""
    used_by = f"judge {spec.name}"
    if spec.endpoint is not None:
        endpoint = endpoint_of(spec.endpoint, spec.endpoint.model)
        backend = endpoint_backend(used_by, endpoint, {spec.name: endpoint.model}, None)  # a judge is greedy
        with EndpointClient(endpoint) as client:
            yield _ReadyJudge(EndpointJudge(spec.name, client), backend, client)
        return
    assert spec.model is not None, "validated: a pairwise judge is a model or an endpoint"
    options, date = suite.rendering.chat_template_kwargs, suite.rendering.date
    # Named `judge` in load errors (`models.judge: ...`): a judge's name need not be a plain file name.
    loaded = load_model(ModelSpec(name="judge", path=spec.model), template_options=options, template_date=date)
    try:
        reason = "in process: the label probabilities of one forward pass"
        backend = Backend(used_by=used_by, backend="hf", deterministic=True, reason=reason)
        yield _ReadyJudge(LocalJudge(spec.name, loaded.model, loaded.tokenizer, loaded.rendering), backend)
    finally:
        release(loaded)


def _reading(verdict: Verdict) -> JudgeReading:
    return JudgeReading(p_first=verdict.p_first, source=verdict.source, reply=verdict.reply)


def _judgment_record(judge: str, model: str, baseline: str, j: PairwiseJudgment) -> PairwiseJudgmentRecord:
    return PairwiseJudgmentRecord(
        judge=judge,
        model=model,
        baseline=baseline,
        prompt_id=j.prompt_id,
        candidate_first=_reading(j.candidate_first),
        reference_first=_reading(j.reference_first),
        preference=j.preference,
        orders_agree=j.orders_agree,
        same_position=j.same_position,
        model_length=j.candidate_length,
        baseline_length=j.reference_length,
    )
