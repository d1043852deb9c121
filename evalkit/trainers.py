"""Which TRL trainer trains a suite's objective, and its config: composed as TRL ships them, never subclassed.

`train.method` names the objective (`evalkit.config.objectives`); each has one trainer of TRL 1.16:
`dpo` (any loss type) `DPOTrainer`, `cpo`, `simpo` and `alphapo` `CPOTrainer`, `orpo` `ORPOTrainer`,
`kto` `KTOTrainer`; a reward model (`kind: reward_model`) trains with `RewardTrainer` whatever the method. The
trainer's config is the objective's own options (TRL's names) with the
suite's `train.args` and evalkit's defaults; every trainer takes the same model, datasets, tokenizer,
LoRA config and callbacks, so `evalkit.train` builds all of them the same way.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalkit.config.messages import notice
from evalkit.config.objectives import (
    AlphapoObjective,
    CpoObjective,
    DpoObjective,
    KtoObjective,
    Objective,
    OrpoObjective,
    SimpoObjective,
)
from evalkit.config.recorded import TRL_ARGS
from evalkit.config.specs import ModelSpec
from evalkit.config.suite import Suite
from evalkit.config.training import TrainSpec, trainer_config_class
from evalkit.errors import EvalkitError, first_line

TITLES = {
    "dpo": "DPO",
    "cpo": "CPO",
    "simpo": "SimPO",
    "alphapo": "AlphaPO",
    "orpo": "ORPO",
    "kto": "KTO",
    "reward": "reward model",
}
"""The objective's name as a progress bar and a message print it."""


@dataclass(frozen=True)
class TrainerChoice:
    """The trainer class of one objective and its config class."""

    name: str
    """The objective (`dpo`, `simpo`, ...)."""
    title: str
    trainer: Any
    config: Any

    @property
    def unpaired(self) -> bool:
        """Whether the trainer takes labelled completions (KTO): evalkit unpairs pairs for it and shuffles the rows
        (`evalkit.data.unpaired.training_order`)."""
        return self.name == "kto"

    @property
    def reward_model(self) -> bool:
        """Whether it trains a classifier reward model (a one-label head, LoRA task type `SEQ_CLS`)."""
        return self.name == "reward"

    @property
    def accuracy_key(self) -> str:
        """The key of the trainer's logged reward accuracy."""
        return "accuracy" if self.reward_model else "rewards/accuracies"


def choose_trainer(method: Objective | None, *, reward_model: bool = False) -> TrainerChoice:
    """TRL's trainer for `method` (DPOTrainer without one; RewardTrainer for a reward model). TRL's CPO and ORPO
    live under `trl.experimental`, which warns on import; the suite named them on purpose."""
    if reward_model:
        from trl import RewardConfig, RewardTrainer

        return TrainerChoice("reward", TITLES["reward"], RewardTrainer, RewardConfig)
    name = method.name if method is not None else "dpo"
    config = trainer_config_class(method)
    trainer: Any
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "dpo":
            from trl import DPOTrainer

            trainer = DPOTrainer
        elif name == "kto":
            from trl import KTOTrainer

            trainer = KTOTrainer
        elif name == "orpo":
            from trl.experimental.orpo import ORPOTrainer

            trainer = ORPOTrainer
        else:
            from trl.experimental.cpo import CPOTrainer

            trainer = CPOTrainer
    return TrainerChoice(name, TITLES[name], trainer, config)


EVALKIT_DEFAULTS = {"bf16", "fp16", "report_to", "save_strategy", "logging_steps", "disable_tqdm", "eval_strategy"}
"""Options evalkit sets where the suite says nothing (recorded with the training)."""


