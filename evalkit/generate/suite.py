"""Generation for a suite's models: each model's samples of the panel, in process or through an OpenAI-compatible
endpoint, and its drift from the reference, while the model is loaded."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from evalkit.checkpoints import LoadedModel, ServedCheckpoint
from evalkit.config.specs import DriftSpec, EndpointSpec, GenerationSpec, ModelSpec, SamplingSpec
from evalkit.config.suite import Suite
from evalkit.generate.decode import Sample, generate
from evalkit.generate.drift import drift_estimate, per_token_kls
from evalkit.generate.endpoint import Endpoint, EndpointClient, determinism, generate_via_endpoint
from evalkit.generate.panel import PanelPrompt
from evalkit.results.generation import Backend, Drift
from evalkit.scoring.batching import from_main


def endpoint_backend(
    used_by: str,
    endpoint: Endpoint,
    served_models: dict[str, str],
    sampling: SamplingSpec | None,
    requests_sent: int | None = None,
    answers_redacted: int | None = None,
) -> Backend:
    """The record of a generation or judging server, with what it can promise of a fresh run (`determinism`)."""
    stated = determinism(endpoint, sampling)
    return Backend(
        used_by=used_by,
        backend="openai",
        base_url=endpoint.base_url,
        served_models=served_models,
        api_key_env=endpoint.api_key_env,
        concurrency=endpoint.concurrency,
        deterministic=stated.deterministic,
        reason=stated.reason,
        requests_sent=requests_sent,
        answers_redacted=answers_redacted,
    )


def endpoint_of(spec: EndpointSpec, served_model: str) -> Endpoint:
    """The client settings of one served model on the suite's server."""
    return Endpoint(
        base_url=spec.base_url,
        model=served_model,
        api_key_env=spec.api_key_env,
        concurrency=spec.concurrency,
        timeout_s=spec.timeout_s,
        max_response_bytes=spec.max_response_bytes,
        retries=spec.retries,
        cache_dir=spec.cache_dir,
        honours_seed=spec.honours_seed,
    )


def served_name(spec: GenerationSpec, model: ModelSpec) -> str:
    """The name the server knows `model` by: the suite's mapping, else its path (`vllm serve <path>`'s default).
    A checkpoint of a sweep (`dpo@100`) is another model than the final one: its own path unless mapped by that name."""
    served = spec.endpoint.models if spec.endpoint is not None else {}
    return served.get(model.name, model.path)


@dataclass
class PanelDecoder:
    """Decodes the panel for each model in turn, with the backend the suite names, and says what it did."""

    spec: GenerationSpec
    requests_sent: int = 0
    """HTTP requests sent to the endpoint so far (0 in process, and when every answer was cached)."""
    answers_redacted: int = 0
    """Answers in which the API key was found and masked."""

    def __post_init__(self) -> None:
        self.served: dict[str, str] = {}

    def samples(self, panel: list[PanelPrompt], model: LoadedModel | ServedCheckpoint) -> list[Sample]:
        spec, name, tokenizer, rendering = self.spec, model.spec.name, model.tokenizer, model.rendering
        if spec.backend == "hf":
            assert isinstance(model, LoadedModel), "validated: a served suite decodes on a server"
            batch, sampling, most = spec.batch_size, spec.sampling, spec.max_new_tokens
            return generate(model.model, tokenizer, panel, name, most, batch, sampling, rendering=rendering)
        assert spec.endpoint is not None, "validated: backend openai has an endpoint"
        endpoint = endpoint_of(spec.endpoint, served_name(spec, model.spec))
        self.served[name] = endpoint.model

        def decoded() -> tuple[list[Sample], int, int]:
            # The main process asks the server (under torchrun, one client and one cache, not one per process);
            # the others get its samples. The tokenizer re-tokenizes the text for the token statistics.
            with EndpointClient(endpoint) as client:
                found = generate_via_endpoint(
                    client, panel, name, spec.max_new_tokens, spec.sampling, tokenizer=tokenizer, rendering=rendering
                )
                return found, client.requests_sent, client.answers_redacted

        samples, sent, redacted = from_main(decoded)
        self.requests_sent += sent
        self.answers_redacted += redacted
        return samples

    def backend(self) -> Backend:
        """The determinism statement of the generation backend, as run."""
        spec = self.spec
        if spec.endpoint is None:
            reason = "in process, greedy" if spec.sampling is None else "in process, seeded sampling"
            return Backend(used_by="generation", backend="hf", deterministic=True, reason=reason)
        client = endpoint_of(spec.endpoint, "")
        sent, redacted = self.requests_sent, self.answers_redacted
        return endpoint_backend("generation", client, dict(self.served), spec.sampling, sent, redacted)


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
