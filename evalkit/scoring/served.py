"""Scoring on a serving engine: evalkit tokenizes, the engine computes, evalkit sums.

A model too large for this process is scored on a vLLM server through its OpenAI-compatible `/v1/completions`:
every sequence (prompt + one answer, truncated to `max_length` exactly as in process) is sent as token ids, never
text, with `prompt_logprobs: 0` and `max_tokens: 1`. The engine returns, for every prompt position after the
first, the log-prob of the token actually there; evalkit sums the completion positions. The tokens are the ones
`evalkit.scoring.score.tokenize_pair` makes (same templates, truncation and audit), so in float32 the sums equal the
in-process ones up to the engine's rounding (vLLM: within 5e-6 nats per sequence).

The HTTP side is `evalkit.generate.endpoint.EndpointClient`'s (deadlines, size cap, key masking, retries,
concurrency, the resumable cache): the cache key is the request body, so the served model name and the token ids.

A server that cannot return prompt log-probs (`transformers serve`, llama.cpp, hosted APIs) is refused by a probe
request before any work, in one line. Whether the numbers can depend on batching is stated, not assumed
(`batching_statement`).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel

from evalkit.config.specs import ModelSpec, ParitySpec, ScoringEndpointSpec
from evalkit.console import progress_bar
from evalkit.errors import EvalkitError
from evalkit.generate.answer import LOGPROB_ROUNDING, Malformed, Refused
from evalkit.generate.endpoint import Endpoint, EndpointClient, Route
from evalkit.results.schema import ParityResult, ScoringDtype, ScoringMode, ServedScoring
from evalkit.scoring.score import CompletionLogps, ModelLogps, TokenizedPair, exact_ties

LOGPROB_MODE = "prompt_logprobs"
"""How the engine is asked: the log-prob of each prompt token, the rest of the vocabulary not sent."""


def completion_body(model: str, ids: Sequence[int]) -> dict[str, Any]:
    """The request for one sequence's prompt log-probs; also its cache key (served model and token ids).
    `temperature: 0` keeps the one token the engine must decode from drawing on a random state."""
    return {"model": model, "prompt": list(ids), "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}


def read_prompt_logprobs(answer: Any, body: dict[str, Any]) -> list[float]:
    """Per prompt position after the first, the log-prob the engine gives the token there. `Malformed` when the body
    is not a completion; `Refused` when it has no prompt log-probs (the server cannot score) or one is not a
    log-prob of that token."""
    try:
        choice = answer["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise Malformed("no choices[0]") from None
    positions = choice.get("prompt_logprobs") if isinstance(choice, dict) else None
    ids: list[int] = body["prompt"]
    if not isinstance(positions, list):
        raise Refused("the answer has no prompt_logprobs: this server cannot score sequences")
    if len(positions) != len(ids):
        raise Refused(f"prompt_logprobs has {len(positions)} positions for a prompt of {len(ids)} tokens")
    return [_logprob_of(positions[i], ids[i], i) for i in range(1, len(ids))]


def _logprob_of(position: Any, token: int, index: int) -> float:
    entry = position.get(str(token)) if isinstance(position, dict) else None
    value = entry.get("logprob") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused(f"prompt_logprobs[{index}] has no log-prob for token {token}")
    if not math.isfinite(value) or value > LOGPROB_ROUNDING:
        raise Refused(f"prompt_logprobs[{index}] gives token {token} the log-prob {value!r}; expected ≤ 0")
    return min(float(value), 0.0)


COMPLETIONS = Route("completions", read_prompt_logprobs, "a completion with prompt log-probs")


@dataclass(frozen=True)
class Engine:
    """What the server says it is, from `/v1/models` and `/version`."""

    name: str
    """`vllm`, or the `owned_by` the server lists its model with; `unknown` when it says nothing."""
    version: str | None


def probe_endpoint(client: EndpointClient, token: int) -> Engine:
    """Refuse, before any work, a server that does not serve the model or cannot return prompt log-probs; say what
    engine it is. The probe asks for the log-probs of a two-token prompt; it is never cached."""
    endpoint = client.endpoint
    where = f"endpoint {endpoint.base_url} (model {endpoint.model!r})"
    listed = client.get("models")
    served = [m for m in (listed or {}).get("data", []) if isinstance(m, dict)] if isinstance(listed, dict) else []
    names = [str(m.get("id")) for m in served]
    if served and endpoint.model not in names:
        shown = ", ".join(repr(n) for n in names[:5])
        raise EvalkitError(f"{where}: the server does not serve that model; it lists {shown}")
    probe = completion_body(endpoint.model, [token, token])
    try:
        client.exchange([probe], COMPLETIONS, cached=False)  # a rerun probes the server it meets now
    except EvalkitError as failure:
        raise EvalkitError(
            f"{failure}; scoring needs a server that answers /completions with prompt_logprobs for token ids "
            "(vLLM does; transformers serve and hosted APIs do not): else use `scoring.backend: hf`"
        ) from None
    owner = next((str(m.get("owned_by")) for m in served if m.get("id") == endpoint.model), "unknown")
    version = client.get(_root(endpoint.base_url) + "/version")
    found = version.get("version") if isinstance(version, dict) else None
    return Engine(owner, str(found) if isinstance(found, str | int | float) else None)


def _root(base_url: str) -> str:
    """The server's root: `/version` sits beside `/v1`, not under it."""
    trimmed = base_url.rstrip("/")
    return trimmed.removesuffix("/v1")


