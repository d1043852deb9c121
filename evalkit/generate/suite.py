"""Generation for a suite's models: each model's samples of the panel and its drift from the reference, while the
model is loaded."""

from __future__ import annotations

import contextlib

from evalkit.checkpoints import LoadedModel
from evalkit.config.specs import DriftSpec, GenerationSpec, SamplingSpec
from evalkit.config.suite import Suite
from evalkit.generate.decode import Sample, generate
from evalkit.generate.drift import drift_estimate, per_token_kls
from evalkit.generate.panel import PanelPrompt
from evalkit.results.generation import Drift


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
