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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.console import progress_bar
from evalkit.errors import EvalkitError
from evalkit.generate.answer import LOGPROB_ROUNDING, Malformed, Refused
from evalkit.generate.endpoint import EndpointClient, Route
from evalkit.results.schema import ScoringMode
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
    engine it is. The probe asks for the log-probs of a two-token prompt and is not cached."""
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
        client.exchange([probe], COMPLETIONS)
    except EvalkitError as failure:
        raise EvalkitError(
            f"{failure}; this server cannot score through /completions with prompt_logprobs (vLLM can; "
            "transformers serve and hosted APIs cannot): use `scoring.backend: hf`"
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


def score_served(
    client: EndpointClient, pairs: Sequence[TokenizedPair], max_length: int, label: str
) -> ModelLogps:
    """Summed completion log-probs of every pair under the served model, in the order of `pairs`, truncated to
    `max_length` as in process; two requests a pair (chosen, rejected), every answer cached as it arrives."""
    if not pairs:
        return ModelLogps([], None)
    rooms = [max_length - len(p.prompt_ids) for p in pairs]
    sequences = [p.prompt_ids + side[:room] for p, room in zip(pairs, rooms, strict=True) for side in _sides(p)]
    bodies = [completion_body(client.endpoint.model, ids) for ids in sequences]
    with progress_bar() as bar:
        task = bar.add_task(f"scoring {label} on {client.endpoint.base_url}", total=len(bodies), status="")
        answers = client.exchange(bodies, COMPLETIONS, lambda _: bar.update(task, advance=1))
    sums, counts = [], []
    for index, (answer, body) in enumerate(zip(answers, bodies, strict=True)):
        start = len(pairs[index // 2].prompt_ids)
        logps = read_prompt_logprobs(answer, body)[max(start, 1) - 1 :]  # [0] is token 1 (token 0 has none)
        sums.append(math.fsum(logps))
        counts.append(len(logps))
    scored = [
        CompletionLogps(
            chosen=sums[2 * i],
            rejected=sums[2 * i + 1],
            n_tokens_chosen=counts[2 * i],
            n_tokens_rejected=counts[2 * i + 1],
            truncated=len(p.chosen_ids) > room or len(p.rejected_ids) > room,
        )
        for i, (p, room) in enumerate(zip(pairs, rooms, strict=True))
    ]
    reason = f"{LOGPROB_MODE} from {client.endpoint.base_url}, summed here"
    return ModelLogps(exact_ties(pairs, scored), ScoringMode(dataset="", mode="served", reason=reason))


def _sides(pair: TokenizedPair) -> tuple[list[int], list[int]]:
    return pair.chosen_ids, pair.rejected_ids