@dataclass(frozen=True)
class Batching:
    """Whether the server's numbers can depend on which requests it batched together."""

    batch_invariant: bool | None
    """True: they cannot; False: they can; None: evalkit cannot know (the server's environment is not visible)."""
    reason: str


def batching_statement(engine: Engine, concurrency: int) -> Batching:
    """vLLM is batch-invariant only when started with `VLLM_BATCH_INVARIANT=1`, which its API does not report. With
    one request in flight evalkit batches nothing together (other clients of the server still may)."""
    if concurrency == 1:
        return Batching(None, "one request at a time: evalkit batches nothing together; other clients may")
    if engine.name == "vllm":
        return Batching(
            None,
            f"{concurrency} requests in flight may be batched together: the numbers do not depend on it only if the "
            "server runs with VLLM_BATCH_INVARIANT=1, which its API does not report (float32: ~1e-6 nats)",
        )
    return Batching(False, f"{concurrency} requests in flight may be batched together and round differently")


def scored_sequences(pairs: Sequence[TokenizedPair], max_length: int) -> list[list[int]]:
    """Per pair, prompt + chosen then prompt + rejected, the completions cut to `max_length` as in process."""
    rooms = [max_length - len(p.prompt_ids) for p in pairs]
    return [p.prompt_ids + side[:room] for p, room in zip(pairs, rooms, strict=True) for side in _sides(p)]


