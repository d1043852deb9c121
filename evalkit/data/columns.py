"""Which columns of a user's data hold what: the detection behind `evalkit init --data`.

The first rows are read with the same loader `evalkit bench` uses, the columns are matched against the names
preference datasets commonly use, and the rows are then laid out as pairs with the detected mapping, so a
detection that would not load is an error now, not at the first run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.config.specs import ColumnMap, DatasetSpec
from evalkit.data.pairs import detect_format, pairs_from_rows, read_any_rows
from evalkit.errors import EvalkitError

SAMPLE_ROWS = 50
"""Rows read to detect the columns (and to check ids are unique among them)."""

PROMPT_NAMES = ("prompt", "question", "instruction", "input", "query")
CHOSEN_NAMES = ("chosen", "chosen_response", "response_chosen", "preferred", "accepted", "winner", "positive")
REJECTED_NAMES = ("rejected", "rejected_response", "response_rejected", "dispreferred", "loser", "negative")
ID_NAMES = ("id", "pair_id", "uid", "example_id", "idx", "prompt_id")
SUBSET_NAMES = ("subset", "category", "task", "domain", "source", "type")


@dataclass(frozen=True)
class DetectedColumns:
    """What the first rows of a data file hold, as a dataset section of a suite would name it."""

    rows_read: int
    found: list[str]
    """Every column of the data, in file order."""
    layout: str
    """`explicit`, `conversational` or `implicit` (see `data.pairs`)."""
    columns: ColumnMap
    has_prompt: bool
    id_column: str | None
    """A column with a value in every row read, unique among them."""
    subset_column: str | None
    subsets: list[str]
    """The subset names seen in the rows read, sorted."""


def detect_columns(path: str) -> DetectedColumns:
    """Read the first rows of `path` and name its columns; `EvalkitError` (listing the columns found) when no
    column holds the chosen or the rejected answer."""
    rows = [row for _, row in read_any_rows(DatasetSpec(name="data", path=path, limit=SAMPLE_ROWS))]
    found = list(rows[0])
    chosen = _column(found, CHOSEN_NAMES, path, "chosen answer")
    rejected = _column(found, REJECTED_NAMES, path, "rejected answer")
    prompt = _first(found, PROMPT_NAMES)
    columns = ColumnMap(prompt=prompt or "prompt", chosen=chosen, rejected=rejected)
    id_column = _first([c for c in found if _is_unique_id(rows, c)], ID_NAMES)
    subset_column = _first([c for c in found if _is_subset(rows, c)], SUBSET_NAMES)
    spec = DatasetSpec(name="data", path=path, columns=columns, id_column=id_column, subset_column=subset_column)
    pairs_from_rows(list(enumerate(rows)), spec, path)  # the detected mapping lays every row read out as a pair
    return DetectedColumns(
        rows_read=len(rows),
        found=found,
        layout=detect_format(rows[0][chosen], rows[0].get(prompt) if prompt else None),
        columns=columns,
        has_prompt=prompt is not None,
        id_column=id_column,
        subset_column=subset_column,
        subsets=sorted({str(row[subset_column]) for row in rows}) if subset_column else [],
    )


def _first(found: Sequence[str], names: Sequence[str]) -> str | None:
    """The first of `names` among the columns `found`, compared without case."""
    by_lower = {column.lower(): column for column in found}
    return next((by_lower[name] for name in names if name in by_lower), None)


def _column(found: Sequence[str], names: Sequence[str], path: str, what: str) -> str:
    column = _first(found, names)
    if column is None:
        raise EvalkitError(
            f"{path}: no column holds the {what}; found columns {found}, expected one of {list(names)} "
            "(rename it, or run `evalkit init` without --data and map it under `columns:`)"
        )
    return column


def _is_unique_id(rows: Sequence[dict[str, Any]], column: str) -> bool:
    values = [row.get(column) for row in rows]
    return all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values) and len(set(values)) == len(rows)


def _is_subset(rows: Sequence[dict[str, Any]], column: str) -> bool:
    """Names for groups of pairs: strings in every row, never `all` (the name of every pair together)."""
    return all(isinstance(row.get(column), str) and row[column] not in ("", "all") for row in rows)
