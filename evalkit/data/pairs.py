"""Preference pairs from local files, folders or hub datasets, as typed records.

Rows are read through `datasets` and normalised into `PreferencePair`s holding a prompt and two
completions, either all strings ("standard") or all `{role, content}` message lists
("conversational", rendered later with the chat template). Three layouts are understood:

- explicit: `prompt`, `chosen`, `rejected` strings;
- conversational: `chosen`/`rejected` message lists. The prompt is the run of messages both
  share (the layout of ultrafeedback-binarized), or else the `prompt` column (messages, or a
  string taken as one user message);
- implicit: hh-rlhf dialogues, `chosen`/`rejected` strings of `\\n\\nHuman: ...\\n\\nAssistant: ...`
  with no prompt column. The prompt is everything through the last `\\n\\nAssistant:`, never the
  character-level common prefix, which swallows shared first words of both answers into the
  prompt or splits a word in two.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from evalkit.config.specs import DatasetSpec
from evalkit.data.locations import looks_like_hub_id
from evalkit.errors import EvalkitError
from evalkit.results.provenance import hash_file

Message: TypeAlias = dict[str, str]
Text: TypeAlias = str | list[Message]

ASSISTANT_MARKER = "\n\nAssistant:"
_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with a preferred (`chosen`) and a dispreferred (`rejected`) completion."""

    id: str
    prompt: Text
    chosen: Text
    rejected: Text
    subset: str = "all"
    prompt_text: str | None = None
    """For conversational rows: the plain-text prompt, used with tokenizers that have no chat template."""

    @property
    def is_conversational(self) -> bool:
        return isinstance(self.chosen, list)


def load_pairs(spec: DatasetSpec) -> list[PreferencePair]:
    """Load the pairs a dataset spec names; bad rows are `EvalkitError`s naming the source and row."""
    return pairs_from_rows(read_rows(spec), spec, describe_source(spec))


def pairs_from_rows(rows: Sequence[tuple[int, dict[str, Any]]], spec: DatasetSpec, where: str) -> list[PreferencePair]:
    """The pairs of already-read `(row number, row)`s, laid out and checked as `spec` says; `where` names
    their source in error messages. Files, hub datasets and in-memory tables (`evalkit.score`) all go
    through here, so a row means the same wherever it comes from."""
    pairs = [_to_pair(row, index, spec, where) for index, row in rows]
    seen: dict[str, int] = {}
    for (index, _), pair in zip(rows, pairs, strict=True):
        if pair.id in seen:
            raise EvalkitError(
                f"{where}: row {index + 1}: id {pair.id!r} repeats row {seen[pair.id] + 1}; "
                f"expected unique values in {spec.id_column!r}"
            )
        seen[pair.id] = index
    return pairs


def read_rows(spec: DatasetSpec) -> list[tuple[int, dict[str, Any]]]:
    """(row number, row) for the rows the spec selects: its `limit`, then its seeded `sample`; a missing column is
    one error listing the columns found, before any row is read."""
    table = read_table(spec)
    check_columns(spec, list(table.column_names), describe_source(spec))
    return selected_rows(table, spec)


def read_any_rows(spec: DatasetSpec) -> list[tuple[int, dict[str, Any]]]:
    """The rows the spec selects whatever their columns: for `evalkit init`, which names the columns itself."""
    return selected_rows(read_table(spec), spec)


def read_table(spec: DatasetSpec) -> Any:
    table = _load_table(spec)
    if len(table) == 0:
        raise EvalkitError(f"{describe_source(spec)}: no rows; expected preference pairs")
    return table


def selected_rows(table: Any, spec: DatasetSpec) -> list[tuple[int, dict[str, Any]]]:
    indices = list(range(min(len(table), spec.limit or len(table))))
    if spec.sample is not None and spec.sample < len(indices):
        indices = sorted(random.Random(spec.seed).sample(indices, spec.sample))
    return list(zip(indices, table.select(indices), strict=True))


