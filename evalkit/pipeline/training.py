"""Training a suite's models, run after run, each with its objective (DPO by default; TRL's RewardTrainer for a reward
model), as a suite run's first step, and what results.json records of them."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.config.specs import DatasetSpec, ModelSpec
from evalkit.config.suite import Suite
from evalkit.config.training import TrainSpec
from evalkit.console import console, is_main_process
from evalkit.data.pairs import PreferencePair, is_unpaired, load_pairs, read_table, split_pairs, write_pairs
from evalkit.data.rendering import DEFAULT_DATE
from evalkit.data.unpaired import UnpairedExample, load_unpaired
from evalkit.errors import EvalkitError
from evalkit.results.schema import TrainingInfo

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from evalkit.train import TrainingRun


def run_training(suite: Suite, out: Path | None = None) -> list[TrainingRun]:
    """Train the suite's runs in their order, each its `output` model (reused when trained earlier with the same
    settings); with `eval_fraction`, a run holds out (and writes) a seeded split. `out` replaces where the models
    go: the one run's output directory, or with several runs the directory holding `<out>/<output>` for each."""
    produced: dict[str, Path] = {}  # model name → where this call trained it: a later run may start from it
    runs = []
    for index, spec in enumerate(suite.train):
        output = out / spec.output if out is not None and len(suite.train) > 1 else out
        run = _run(suite, index, spec, output, produced)
        produced[spec.output] = run.output_dir
        runs.append(run)
    return runs


def _run(suite: Suite, index: int, spec: TrainSpec, output_dir: Path | None, produced: dict[str, Path]) -> TrainingRun:
    # Imported here: the trainer's modules pull in PEFT, which scoring a plain model never needs.
    from evalkit.trainers import TITLES

    reward_model = suite.trainer_of(spec) == "reward"
    title = TITLES["reward" if reward_model else spec.method.name if spec.method is not None else "dpo"]
    base = suite.model(spec.base)
    if spec.base in produced:
        base = base.model_copy(update={"path": str(produced[spec.base])})
    if spec.method is not None and spec.method.name == "kto" and holds_unpaired(spec.data):
        if spec.eval_fraction is not None:
            raise EvalkitError(
                f"{suite.train_key(index)}.eval_fraction: {spec.data.path} holds labelled completions, and the "
                "hold-out is drawn from pairs only; score a held-out file of labelled completions instead"
            )
        examples = load_unpaired(spec.data)
        console.print(f"training {spec.output!r} from {spec.base!r} with {title} on {len(examples)} completions")
        return _train(suite, spec, base, examples, None, output_dir)
    pairs = load_pairs(spec.data)
    eval_pairs = None
    if spec.eval_fraction is not None and spec.heldout is not None:
        split = split_pairs(pairs, spec.eval_fraction, spec.split_seed)
        pairs, eval_pairs = split.train, split.held_out
        if is_main_process():  # every process splits alike; one writes
            write_pairs(eval_pairs, spec.heldout)
    held_out = f", {len(eval_pairs)} held out to {spec.heldout}" if eval_pairs else ""
    console.print(f"training {spec.output!r} from {spec.base!r} with {title} on {len(pairs)} pairs{held_out}")
    return _train(suite, spec, base, pairs, eval_pairs, output_dir)


def holds_unpaired(data: DatasetSpec) -> bool:
    """Whether training data are labelled completions (KTO style) rather than pairs, by their columns."""
    return is_unpaired(data, list(read_table(data).column_names))


def _train(
    suite: Suite,
    spec: TrainSpec,
    base: ModelSpec,
    data: list[PreferencePair] | list[UnpairedExample],
    eval_pairs: list[PreferencePair] | None,
    output_dir: Path | None,
) -> TrainingRun:
    from evalkit.train import finished_run, train_model
    from evalkit.trainers import choose_trainer

    reward_model = suite.trainer_of(spec) == "reward"
    trainer = choose_trainer(spec.method, reward_model=reward_model).trainer.__name__

    if Path(base.path).exists():
        # An absolute base path goes into the adapter's config, so the adapter loads from any directory.
        base = base.model_copy(update={"path": str(Path(base.path).resolve())})
    output = output_dir or Path(suite.model(spec.output).path)
    options, day = suite.template_options(suite.model(spec.output)), training_date(suite)
    earlier = finished_run(spec, base, output, options, day, trainer)
    if earlier is not None:
        console.print(f"[dim]reusing {output}: trained earlier with these settings on this base[/dim]")
        return earlier
    # evalkit's own pooled evaluation while training scores log-probs: a policy's, not a classifier's.
    evaluations = [_held_out(spec, eval_pairs, output, options, day)] if eval_pairs and not reward_model else []
    return train_model(
        spec,
        base,
        output,
        data,
        eval_pairs,
        template_options=options,
        template_date=day,
        evaluations=evaluations,
        reward_model=reward_model,
    )


def _held_out(
    spec: TrainSpec, pairs: list[PreferencePair], output_dir: Path, options: dict[str, Any], day: datetime.date
) -> Callable[[Any], TrainerCallback]:
    """Held-out pairs scored the evalkit way at each evaluation (pooled, with intervals), as a user's own DPOTrainer
    script would with the same callback; the curve lands in <output>/evalkit."""
    from evalkit.api.callback import EvalkitCallback

    def callback(trainer: Any) -> TrainerCallback:
        return EvalkitCallback(
            trainer,
            pairs,
            name=spec.output,
            output_dir=output_dir / "evalkit",
            chat_template_kwargs=options,
            template_date=day,
        )

    return callback


def training_date(suite: Suite) -> datetime.date:
    """The date training pins a clock-reading template to: the suite's, else evalkit's default."""
    return suite.rendering.date or DEFAULT_DATE


def training_infos(suite: Suite, runs: list[TrainingRun]) -> list[TrainingInfo]:
    """What results.json records of each run, in the suite's order."""
    return [training_info(suite, spec, run) for spec, run in zip(suite.train, runs, strict=True)]


def training_info(suite: Suite, spec: TrainSpec, run: TrainingRun) -> TrainingInfo:
    from evalkit.train import training_curve
    from evalkit.trainers import choose_trainer

    choice = choose_trainer(spec.method, reward_model=suite.trainer_of(spec) == "reward")
    accuracy = choice.accuracy_key
    steps = [entry for entry in run.log_history if "loss" in entry and accuracy in entry]
    last = steps[-1] if steps else {}
    return TrainingInfo(
        model=spec.output,
        steps=run.steps,
        seconds=round(run.seconds, 1),
        final_loss=last.get("loss"),
        final_reward_accuracy=last.get(accuracy),
        log_history=str(run.output_dir / "log_history.json"),
        curve=training_curve(run.log_history),
        trainer=choice.trainer.__name__,
    )
