"""Preference training: a thin wrapper that composes TRL's trainers, never subclasses them.

`train.method` picks the trainer (`evalkit.trainers`: DPOTrainer with any loss type, CPOTrainer for
CPO, SimPO and AlphaPO, ORPOTrainer, KTOTrainer; DPO without one). The suite's `train` section becomes
that trainer's config (every TRL option reachable under `args`, the objective's own under `method`)
and, when asked, a `LoraConfig`; TRL does the training. What evalkit adds is what today's TRL lacks
or gets wrong for the recipes users bring:
- hh-rlhf style data without a prompt column arrives already split (see `evalkit.data.pairs`);
- chat-message data meets a tokenizer without a chat template (GPT-2) as plain text, exactly as
  evalkit scores it;
- `max_prompt_length` (dropped from TRL) cuts prompts from the left before TRL sees them;
- bf16 is switched on only where the device supports it (TRL turns it on whenever fp16 is off);
- KTO trains on pairs or on labelled completions (`evalkit.data.unpaired`), shuffled once with the run's
  seed: KTOTrainer reads its rows in order, and pairs unpaired in TRL's order would give it desirable
  answers alone for half an epoch;
- the output directory keeps the adapter or model, the tokenizer, `log_history.json`, and
  `evalkit_train.json` (the resolved settings, the objective it trained with, an environment block),
  from which evalkit reads the objective to score the model with.
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

from transformers import PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from evalkit.checkpoints import files_fingerprint, load_for_training, load_tokenizer, say_pinned
from evalkit.config.messages import notice
from evalkit.config.objectives import Objective, with_beta
from evalkit.config.recorded import TRAIN_RECORD
from evalkit.config.specs import ModelSpec
from evalkit.config.training import TrainSpec
from evalkit.console import progress_bar
from evalkit.data.pairs import PreferencePair, as_plain_text
from evalkit.data.rendering import DEFAULT_DATE, PLAIN, Rendering, chat_token_ids, rendering_for
from evalkit.data.unpaired import UnpairedExample, training_order, unpair
from evalkit.results.provenance import environment
from evalkit.results.schema import CurvePoint
from evalkit.trainers import choose_trainer, objective_of_trainer, recorded_options, trainer_config

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
    """What a finished DPO run leaves behind for the report."""

    output_dir: Path
    steps: int
    seconds: float
    log_history: list[dict[str, Any]]


def train_model(
    spec: TrainSpec,
    base: ModelSpec,
    output_dir: Path,
    pairs: Sequence[PreferencePair] | Sequence[UnpairedExample],
    eval_pairs: list[PreferencePair] | None = None,
    *,
    template_options: dict[str, Any] | None = None,
    template_date: datetime.date = DEFAULT_DATE,
    evaluations: Sequence[Callable[[Any], TrainerCallback]] = (),
    reward_model: bool = False,
) -> TrainingRun:
    """Train `base` with the objective of `spec.method` on `pairs` (labelled completions for KTO too), or as a
    classifier reward model with RewardTrainer (`reward_model`), evaluating on `eval_pairs`, and save the result
    to `output_dir`.

    Chats are rendered with `template_options` and, for a template that reads the clock, `template_date`,
    exactly as evalkit scores the trained model afterwards (the date is recorded beside it for that).
    `evaluations` make callbacks from the trainer (a suite run passes evalkit's own, scoring the held-out pairs at
    each evaluation).
    """
    # Imported here: TRL pulls in much of the HF stack, and only training needs it.
    from datasets import Dataset

    choice = choose_trainer(spec.method, reward_model=reward_model)
    tokenizer = _tokenizer(spec, base)
    args = trainer_config(spec, output_dir, has_eval=bool(eval_pairs), choice=choice)
    model = load_for_training(base, classifier=choice.reward_model)
    rendering = rendering_for(tokenizer, template_options or {}, template_date)
    if rendering.date is not None:
        say_pinned("train", rendering.date)
    if choice.unpaired:
        unpaired = [e for e in pairs if isinstance(e, UnpairedExample)] or unpair(
            [p for p in pairs if isinstance(p, PreferencePair)]
        )
        pairs = training_order(unpaired, args.seed)
    train_rows = training_rows(pairs, tokenizer, spec.max_prompt_length, rendering)
    eval_rows = trl_rows(eval_pairs, tokenizer, spec.max_prompt_length, rendering) if eval_pairs else None
    started = time.perf_counter()
    trainer = choice.trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(spec, "SEQ_CLS" if choice.reward_model else "CAUSAL_LM"),
        callbacks=[_ProgressCallback(choice.title, choice.accuracy_key)],
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
            "train": spec.model_dump(mode="json"),
            "base": base.model_dump(mode="json"),
            "base_fingerprint": files_fingerprint(base.path, base.revision),
            "rendering": _rendering_record(template_options or {}, template_date),
            "steps": trainer.state.global_step,
            "processes": trainer.accelerator.num_processes,
            "seconds": round(time.perf_counter() - started, 1),
            "method": None if choice.reward_model else _dumped(trained_objective(spec, trainer)),
            "trainer": type(trainer).__name__,
            "trainer_config": recorded_options(spec, args),
            "environment": environment().model_dump(mode="json"),
        }
        (output_dir / TRAIN_RECORD).write_text(json.dumps(resolved, indent=1, default=str) + "\n")
        if spec.merge and spec.lora is not None:
            merged = cast(Any, trainer.model).merge_and_unload()
            merged.save_pretrained(output_dir / "merged")
            tokenizer.save_pretrained(output_dir / "merged")
    return TrainingRun(output_dir, trainer.state.global_step, time.perf_counter() - started, history)


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
    trainer: str = "DPOTrainer",
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
        done.get("trainer", "DPOTrainer") == trainer
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


def trained_objective(spec: TrainSpec, trainer: Any) -> Objective | None:
    """The objective the trainer trained with, as scoring reads it back: `train.method` with TRL's β where the
    method left it to the config; without a method, what the trainer's config says (`loss_type` and β set in
    `args`). None where no objective can say it (DPO combined with TRL's `sft` loss has no pairwise score)."""
    if spec.method is not None:
        return with_beta(spec.method, float(trainer.args.beta))
    try:
        return objective_of_trainer(trainer)
    except ValueError:  # pydantic's ValidationError: a loss type no objective scores
        return None


def _dumped(objective: Objective | None) -> dict[str, Any] | None:
    return objective.model_dump(mode="json") if objective is not None else None


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


def training_rows(
    data: Sequence[PreferencePair] | Sequence[UnpairedExample],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_length: int | None,
    rendering: Rendering = PLAIN,
) -> list[dict[str, Any]]:
    """TRL's rows for pairs (`trl_rows`) or labelled completions (`kto_rows`)."""
    if data and isinstance(data[0], UnpairedExample):
        return kto_rows([e for e in data if isinstance(e, UnpairedExample)], tokenizer, max_prompt_length, rendering)
    return trl_rows([p for p in data if isinstance(p, PreferencePair)], tokenizer, max_prompt_length, rendering)


def kto_rows(
    examples: list[UnpairedExample],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_length: int | None,
    rendering: Rendering = PLAIN,
) -> list[dict[str, Any]]:
    """Labelled completions in TRL's unpaired layout (`prompt`, `completion`, `label`), laid out as `trl_rows` lays
    out pairs: each is a pair whose two answers are the one completion, so the same text conversions apply."""
    pairs = [PreferencePair(e.id, e.prompt, e.completion, e.completion, e.subset, e.prompt_text) for e in examples]
    rows = trl_rows(pairs, tokenizer, max_prompt_length, rendering)
    for row, example in zip(rows, examples, strict=True):
        row["completion"], row["label"] = row.pop("chosen"), example.label
        del row["rejected"]
    return rows


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

    def __init__(self, title: str, accuracy_key: str = "rewards/accuracies") -> None:
        self.title = title
        self.accuracy_key = accuracy_key

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar = progress_bar()  # silent in the other processes of a distributed run
        self._task = self._bar.add_task(f"{self.title} training", total=state.max_steps, status="")
        self._bar.start()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any) -> None:
        if logs and "loss" in logs:
            accuracy = logs.get(self.accuracy_key, float("nan"))
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
