"""Preference pairs from local files, as typed records.

Files are read through `datasets` (JSONL/JSON/Parquet/CSV). Each row becomes a `PreferencePair`
holding a prompt and two completions, either all strings ("standard" rows) or all lists of
`{role, content}` messages ("conversational" rows, rendered later with the chat template).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from evalkit.config import DatasetSpec
from evalkit.errors import EvalkitError

Message: TypeAlias = dict[str, str]
Text: TypeAlias = str | list[Message]

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with a preferred (`chosen`) and a dispreferred (`rejected`) completion."""

    id: str
    prompt: Text
    chosen: Text
    rejected: Text
    subset: str = "all"

    @property
    def is_conversational(self) -> bool:
        return isinstance(self.chosen, list)


def load_pairs(spec: DatasetSpec) -> list[PreferencePair]:
    """Load and check the pairs a dataset spec names; bad rows are `EvalkitError`s naming file and row."""
    rows = read_rows(spec.path)
    if spec.limit is not None:
        rows = rows[: spec.limit]
    return [_to_pair(row, index, spec) for index, row in enumerate(rows)]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of a local data file, as dictionaries."""
    builder = _BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise EvalkitError(f"{path}: unsupported file type {path.suffix!r}; expected one of {sorted(_BUILDERS)}")
    if not path.is_file():
        raise EvalkitError(f"{path}: data file not found")
    if builder == "json":
        _check_json(path)
    import datasets  # heavy import, deferred so that loading a suite stays fast

    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:  # datasets wraps parser errors in several types; the message is what matters
        raise EvalkitError(f"{path}: could not be read as {builder}: {str(exc).splitlines()[0]}") from None
    if len(table) == 0:
        raise EvalkitError(f"{path}: no rows; expected preference pairs")
    return list(table)


def _check_json(path: Path) -> None:
    """Find the first malformed line of a JSON Lines file, so the error can name it."""
    text = path.read_text(encoding="utf-8", errors="strict")
    if not text.strip():
        raise EvalkitError(f"{path}: empty file; expected preference pairs")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{path}:{number}: invalid JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise EvalkitError(f"{path}:{number}: expected a JSON object per line, got {type(value).__name__}")


def _to_pair(row: dict[str, Any], index: int, spec: DatasetSpec) -> PreferencePair:
    where = f"{spec.path}: row {index + 1}"
    missing = [c for c in REQUIRED_COLUMNS if c not in row or row[c] is None]
    if missing:
        raise EvalkitError(f"{where}: missing column {missing[0]!r}; expected {list(REQUIRED_COLUMNS)}")
    fields = {c: _check_text(row[c], f"{where}: column {c!r}") for c in REQUIRED_COLUMNS}
    if isinstance(fields["chosen"], list) != isinstance(fields["rejected"], list):
        raise EvalkitError(f"{where}: 'chosen' and 'rejected' must both be strings or both be message lists")
    if isinstance(fields["prompt"], list) != isinstance(fields["chosen"], list):
        raise EvalkitError(f"{where}: 'prompt' must be a message list when the completions are, and vice versa")
    pair_id = str(row[spec.id_column]) if spec.id_column else f"{spec.name}-{index}"
    subset = str(row.get(spec.subset_column, "all")) if spec.subset_column else "all"
    return PreferencePair(pair_id, fields["prompt"], fields["chosen"], fields["rejected"], subset)


def _check_text(value: Any, where: str) -> Text:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise EvalkitError(f"{where}: expected a string or a list of {{role, content}} messages")


@dataclass(frozen=True)
class PairSplit:
    """Pairs for training and the held-out pairs for evaluation."""

    train: list[PreferencePair]
    held_out: list[PreferencePair]


def split_pairs(pairs: Sequence[PreferencePair], eval_fraction: float, seed: int) -> PairSplit:
    """A seeded train/eval split, stratified by subset so every subset is represented in both."""
    rng = random.Random(seed)
    train: list[PreferencePair] = []
    held_out: list[PreferencePair] = []
    for subset in sorted({p.subset for p in pairs}):
        members = [p for p in pairs if p.subset == subset]
        rng.shuffle(members)
        n_eval = max(1, round(len(members) * eval_fraction))
        held_out.extend(members[:n_eval])
        train.extend(members[n_eval:])
    return PairSplit(train=train, held_out=held_out)


def write_pairs(pairs: Sequence[PreferencePair], path: Path) -> None:
    """Write pairs as JSON Lines in the `prompt`/`chosen`/`rejected` layout TRL reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            row = {"id": pair.id, "subset": pair.subset, "prompt": pair.prompt}
            row |= {"chosen": pair.chosen, "rejected": pair.rejected}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
