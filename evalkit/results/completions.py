"""Per-completion scores of unpaired (KTO-style) data: one row per labelled completion and model, with the
log-probs of the mismatched completion KTO's KL reference point is estimated from."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import EvalkitError
from evalkit.results.files import read_jsonl
from evalkit.results.pairs import MAX_PAIR_ROW_BYTES, implicit_reward, is_finite_number


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


_STRINGS = ("id", "subset", "model")
_LOGPS = ("logp", "kl_logp")
_COUNTS = ("n_tokens", "kl_n_tokens")
_FLAGS = ("label", "truncated")


def read_completion_scores(path: Path) -> list[CompletionScore]:
    """The rows of a per-completion file (`completions/<dataset>.jsonl`), each checked as a fork's file must be (a
    gate recomputes a comparison against a baseline run from them); the derived `reward` column is not read."""
    expected = "per-completion score rows written beside results.json"
    return [completion_score(record, where) for where, record in read_jsonl(path, expected, MAX_PAIR_ROW_BYTES)]


def completion_score(record: object, where: str) -> CompletionScore:
    """One per-completion row: every column present with its type, log-probs finite, token counts whole."""
    if not isinstance(record, dict):
        raise EvalkitError(f"{where}: not a per-completion row: expected a JSON object, got {type(record).__name__}")
    for key in (*_STRINGS, *_LOGPS, *_COUNTS, *_FLAGS):
        if key not in record:
            raise EvalkitError(f"{where}: not a per-completion row: no {key!r}")
    checks = [
        *((key, isinstance(record[key], str), "a string") for key in _STRINGS),
        *((key, is_finite_number(record[key]), "a finite log-prob") for key in _LOGPS),
        *(
            (key, record.get(key) is None or is_finite_number(record[key]), "a finite log-prob")
            for key in ("ref_logp", "ref_kl_logp")
        ),
        *(
            (
                key,
                isinstance(record[key], int) and not isinstance(record[key], bool) and record[key] >= 0,
                "a count of tokens",
            )
            for key in _COUNTS
        ),
        *((key, isinstance(record[key], bool), "true or false") for key in _FLAGS),
        ("prompt_key", record.get("prompt_key") is None or isinstance(record["prompt_key"], str), "a string"),
    ]
    for key, good, what in checks:
        if not good:
            raise EvalkitError(f"{where}: {key}: expected {what}, got {json.dumps(record.get(key))[:40]}")
    optional = {key: None if record.get(key) is None else float(record[key]) for key in ("ref_logp", "ref_kl_logp")}
    return CompletionScore(
        id=record["id"],
        subset=record["subset"],
        model=record["model"],
        label=record["label"],
        logp=float(record["logp"]),
        n_tokens=record["n_tokens"],
        truncated=record["truncated"],
        kl_logp=float(record["kl_logp"]),
        kl_n_tokens=record["kl_n_tokens"],
        prompt_key=record.get("prompt_key"),
        **optional,
    )
