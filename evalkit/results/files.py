"""Files of a run, written atomically (a temporary file renamed into place, so a killed run never leaves half a
file), and `results.json` read back with every problem named by file and key."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evalkit.errors import EvalkitError
from evalkit.results.migrate import migrate
from evalkit.results.schema import SCHEMA_VERSION, RunResult


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename.

    The machine's refusal (a full disk, a read-only directory) is an `OSError` naming `path`: the temporary file
    is an implementation detail, and a failed write names none (a full disk fails `write`, which has no file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; results and reports are meant to be shared
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


MIN_FREE_BYTES = 64 * 2**20
"""Free space evalkit asks of an output directory before it starts (reports and per-pair files are a few MB)."""


def check_writable(out_dir: Path, where: str, needs: str) -> None:
    """Fail before the work, not after it, where the outputs cannot be written: `out_dir` (or, when it does not
    exist yet, the directory it would be made in) must take a file and have `MIN_FREE_BYTES` free. Probed by
    writing, not by permission bits: root writes in a 0o555 directory, and nobody writes on a read-only mount."""
    # Probed where the directory would be created, without creating it: a run that stops on bad input leaves nothing.
    existing = next((p for p in [out_dir, *out_dir.absolute().parents] if p.exists()), Path("/"))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        probe = existing / f".evalkit-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EvalkitError(f"{where}: cannot write in {out_dir}: {exc.strerror or exc}") from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise EvalkitError(
            f"{where}: {out_dir} has {free / 2**20:.0f} MB free; {needs} needs at least {MIN_FREE_BYTES / 2**20:.0f} MB"
        )


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


OUTPUT_MARKER = ".evalkit-output"
"""Left in every output directory: evalkit replaces files only in a directory that carries it, and readers
(`gate --out`, `report --out`, `Evaluation.save`) only in one of the same run (its `run:` line)."""


def inside(root: Path, relative: str) -> Path | None:
    """`root / relative` when it names a place strictly inside `root`, links resolved; else None.

    The one confinement rule for paths a results file or a suite names (a fork's artifact may name `../`, an
    absolute path, or a link out of its directory): readers skip what it refuses, writers stop on it (`confined`).
    """
    if not relative or "\0" in relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
        return None
    candidate = root / relative
    try:
        resolved, base = candidate.resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return candidate if resolved != base and resolved.is_relative_to(base) else None


def confined(root: Path, relative: str, where: str) -> Path:
    """`root / relative` for a write, when it stays inside `root` (see `inside`); else a one-line error at `where`."""
    found = inside(root, relative)
    if found is None:
        raise EvalkitError(f"{where}: {relative!r} is not a relative path inside {root}; refusing to write there")
    return found


def run_identity(result: RunResult) -> str:
    """What makes two results files the same run, whatever a reader added since (gate verdicts): when it was made,
    the suite, and the fingerprints of the models and data it scored."""
    parts = [result.created_at, result.suite.name, *(m.fingerprint for m in result.models)]
    parts += [d.fingerprint for d in result.datasets]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def claim_output(out_dir: Path, result: RunResult, where: str = "--out", *, replace: bool = False) -> None:
    """Refuse, before anything is written, an output directory that holds another run's outputs (so a report never
    mixes two runs); then mark it as this run's. A directory evalkit never wrote in is left to the caller's checks.
    `replace` is the caller's word that the directory is its own to overwrite (a training curve rewritten at every
    evaluation, a notebook cell run again): never taken from a file."""
    holder = _held_by(out_dir)
    mine = run_identity(result)
    if holder is not None and holder != mine and not replace:
        raise EvalkitError(
            f"{where}: {out_dir} holds another run's outputs; write this run's into a directory of its own"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_output(out_dir, result)


def mark_output(out_dir: Path, result: RunResult | None) -> None:
    """Leave the marker that says evalkit writes here, naming the run once its results exist: a later reader then
    knows whose outputs these are without reading results.json again."""
    run = f"run: {run_identity(result)}\n" if result is not None else ""
    atomic_write_text(
        out_dir / OUTPUT_MARKER, f"written by evalkit: its outputs here may be replaced by the next run\n{run}"
    )


def _held_by(out_dir: Path) -> str | None:
    """The identity of the run whose outputs `out_dir` holds; None when it holds none; "" when one it cannot name
    (an interrupted run, an unreadable results file)."""
    marker, results = out_dir / OUTPUT_MARKER, out_dir / "results.json"
    if marker.is_file():
        for line in marker.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("run: "):
                return line.removeprefix("run: ").strip()
    if results.exists():
        try:
            return run_identity(read_results(results))
        except EvalkitError:
            return ""
    return "" if marker.exists() else None


def write_texts(out_dir: Path, texts: Mapping[str, str]) -> list[Path]:
    """Write already-rendered outputs (file name → text) into `out_dir`; returns the paths written."""
    written = []
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    return written


def results_text(result: RunResult) -> str:
    """`results.json` as written."""
    return result.model_dump_json(indent=2) + "\n"


def write_results(result: RunResult, path: Path) -> None:
    atomic_write_text(path, results_text(result))


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_results(path: Path) -> RunResult:
    """Load and validate a results file; problems are `EvalkitError`s naming the file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalkitError(f"{path}: results file not found") from None
    except UnicodeDecodeError:
        raise EvalkitError(f"{path}: not UTF-8 text; expected an evalkit results file") from None
    raw = parse_json(text, str(path), "an evalkit results file")
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise EvalkitError(f"{path}: not an evalkit results file (no 'schema_version')")
    major = str(raw["schema_version"]).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise EvalkitError(
            f"{path}: schema_version {str(raw['schema_version'])[:40]!r} is not readable by this evalkit "
            f"(expected {SCHEMA_VERSION.split('.')[0]}.x)"
        )
    try:
        return RunResult.model_validate(migrate(raw))
    except ValidationError as exc:
        raise EvalkitError(f"{path}: {validation_message(exc)}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a migration step meeting a malformed file
        raise EvalkitError(f"{path}: not an evalkit results file ({type(exc).__name__}: {exc})") from None


def read_jsonl(path: Path, expected: str, max_line_bytes: int) -> Iterator[tuple[str, Any]]:
    """The JSON values of an untrusted JSON-lines file, one line at a time with where each came from (`file:line`),
    blank lines skipped. Memory stays at one line (at most `max_line_bytes`) plus what the caller keeps: the file is
    never read whole, so a reader that keeps compact records holds about the file's size, not several times it."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise EvalkitError(f"{path}: not found; expected {expected}") from None
    with handle:
        number = 0
        while line := handle.readline(max_line_bytes + 1):
            number += 1
            where = f"{path}:{number}"
            if len(line) > max_line_bytes:
                raise EvalkitError(f"{where}: a line longer than {max_line_bytes:,} bytes; expected {expected}")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise EvalkitError(f"{where}: not UTF-8 text; expected {expected}") from None
            if text.strip():
                yield where, parse_json(text, where, expected)


def parse_json(text: str, where: str, expected: str) -> Any:
    """One JSON document of untrusted text, whose problems are one line at `where`: invalid JSON, integers longer
    than Python converts (4,300 digits), nesting too deep, and lone surrogates (`\\ud800`), which are not text
    and could not be written out again."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvalkitError(f"{where}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise EvalkitError(f"{where}: nested too deeply to be {expected}") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise EvalkitError(f"{where}: not {expected}: {str(exc).split(';')[0]}") from None
    if "\\u" in text.lower() and _has_lone_surrogate(value):
        raise EvalkitError(f"{where}: holds a lone surrogate escape (such as \\ud800), which is not text")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def validation_message(exc: ValidationError) -> str:
    """The first problem pydantic found, as `key.path: what was wrong` (one line: one problem is enough to fix)."""
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}" if key else message
