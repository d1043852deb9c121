"""Suite files: load a YAML suite and validate it completely before any model is touched.

A suite names the datasets to score, the models to compare, the reference that turns log-probs
into implicit rewards, and optionally a tiny world to build and a DPO run to train. Every key is
checked when the file loads: a typo is an error naming the file and the key path, with a
suggestion, never a silently ignored option.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from evalkit.errors import EvalkitError
from evalkit.metrics.names import COMPARED, REGISTRY
from evalkit.results.schema import ScoringDtype, Statistics

Dtype = Literal["float32", "bfloat16", "float16", "auto"]


class Spec(BaseModel):
    """Base for every suite section: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # `beta: .inf` is a typo, not a setting


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


DataFormat = Literal["auto", "explicit", "conversational", "implicit"]


class ColumnMap(Spec):
    """Which columns of the data hold the prompt and the two answers."""

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"


def _text(value: str) -> str:
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]", value):
        raise ValueError("holds control characters or lone surrogates; expected printable text")
    return value


Text = Annotated[str, AfterValidator(_text)]
"""Free text that goes into every report and the terminal: printable characters only."""

SafeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
"""A dataset or model name: it names files evalkit writes (`pairs/<dataset>.jsonl`), so it is a plain file name
(letters, digits, `.`, `_`, `+`, `-`; at most 64 characters), never a path."""


class DatasetSpec(Spec):
    """Preference pairs to score: a local file or folder, or a hub dataset."""

    name: SafeName
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


class LoraSpec(Spec):
    """PEFT LoRA settings; the reference is then the base with the adapter disabled (as in TRL)."""

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    """`lora_alpha` in PEFT."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """`lora_dropout` in PEFT."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    options: dict[str, Any] = {}
    """Any other `peft.LoraConfig` field, by its PEFT name (checked when the suite loads)."""

    @model_validator(mode="after")
    def _check_options(self, info: ValidationInfo) -> LoraSpec:
        if not _checks_libraries(info):
            return self
        from peft import LoraConfig  # deferred: only suites that train need PEFT loaded

        _check_option_names(self.options, LoraConfig, "train.lora.options", reserved=_LORA_RESERVED)
        return self


class TrainDataSpec(DatasetSpec):
    """The preference pairs to train on (same keys as a dataset; the name is optional)."""

    name: str = "train"


class TrainSpec(Spec):
    """A DPO run through TRL's DPOTrainer that produces one of the suite's models."""

    base: str
    """Name of the model (in `models`) that training starts from."""
    output: str
    """Name of the model (in `models`) that training writes; its `path` is TRL's output directory."""
    data: TrainDataSpec
    eval_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    """Hold out this share of the pairs (seeded with `split_seed`): TRL evaluates on it while training,
    and it is written to `heldout` for the suite's datasets to score."""
    split_seed: int = 0
    heldout: Path | None = None
    """Where the held-out pairs are written (JSON Lines); required with `eval_fraction`."""
    max_prompt_length: int | None = Field(None, ge=1)
    """Prompts longer than this many tokens lose their beginning before TRL sees them (TRL 1.x
    dropped this option; evalkit implements it)."""
    tokenizer: str | None = None
    """Tokenizer to train with (TRL's `processing_class`); default: the base model's."""
    lora: LoraSpec | None = None
    """LoRA settings, or null for full fine-tuning (the reference is then a frozen copy of `base`)."""
    merge: bool = False
    """Also save the adapter merged into the base, under `<output path>/merged`."""
    args: dict[str, Any] = {}
    """Any `trl.DPOConfig` option, by its TRL name (`beta`, `learning_rate`, `num_train_epochs`,
    `per_device_train_batch_size`, `lr_scheduler_type`, `gradient_checkpointing`, `bf16`, ...)."""

    @model_validator(mode="before")
    @classmethod
    def _modernise(cls, raw: Any) -> Any:
        """`data: file` is short for `data: {path: file}`; options that TRL renamed or dropped are
        understood, with a one-line notice."""
        if isinstance(raw, dict) and isinstance(raw.get("data"), str):
            raw = {**raw, "data": {"path": raw["data"]}}
        if not isinstance(raw, dict) or not isinstance(raw.get("args"), dict):
            return raw
        raw, args = dict(raw), dict(raw["args"])
        for old, new in RENAMED_TRAIN_OPTIONS.items():
            if old in args:
                target = new.removeprefix("train.")
                if new.startswith("train."):
                    raw.setdefault(target, args.pop(old))
                else:
                    args.setdefault(target, args.pop(old))
                notice(f"train.args.{old} is `{new}` in today's TRL/evalkit; using it as such")
        raw["args"] = args
        return raw

    @model_validator(mode="after")
    def _check_args(self, info: ValidationInfo) -> TrainSpec:
        for old, why in REMOVED_TRAIN_OPTIONS.items():
            if old in self.args:
                raise ValueError(f"train.args.{old}: {why}")
        if (self.eval_fraction is None) != (self.heldout is None):
            raise ValueError("train.heldout: give both `eval_fraction` and `heldout`, or neither")
        if not _checks_libraries(info):
            return self
        from trl import DPOConfig  # deferred: importing TRL takes seconds and only training needs it

        _check_option_names(self.args, DPOConfig, "train.args", reserved=_TRAIN_RESERVED)
        _coerce_numbers(self.args, DPOConfig)
        return self


