"""Per-pair scores: one row per pair and model in `pairs/<dataset>.jsonl` beside `results.json`, the implicit
reward computed from them, and the bounded, confined reading of those files from an untrusted results directory."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from evalkit.errors import EvalkitError
from evalkit.results.files import inside, read_jsonl

if TYPE_CHECKING:
    import numpy as np

    from evalkit.results.schema import DatasetInfo


@dataclass(frozen=True, slots=True)
class PairScore:
    """One pair under one model: a row of the per-pair file written beside `results.json`. Slotted: a run holds
    one per pair and model, and a per-pair file read back should cost about its size, not a dict per row."""

    id: str
    subset: str
    model: str
    logp_chosen: float
    logp_rejected: float
    n_tokens_chosen: int
    n_tokens_rejected: int
    truncated: bool
    ref_logp_chosen: float | None = None
    ref_logp_rejected: float | None = None
    prompt_key: str | None = None
    """A hash of the prompt's token ids: pairs with the same key share a prompt and are clustered in every
    interval and test. None in files written before it existed."""
    score_chosen: float | None = None
    """A reward model's score of the chosen answer (its raw logit); None for a policy. A reward model's row has
    no log-probs: its `logp_*` are 0 and its rewards are these scores."""
    score_rejected: float | None = None
    """A reward model's score of the rejected answer; None for a policy."""
    logp_chosen_shared: float | None = None
    """The log-prob of the chosen answer's first min(T_c, T_r) tokens, the part LD-DPO weights fully (all of the
    shorter answer); None for a reward model and in files written before it existed."""
    logp_rejected_shared: float | None = None
    ref_logp_chosen_shared: float | None = None
    """The reference's log-prob of the same tokens as `logp_chosen_shared`."""
    ref_logp_rejected_shared: float | None = None
    logp_prompt: float | None = None
    """The log-prob of the prompt's tokens after its first (ORPO's NLL covers them); scored only for a model whose
    objective reads it, None otherwise."""
    n_tokens_prompt: int | None = None
    """The prompt tokens `logp_prompt` sums over."""

    @property
    def is_reward_model(self) -> bool:
        """Whether the row is a reward model's scores rather than a policy's log-probs."""
        return self.score_chosen is not None and self.score_rejected is not None

    @property
    def own_margin(self) -> float:
        """The model's own margin on the pair: a reward model's score difference, a policy's log-prob difference."""
        if self.score_chosen is not None and self.score_rejected is not None:
            return self.score_chosen - self.score_rejected
        return self.logp_chosen - self.logp_rejected

    def as_model(self, model: str) -> PairScore:
        """The same row under another model's name (a model matched across runs by role, a stored score reused)."""
        return dataclasses.replace(self, model=model)


Logps = TypeVar("Logps", float, "np.ndarray")


def implicit_reward(logp: Logps, ref_logp: Logps, beta: float) -> Logps:
    """DPO's implicit reward of a completion, β·(ℓ − ℓ_ref): the one place it is computed."""
    reward: Logps = beta * (logp - ref_logp)
    return reward


MAX_PAIRS_FILE_BYTES = 2 * 2**30
"""Largest per-pair file a reader opens: a few hundred bytes a row, so millions of pairs fit."""


def pairs_path(results_dir: Path, info: DatasetInfo) -> Path | None:
    """Where `info`'s per-pair file is, when it is a regular file of bounded size inside `results_dir`; None when
    there is none. A results file is untrusted (a fork's artifact): it may name `../`, an absolute path, a link
    out of its directory or `/dev/zero`, and none of them is read."""
    candidate = inside(results_dir, info.pairs_file)
    if candidate is None or not (resolved := candidate.resolve()).is_file():  # is_file: regular files, not devices
        return None
    if resolved.stat().st_size > MAX_PAIRS_FILE_BYTES:
        raise EvalkitError(f"{candidate}: {resolved.stat().st_size:,} bytes, more than a per-pair file holds")
    return candidate


MAX_PAIR_ROW_BYTES = 2**20
"""Longest line of a per-pair file a reader takes: a row is a few hundred bytes; a longer line is not a row."""


def read_pair_scores(path: Path) -> list[PairScore]:
    """The rows of a per-pair file (`pairs/<dataset>.jsonl`); extra columns (rewards, margin) are derived.

    Read a line at a time into slotted records, each row's repeated names (subset, model) shared between rows,
    so reading a file holds about its size in memory (`tests/benchmarks/test_pairs_memory.py`)."""
    shared: dict[str, str] = {}
    expected = "per-pair score rows written beside results.json"
    return [pair_score(record, where, shared) for where, record in read_jsonl(path, expected, MAX_PAIR_ROW_BYTES)]


_TEXT = ("id", "subset", "model")
_LOGPS = ("logp_chosen", "logp_rejected")
_COUNTS = ("n_tokens_chosen", "n_tokens_rejected")
_OPTIONAL_LOGPS = ("ref_logp_chosen", "ref_logp_rejected", "score_chosen", "score_rejected")
_PARTS = ("logp_chosen_shared", "logp_rejected_shared", "ref_logp_chosen_shared", "ref_logp_rejected_shared")
"""Optional log-probs of parts of the sequences (LD-DPO's shared tokens, ORPO's prompt): written where scored."""
_PROMPT = ("logp_prompt", "n_tokens_prompt")