def trainer_config(spec: TrainSpec, output_dir: Path, has_eval: bool, choice: TrainerChoice | None = None) -> Any:
    """The config of `choice` (default: the trainer of `spec.method`) for `spec`: the objective's options (none
    for a reward model), the suite's `args`, evalkit's defaults."""
    choice = choice or choose_trainer(spec.method)
    objective = spec.method.trainer_options() if spec.method is not None and not choice.reward_model else {}
    args = objective | dict(spec.args)
    args.setdefault("report_to", [])
    args.setdefault("save_strategy", "no")
    args.setdefault("logging_steps", 1)
    args.setdefault("disable_tqdm", True)
    args.setdefault("dataloader_pin_memory", torch.cuda.is_available())
    if _launched_without_accelerator():
        # transformers joins the processes of a `torchrun` only where accelerate finds a device backend, or where
        # told to use the CPU: without this, each process would train alone and all would write one output.
        args.setdefault("use_cpu", True)
    if has_eval:
        args.setdefault("eval_strategy", "steps")
        args.setdefault("eval_steps", 0.1)  # a ratio of the total steps: ten evaluations per run
    bf16_supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if args.get("bf16", "auto") == "auto":
        # TRL's configs turn bf16 on whenever fp16 is off, also on CPUs; evalkit only where supported.
        args["bf16"] = bf16_supported and not args.get("fp16", False)
    args.setdefault("fp16", False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the experimental configs' import-path notices
            return choice.config(output_dir=str(output_dir), **args)
    except (TypeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalkitError(f"train.args: {message}") from None


def _launched_without_accelerator() -> bool:
    """Whether this is one of several processes (`torchrun`, `accelerate launch`) on a machine with no GPU."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available()


def recorded_options(spec: TrainSpec, config: Any) -> dict[str, Any]:
    """The config options the training record keeps: those the suite or the objective set, and evalkit's."""
    chosen = set(spec.args) | set(spec.method.trainer_options() if spec.method is not None else {})
    return {k: v for k, v in config.to_dict().items() if k in chosen or k in EVALKIT_DEFAULTS}


OBJECTIVE_TRAINERS = {"DPOTrainer", "KTOTrainer", "ORPOTrainer", "CPOTrainer"}
"""TRL's trainers of an objective (each reads its own config class)."""


def objective_of_trainer(trainer: Any) -> Objective | None:
    """The objective a TRL trainer trains with, read from its config (what `EvalkitCallback` scores a user's own
    trainer with); None for a trainer none of the objectives is."""
    return objective_of_config(trainer.args) if type(trainer).__name__ in OBJECTIVE_TRAINERS else None


def objective_of_config(args: Any) -> Objective | None:
    """The objective a TRL config (`DPOConfig`, `CPOConfig`, `ORPOConfig`, `KTOConfig`, or a subclass) trains
    with; None for any other config. Raises pydantic's `ValidationError` (a `ValueError`) for a loss type no
    objective scores."""
    kinds = {cls.__name__ for cls in type(args).__mro__}
    if "DPOConfig" in kinds:
        types = args.loss_type if isinstance(args.loss_type, list) else [args.loss_type]
        return DpoObjective(
            name="dpo",
            loss_type=types,
            loss_weights=args.loss_weights,
            beta=args.beta,
            label_smoothing=args.label_smoothing,
            ld_alpha=args.ld_alpha,
            f_divergence_type=args.f_divergence_type,
            f_alpha_divergence_coef=args.f_alpha_divergence_coef,
        )
    if "KTOConfig" in kinds:
        return KtoObjective(
            name="kto",
            loss_type=args.loss_type,
            beta=args.beta,
            desirable_weight=args.desirable_weight,
            undesirable_weight=args.undesirable_weight,
        )
    if "ORPOConfig" in kinds:
        return OrpoObjective(name="orpo", beta=args.beta)
    if "CPOConfig" not in kinds:
        return None
    shared = {"beta": args.beta, "label_smoothing": args.label_smoothing}
    if args.loss_type in ("simpo", "alphapo") and args.alpha != 0:
        return AlphapoObjective(name="alphapo", alpha=args.alpha, gamma=args.simpo_gamma, **shared)
    if args.loss_type in ("simpo", "alphapo"):
        return SimpoObjective(name="simpo", gamma=args.simpo_gamma, cpo_alpha=args.cpo_alpha, **shared)
    return CpoObjective(name="cpo", loss_type=args.loss_type, cpo_alpha=args.cpo_alpha, alpha=args.alpha, **shared)


_REFUSED: set[str] = set()


def trl_objective(path: str, allow_pickle: bool, where: str) -> Objective | None:
    """The objective a TRL config saved in the checkpoint directory `path` trains with (a user's own TRL script
    leaves no evalkit record). Unpickling it can run code, so it is read only where the model allows pickles;
    otherwise a notice says so. None where there is no such config, or none of the objectives is its."""
    saved = Path(path) / TRL_ARGS
    if not saved.is_file():
        return None
    if not allow_pickle:
        if where in _REFUSED:
            return None  # a sweep's checkpoints each hold one: one notice per model
        _REFUSED.add(where)
        notice(
            f"{where}: {saved} (TRL's pickled training config) was not read, as unpickling can run code; set "
            "`allow_pickle: true` on the model to read its objective from it, or name the model's `method`"
        )
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the experimental configs' import-path notices
            return objective_of_config(torch.load(saved, weights_only=False))
    except Exception as exc:  # an unreadable pickle (another TRL's classes) or a loss type no objective scores
        notice(f"{where}: {saved} could not be read as a TRL config ({first_line(exc)}); name the model's `method`")
        return None


def resolved_objective(suite: Suite, spec: ModelSpec) -> Objective | None:
    """The objective `spec` is scored with: the suite's word (the model's `method`, its training's, the suite's),
    else what evalkit's training recorded beside the checkpoint, else the TRL config saved there (read only where
    the model allows pickles). Scoring records it and the gate's rules on objective metrics are checked against it,
    so the two never disagree. None for a reward model, and for a model none of these names."""
    if spec.kind == "reward_model":
        return None
    where = f"models.{spec.name.split('@')[0]}"
    return suite.stated_objective(spec) or trl_objective(spec.path, spec.allow_pickle, where)
