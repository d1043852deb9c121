"""The `train` section: a DPO run through TRL's DPOTrainer, its LoRA settings, and TRL's own option names.

`train.args` and `train.lora.options` take TRL's and PEFT's option names as they are, so they are
checked against those libraries' own config classes when the suite loads (a typo is an error with
a suggestion, never a keyword TRL silently drops), options TRL renamed or removed are understood or
explained, and YAML's string reading of `1e-4` is turned back into the number TRL expects.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from evalkit.config.messages import notice, suggestion
from evalkit.config.objectives import Objective
from evalkit.config.specs import DatasetSpec, Spec


class LoraSpec(Spec):
    """PEFT LoRA settings; the reference is then the base with the adapter disabled (as in TRL)."""

    r: int = Field(8, ge=1)
    """The rank of the adapter's matrices."""
    alpha: int = Field(16, ge=1)
    """`lora_alpha` in PEFT."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """`lora_dropout` in PEFT."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """The modules the adapter wraps, by name, or `all-linear` (PEFT's: every linear layer but the output head)."""
    options: dict[str, Any] = Field(default={})  # a pydantic default: copied for every instance
    """Any other `peft.LoraConfig` field, by its PEFT name (checked when the suite loads)."""

    @model_validator(mode="after")
    def _check_options(self, info: ValidationInfo) -> LoraSpec:
        if not checks_libraries(info):
            return self
        from peft import LoraConfig  # deferred: only suites that train need PEFT loaded

        _check_option_names(self.options, LoraConfig, "train.lora.options", reserved=_LORA_RESERVED)
        return self


class TrainDataSpec(DatasetSpec):
    """The preference pairs to train on (same keys as a dataset; the name is optional)."""

    name: str = "train"


class TrainSpec(Spec):
    """A run through TRL's DPOTrainer (or its RewardTrainer, when `output` is a reward model) that produces one of
    the suite's models."""

    base: str
    """Name of the model (in `models`) that training starts from."""
    output: str
    """Name of the model (in `models`) that training writes; its `path` is TRL's output directory."""
    data: TrainDataSpec
    """The preference pairs to train on: dataset keys, or just a path."""
    eval_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    """Hold out this share of the pairs (seeded with `split_seed`): TRL evaluates on it while training,
    and it is written to `heldout` for the suite's datasets to score."""
    split_seed: int = 0
    """Seed of the `eval_fraction` hold-out."""
    heldout: Path | None = None
    """Where the held-out pairs are written (JSON Lines); required with `eval_fraction`. Runs of one suite may share
    a hold-out: those that name the same `heldout` split the same `data` with the same `eval_fraction` and
    `split_seed`, so every one of them trains on the same remaining pairs and all are scored on the same held-out
    ones."""
    max_prompt_length: int | None = Field(None, ge=1)
    """Prompts longer than this many tokens lose their beginning before TRL sees them (TRL 1.x
    dropped this option; evalkit implements it)."""
    tokenizer: str | None = None
    """Tokenizer to train with (TRL's `processing_class`); default: the base model's."""
    lora: LoraSpec | None = None
    """LoRA settings, or null for full fine-tuning (the reference is then a frozen copy of `base`)."""
    merge: bool = False
    """Also save the adapter merged into the base, under `<output path>/merged`."""
    method: Objective | None = None
    """The objective to train with, which picks TRL's trainer (`dpo`: DPOTrainer, `cpo`/`simpo`/`alphapo`:
    CPOTrainer, `orpo`: ORPOTrainer, `kto`: KTOTrainer); the trained model is scored with it too. Default: DPO
    as `args` configures it."""
    args: dict[str, Any] = Field(default={})
    """Any option of the trainer's config class (`trl.DPOConfig` by default, `trl.RewardConfig` when `output` is a
    reward model), by its TRL name (`learning_rate`, `num_train_epochs`, `per_device_train_batch_size`,
    `lr_scheduler_type`, `gradient_checkpointing`, `bf16`, ...); the objective's own options go in `method`."""

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
        return self


def as_runs(raw: Any) -> Any:
    """`train` as a list of runs: one mapping is one run (every suite written before lists existed), null none."""
    if raw is None:
        return []
    return [raw] if isinstance(raw, dict) else raw


TrainRuns = Annotated[
    list[TrainSpec], BeforeValidator(as_runs, json_schema_input_type=TrainSpec | list[TrainSpec] | None)
]
"""The suite's training runs, in the order they run: one mapping or a list of them."""


Trainer = Literal["dpo", "reward"]
"""The TRL trainer family a suite's `train` runs: a preference trainer for a policy (which one `method` says),
`RewardTrainer` for a reward model."""


def check_trainer_options(spec: TrainSpec, trainer: Trainer, where: str = "train") -> None:
    """`spec.args` checked against the trainer's own config class (`DPOConfig`, `CPOConfig`, `ORPOConfig`,
    `KTOConfig`, `RewardConfig`): a typo is an error with a suggestion, the objective's options are refused
    there (they go in `method`), and YAML's strings that are numbers become the numbers TRL expects."""
    if trainer == "reward":
        from trl import RewardConfig  # deferred: importing TRL takes seconds and only training needs it

        config_class: Any = RewardConfig
        reserved = _TRAIN_RESERVED
    else:
        config_class = trainer_config_class(spec.method)
        reserved = _TRAIN_RESERVED | dict.fromkeys(
            spec.method.trainer_options() if spec.method is not None else {},
            "the objective's options go in `train.method`",
        )
    _check_option_names(spec.args, config_class, f"{where}.args", reserved=reserved)
    _coerce_numbers(spec.args, config_class)


def trainer_config_class(method: Objective | None) -> Any:
    """TRL's config class for `method` (`DPOConfig` without one); imported here, when a suite that trains loads,
    because importing TRL takes seconds."""
    name = method.name if method is not None else "dpo"
    if name == "dpo":
        from trl import DPOConfig

        return DPOConfig
    if name == "kto":
        from trl import KTOConfig

        return KTOConfig
    with warnings.catch_warnings():  # TRL warns that `trl.experimental` may change; the suite names what it uses
        warnings.simplefilter("ignore")
        if name == "orpo":
            from trl.experimental.orpo import ORPOConfig

            return ORPOConfig
        from trl.experimental.cpo import CPOConfig

        return CPOConfig


def checks_libraries(info: ValidationInfo) -> bool:
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
    "task_type": "evalkit sets CAUSAL_LM (SEQ_CLS for a reward model)",
}


def _check_option_names(options: dict[str, Any], config_class: Any, where: str, reserved: dict[str, str]) -> None:
    known = [f.name for f in dataclasses.fields(config_class) if not f.name.startswith("_")]
    for key in options:
        if key in reserved:
            raise ValueError(f"{where}.{key}: not set here; {reserved[key]}")
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown {config_class.__name__} option{suggestion(key, known)}")


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce_numbers(options: dict[str, Any], config_class: Any) -> None:
    """YAML 1.1 reads `1e-4` (no dot) as a string; options TRL types as float get their number."""
    types = {f.name: str(getattr(f.type, "__name__", f.type)) for f in dataclasses.fields(config_class)}
    for key, value in options.items():
        if isinstance(value, str) and _NUMBER.match(value) and "float" in types.get(key, ""):
            options[key] = float(value)
