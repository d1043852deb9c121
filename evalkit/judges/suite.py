"""Judging a suite's generation samples once every model has answered, and the generation section of results.json."""

from __future__ import annotations

from evalkit.config.specs import GenerationSpec
from evalkit.config.suite import Suite
from evalkit.generate.decode import Sample
from evalkit.generate.panel import PanelPrompt
from evalkit.judges.pointwise import Judge, load_callable_judge, reward_model, summarise
from evalkit.results.generation import Drift, GenerationPrompt, GenerationResult, GenerationSample
from evalkit.results.schema import ModelInfo
from evalkit.scoring.batching import share_out


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

    for judge in spec.judges:
        if judge.callable is not None:
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
    )
