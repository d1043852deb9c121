"""The models of a suite scored on servers (`scoring.backend: vllm`): one probed client per model, opened before
any pair is scored, the parity check against this process, and what results.json records of each server; and the
passes of any checkpoint of a run (`checkpoint_logps`, `reference_logps`), on its server or in this process."""

from __future__ import annotations

from dataclasses import dataclass, field

from evalkit.checkpoints import Checkpoint, LoadedModel, ServedCheckpoint, load_model, release
from evalkit.config.specs import ModelSpec, ScoringSpec
from evalkit.config.suite import Suite
from evalkit.console import console, plain
from evalkit.data.pairs import PreferencePair
from evalkit.results.schema import ModelInfo, ParityResult
from evalkit.scoring.dataset import TokenizedSet, model_logps, pad_token_id, tokenize_set
from evalkit.scoring.score import ModelLogps
from evalkit.scoring.served import (
    ScoringServer,
    compare_logps,
    local_token_logps,
    open_server,
    parity_sample,
    score_served,
    served_token_logps,
)


@dataclass
class ServedRun:
    """The open clients of a run's served models, by model name, and their parity checks."""

    suite: Suite
    servers: dict[str, ScoringServer] = field(default_factory=dict)
    parity: dict[str, ParityResult] = field(default_factory=dict)

    def open(self, checkpoint: ServedCheckpoint) -> None:
        """Probe `checkpoint`'s server (refused in one line when it cannot score) and keep its client."""
        endpoint = self.suite.scoring.endpoint
        assert endpoint is not None, "validated: backend vllm has an endpoint"
        if checkpoint.spec.name not in self.servers:
            tokenizer = checkpoint.tokenizer
            token = next((t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id) if t is not None), 0)
            self.servers[checkpoint.spec.name] = open_server(endpoint, checkpoint.spec, int(token))

    def logps(
        self, checkpoint: ServedCheckpoint, tokens: TokenizedSet, label: str, with_prompt: bool = False
    ) -> ModelLogps:
        self.open(checkpoint)
        client = self.servers[checkpoint.spec.name].client
        return score_served(client, tokens.scorable, self.suite.scoring.max_length, label, with_prompt)

    def check_parity(self, checkpoint: ServedCheckpoint, datasets: dict[str, list[PreferencePair]]) -> None:
        """`scoring.parity`: a seeded sample of the first dataset's pairs, scored here (the model loaded for it,
        then released) and on the server (its answers are cached by then), compared token by token."""
        spec, settings = self.suite.scoring.parity, self.suite.scoring
        if spec is None or not datasets:
            return
        pairs = next(iter(datasets.values()))
        tokens = tokenize_set(pairs, checkpoint.tokenizer, checkpoint.rendering, settings.max_length).scorable
        sample = [tokens[i] for i in parity_sample(len(tokens), spec)]
        label = f"parity sample of {checkpoint.spec.name}"
        served = served_token_logps(self.servers[checkpoint.spec.name].client, sample, settings.max_length, label)
        model = _load_here(self.suite, checkpoint.spec)
        try:
            local = local_token_logps(model.model, sample, settings.max_length, settings.dtype)
        finally:
            release(model)
        found = compare_logps(local, served, spec, len(sample), settings.dtype)
        self.parity[checkpoint.spec.name] = found
        console.print(
            f"parity of {plain(checkpoint.spec.name)} (server vs this process, {found.n_pairs} pairs): per token max "
            f"{found.token_max:.2e} median {found.token_median:.2e}, per sequence max {found.sequence_max:.2e} "
            f"median {found.sequence_median:.2e} nats"
        )

    def recorded(self, info: ModelInfo) -> ModelInfo:
        """`info` with its server's statement, taken when the run ends (the requests it sent, its parity)."""
        server = self.servers.get(info.name)
        if server is None:
            return info
        return info.model_copy(update={"served": server.statement(self.parity.get(info.name))})

    def close(self) -> None:
        for server in self.servers.values():
            server.client.close()


def _load_here(suite: Suite, spec: ModelSpec) -> LoadedModel:
    """The model in this process for the parity check, in its own dtype (an adapter: merged onto its base here)."""
    options = suite.template_options(spec)
    return load_model(spec, template_options=options, template_date=suite.rendering.date)


def checkpoint_logps(
    model: Checkpoint,
    tokens: TokenizedSet,
    settings: ScoringSpec,
    label: str,
    served: ServedRun | None,
    with_prompt: bool = False,
) -> ModelLogps:
    """`model`'s log-probs of `tokens`: on its server in a served run, else in this process."""
    if isinstance(model, ServedCheckpoint):
        assert served is not None, "a served checkpoint belongs to a served run"
        return served.logps(model, tokens, label, with_prompt)
    return model_logps(model.model, tokens, pad_token_id(model.tokenizer), settings, label, with_prompt)


def reference_logps(
    policy: Checkpoint,
    reference: Checkpoint,
    tokens: TokenizedSet,
    settings: ScoringSpec,
    label: str,
    served: ServedRun | None,
) -> ModelLogps:
    """The reference's log-probs of the policy's `tokens`: on the reference's own server, as the policy with its
    adapter disabled (an adapter whose base is the reference), or in this process."""
    pad = pad_token_id(policy.tokenizer)
    if isinstance(reference, ServedCheckpoint):  # the policy's tokens, on the reference's own server
        return checkpoint_logps(reference, tokens, settings, f"reference for {label}", served)
    if isinstance(policy, LoadedModel) and policy.shares_reference:
        with policy.as_reference() as model:
            return model_logps(model, tokens, pad, settings, f"reference for {label} (adapter disabled)")
    return model_logps(reference.model, tokens, pad, settings, f"reference for {label}")
