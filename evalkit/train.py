"""Training: a thin wrapper that composes TRL's `DPOTrainer` (or its `RewardTrainer`, for a reward model), never
subclasses them.

The suite's `train` section becomes a `DPOConfig` or `RewardConfig` (every TRL option reachable under `args`)
and, when asked, a `LoraConfig` (task type `CAUSAL_LM`, or `SEQ_CLS` for a reward model, whose one-label head is
then trained and saved with the adapter); TRL does the training. Both trainers take the same rows (`trl_rows`).
What evalkit adds is what today's TRL lacks or gets wrong for the recipes users bring:
- hh-rlhf style data without a prompt column arrives already split (see `evalkit.data.pairs`);
- chat-message data meets a tokenizer without a chat template (GPT-2) as plain text, exactly as
  evalkit scores it;
- `max_prompt_length` (dropped from TRL) cuts prompts from the left before TRL sees them;
- bf16 is switched on only where the device supports it (TRL turns it on whenever fp16 is off);
- the output directory keeps the adapter or model, the tokenizer, `log_history.json`, and
  `evalkit_train.json` (the trainer that ran, the resolved settings and an environment block).
With LoRA and no reference model TRL's reference is the base with the adapter disabled, which
is what evalkit's scoring uses afterwards.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from evalkit.checkpoints import TRAIN_RECORD, files_fingerprint, load_for_training, load_tokenizer, say_pinned
from evalkit.config.messages import notice
from evalkit.config.specs import ModelSpec
from evalkit.config.training import Trainer, TrainSpec
from evalkit.console import progress_bar
from evalkit.data.pairs import PreferencePair, as_plain_text
from evalkit.data.rendering import DEFAULT_DATE, PLAIN, Rendering, chat_token_ids, rendering_for
from evalkit.errors import EvalkitError
from evalkit.results.provenance import environment
from evalkit.results.schema import CurvePoint

CURVE_KEYS = {
    "loss": "loss",
    "eval_loss": "eval_loss",
    "rewards/accuracies": "reward_accuracy",
    "eval_rewards/accuracies": "eval_reward_accuracy",
    "rewards/margins": "margin",
    "eval_rewards/margins": "eval_margin",
    # evalkit's own evaluation (`EvalkitCallback`), logged after TRL's at the same step, so it wins: pooled over
    # the held-out pairs, where TRL's eval_rewards/* are means of per-batch means.
    "eval_evalkit/loss": "eval_loss",
    "eval_evalkit/rewards/accuracies": "eval_reward_accuracy",
    "eval_evalkit/rewards/margins": "eval_margin",
    # RewardTrainer's names for the same: means over the logging window (training), of per-batch means (evaluation).
    "accuracy": "reward_accuracy",
    "eval_accuracy": "eval_reward_accuracy",
    "margin": "margin",
    "eval_margin": "eval_margin",
}
"""Log key → field of a training-curve point."""


@dataclass(frozen=True)
class TrainingRun:
    """What a finished training run leaves behind for the report."""

    output_dir: Path
    steps: int
    seconds: float
    log_history: list[dict[str, Any]]


TRAINERS: dict[Trainer, str] = {"dpo": "DPOTrainer", "reward": "RewardTrainer"}
ACCURACY_KEYS: dict[Trainer, str] = {"dpo": "rewards/accuracies", "reward": "accuracy"}
"""The key of each trainer's logged reward accuracy."""