def _checks_libraries(info: ValidationInfo) -> bool:
    """Whether options are checked against TRL's and PEFT's own classes (seconds of imports): always, except
    for commands that read a suite for its gate rules and never train (`load_suite(..., train_options=False)`)."""
    return not isinstance(info.context, dict) or info.context.get("train_options", True) is not False


RENAMED_TRAIN_OPTIONS = {
    "evaluation_strategy": "eval_strategy",
    "max_prompt_length": "train.max_prompt_length",
    "tokenizer": "train.tokenizer",
}
"""Old TRL/transformers option → where it lives now (`train.X`: a key of evalkit's train section)."""
REMOVED_TRAIN_OPTIONS = {
    "reference_free": "removed from TRL's DPOConfig; evalkit always trains against a reference",
    "generate_during_eval": "removed from TRL's DPOConfig; use evalkit's generation samples instead",
}
_TRAIN_RESERVED = {
    "output_dir": "train.output names the model whose `path` is the output directory",
    "peft_config": "use train.lora",
}
_LORA_RESERVED = {
    "lora_alpha": "use train.lora.alpha",
    "lora_dropout": "use train.lora.dropout",
    "r": "use train.lora.r",
    "target_modules": "use train.lora.target_modules",
    "task_type": "evalkit sets CAUSAL_LM",
}


def _check_option_names(options: dict[str, Any], config_class: Any, where: str, reserved: dict[str, str]) -> None:
    known = [f.name for f in dataclasses.fields(config_class) if not f.name.startswith("_")]
    for key in options:
        if key in reserved:
            raise ValueError(f"{where}.{key}: not set here; {reserved[key]}")
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown {config_class.__name__} option{_suggestion(key, known)}")


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce_numbers(options: dict[str, Any], config_class: Any) -> None:
    """YAML 1.1 reads `1e-4` (no dot) as a string; options TRL types as float get their number."""
    types = {f.name: str(getattr(f.type, "__name__", f.type)) for f in dataclasses.fields(config_class)}
    for key, value in options.items():
        if isinstance(value, str) and _NUMBER.match(value) and "float" in types.get(key, ""):
            options[key] = float(value)


def notice(message: str) -> None:
    """A one-line notice about the suite, on the terminal."""
    from evalkit.console import console

    console.print(f"[yellow]notice:[/yellow] {message}", soft_wrap=True)


class ModelSpec(Spec):
    """A checkpoint to score: a model directory, a PEFT adapter directory, or a hub id."""

    name: SafeName
    path: str
    """Local model or adapter directory, or a hub model id."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when `path` is a hub id."""
    base: str | None = None
    """For adapters: the base model to load them onto, instead of the one in `adapter_config.json`."""
    dtype: Dtype = "float32"
    """Weights dtype; `auto` keeps the checkpoint's own."""
    allow_pickle: bool = False
    """Allow pickled weights (`.bin`, `.pt`): loading them can run arbitrary code, so only for trusted files."""
    trust_remote_code: bool = False
    """Run the modelling code a hub repository ships; off unless you trust it."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Options of this model's chat template (e.g. `{enable_thinking: false}`), over the suite's
    `rendering.chat_template_kwargs`; passed to every rendering: scoring, training, generation prompts."""
    checkpoints: bool = False
    """Sweep a training output directory: score every `checkpoint-<step>` in it (as `<name>@<step>`)
    and the final model, to see the metrics along training and pick the one to ship."""