def served_token_logps(
    client: EndpointClient, pairs: Sequence[TokenizedPair], max_length: int, label: str
) -> list[list[float]]:
    """Per sequence of `scored_sequences`, the served model's log-prob of each completion token."""
    return [
        logps[max(len(pairs[index // 2].prompt_ids), 1) - 1 :]  # [0] is token 1's (token 0 has none)
        for index, logps in enumerate(_served_sequence_logps(client, pairs, max_length, label))
    ]


def _served_sequence_logps(
    client: EndpointClient, pairs: Sequence[TokenizedPair], max_length: int, label: str
) -> list[list[float]]:
    """Per sequence of `scored_sequences`, the served model's log-prob of each token after the first."""
    bodies = [completion_body(client.endpoint.model, ids) for ids in scored_sequences(pairs, max_length)]
    with progress_bar() as bar:
        task = bar.add_task(f"scoring {label} on {client.endpoint.base_url}", total=len(bodies), status="")
        answers = client.exchange(bodies, COMPLETIONS, lambda _: bar.update(task, advance=1))
    return [read_prompt_logprobs(answer, body) for answer, body in zip(answers, bodies, strict=True)]


def score_served(
    client: EndpointClient, pairs: Sequence[TokenizedPair], max_length: int, label: str, with_prompt: bool = False
) -> ModelLogps:
    """Summed completion log-probs of every pair under the served model, in the order of `pairs`, truncated to
    `max_length` as in process; two requests a pair (chosen, rejected), every answer cached as it arrives. The
    server answers every position's log-prob, so the shared tokens and (`with_prompt`) the prompt cost nothing more."""
    if not pairs:
        return ModelLogps([], None)
    rooms = [max_length - len(p.prompt_ids) for p in pairs]
    sequences = _served_sequence_logps(client, pairs, max_length, label)
    scored = []
    for i, (p, room) in enumerate(zip(pairs, rooms, strict=True)):
        start = max(len(p.prompt_ids), 1) - 1  # [0] is token 1's (token 0 has none)
        chosen, rejected = sequences[2 * i][start:], sequences[2 * i + 1][start:]
        shared = min(len(chosen), len(rejected))
        scored.append(
            CompletionLogps(
                chosen=math.fsum(chosen),
                rejected=math.fsum(rejected),
                n_tokens_chosen=len(chosen),
                n_tokens_rejected=len(rejected),
                truncated=len(p.chosen_ids) > room or len(p.rejected_ids) > room,
                chosen_shared=math.fsum(chosen[:shared]),
                rejected_shared=math.fsum(rejected[:shared]),
                prompt=math.fsum(sequences[2 * i][:start]) if with_prompt else None,
                n_tokens_prompt=start if with_prompt else None,
            )
        )
    reason = f"{LOGPROB_MODE} from {client.endpoint.base_url}, summed here"
    return ModelLogps(exact_ties(pairs, scored), ScoringMode(dataset="", mode="served", reason=reason))


def _sides(pair: TokenizedPair) -> tuple[list[int], list[int]]:
    return pair.chosen_ids, pair.rejected_ids


@dataclass
class ScoringServer:
    """One served model's client, open for the run, and what the probe learned of its server."""

    client: EndpointClient
    engine: Engine

    def statement(self, parity: ParityResult | None = None) -> ServedScoring:
        """What results.json records of this model's scoring (the API key never: only the variable's name)."""
        endpoint = self.client.endpoint
        batching = batching_statement(self.engine, endpoint.concurrency)
        return ServedScoring(
            engine=self.engine.name,
            engine_version=self.engine.version,
            base_url=endpoint.base_url,
            served_model=endpoint.model,
            logprob_mode=LOGPROB_MODE,
            batch_invariant=batching.batch_invariant,
            batching_reason=batching.reason,
            concurrency=endpoint.concurrency,
            requests_sent=self.client.requests_sent,
            parity=parity,
        )


def open_server(spec: ScoringEndpointSpec, model: ModelSpec, probe_token: int) -> ScoringServer:
    """The client of `model`'s server (its own `base_urls` entry, else `base_url`), probed before any work. The
    served name is the suite's mapping, else the model's path (`vllm serve <path>`'s default)."""
    endpoint = Endpoint(
        base_url=spec.base_urls.get(model.name, spec.base_url),
        model=spec.models.get(model.name, model.path),
        api_key_env=spec.api_key_env,
        concurrency=spec.concurrency,
        timeout_s=spec.timeout_s,
        max_response_bytes=spec.max_response_bytes,
        retries=spec.retries,
        cache_dir=spec.cache_dir,
    )
    client = EndpointClient(endpoint)
    try:
        return ScoringServer(client, probe_endpoint(client, probe_token))
    except BaseException:
        client.close()
        raise


def parity_sample(n_pairs: int, spec: ParitySpec) -> list[int]:
    """Indices of the seeded sample, in order: the same pairs for every model and every run."""
    return sorted(random.Random(spec.seed).sample(range(n_pairs), min(spec.pairs, n_pairs)))


@torch.inference_mode()
def local_token_logps(
    model: PreTrainedModel, pairs: Sequence[TokenizedPair], max_length: int, dtype: ScoringDtype
) -> list[list[float]]:
    """The in-process side of the parity check: one plain forward pass per sequence of `scored_sequences` (no
    batching, no padding), each completion token's log-prob in float32 after the `dtype` compute."""
    found = []
    device = next(model.parameters()).device
    for index, ids in enumerate(scored_sequences(pairs, max_length)):
        start = max(len(pairs[index // 2].prompt_ids), 1)
        with torch.autocast(device.type, torch.bfloat16, enabled=dtype == "bfloat16"):
            logits = model(torch.tensor([ids], device=device)).logits[0]  # (T, V)
        logps = torch.log_softmax(logits.float(), dim=-1)[:-1]  # (T-1, V): position t predicts token t+1
        targets = torch.tensor(ids[1:], device=device)
        found.append(logps.gather(1, targets[:, None])[:, 0][start - 1 :].tolist())
    return found


def compare_logps(
    local: list[list[float]], served: list[list[float]], spec: ParitySpec, n_pairs: int, dtype: str
) -> ParityResult:
    """Absolute differences per token and per sequence (the sums), their maximum and median."""
    tokens = [abs(a - b) for x, y in zip(local, served, strict=True) for a, b in zip(x, y, strict=True)]
    sequences = [abs(math.fsum(x) - math.fsum(y)) for x, y in zip(local, served, strict=True)]
    return ParityResult(
        n_pairs=n_pairs,
        seed=spec.seed,
        dtype=dtype,
        n_tokens=len(tokens),
        token_max=max(tokens, default=0.0),
        token_median=statistics.median(tokens) if tokens else 0.0,
        n_sequences=len(sequences),
        sequence_max=max(sequences, default=0.0),
        sequence_median=statistics.median(sequences) if sequences else 0.0,
    )
