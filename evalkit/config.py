"""Suite files: load a YAML suite and validate it completely before any model is touched.

A suite names the datasets to score, the models to compare, the reference that turns log-probs
into implicit rewards, and optionally a tiny world to build and a DPO run to train. Every key is
checked when the file loads: a typo is an error naming the file and the key path, with a
suggestion, never a silently ignored option.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalkit.errors import EvalkitError

Dtype = Literal["float32", "bfloat16", "float16", "auto"]


class Spec(BaseModel):
    """Base for every suite section: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldSpec(Spec):
    """The embedded tiny world: a synthetic preference task, a tokenizer and a base model with no preference."""

    dir: Path = Path(".evalkit/world")
    """Where the world is built and cached; rebuilt only when the settings below change."""
    seed: int = 0
    """Seed for the pairs, the tokenizer corpus and the base model's pretraining."""
    pairs_per_subset: int = Field(300, ge=8, le=400)
    """Preference pairs generated for each subset (arithmetic, helpfulness, format); at most 400."""
    eval_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    """Share of pairs held out for evaluation; the rest is DPO training data."""
    vocab_size: int = Field(512, ge=300)
    """Size of the byte-level BPE vocabulary trained on the world's corpus."""
    hidden_size: int = Field(64, ge=16)
    """Width of the tiny base model."""
    num_layers: int = Field(2, ge=1)
    """Transformer layers of the tiny base model."""
    pretrain_steps: int = Field(2000, ge=1)
    """Optimiser steps of next-token pretraining on the balanced corpus."""