class PanelSource(Spec):
    """Prompts drawn from one of the suite's datasets."""

    dataset: str
    n: int = Field(8, ge=1)
    seed: int = 0


class SamplingSpec(Spec):
    """Seeded sampling instead of greedy decoding."""

    k: int = Field(1, ge=1)
    """Samples per prompt."""
    temperature: float = Field(0.7, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = 0


class JudgeSpec(Spec):
    """A judge of completions: a Python callable, or a reward model."""

    name: str
    callable: str | None = None
    """`package.module:function`, called as `function(prompt, completion) -> float`."""
    reward_model: str | None = None
    """A sequence-classification checkpoint (directory or hub id); its first logit is the score."""

    @model_validator(mode="after")
    def _one_kind(self) -> JudgeSpec:
        if (self.callable is None) == (self.reward_model is None):
            raise ValueError(f"generation.judges.{self.name}: give exactly one of `callable` and `reward_model`")
        return self


class DriftSpec(Spec):
    """KL(π‖π_ref) estimated from `samples` sampled completions per prompt (temperature 1)."""

    samples: int = Field(4, ge=1)
    seed: int = 0


class GenerationSpec(Spec):
    """Side-by-side samples on one prompt panel, for every model."""

    prompts: list[str | list[dict[str, str]]] = []
    """Fixed prompts: text (rendered with the model's chat template when it has one) or messages."""
    from_dataset: PanelSource | None = None
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(8, ge=1)
    sampling: SamplingSpec | None = None
    """Null: greedy decoding (the default: reproducible and comparable)."""
    judges: list[JudgeSpec] = []
    drift: DriftSpec | None = None

    @model_validator(mode="after")
    def _has_prompts(self) -> GenerationSpec:
        if not self.prompts and self.from_dataset is None:
            raise ValueError("generation: no prompts; give `prompts`, `from_dataset`, or both")
        return self


class CapabilitiesSpec(Spec):
    """Capability tasks of lm-evaluation-harness, run on every model of the suite (`evalkit[capabilities]`), so
    that what alignment cost (the alignment tax) is measured document by document beside the preferences."""

    tasks: list[str] = Field(min_length=1)
    """lm-eval task names: its own (`mmlu`, `gsm8k`, `ifeval`: these download their data from the hub) or
    those of the task YAML files under `include_path`."""
    include_path: list[Path] = []
    """Directories (or single YAML files) of local tasks, passed to lm-eval's `TaskManager(include_path=...)`."""
    num_fewshot: int | None = Field(None, ge=0)
    """Few-shot examples per document; None: each task's own setting."""
    limit: int | None = Field(None, ge=1)
    """Only the first `limit` documents of each task (the same documents for every model)."""
    batch_size: int = Field(8, ge=1)
    """Requests per forward pass in lm-eval; results do not depend on it beyond float rounding."""
    apply_chat_template: bool = False
    """Render each document with the model's chat template (lm-eval's `apply_chat_template`): for chat models."""
    cache: Path | None = Path(".evalkit/cache/capabilities")
    """Where a model's per-document task results are kept across runs, keyed by the model's fingerprint, the
    task (its files' fingerprint and version), these settings and the lm-eval version; null turns it off."""

    @model_validator(mode="after")
    def _distinct(self) -> CapabilitiesSpec:
        repeated = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if repeated:
            raise ValueError(f"capabilities.tasks: {repeated[0]!r} is listed twice")
        return self


GateRuleKind = Literal[
    "absolute", "superiority", "non_inferiority", "drift_budget", "length_budget", "capability_non_inferiority"
]

_RULE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # kind: (required keys, allowed optional keys) besides name, kind, model
    "absolute": ({"metric"}, {"dataset", "subset", "at_least", "at_most", "judge_on", "min_pairs"}),
    "superiority": ({"metric", "baseline"}, {"dataset", "subset", "min_pairs"}),
    "non_inferiority": ({"metric", "margin"}, {"dataset", "subset", "baseline", "min_pairs"}),
    "drift_budget": ({"max_kl"}, {"judge_on", "min_pairs"}),
    "length_budget": ({"max_growth"}, {"baseline", "min_pairs"}),
    "capability_non_inferiority": ({"task", "baseline", "margin"}, {"metric", "min_pairs"}),
}
PAIRED_KINDS = ("superiority", "capability_non_inferiority")
"""Kinds whose `baseline` is another model of the same run."""


