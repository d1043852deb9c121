"""Files of a run, written atomically (a temporary file renamed into place, so a killed run never leaves half a
file), and `results.json` read back with every problem named by file and key."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalkit.errors import EvalkitError
from evalkit.results.migrate import migrate
from evalkit.results.schema import SCHEMA_VERSION, RunResult


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; results and reports are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class JsonStore:
    """One JSON file per key in a directory, written atomically. A missing or unreadable entry reads as
    None, so the caller computes it again and overwrites it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, key: str) -> Any:
        path = self.directory / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (ValueError, UnicodeDecodeError):
            return None

    def save(self, key: str, value: Any) -> None:
        atomic_write_text(self.directory / f"{key}.json", json.dumps(value))


def write_results(result: RunResult, path: Path) -> None:
    atomic_write_text(path, result.model_dump_json(indent=2) + "\n")


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_results(path: Path) -> RunResult:
    """Load and validate a results file; problems are `EvalkitError`s naming the file and key."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalkitError(f"{path}: results file not found") from None
    except json.JSONDecodeError as exc:
        raise EvalkitError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise EvalkitError(f"{path}: nested too deeply to be an evalkit results file") from None
    except UnicodeDecodeError:
        raise EvalkitError(f"{path}: not UTF-8 text; expected an evalkit results file") from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise EvalkitError(f"{path}: not an evalkit results file (no 'schema_version')")
    major = str(raw["schema_version"]).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise EvalkitError(
            f"{path}: schema_version {raw['schema_version']!r} is not readable by this evalkit "
            f"(expected {SCHEMA_VERSION.split('.')[0]}.x)"
        )
    try:
        return RunResult.model_validate(migrate(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise EvalkitError(f"{path}: {key}: {error['msg']}") from None