def _load_table(spec: DatasetSpec) -> Any:
    import datasets  # heavy import, deferred so that loading a suite stays fast

    local = Path(spec.path)
    if local.is_file():
        builder = _BUILDERS.get(local.suffix.lower())
        if builder is None:
            raise EvalkitError(f"{local}: unsupported file type {local.suffix!r}; expected one of {sorted(_BUILDERS)}")
        if builder == "json":
            _check_json(local)
        call: dict[str, Any] = {"path": builder, "data_files": str(local), "split": "train"}
    elif local.is_dir() or looks_like_hub_id(spec.path):
        call = {"path": spec.path, "name": spec.hub_config, "revision": spec.revision, "split": spec.split}
    else:
        raise EvalkitError(f"{spec.path}: data file not found (nor a hub dataset id)")
    try:
        return datasets.load_dataset(**call)
    except Exception as exc:  # datasets raises many types (parser, hub, split); the message is what matters
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EvalkitError(f"{describe_source(spec)}: could not be read: {message}") from None


OWN_COLUMNS = {"id_column": "id", "subset_column": "subset"}
"""The columns `evalkit score` takes a pair's id and subset from when the data has them and none is named."""


def with_own_columns(spec: DatasetSpec, found: Sequence[str]) -> DatasetSpec:
    """`spec` reading the data's own `id` and `subset` columns where it names no other (a suite names them
    explicitly, so that its ids never change under a baseline; `evalkit score` keeps what the data has)."""
    own = {key: column for key, column in OWN_COLUMNS.items() if getattr(spec, key) is None and column in found}
    return spec.model_copy(update=own) if own else spec