class GateRule(Spec):
    """One release rule: a one-sided hypothesis test whose null hypothesis is "the release is bad",
    passed only when it is rejected at `gate.alpha` (after the gate's correction). Kinds:
    - `absolute`: `metric` of `model` is `at_least` (or `at_most`) a value. H₀: θ < at_least; judged on
      the one-sided bound (`judge_on: value` judges the point estimate alone: not a test);
    - `superiority`: `model` beats `baseline` (another model of the run) on `metric`. H₀: Δ ≤ 0
      (Δ ≥ 0 where lower is better), one-sided at α;
    - `non_inferiority`: against the baseline run (`--baseline`), the paired difference on the same
      pairs is no worse than `margin`. H₀: Δ ≤ −margin (Δ ≥ +margin where lower is better); `baseline`
      names the model there (default: the model's counterpart, by role, fingerprint, then name); with no
      baseline recorded yet the rule is skipped;
    - `drift_budget`: KL(model ‖ reference) from generation samples is below `max_kl`. H₀: KL ≥ max_kl;
    - `length_budget`: mean generation length grows by less than `max_growth` (0.2 = 20%) over the
      baseline run's model (with `--baseline`), else over the run's reference, prompt by prompt.
      H₀: growth ≥ max_growth;
    - `capability_non_inferiority`: on the capability `task`, `model` is no worse than `baseline` (another
      model of the run, typically the base) by more than `margin`, paired on the same documents (the
      alignment tax). H₀: Δ ≤ −margin on the task's `metric` (default: its first), Tango's score test
      for 0/1 scores, a paired t-test otherwise.
    A rule with fewer pairs (prompts, for generation rules; documents, for capability rules) than `min_pairs`
    is undecidable, never a pass.
    """

    name: Text | None = None
    kind: GateRuleKind
    model: str
    metric: str | None = None
    dataset: str | None = None
    """Needed when the suite has several datasets."""
    subset: str = "all"
    baseline: str | None = None
    at_least: float | None = None
    at_most: float | None = None
    judge_on: Literal["value", "interval"] = "interval"
    """`interval`: a one-sided test at `gate.alpha` (the rule holds for the one-sided bound); `value`: the
    point estimate alone, which is not a test and makes no error-rate promise."""
    min_pairs: int | None = Field(None, ge=2)
    """Fewest pairs (prompts, for generation rules) the rule is judged on; default `gate.min_pairs`."""
    margin: float | None = Field(None, ge=0.0)
    max_kl: float | None = Field(None, ge=0.0)
    max_growth: float | None = None
    task: str | None = None
    """The capability task (one of `capabilities.tasks`) of a `capability_non_inferiority` rule."""

    @model_validator(mode="after")
    def _fits_kind(self) -> GateRule:
        required, optional = _RULE_FIELDS[self.kind]
        given = {key for key in self.model_fields_set if key not in {"name", "kind", "model"}}
        named = f"rule {self.name!r}: " if self.name else ""
        for key in sorted(required - given):
            raise ValueError(f"{named}kind {self.kind!r} needs `{key}`")
        for key in sorted(given - required - optional):
            raise ValueError(f"{named}`{key}` is not used by kind {self.kind!r}")
        if self.kind == "absolute" and (self.at_least is None) == (self.at_most is None):
            raise ValueError(f"{named}give exactly one of `at_least` and `at_most`")
        if self.metric is not None and self.kind != "capability_non_inferiority":  # lm-eval names its own metrics
            known = list(COMPARED) if self.kind in ("superiority", "non_inferiority") else list(REGISTRY)
            if self.metric not in known:
                hint = _suggestion(self.metric, known)
                raise ValueError(f"{named}metric {self.metric!r} cannot be gated by kind {self.kind!r}{hint}")
            if self.kind != "absolute" and REGISTRY[self.metric].higher_is_better is None:
                raise ValueError(f"{named}metric {self.metric!r} has no better direction to test")
            untestable = REGISTRY[self.metric].untestable
            if untestable and self.judge_on == "interval":
                raise ValueError(
                    f"{named}metric {self.metric!r} cannot be gated: {untestable}; "
                    "gate on another metric or set `judge_on: value`"
                )
        return self

    @property
    def title(self) -> str:
        """The rule's name, or one written from its settings."""
        if self.name:
            return self.name
        where = f" on {self.dataset}" if self.dataset else ""
        where += f"/{self.subset}" if self.subset != "all" else ""
        if self.kind == "absolute":
            bound = f">= {self.at_least}" if self.at_least is not None else f"<= {self.at_most}"
            return f"{self.model} {self.metric} {bound}{where}"
        if self.kind == "superiority":
            return f"{self.model} beats {self.baseline} on {self.metric}{where}"
        if self.kind == "non_inferiority":
            return f"{self.model} no worse than the baseline run on {self.metric} (margin {self.margin}){where}"
        if self.kind == "drift_budget":
            return f"{self.model} KL drift <= {self.max_kl}"
        if self.kind == "capability_non_inferiority":
            on = f"{self.task}" + (f" {self.metric}" if self.metric else "")
            return f"{self.model} no worse than {self.baseline} on {on} (margin {self.margin})"
        return f"{self.model} mean generation length grows <= {self.max_growth:.0%}"