class LoraSpec(Spec):
    """PEFT LoRA settings; the reference is then the base with the adapter disabled."""

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainSpec(Spec):
    """A DPO run through TRL's DPOTrainer that produces one of the suite's models."""

    base: str
    """Name of the model (in `models`) that training starts from; it is also the DPO reference."""
    output: str
    """Name of the model (in `models`) that training writes; its `path` is where the adapter is saved."""
    data: Path
    """Preference pairs to train on (JSONL/JSON/Parquet/CSV)."""
    beta: float = Field(0.1, gt=0.0)
    learning_rate: float = Field(5e-4, gt=0.0)
    epochs: float = Field(1.0, gt=0.0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    max_length: int | None = Field(1024, ge=2)
    seed: int = 0
    lora: LoraSpec | None = LoraSpec()
    """LoRA settings, or null for full fine-tuning (the reference is then a second copy of `base`)."""


DataFormat = Literal["auto", "explicit", "conversational", "implicit"]


class ColumnMap(Spec):
    """Which columns of the data hold the prompt and the two answers."""

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"


class DatasetSpec(Spec):
    """Preference pairs to score: a local file or folder, or a hub dataset."""

    name: str
    path: str
    """A JSONL/JSON/Parquet/CSV file, a folder `datasets` can load, or a hub dataset id."""
    revision: str | None = None
    """Hub revision (branch, tag or commit); pin a commit for reproducible results."""
    hub_config: str | None = None
    """Hub dataset configuration name, for datasets that have several."""
    split: str = "train"
    """Split to read from a folder or hub dataset (a single file is always one split)."""
    format: DataFormat = "auto"
    """`explicit`: prompt/chosen/rejected strings. `conversational`: chosen/rejected message lists, the
    prompt being their shared first messages or the prompt column. `implicit`: hh-rlhf dialogues, the
    prompt running through the last `\n\nAssistant:`. `auto` picks from the first row."""
    columns: ColumnMap = ColumnMap()
    id_column: str | None = None
    """Column holding a stable pair id; without one, ids are `<name>-<row>`."""
    subset_column: str | None = None
    """Column naming each pair's subset/category; metrics are reported per subset as well as overall."""
    limit: int | None = Field(None, ge=1)
    """Keep only the first `limit` rows."""
    sample: int | None = Field(None, ge=1)
    """Then draw this many rows at random (with `seed`), kept in file order."""
    seed: int = 0


class ModelSpec(Spec):
    """A checkpoint to score: a model directory, a PEFT adapter directory, or a hub id."""

    name: str
    path: str
    """Local model or adapter directory, or a hub model id."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when `path` is a hub id."""
    base: str | None = None
    """For adapters: the base model to load them onto, instead of the one in `adapter_config.json`."""
    dtype: Dtype = "float32"
    """Weights dtype; `auto` keeps the checkpoint's own."""


class ScoringSpec(Spec):
    """How log-probs become rewards, and how pairs are batched."""

    beta: float = Field(0.1, gt=0.0)
    """β of the implicit reward r = β·(log π − log π_ref); use the value the model was trained with."""
    max_length: int = Field(1024, ge=2)
    """Prompt+completion tokens kept per sequence; the end of a completion beyond it is cut (as in TRL)."""
    batch_size: int = Field(8, ge=1)
    """Pairs per forward pass; results do not depend on it."""


class Suite(Spec):
    """One evaluation: what to build, train and score, and where to write the results."""

    version: Literal[1] = 1
    name: str
    description: str = ""
    output_dir: Path
    """Where results.json, per-pair scores and the reports are written."""
    world: WorldSpec | None = None
    train: TrainSpec | None = None
    datasets: list[DatasetSpec] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    reference: str | None = None
    """Name of the reference model for implicit rewards; without one only policy metrics are reported."""
    scoring: ScoringSpec = ScoringSpec()

    @model_validator(mode="after")
    def _check_names(self) -> Suite:
        for kind, names in (("datasets", [d.name for d in self.datasets]), ("models", self.model_names)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name {duplicates[0]!r}; names must be unique")
        if self.reference is not None:
            _require_model(self.reference, self.model_names, "reference")
        if self.train is not None:
            _require_model(self.train.base, self.model_names, "train.base")
            _require_model(self.train.output, self.model_names, "train.output")
            if self.train.base == self.train.output:
                raise ValueError("train.output must differ from train.base")
        return self

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)


def _require_model(name: str, known: list[str], key: str) -> None:
    if name not in known:
        raise ValueError(f"{key}: no model named {name!r}{_suggestion(name, known)}; models are {known}")


def load_suite(path: Path | str) -> Suite:
    """Read and validate a suite file; every problem is an `EvalkitError` naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalkitError(f"{path}: suite file not found") from None
    except UnicodeDecodeError:
        raise EvalkitError(f"{path}: not UTF-8 text; expected a YAML suite") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EvalkitError(f"{where}: invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise EvalkitError(f"{path}: expected a mapping of suite keys at the top level")
    return parse_suite(raw, source=str(path))


def parse_suite(raw: dict[str, Any], source: str = "<suite>") -> Suite:
    """Validate an already-parsed suite mapping; `source` names it in error messages."""
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise EvalkitError(f"{source}: {_describe(exc.errors()[0])}") from None


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    key_path = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        return f"{key_path}: unknown key{_suggestion(str(loc[-1]), known)}"
    if error["type"] == "missing":
        return f"{key_path}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error" and not loc:
        return message
    return f"{key_path}: {message} (got {error.get('input')!r})"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Names of the keys allowed at `loc`, walking the suite schema (list indices are skipped)."""
    spec: type[BaseModel] | None = Suite
    for part in loc:
        if isinstance(part, int) or spec is None:
            continue
        field = spec.model_fields.get(part)
        spec = _spec_in(field.annotation) if field is not None else None
    return list(spec.model_fields) if spec is not None else []


def _spec_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _spec_in(arg)
            if found is not None:
                return found
    return None


def _suggestion(name: str, known: list[str]) -> str:
    """' (did you mean ...?)' for a near miss: a typo, or a key with an extra prefix or suffix
    (`lora_alpha` for `alpha`, `rank` for `r`); empty when nothing is close."""
    close = difflib.get_close_matches(name, known, n=1)
    if not close:
        affixed = [k for k in known if name.startswith(k) or name.endswith(k) or k.startswith(name)]
        close = sorted(affixed, key=len, reverse=True)[:1]
    return f" (did you mean {close[0]!r}?)" if close else ""
