"""Per-pair scores: one row per pair and model in `pairs/<dataset>.jsonl` beside `results.json`, the implicit
reward computed from them, and the bounded, confined reading of those files from an untrusted results directory."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from evalkit.errors import EvalkitError
from evalkit.results.files import inside

if TYPE_CHECKING:
    import numpy as np

    from evalkit.results.schema import DatasetInfo


@dataclass(frozen=True)
class PairScore:
    """One pair under one model: a row of the per-pair file written beside `results.json`."""

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


def read_pair_scores(path: Path) -> list[PairScore]:
    """The rows of a per-pair file (`pairs/<dataset>.jsonl`); extra columns (rewards, margin) are derived."""
    names = {f.name for f in dataclasses.fields(PairScore)}
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvalkitError(
            f"{path}: per-pair scores not found; expected the file written beside results.json"
        ) from None
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError(f"expected a JSON object, got {type(record).__name__}")
            rows.append(PairScore(**{k: v for k, v in record.items() if k in names}))
        except (json.JSONDecodeError, TypeError, RecursionError) as exc:
            raise EvalkitError(f"{path}:{number}: not a per-pair score row: {exc}") from None
    return rows


def pair_records(rows: Iterable[PairScore], beta: float) -> list[dict[str, object]]:
    """Rows of a per-pair file: each `PairScore`, and with a reference its rewards and margin."""
    out = []
    for row in rows:
        record: dict[str, object] = dict(vars(row))
        if row.ref_logp_chosen is not None and row.ref_logp_rejected is not None:
            reward_chosen = implicit_reward(row.logp_chosen, row.ref_logp_chosen, beta)
            reward_rejected = implicit_reward(row.logp_rejected, row.ref_logp_rejected, beta)
            record |= {"reward_chosen": reward_chosen, "reward_rejected": reward_rejected}
            record["margin"] = reward_chosen - reward_rejected
        out.append(record)
    return out