class GateSpec(Spec):
    """Release rules, checked after every bench and by `evalkit gate`."""

    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    """Level of every rule's one-sided test: the chance that a rule passes a release for which its null
    hypothesis holds is at most α (with `holm`, the chance that any rule does)."""
    correction: Literal["holm", "none"] = "holm"
    """How the rules' p-values are corrected together: Holm's step-down (family-wise error ≤ α), or none."""
    min_pairs: int = Field(30, ge=2)
    """Fewest pairs (prompts, for generation rules) a rule is judged on; a rule with fewer is undecidable
    and says so."""
    rules: list[GateRule] = Field(min_length=1)


class ScoringSpec(Spec):
    """How log-probs become rewards, and how pairs are batched."""

    beta: float = Field(0.1, gt=0.0)
    """β of the implicit reward r = β·(log π − log π_ref); use the value the model was trained with."""
    max_length: int = Field(1024, ge=2)
    """Prompt+completion tokens kept per sequence; the end of a completion beyond it is cut (as in TRL)."""
    batch_size: int = Field(8, ge=1)
    """Pairs per forward pass (pairs are sorted by length first); results do not depend on it."""
    token_budget: int | None = Field(None, ge=1)
    """Tokens per forward pass, padding included, instead of a fixed `batch_size`: many short pairs or few
    long ones per pass. Results do not depend on it."""
    share_prompt: bool = True
    """Run each pair as one row, its prompt once and both answers after it under a mask that keeps them apart
    (a model that cannot is scored on whole sequences). Results do not depend on it."""
    dtype: ScoringDtype = "float32"
    """Compute dtype of the forward passes: `bfloat16` autocast only when asked (faster where the hardware has
    bf16 matmuls; log-probs then differ from float32 by ~1e-2); log-softmax and sums stay in float32/float64."""
    reference_cache: Path | None = Path(".evalkit/cache/reference")
    """Directory where reference log-probs are kept across runs, keyed by the reference's weights, tokenizer
    and chat template, the token ids scored and these settings; null turns it off."""


class RenderingSpec(Spec):
    """How chat templates are rendered, for every model (a model's own `chat_template_kwargs` win)."""

    chat_template_kwargs: dict[str, Any] = {}
    """Options passed to every chat template (`enable_thinking`, ...); a template ignores those it does not read."""
    date: datetime.date | None = None
    """The date written by templates that read the clock (`strftime_now`), never today's. Default: the date
    the model was trained with when evalkit trained it, else 2025-01-01."""


