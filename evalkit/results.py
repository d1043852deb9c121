"""`results.json`: the one contract between running an evaluation and reading it.

Everything the reports and gates need is here, so they work on a copied file with no model and no
torch. The file is versioned (`schema_version`, major.minor: readers accept any minor of their
major) and its JSON Schema ships in `evalkit/schemas/results.schema.json`. Writes are atomic: a
temporary file renamed into place, so a killed run never leaves a half-written result.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from evalkit.errors import EvalkitError

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "results.schema.json"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteInfo(Record):
    name: str
    description: str
    path: str
    sha256: str


class Environment(Record):
    """Where the numbers were computed, so two results can be told apart."""

    python: str
    platform: str
    packages: dict[str, str]
    device: str
    git_sha: str | None


class ModelInfo(Record):
    name: str
    path: str
    kind: Literal["model", "adapter"]
    base: str | None
    """For adapters: the base model the adapter was loaded onto."""
    dtype: str
    fingerprint: str
    """sha256 over the weight and config files."""


class DatasetInfo(Record):
    name: str
    path: str
    fingerprint: str
    """sha256 of the data file."""
    n_pairs: int
    subsets: list[str]
    pairs_file: str
    """Per-pair scores, relative to the results file."""


class TokenizationAudit(Record):
    """What tokenization did to a dataset under one model's tokenizer."""

    dataset: str
    model: str
    n_pairs: int
    n_scored: int
    truncated: int
    """Pairs where `max_length` cut the end of a completion."""
    prompt_too_long: list[str]
    """Ids of pairs whose prompt alone fills `max_length`: left out of the metrics, never silently."""
    prompt_not_prefix: int
    """Pairs whose rendered prompt is not a token prefix of prompt+completion."""


class TrainingInfo(Record):
    model: str
    steps: int
    seconds: float
    final_loss: float | None
    final_reward_accuracy: float | None
    log_history: str
    """Path of TRL's full log history."""


class Metric(Record):
    dataset: str
    subset: str
    model: str
    metric: str
    value: float
    n: int
    higher_is_better: bool | None


class ScoringInfo(Record):
    beta: float
    max_length: int
    batch_size: int


class RunResult(Record):
    schema_version: str
    evalkit_version: str
    created_at: str
    duration_s: float
    suite: SuiteInfo
    environment: Environment
    reference: str | None
    scoring: ScoringInfo
    models: list[ModelInfo]
    datasets: list[DatasetInfo]
    audit: list[TokenizationAudit]
    training: TrainingInfo | None
    metrics: list[Metric]

    def value(self, dataset: str, model: str, metric: str, subset: str = "all") -> float | None:
        """The value of one metric, or None when it was not computed."""
        for m in self.metrics:
            if (m.dataset, m.model, m.metric, m.subset) == (dataset, model, metric, subset):
                return m.value
        return None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise EvalkitError(f"{path}: not an evalkit results file (no 'schema_version')")
    major = str(raw["schema_version"]).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise EvalkitError(
            f"{path}: schema_version {raw['schema_version']!r} is not readable by this evalkit "
            f"(expected {SCHEMA_VERSION.split('.')[0]}.x)"
        )
    try:
        return RunResult.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise EvalkitError(f"{path}: {key}: {error['msg']}") from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `results.json`, as shipped in the package."""
    schema = RunResult.model_json_schema()
    schema["title"] = f"evalkit results, schema {SCHEMA_VERSION}"
    return schema