def pair_score(record: object, where: str, shared: dict[str, str] | None = None) -> PairScore:
    """One per-pair row, checked (a fork's file is untrusted): every column present with its type, log-probs finite
    numbers, token counts whole and not negative. Extra columns (rewards, margin) are derived, so they are not read.
    `shared` holds one copy of each subset and model name for the rows of a file, so they do not repeat per row."""
    if not isinstance(record, dict):
        raise EvalkitError(f"{where}: not a per-pair score row: expected a JSON object, got {type(record).__name__}")
    for key in (*_TEXT, *_LOGPS, *_COUNTS, "truncated"):
        if key not in record:
            raise EvalkitError(f"{where}: not a per-pair score row: no {key!r}")
    for key in (*_TEXT, "prompt_key"):
        if not isinstance(record.get(key), str) and (key in _TEXT or record.get(key) is not None):
            raise EvalkitError(f"{where}: {key}: expected a string, got {_shown(record.get(key))}")
    for key in (*_LOGPS, *_OPTIONAL_LOGPS, *_PARTS, "logp_prompt"):
        if not is_finite_number(record.get(key)) and (key in _LOGPS or record.get(key) is not None):
            what = "score" if key.startswith("score") else "log-prob"
            raise EvalkitError(f"{where}: {key}: expected a finite {what}, got {_shown(record.get(key))}")
    for key in (*_COUNTS, "n_tokens_prompt"):
        count = record.get(key)
        if key not in _COUNTS and count is None:
            continue
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 2**53:
            raise EvalkitError(f"{where}: {key}: expected a count of tokens, got {_shown(count)}")
    if not isinstance(record["truncated"], bool):
        raise EvalkitError(f"{where}: truncated: expected true or false, got {_shown(record['truncated'])}")
    return PairScore(
        id=record["id"],
        subset=_shared(record["subset"], shared),
        model=_shared(record["model"], shared),
        logp_chosen=float(record["logp_chosen"]),
        logp_rejected=float(record["logp_rejected"]),
        n_tokens_chosen=record["n_tokens_chosen"],
        n_tokens_rejected=record["n_tokens_rejected"],
        truncated=record["truncated"],
        ref_logp_chosen=_optional_float(record.get("ref_logp_chosen")),
        ref_logp_rejected=_optional_float(record.get("ref_logp_rejected")),
        prompt_key=record.get("prompt_key"),
        score_chosen=_optional_float(record.get("score_chosen")),
        score_rejected=_optional_float(record.get("score_rejected")),
        logp_chosen_shared=_optional_float(record.get("logp_chosen_shared")),
        logp_rejected_shared=_optional_float(record.get("logp_rejected_shared")),
        ref_logp_chosen_shared=_optional_float(record.get("ref_logp_chosen_shared")),
        ref_logp_rejected_shared=_optional_float(record.get("ref_logp_rejected_shared")),
        logp_prompt=_optional_float(record.get("logp_prompt")),
        n_tokens_prompt=record.get("n_tokens_prompt"),
    )


def _shared(name: str, shared: dict[str, str] | None) -> str:
    return name if shared is None else shared.setdefault(name, name)


def is_finite_number(value: object) -> bool:
    """Whether a value read from JSON is a finite number (not a bool, a string, NaN or an infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _shown(value: object) -> str:
    return json.dumps(value)[:40]


def row_record(row: PairScore) -> dict[str, object]:
    """A row's columns by name (a slotted record has no `vars`)."""
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


def pair_records(rows: Iterable[PairScore], beta: float) -> list[dict[str, object]]:
    """Rows of a per-pair file: each `PairScore`, and with a reference its rewards and margin (a reward model's
    rewards are its scores). A policy's row has no `score_*` columns and a reward model's no `ref_logp_*`, so files
    of policies alone read as they did before reward models."""
    out = []
    for row in rows:
        record: dict[str, object] = row_record(row)
        for key in ("score_chosen", "score_rejected") if not row.is_reward_model else _OPTIONAL_LOGPS[:2]:
            record.pop(key)
        for key in (*_PARTS, *_PROMPT):  # only where scored: files of models without them read as before
            if record[key] is None:
                record.pop(key)
        if row.score_chosen is not None and row.score_rejected is not None:
            record |= {"reward_chosen": row.score_chosen, "reward_rejected": row.score_rejected}
            record["margin"] = row.score_chosen - row.score_rejected
        elif row.ref_logp_chosen is not None and row.ref_logp_rejected is not None:
            reward_chosen = implicit_reward(row.logp_chosen, row.ref_logp_chosen, beta)
            reward_rejected = implicit_reward(row.logp_rejected, row.ref_logp_rejected, beta)
            record |= {"reward_chosen": reward_chosen, "reward_rejected": reward_rejected}
            record["margin"] = reward_chosen - reward_rejected
        out.append(record)
    return out