class Suite(Spec):
    """One evaluation: what to build, train and score, and where to write the results."""

    version: Literal[1] = 1
    name: Text
    description: Text = ""
    output_dir: Path
    """Where results.json, per-pair scores and the reports are written."""
    world: WorldSpec | None = None
    train: TrainSpec | None = None
    datasets: list[DatasetSpec] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    reference: str | None = None
    """Name of the reference model for implicit rewards; without one only policy metrics are reported."""
    scoring: ScoringSpec = ScoringSpec()
    rendering: RenderingSpec = RenderingSpec()
    statistics: Statistics = Statistics()
    """Intervals and tests: confidence level, power, calibration bins."""
    generation: GenerationSpec | None = None
    capabilities: CapabilitiesSpec | None = None
    gate: GateSpec | None = None

    @model_validator(mode="after")
    def _check_names(self) -> Suite:
        problems = list(self._name_problems())
        if problems:  # all of them at once, one per line: a suite is fixed in one pass, not one error per run
            raise ValueError("\n".join(problems))
        return self

    def _name_problems(self) -> Iterator[str]:
        for kind, names in (("datasets", [d.name for d in self.datasets]), ("models", self.model_names)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                yield f"{kind}: duplicate name {duplicates[0]!r}; names must be unique"
        required = [(self.reference, "reference")] if self.reference is not None else []
        if self.train is not None:
            required += [(self.train.base, "train.base"), (self.train.output, "train.output")]
            if self.train.base == self.train.output:
                yield "train.output must differ from train.base"
        for name, key in required:
            yield from _problem(_require_model, name, self.model_names, key)
        source = self.generation.from_dataset if self.generation is not None else None
        if source is not None and source.dataset not in [d.name for d in self.datasets]:
            hint = _suggestion(source.dataset, [d.name for d in self.datasets])
            yield f"generation.from_dataset.dataset: no dataset named {source.dataset!r}{hint}"
        datasets = [d.name for d in self.datasets]
        for index, rule in enumerate(self.gate.rules if self.gate is not None else []):
            where = f"gate.rules.{index}"
            yield from _problem(check_rule_names, rule, where, self.model_names, datasets)
            needs_reference = rule.metric in REGISTRY and REGISTRY[rule.metric].needs_reference
            if needs_reference and rule.model == self.reference:
                yield (
                    f"{where}.metric: {rule.metric!r} is not computed for the reference model "
                    f"{rule.model!r} (its rewards are 0 by definition)"
                )
            elif needs_reference and self.reference is None:
                yield f"{where}.metric: {rule.metric!r} needs a `reference` model"
            if rule.kind == "drift_budget" and (
                self.reference is None or not self.generation or not self.generation.drift
            ):
                yield f"{where}: a drift budget needs a `reference` and `generation.drift`"
            if rule.kind == "length_budget" and self.generation is None:
                yield f"{where}: a length budget needs a `generation` section"
            if rule.kind == "capability_non_inferiority":
                tasks = self.capabilities.tasks if self.capabilities is not None else []
                if rule.task not in tasks:
                    hint = _suggestion(str(rule.task), tasks)
                    yield f"{where}.task: no capability task {rule.task!r}{hint}; capabilities.tasks are {tasks}"

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    @property
    def candidate(self) -> str | None:
        """The model a release decision is about: the trained model, else the last model that is not the
        reference (None when the reference is the only model)."""
        if self.train is not None:
            return self.train.output
        others = [name for name in self.model_names if name != self.reference]
        return others[-1] if others else None

    def template_options(self, model: ModelSpec) -> dict[str, Any]:
        """`model`'s chat template options: the suite's, overridden key by key by the model's own."""
        return {**self.rendering.chat_template_kwargs, **(model.chat_template_kwargs or {})}


def check_rule_names(rule: GateRule, where: str, models: list[str], datasets: list[str]) -> None:
    """A gate rule names models and datasets of the run (checkpoint sweeps add `<name>@<step>`)."""
    for key, name in (("model", rule.model), ("baseline", rule.baseline)):
        if name is None or (key == "baseline" and rule.kind not in PAIRED_KINDS):
            continue
        if name not in models and name.split("@")[0] not in models:
            raise ValueError(f"{where}.{key}: no model named {name!r}{_suggestion(name, models)}; models are {models}")
    if rule.dataset is not None and rule.dataset not in datasets:
        raise ValueError(f"{where}.dataset: no dataset named {rule.dataset!r}{_suggestion(rule.dataset, datasets)}")
    if rule.dataset is None and rule.metric is not None and rule.task is None and len(datasets) > 1:
        raise ValueError(f"{where}.dataset: the suite has several datasets; name the one the rule is about")


def _problem(check: Callable[..., None], *args: Any) -> Iterator[str]:
    """The message of the `ValueError` `check(*args)` raises, if it does."""
    try:
        check(*args)
    except ValueError as exc:
        yield str(exc)


def _require_model(name: str, known: list[str], key: str) -> None:
    if name not in known:
        raise ValueError(f"{key}: no model named {name!r}{_suggestion(name, known)}; models are {known}")


def load_suite(path: Path | str, overrides: Sequence[str] = (), *, train_options: bool = True) -> Suite:
    """Read and validate a suite file, after `key.path=value` overrides; every problem is an
    `EvalkitError` naming the file and key. `train_options=False` leaves the names of TRL and PEFT options
    in `train` unchecked (they need those libraries imported), for commands that never train."""
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
    except RecursionError:
        raise EvalkitError(f"{path}: nested too deeply to be a suite") from None
    if not isinstance(raw, dict):
        raise EvalkitError(f"{path}: expected a mapping of suite keys at the top level")
    try:
        size = _expanded_size(raw)
    except RecursionError:  # also an alias that contains itself
        raise EvalkitError(f"{path}: nested too deeply to be a suite") from None
    if size > MAX_SUITE_VALUES:
        raise EvalkitError(
            f"{path}: expands to more than {MAX_SUITE_VALUES:,} values through YAML aliases; a suite is far smaller"
        )
    for override in overrides:
        apply_override(raw, override)
    return parse_suite(raw, source=str(path), train_options=train_options)


MAX_SUITE_VALUES = 100_000
"""Values a suite may hold once its YAML aliases are expanded: aliases share one object, so a few hundred bytes
of nested aliases stand for billions of values that validation would walk."""


def _expanded_size(value: Any, sizes: dict[int, int] | None = None) -> int:
    """How many values `value` holds with every alias expanded, counted once per distinct object (linear time)."""
    sizes = {} if sizes is None else sizes
    if id(value) in sizes:
        return sizes[id(value)]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    total = 1
    for child in children:
        total += _expanded_size(child, sizes)
        if total > MAX_SUITE_VALUES:
            break
    sizes[id(value)] = total
    return total


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `key.path=value` in a parsed suite (`--set`). The value is read as YAML (`0.1`, `true`,
    `[a, b]`); a list item is named by its index or its `name` (`models.base.path=...`)."""
    key_path, separator, text = override.partition("=")
    if not separator or not key_path:
        raise EvalkitError(f"--set {override}: expected key.path=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    *parents, last = key_path.split(".")
    node: Any = raw
    for depth, part in enumerate(parents):
        node = _child(node, part, ".".join(parents[: depth + 1]), override)
    if isinstance(node, list):
        node[_index(node, last, key_path, override)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise EvalkitError(f"--set {override}: {'.'.join(parents)} is a value, not a section")


def _child(node: Any, part: str, where: str, override: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where, override)]
    if not isinstance(node, dict):
        raise EvalkitError(f"--set {override}: {where} is a value, not a section")
    if node.get(part) is None:
        node[part] = {}
    return node[part]


def _index(items: list[Any], part: str, where: str, override: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for position, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return position
    names = [str(item.get("name")) for item in items if isinstance(item, dict)]
    raise EvalkitError(f"--set {override}: {where}: no item {part!r}{_suggestion(part, names)}; items are {names}")


def parse_suite(raw: dict[str, Any], source: str = "<suite>", *, train_options: bool = True) -> Suite:
    """Validate an already-parsed suite mapping; `source` names it in error messages."""
    try:
        return Suite.model_validate(raw, context={"train_options": train_options})
    except ValidationError as exc:
        raise EvalkitError(_every_problem(source, exc)) from None


def parse_gate(raw: Any, source: str) -> GateSpec:
    """Validate gate rules stored elsewhere (a results file); problems are one-line `EvalkitError`s."""
    try:
        return GateSpec.model_validate(raw)
    except ValidationError as exc:
        raise EvalkitError(_every_problem(f"{source}: suite.gate", exc)) from None


def _every_problem(source: str, error: ValidationError) -> str:
    """Every problem pydantic found, one line each, each naming the file and the key."""
    lines = [line for problem in error.errors() for line in _describe(problem).splitlines()]
    return "\n".join(f"{source}: {line}" for line in dict.fromkeys(lines))


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    key_path = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        return f"{key_path}: unknown key{_suggestion(str(loc[-1]), known)}"
    if error["type"] == "missing":
        return f"{key_path}: required key is missing"
    if error["type"] == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return (
            f"{key_path}: {error.get('input')!r} is not a plain name; expected letters, digits, '.', '_', '+' or '-' "
            "(at most 64 characters, starting with a letter or digit): it names the files evalkit writes"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error" and (not loc or _KEY_PATH.match(message)):
        return message  # the validator named the key itself
    given = error.get("input")
    return f"{key_path}: {message}" + ("" if isinstance(given, (dict, list)) else f" (got {given!r})")


_KEY_PATH = re.compile(r"^[\w-]+(\.[\w-]+)+: ")


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
