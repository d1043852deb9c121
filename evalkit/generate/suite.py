"""Generation for a suite's models: each model's samples of the panel, its drift from the reference, and the judges
and summaries over all of them once every model has answered."""

from __future__ import annotations

import contextlib

from evalkit.checkpoints import LoadedModel, reward_model
from evalkit.config.suite import DriftSpec, GenerationSpec, SamplingSpec, Suite
from evalkit.generate.samples import (
    Judge,
    PanelPrompt,
    Sample,
    drift_estimate,
    generate,
    load_callable_judge,
    per_token_kls,
    summarise,
)
from evalkit.results.generation import Drift, GenerationPrompt, GenerationResult, GenerationSample
from evalkit.results.schema import ModelInfo
from evalkit.scoring.batching import share_out


def samples_of(spec: GenerationSpec, panel: list[PanelPrompt], model: LoadedModel) -> list[Sample]:
    name, tokenizer, rendering = model.spec.name, model.tokenizer, model.rendering
    batch, sampling = spec.batch_size, spec.sampling
    return generate(model.model, tokenizer, panel, name, spec.max_new_tokens, batch, sampling, rendering=rendering)


def drift_of(
    suite: Suite, spec: DriftSpec, panel: list[PanelPrompt], policy: LoadedModel, reference: LoadedModel
) -> Drift:
    """Sample from the policy's own distribution, then sum the per-token KL to the reference along each sample."""
    assert suite.generation is not None
    sampling = SamplingSpec(k=spec.samples, temperature=1.0, top_p=1.0, seed=spec.seed)
    name, tokenizer, batch = policy.spec.name, policy.tokenizer, suite.scoring.batch_size
    max_new_tokens, rendering = suite.generation.max_new_tokens, policy.rendering
    # The reference reads the policy's tokens, rendered the policy's way.
    drawn = generate(
        policy.model, tokenizer, panel, name, max_new_tokens, 1, sampling, own_distribution=True, rendering=rendering
    )
    as_reference = policy.as_reference if policy.shares_reference else lambda: contextlib.nullcontext(reference.model)
    kls = per_token_kls(policy.model, as_reference, tokenizer, panel, drawn, batch, rendering)
    return drift_estimate(name, reference.spec.name, drawn, kls, spec.samples, max_new_tokens, suite.statistics)


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
    stats, judges, win_rates = summarise(panel, samples, scores, names, baseline, suite.statistics)
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
        stats=stats,
        judges=judges,
        win_rates=win_rates,
        drift=drift,
    )