def train_model(
    spec: TrainSpec,
    base: ModelSpec,
    output_dir: Path,
    pairs: list[PreferencePair],
    eval_pairs: list[PreferencePair] | None = None,
    *,
    template_options: dict[str, Any] | None = None,
    template_date: datetime.date = DEFAULT_DATE,
    evaluations: Sequence[Callable[[Any], TrainerCallback]] = (),
    trainer_kind: Trainer = "dpo",
) -> TrainingRun:
    """Train `base` on `pairs` (evaluating on `eval_pairs`) with DPO, or as a reward model with RewardTrainer
    (`trainer_kind`), and save the result to `output_dir`.

    Chats are rendered with `template_options` and, for a template that reads the clock, `template_date`,
    exactly as evalkit scores the trained model afterwards (the date is recorded beside it for that).
    `evaluations` make callbacks from the trainer (a suite run passes evalkit's own, scoring the held-out pairs at
    each evaluation).
    """
    # Imported here: TRL pulls in much of the HF stack, and only training needs it.
    from datasets import Dataset
    from trl import DPOTrainer, RewardTrainer

    tokenizer = _tokenizer(spec, base)
    args = dpo_config(spec, output_dir, has_eval=bool(eval_pairs), trainer=trainer_kind)
    model = load_for_training(base, classifier=trainer_kind == "reward")
    rendering = rendering_for(tokenizer, template_options or {}, template_date)
    if rendering.date is not None:
        say_pinned("train", rendering.date)
    train_rows = trl_rows(pairs, tokenizer, spec.max_prompt_length, rendering)
    eval_rows = trl_rows(eval_pairs, tokenizer, spec.max_prompt_length, rendering) if eval_pairs else None
    started = time.perf_counter()
    trl_trainer: Any = DPOTrainer if trainer_kind == "dpo" else RewardTrainer
    trainer = trl_trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(spec, "SEQ_CLS" if trainer_kind == "reward" else "CAUSAL_LM"),
        callbacks=[_ProgressCallback(trainer_kind)],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the progress bar shows them
    for evaluation in evaluations:
        trainer.add_callback(evaluation(trainer))
    trainer.train()
    trainer.save_model(str(output_dir))
    history = list(trainer.state.log_history)
    if trainer.accelerator.is_main_process:
        for config in [output_dir / "adapter_config.json", *output_dir.glob("checkpoint-*/adapter_config.json")]:
            _sort_target_modules(config)
        tokenizer.save_pretrained(output_dir)
        (output_dir / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
        resolved = {
            "trainer": TRAINERS[trainer_kind],
            "train": spec.model_dump(mode="json"),
            "base": base.model_dump(mode="json"),
            "base_fingerprint": files_fingerprint(base.path, base.revision),
            "rendering": _rendering_record(template_options or {}, template_date),
            "steps": trainer.state.global_step,
            "seconds": round(time.perf_counter() - started, 1),
            f"{trainer_kind}_config": {
                k: v for k, v in args.to_dict().items() if k in spec.args or k in _EVALKIT_DEFAULTS
            },
            "environment": environment().model_dump(mode="json"),
        }
        (output_dir / TRAIN_RECORD).write_text(json.dumps(resolved, indent=1, default=str) + "\n")
        if spec.merge and spec.lora is not None:
            merged = cast(Any, trainer.model).merge_and_unload()
            merged.save_pretrained(output_dir / "merged")
            tokenizer.save_pretrained(output_dir / "merged")
    return TrainingRun(output_dir, trainer.state.global_step, time.perf_counter() - started, history)


_EVALKIT_DEFAULTS = {"bf16", "fp16", "report_to", "save_strategy", "logging_steps", "disable_tqdm", "eval_strategy"}


def _sort_target_modules(path: Path) -> None:
    """PEFT writes `all-linear` out as a set, in an order that changes from process to process; sorted,
    the same training writes the same file, and its fingerprint stays the same."""
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _rendering_record(options: dict[str, Any], day: datetime.date) -> dict[str, Any]:
    """How training rendered chats: its template options and the date a clock-reading template was pinned to
    (written whether or not this template reads the clock, so that a rerun with another date trains again)."""
    return {"chat_template_kwargs": options, "date": day.isoformat()}


def finished_run(
    spec: TrainSpec,
    base: ModelSpec,
    output_dir: Path,
    template_options: dict[str, Any] | None = None,
    template_date: datetime.date = DEFAULT_DATE,
    trainer_kind: Trainer = "dpo",
) -> TrainingRun | None:
    """The earlier run in `output_dir`, when it finished with these very settings (template options and
    pinned date included), on this very base, with the same torch/transformers/TRL/PEFT versions; delete
    the directory to train again regardless."""
    record = output_dir / TRAIN_RECORD
    history = output_dir / "log_history.json"
    if not record.is_file() or not history.is_file():
        return None
    try:
        done = json.loads(record.read_text(encoding="utf-8"))
        log = json.loads(history.read_text(encoding="utf-8"))
    except ValueError:
        return None
    libraries = ("torch", "transformers", "trl", "peft")
    now = environment().packages
    then = done.get("environment", {}).get("packages", {})
    same = (
        done.get("trainer", TRAINERS["dpo"]) == TRAINERS[trainer_kind]
        and done.get("train") == spec.model_dump(mode="json")
        and done.get("base") == base.model_dump(mode="json")
        and done.get("base_fingerprint") == files_fingerprint(base.path, base.revision)
        and done.get("rendering", _rendering_record({}, DEFAULT_DATE))
        == json.loads(json.dumps(_rendering_record(template_options or {}, template_date)))
        and all(then.get(name) == now.get(name) for name in libraries)
    )
    if not same or "steps" not in done:
        return None
    return TrainingRun(output_dir, int(done["steps"]), float(done.get("seconds", 0.0)), list(log))


def dpo_config(spec: TrainSpec, output_dir: Path, has_eval: bool, trainer: Trainer = "dpo") -> Any:
    """The `DPOConfig` (`RewardConfig` for a reward model) for `spec`: the suite's `args`, with evalkit's defaults
    where it says nothing."""
    from trl import DPOConfig, RewardConfig

    args = dict(spec.args)
    args.setdefault("report_to", [])
    args.setdefault("save_strategy", "no")
    args.setdefault("logging_steps", 1)
    args.setdefault("disable_tqdm", True)
    args.setdefault("dataloader_pin_memory", torch.cuda.is_available())
    if has_eval:
        args.setdefault("eval_strategy", "steps")
        args.setdefault("eval_steps", 0.1)  # a ratio of the total steps: ten evaluations per run
    bf16_supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if args.get("bf16", "auto") == "auto":
        # TRL's DPOConfig turns bf16 on whenever fp16 is off, also on CPUs; evalkit only where supported.
        args["bf16"] = bf16_supported and not args.get("fp16", False)
    args.setdefault("fp16", False)
    try:
        config: Any = DPOConfig if trainer == "dpo" else RewardConfig
        return config(output_dir=str(output_dir), **args)
    except (TypeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalkitError(f"train.args: {message}") from None


def lora_config(spec: TrainSpec, task_type: str = "CAUSAL_LM") -> Any:
    if spec.lora is None:
        return None
    from peft import LoraConfig

    lora = spec.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type=task_type,
        **lora.options,
    )


def trl_rows(
    pairs: list[PreferencePair],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_length: int | None,
    rendering: Rendering = PLAIN,
) -> list[dict[str, Any]]:
    """Rows in TRL's explicit-prompt layout, as evalkit will score them. Chat rows carry TRL's
    `chat_template_kwargs` column, so TRL renders them with the same options and pinned date."""
    if pairs and pairs[0].is_conversational and tokenizer.chat_template is None:
        notice("the tokenizer has no chat template: message pairs are trained as plain text (prompt, last answer)")
        pairs = [as_plain_text(p) for p in pairs]
    if max_prompt_length is not None:
        pairs = [truncate_prompt(p, tokenizer, max_prompt_length, rendering) for p in pairs]
    kwargs = rendering.template_kwargs()
    return [
        {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        | ({"chat_template_kwargs": kwargs} if kwargs and p.is_conversational else {})
        for p in pairs
    ]


def truncate_prompt(
    pair: PreferencePair, tokenizer: PreTrainedTokenizerBase, max_tokens: int, rendering: Rendering = PLAIN
) -> PreferencePair:
    """`pair` with its prompt cut from the left to at most `max_tokens` tokens.

    The beginning goes, since the end of a prompt (the latest turn) matters most to the answer. A
    text prompt keeps its last tokens; a message prompt loses its oldest messages, and the content
    of the last one is cut from the left if it alone is too long.
    """
    prompt = pair.prompt
    if isinstance(prompt, str):
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens:
            return pair
        return _with_prompt(pair, _decode(tokenizer, ids[-max_tokens:]))
    messages = list(prompt)

    def rendered(messages: list[dict[str, str]]) -> int:
        return len(chat_token_ids(tokenizer, messages, rendering, add_generation_prompt=True))

    while len(messages) > 1 and rendered(messages) > max_tokens:
        messages = messages[1:]
    while rendered(messages) > max_tokens:
        content_ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        if len(content_ids) <= 1:
            break  # the template alone fills the budget: nothing more to cut
        keep = max(1, len(content_ids) - (rendered(messages) - max_tokens))
        messages[-1] = {**messages[-1], "content": _decode(tokenizer, content_ids[-keep:])}
    return pair if messages == prompt else _with_prompt(pair, messages)


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return str(tokenizer.decode(ids))


def _with_prompt(pair: PreferencePair, prompt: str | list[dict[str, str]]) -> PreferencePair:
    return PreferencePair(pair.id, prompt, pair.chosen, pair.rejected, pair.subset, pair.prompt_text)


def _tokenizer(spec: TrainSpec, base: ModelSpec) -> PreTrainedTokenizerBase:
    source, revision = (spec.tokenizer, None) if spec.tokenizer else (base.path, base.revision)
    tokenizer = load_tokenizer(source, revision, base, "train")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # TRL needs one; padding is masked out
    return tokenizer


class _ProgressCallback(TrainerCallback):
    """Shows training on evalkit's progress bar, with the latest loss and reward accuracy."""

    def __init__(self, trainer: Trainer = "dpo") -> None:
        self._accuracy = ACCURACY_KEYS[trainer]
        self._title = "DPO training" if trainer == "dpo" else "reward model training"

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar = progress_bar()  # silent in the other processes of a distributed run
        self._task = self._bar.add_task(self._title, total=state.max_steps, status="")
        self._bar.start()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any) -> None:
        if logs and "loss" in logs:
            accuracy = logs.get(self._accuracy, float("nan"))
            self._bar.update(self._task, status=f"loss {logs['loss']:.3f} acc {accuracy:.2f}")
        elif logs and "eval_loss" in logs:
            self._bar.update(self._task, status=f"eval loss {logs['eval_loss']:.3f}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.update(self._task, completed=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.stop()


def training_curve(history: list[dict[str, Any]]) -> list[CurvePoint]:
    """Per logged step: loss, reward accuracy and margin, for training and evaluation."""
    points: dict[int, dict[str, float]] = {}
    for entry in history:
        if "step" not in entry:
            continue
        values = {CURVE_KEYS[key]: float(entry[key]) for key in CURVE_KEYS if key in entry}
        if values:
            points.setdefault(int(entry["step"]), {}).update(values)
    return [CurvePoint(step=step, **points[step]) for step in sorted(points)]
