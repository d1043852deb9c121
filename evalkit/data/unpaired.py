"""Unpaired preference data, KTO style: rows of a prompt, one completion and a desirable/undesirable label.

The layout TRL's `KTOTrainer` trains on (`trl-lib/kto-mix-14k`): a `prompt`, a `completion` and a
boolean `label` (true: desirable), all strings ("standard") or the prompt and the completion both
`{role, content}` message lists ("conversational", rendered later with the chat template). Rows are
read from the same files, folders and hub datasets as pairs (`evalkit.data.pairs`), chosen by a
dataset's `format: unpaired` or, with `format: auto`, by its columns: a completion and a label
column and no chosen one.

A prompt given as a string beside message-list completions is one user message (as for pairs); a
completion that repeats the prompt's messages first has them removed. A label is a boolean, or 0/1
(CSV and some exports write integers); anything else is refused, never guessed.

Paired data read as unpaired (`unpair`) follows TRL's `unpair_preference_dataset`: each pair gives
its chosen answer labelled desirable and its rejected answer labelled undesirable, in the order TRL
writes them, so a KTO model can be scored on pairs with the numbers KTOTrainer would log on them.
Training takes them in another order (`training_order`): TRL's order, read as KTOTrainer reads it, would
train on desirable answers alone for the first half of an epoch.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.config.specs import DatasetSpec
from evalkit.data.pairs import (
    PreferencePair,
    Text,
    as_messages,
    as_string,
    check_columns,
    describe_source,
    is_unpaired,
    pairs_from_rows,
    read_table,
    selected_rows,
    with_own_columns,
    without_prefix,
)
from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class UnpairedExample:
    """One prompt with one completion, labelled desirable (`label` true) or undesirable."""

    id: str
    prompt: Text
    completion: Text
    label: bool
    subset: str = "all"
    prompt_text: str | None = None
    """For conversational rows whose prompt was a string: that string, for tokenizers without a chat template."""

    @property
    def is_conversational(self) -> bool:
        return isinstance(self.completion, list)


def load_unpaired(spec: DatasetSpec) -> list[UnpairedExample]:
    """The labelled completions a dataset spec names; bad rows are `EvalkitError`s naming the source and row.

    Paired data (chosen/rejected columns) is read as pairs and unpaired as TRL unpairs it (`unpair`), also under
    `format: unpaired` (a suite's way of scoring its held-out pairs as labelled completions)."""
    table = read_table(spec)
    return _unpaired_of(table, spec, list(table.column_names))


@dataclass(frozen=True)
class OwnData:
    """What `evalkit score` read from its dataset: pairs, or labelled completions, with the spec that read them, which
    names the data's own id and subset columns."""

    spec: DatasetSpec
    pairs: list[PreferencePair] = field(default_factory=list)
    examples: list[UnpairedExample] = field(default_factory=list)
    unpaired: bool = False
    """Read as labelled completions (`format: unpaired`, or told by its columns): `examples` hold them."""


def load_own(spec: DatasetSpec) -> OwnData:
    """Pairs, or labelled completions where `format: unpaired` or the columns say so, reading the data's own `id`
    and `subset` columns where the spec names no other. The table is read once: its column names decide the spec
    that lays its rows out."""
    table = read_table(spec)
    found = list(table.column_names)
    spec = with_own_columns(spec, found)
    if is_unpaired(spec, found):
        return OwnData(spec, examples=_unpaired_of(table, spec, found), unpaired=True)
    check_columns(spec, found, describe_source(spec))
    return OwnData(spec, pairs=pairs_from_rows(selected_rows(table, spec), spec, describe_source(spec)))


def _unpaired_of(table: Any, spec: DatasetSpec, found: list[str]) -> list[UnpairedExample]:
    where = describe_source(spec)
    if holds_pairs(spec, found):
        spec = spec.model_copy(update={"format": "auto"})  # the pairs' own layout, told by their columns
    if not is_unpaired(spec, found):
        check_columns(spec, found, where)
        return unpair(pairs_from_rows(selected_rows(table, spec), spec, where))
    check_unpaired_columns(spec, found, where)
    return unpaired_from_rows(selected_rows(table, spec), spec, where)


def holds_pairs(spec: DatasetSpec, found: Sequence[str]) -> bool:
    """Whether a dataset marked `format: unpaired` holds pairs (a chosen and a rejected column, no completion):
    read as TRL unpairs them."""
    columns = spec.columns
    return (
        spec.format == "unpaired"
        and columns.chosen in found
        and columns.rejected in found
        and columns.completion not in found
    )


def check_unpaired_columns(spec: DatasetSpec, found: Sequence[str], where: str) -> None:
    """Every column an unpaired dataset needs is in the data: else one line naming the key and the columns found."""
    columns = spec.columns
    named = {"columns.prompt": columns.prompt, "columns.completion": columns.completion, "columns.label": columns.label}
    named |= {key: getattr(spec, key) for key in ("id_column", "subset_column") if getattr(spec, key) is not None}
    for key, column in named.items():
        if column not in found:
            close = difflib.get_close_matches(column, found, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; set {key} to one of them"
            raise EvalkitError(
                f"{where}: no column {column!r} ({key}) for unpaired data; found {', '.join(map(repr, found))}{hint}"
            )


def unpaired_from_rows(
    rows: Sequence[tuple[int, dict[str, Any]]], spec: DatasetSpec, where: str
) -> list[UnpairedExample]:
    """The examples of already-read `(row number, row)`s, checked as `spec` says; ids must be unique."""
    examples = [_to_example(row, index, spec, f"{where}: row {index + 1}") for index, row in rows]
    seen: dict[str, int] = {}
    for (index, _), example in zip(rows, examples, strict=True):
        if example.id in seen:
            raise EvalkitError(
                f"{where}: row {index + 1}: id {example.id!r} repeats row {seen[example.id] + 1}; "
                f"expected unique values in {spec.id_column!r}"
            )
        seen[example.id] = index
    if not any(e.label for e in examples) or all(e.label for e in examples):
        kind = "desirable" if examples and examples[0].label else "undesirable"
        raise EvalkitError(
            f"{where}: every row is {kind}; expected both desirable (true) and undesirable (false) labels in "
            f"{spec.columns.label!r}"
        )
    return examples


def _to_example(row: dict[str, Any], index: int, spec: DatasetSpec, where: str) -> UnpairedExample:
    columns = spec.columns
    for key in (columns.prompt, columns.completion, columns.label):
        if row.get(key) is None:
            raise EvalkitError(f"{where}: missing value in column {key!r}; expected a prompt, a completion and a label")
    example_id = str(row[spec.id_column]) if spec.id_column and row.get(spec.id_column) is not None else None
    subset = "all"
    if spec.subset_column:
        if row.get(spec.subset_column) is None:
            raise EvalkitError(f"{where}: missing column {spec.subset_column!r} (subset_column)")
        subset = str(row[spec.subset_column])
        if subset == "all":
            raise EvalkitError(
                f"{where}: column {spec.subset_column!r}: 'all' names every row; expected another subset name"
            )
    example_id = example_id or f"{spec.name}-{index}"
    label = _label(row[columns.label], where, columns.label)
    prompt, completion = row[columns.prompt], row[columns.completion]
    if isinstance(completion, list):
        completion_messages = as_messages(completion, where, columns.completion)
        if isinstance(prompt, str):
            prompt_messages, prompt_text = [{"role": "user", "content": prompt}], prompt
        else:
            prompt_messages, prompt_text = as_messages(prompt, where, columns.prompt), None
        completion_messages = without_prefix(completion_messages, prompt_messages)
        if all(not m["content"] for m in completion_messages):
            raise EvalkitError(f"{where}: column {columns.completion!r}: the completion is empty; expected text")
        return UnpairedExample(example_id, prompt_messages, completion_messages, label, subset, prompt_text)
    text = as_string(completion, where, columns.completion)
    if not text:
        raise EvalkitError(f"{where}: column {columns.completion!r}: the completion is empty; expected text")
    if not isinstance(prompt, str):
        raise EvalkitError(
            f"{where}: column {columns.prompt!r}: messages beside a string completion; expected both strings or "
            "both lists of {role, content} messages"
        )
    return UnpairedExample(example_id, prompt, text, label, subset)


def _label(value: Any, where: str, column: str) -> bool:
    """A boolean label, or 0/1: true is desirable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise EvalkitError(f"{where}: column {column!r}: {value!r}; expected true (desirable) or false (undesirable)")


UNPAIR_CHUNK = 1000
"""Pairs per chunk when TRL unpairs a dataset: `unpair_preference_dataset` is a batched `datasets.map` of its
default batch size, each chunk written as its chosen answers, then its rejected ones."""


def unpair(pairs: Sequence[PreferencePair]) -> list[UnpairedExample]:
    """Pairs as labelled completions, in TRL's order: per chunk of `UNPAIR_CHUNK` pairs, every chosen answer
    (desirable, id `<pair>/chosen`), then every rejected one (undesirable, id `<pair>/rejected`)."""
    out: list[UnpairedExample] = []
    for start in range(0, len(pairs), UNPAIR_CHUNK):
        chunk = pairs[start : start + UNPAIR_CHUNK]
        for side, label in (("chosen", True), ("rejected", False)):
            out += [
                UnpairedExample(
                    id=f"{p.id}/{side}",
                    prompt=p.prompt,
                    completion=p.chosen if label else p.rejected,
                    label=label,
                    subset=p.subset,
                    prompt_text=p.prompt_text,
                )
                for p in chunk
            ]
    return out


def training_order(examples: Sequence[UnpairedExample], seed: int) -> list[UnpairedExample]:
    """`examples` shuffled once with `seed`, as KTOTrainer should see them.

    KTOTrainer reads its rows in order (`train_sampling_strategy="sequential"`: each row's KL completion is fixed
    against its neighbours in the batch), where the other trainers draw batches at random. Pairs unpaired in
    TRL's order put every chosen answer before every rejected one, and a data file sorted by subset or label
    keeps its sort: a run shorter than an epoch would then train on desirable answers of a few subsets alone,
    and every batch would hold one label. Shuffled, each batch mixes both labels and all subsets, as random
    sampling would, and a row's KL completion (its batch neighbour's) is almost never an answer to its prompt.
    """
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    return shuffled
