"""Per-completion scores of unpaired (KTO-style) data: one row per labelled completion and model, with the
log-probs of the mismatched completion KTO's KL reference point is estimated from."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from evalkit.results.pairs import implicit_reward


@dataclass(frozen=True, slots=True)
class CompletionScore:
    """One labelled completion under one model, and its KL partner: the same prompt with another row's completion
    (see `evalkit.scoring.unpaired`)."""

    id: str
    subset: str
    model: str
    label: bool
    """True: a desirable completion; false: an undesirable one."""
    logp: float
    n_tokens: int
    truncated: bool
    kl_logp: float
    """Summed log-prob of the KL partner's completion after this row's prompt."""
    kl_n_tokens: int
    ref_logp: float | None = None
    ref_kl_logp: float | None = None
    prompt_key: str | None = None
    """A hash of the prompt's token ids: completions of one prompt share it."""


def completion_records(rows: Iterable[CompletionScore], beta: float) -> list[dict[str, object]]:
    """Rows of a per-completion file: each `CompletionScore`, and with a reference its reward β·(ℓ − ℓ_ref)."""
    out = []
    for row in rows:
        record: dict[str, object] = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
        if row.ref_logp is not None:
            record["reward"] = implicit_reward(row.logp, row.ref_logp, beta)
        out.append(record)
    return out