def check_columns(spec: DatasetSpec, found: Sequence[str], where: str) -> None:
    """Every column the spec names is in the data: else one line naming the key, the columns found and the nearest.

    The prompt column is required only where it was named (`columns.prompt`) or the layout needs it (`explicit`);
    otherwise its absence is what `auto` reads as an implicit or conversational layout.
    """
    if is_unpaired(spec, found):
        raise EvalkitError(
            f"{where}: unpaired data ({spec.columns.prompt!r}, {spec.columns.completion!r}, {spec.columns.label!r}); "
            "expected preference pairs (chosen and rejected) here"
        )
    named = {f"columns.{key}": getattr(spec.columns, key) for key in ("chosen", "rejected")}
    if spec.format == "explicit" or "prompt" in spec.columns.model_fields_set:
        named["columns.prompt"] = spec.columns.prompt
    named |= {key: getattr(spec, key) for key in ("id_column", "subset_column") if getattr(spec, key) is not None}
    for key, column in named.items():
        if column not in found:
            close = difflib.get_close_matches(column, found, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; set {key} to one of them"
            raise EvalkitError(f"{where}: no column {column!r} ({key}); found {', '.join(map(repr, found))}{hint}")


def is_unpaired(spec: DatasetSpec, found: Sequence[str]) -> bool:
    """Whether a dataset with columns `found` is unpaired (KTO style, `evalkit.data.unpaired`): `format: unpaired`,
    or `auto` with a completion and a label column and no chosen column."""
    if spec.format != "auto":
        return spec.format == "unpaired"
    columns = spec.columns
    return columns.completion in found and columns.label in found and columns.chosen not in found


def dataset_fingerprint(spec: DatasetSpec) -> str:
    """sha256 of a local file's (or folder's) bytes; `id@revision` for a hub dataset."""
    local = Path(spec.path)
    if not local.exists():
        return f"{spec.path}@{spec.revision or 'unpinned'}"
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        hash_file(digest, path, str(path.relative_to(local) if path != local else path.name))
    return digest.hexdigest()


def describe_source(spec: DatasetSpec) -> str:
    if Path(spec.path).is_file():
        return spec.path
    revision = f"@{spec.revision}" if spec.revision else ""
    return f"{spec.path}{revision} [{spec.split}]"


def _check_json(path: Path) -> None:
    """Find the first malformed line of a JSON Lines file, so the error can name it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        bad_line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise EvalkitError(f"{path}:{bad_line}: not UTF-8 text") from None
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
            raise EvalkitError(f"{path}:{number}: expected one JSON object per line, got {type(value).__name__}")


def _to_pair(row: dict[str, Any], index: int, spec: DatasetSpec, source: str) -> PreferencePair:
    where = f"{source}: row {index + 1}"
    pair = _build_pair(row, index, spec, where)
    for column, answer in ((spec.columns.chosen, pair.chosen), (spec.columns.rejected, pair.rejected)):
        empty = not answer if isinstance(answer, str) else all(not m["content"] for m in answer)
        if empty:
            raise EvalkitError(f"{where}: column {column!r}: the answer is empty; expected text to score")
    return pair


def _build_pair(row: dict[str, Any], index: int, spec: DatasetSpec, where: str) -> PreferencePair:
    columns = spec.columns
    for key in (columns.chosen, columns.rejected):
        if row.get(key) is None:
            found = ", ".join(repr(k) for k, v in row.items() if v is not None)
            raise EvalkitError(
                f"{where}: missing column {key!r}; expected {columns.chosen!r} and {columns.rejected!r}, found {found}"
            )
    chosen, rejected, prompt = row[columns.chosen], row[columns.rejected], row.get(columns.prompt)
    layout = spec.format if spec.format != "auto" else detect_format(chosen, prompt)
    pair_id = str(row[spec.id_column]) if spec.id_column and row.get(spec.id_column) is not None else None
    subset = str(row.get(spec.subset_column)) if spec.subset_column else "all"
    if spec.subset_column and row.get(spec.subset_column) is None:
        raise EvalkitError(f"{where}: missing column {spec.subset_column!r} (subset_column)")
    if spec.subset_column and subset == "all":
        raise EvalkitError(
            f"{where}: column {spec.subset_column!r}: 'all' names every pair; expected another subset name"
        )
    fields = (pair_id or f"{spec.name}-{index}", subset)
    if layout == "best_of_n":
        raise EvalkitError(
            f"{where}: column {columns.chosen!r} holds a list of answers (best-of-N); expected one answer per pair "
            "(best-of-N datasets are read by a suite's `datasets`, or `evalkit.data.best_of_n.load_items`)"
        )
    if layout == "conversational":
        return _conversational(*fields, prompt, chosen, rejected, where, columns.prompt)
    if layout == "implicit":
        return _implicit(
            *fields, as_string(chosen, where, columns.chosen), as_string(rejected, where, columns.rejected), where
        )
    if prompt is None:
        raise EvalkitError(f"{where}: missing column {columns.prompt!r}; expected explicit prompt/chosen/rejected")
    return PreferencePair(
        fields[0],
        as_string(prompt, where, columns.prompt),
        as_string(chosen, where, columns.chosen),
        as_string(rejected, where, columns.rejected),
        subset,
    )


def detect_format(chosen: Any, prompt: Any) -> str:
    """A row's layout for `format: auto`: lists of strings are best-of-N, message lists conversational, else a prompt
    makes it explicit."""
    if isinstance(chosen, list) and chosen and all(isinstance(c, str) for c in chosen):
        return "best_of_n"
    if isinstance(chosen, list):
        return "conversational"
    return "explicit" if prompt is not None else "implicit"


def _conversational(
    pair_id: str, subset: str, prompt: Any, chosen: Any, rejected: Any, where: str, prompt_column: str
) -> PreferencePair:
    """The prompt column when there is one (stripped from the answers when they repeat it), else the
    run of first messages both answers share (the ultrafeedback-binarized layout)."""
    chosen_messages = as_messages(chosen, where, "chosen")
    rejected_messages = as_messages(rejected, where, "rejected")
    prompt_text = prompt if isinstance(prompt, str) else None
    if prompt is None:
        shared = _shared_messages(chosen_messages, rejected_messages)
        if shared == 0:
            raise EvalkitError(
                f"{where}: chosen and rejected share no first messages and there is no {prompt_column!r} column; "
                "expected a prompt"
            )
        prompt_messages = chosen_messages[:shared]
    elif isinstance(prompt, str):
        prompt_messages = [{"role": "user", "content": prompt}]
        shared = _shared_messages(chosen_messages, rejected_messages)
        # A system message before the question: the shared run ending with the prompt is the prompt.
        if shared > 0 and chosen_messages[shared - 1] == prompt_messages[0]:
            prompt_messages = chosen_messages[:shared]
    else:
        prompt_messages = as_messages(prompt, where, prompt_column)
    chosen_messages = without_prefix(chosen_messages, prompt_messages)
    rejected_messages = without_prefix(rejected_messages, prompt_messages)
    return PreferencePair(pair_id, prompt_messages, chosen_messages, rejected_messages, subset, prompt_text)


def _shared_messages(chosen: list[Message], rejected: list[Message]) -> int:
    """Length of the run of first messages both share; each answer keeps at least its last message, so a
    pair whose answers are identical stays a (tied) pair instead of losing both completions."""
    limit = min(len(chosen), len(rejected)) - 1
    shared = 0
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    return shared


def without_prefix(messages: list[Message], prefix: list[Message]) -> list[Message]:
    if len(messages) > len(prefix) and messages[: len(prefix)] == prefix:
        return messages[len(prefix) :]
    return messages


def _implicit(pair_id: str, subset: str, chosen: str, rejected: str, where: str) -> PreferencePair:
    """The prompt runs through the last Assistant marker of the text both answers share."""
    # Character-level on purpose: only used to find the last marker both answers contain.
    shared = os.path.commonprefix([chosen, rejected])  # noqa: RUF071
    end = shared.rfind(ASSISTANT_MARKER)
    if end < 0:
        raise EvalkitError(
            f"{where}: no prompt column and no {ASSISTANT_MARKER!r} in the dialogue chosen and rejected share; "
            "expected an hh-rlhf style dialogue, or set the dataset's `format` and `columns`"
        )
    prompt = shared[: end + len(ASSISTANT_MARKER)]
    return PreferencePair(pair_id, prompt, chosen[len(prompt) :], rejected[len(prompt) :], subset)


def as_string(value: Any, where: str, column: str) -> str:
    if not isinstance(value, str):
        raise EvalkitError(f"{where}: column {column!r}: expected a string, got {type(value).__name__}")
    return value


def as_messages(value: Any, where: str, column: str) -> list[Message]:
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise EvalkitError(f"{where}: column {column!r}: expected a non-empty list of {{role, content}} messages")


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
        if len(members) > 1:
            n_eval = min(n_eval, len(members) - 1)  # training sees every subset too
        held_out.extend(members[:n_eval])
        train.extend(members[n_eval:])
    return PairSplit(train=train, held_out=held_out)


def write_pairs(pairs: Sequence[PreferencePair], path: Path) -> None:
    """Write pairs as JSON Lines in the explicit `prompt`/`chosen`/`rejected` layout TRL reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            row = {"id": pair.id, "subset": pair.subset, "prompt": pair.prompt}
            row |= {"chosen": pair.chosen, "rejected": pair.rejected}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def as_plain_text(pair: PreferencePair) -> PreferencePair:
    """The plain-text form of a conversational pair: the prompt string and each answer's last message.

    Roles and earlier turns are dropped (this is the form older recipes trained GPT-2-style models
    on). An answer is joined to the prompt by a newline unless whitespace already separates them,
    so the two never run together into one word.
    """
    assert isinstance(pair.prompt, list) and isinstance(pair.chosen, list) and isinstance(pair.rejected, list)
    prompt = pair.prompt_text if pair.prompt_text is not None else pair.prompt[-1]["content"]

    def answer(messages: list[Message]) -> str:
        text = messages[-1]["content"]
        joined = not prompt or prompt[-1].isspace() or not text or text[0].isspace()
        return text if joined else "\n" + text

    return PreferencePair(pair.id, prompt, answer(pair.chosen), answer(pair.rejected), pair.subset)
