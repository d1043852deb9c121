"""Per-pair texts beside the per-pair scores: `pairs/<dataset>.texts.jsonl`, one row per pair.

The score files hold numbers only; to find out *what* a model changed, a reader (and the report's
pair explorer) joins on `id` with this file: `id`, `subset`, `prompt`, `chosen`, `rejected` as plain
text (conversational rows as one `role: content` paragraph per message, as `PairText` renders them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from evalkit.errors import EvalkitError
from evalkit.results.files import inside, read_jsonl, validation_message, write_jsonl
from evalkit.results.pairs import pairs_path
from evalkit.results.schema import DatasetInfo, PairText

SUFFIX = ".texts.jsonl"

MAX_TEXT_ROW_BYTES = 64 * 2**20
"""Longest line of a texts file a reader takes: one pair's prompt and answers, long contexts included."""


class HasText(Protocol):
    """What a preference pair offers to be written as text (`evalkit.data.pairs.PreferencePair`)."""

    @property
    def id(self) -> str: ...

    @property
    def subset(self) -> str: ...

    @property
    def prompt(self) -> object: ...

    @property
    def chosen(self) -> object: ...

    @property
    def rejected(self) -> object: ...


class ShownText(Protocol):
    """What a report shows of a pair's text: a `PairText` kept in results.json, or a `PairTextRow` read back."""

    @property
    def id(self) -> str: ...

    @property
    def subset(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    @property
    def chosen(self) -> str: ...

    @property
    def rejected(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PairTextRow:
    """One row of a texts file once checked (as a `PairText`): a slotted record, with one copy of each subset name,
    so that a texts file read back costs about its size and not a pydantic model's kilobyte more per pair."""

    id: str
    subset: str
    prompt: str
    chosen: str
    rejected: str


def texts_file(pairs_file: str | Path) -> Path:
    """`pairs/tinyworld.jsonl` → `pairs/tinyworld.texts.jsonl`."""
    path = Path(pairs_file)
    return path.with_name(path.name.removesuffix(".jsonl") + SUFFIX)


def pair_text(dataset: str, pair: HasText) -> PairText:
    """The plain-text record of one pair of `dataset`."""
    return PairText(
        dataset=dataset, id=pair.id, subset=pair.subset, prompt=pair.prompt, chosen=pair.chosen, rejected=pair.rejected
    )


def write_pair_texts(dataset: str, pairs: Sequence[HasText], path: Path) -> None:
    """One JSON line per pair of `dataset`, in the order given."""
    write_jsonl((pair_text(dataset, p).model_dump(exclude={"dataset"}) for p in pairs), path)


def read_pair_texts(results_dir: Path, info: DatasetInfo) -> dict[str, PairTextRow] | None:
    """The texts of `info`'s pairs by id, when their file lies inside `results_dir` (checked as `pairs_path`
    checks a score file: a results file is untrusted); None when there is none."""
    if inside(results_dir, info.pairs_file) is None:  # `.` or `/` names no file to put the texts beside
        return None
    path = pairs_path(results_dir, info.model_copy(update={"pairs_file": str(texts_file(info.pairs_file))}))
    if path is None:
        return None
    out: dict[str, PairTextRow] = {}
    subsets: dict[str, str] = {}
    for where, record in read_jsonl(path, "the texts of the pairs, one JSON object a line", MAX_TEXT_ROW_BYTES):
        if not isinstance(record, dict):
            raise EvalkitError(f"{where}: expected a JSON object with a pair's text")
        try:
            text = PairText.model_validate({**record, "dataset": info.name})
        except ValidationError as exc:
            raise EvalkitError(f"{where}: {validation_message(exc)}") from None
        subset = subsets.setdefault(text.subset, text.subset)
        out[text.id] = PairTextRow(text.id, subset, text.prompt, text.chosen, text.rejected)
    return out
