"""Training a suite's model, as a run's first step (DPO for a policy, TRL's RewardTrainer for a reward model), and
what results.json records of it."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.config.suite import Suite
from evalkit.config.training import TrainSpec
from evalkit.console import console, is_main_process
from evalkit.data.pairs import PreferencePair, load_pairs, split_pairs, write_pairs
from evalkit.data.rendering import DEFAULT_DATE
from evalkit.results.schema import TrainingInfo

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from evalkit.train import TrainingRun


def run_training(suite: Suite, output_dir: Path | None = None) -> TrainingRun:
    """Train the suite's `train.output` model; with `eval_fraction`, hold out (and write) a seeded split."""
    # Imported here: the trainer's modules pull in PEFT, which scoring a plain model never needs.
    from evalkit.train import TRAINERS, finished_run, train_model

    assert suite.train is not None
    spec = suite.train
    pairs = load_pairs(spec.data)
    eval_pairs = None
    if spec.eval_fraction is not None and spec.heldout is not None:
        split = split_pairs(pairs, spec.eval_fraction, spec.split_seed)
        pairs, eval_pairs = split.train, split.held_out
        if is_main_process():  # every process splits alike; one writes
            write_pairs(eval_pairs, spec.heldout)
    held_out = f", {len(eval_pairs)} held out to {spec.heldout}" if eval_pairs else ""
    kind = suite.trainer
    console.print(f"training {spec.output!r} from {spec.base!r} with {TRAINERS[kind]} on {len(pairs)} pairs{held_out}")
    base = suite.model(spec.base)
    if Path(base.path).exists():
        # An absolute base path goes into the adapter's config, so the adapter loads from any directory.
        base = base.model_copy(update={"path": str(Path(base.path).resolve())})
    output = output_dir or Path(suite.model(spec.output).path)
    options, day = suite.template_options(suite.model(spec.output)), training_date(suite)
    earlier = finished_run(spec, base, output, options, day, kind)
    if earlier is not None:
        console.print(f"[dim]reusing {output}: trained earlier with these settings on this base[/dim]")
        return earlier
    # evalkit's own pooled evaluation while training scores log-probs: a policy's, not a classifier's.
    evaluations = [_held_out(spec, eval_pairs, output, options, day)] if eval_pairs and kind == "dpo" else []
    return train_model(
        spec,
        base,
        output,
        pairs,
        eval_pairs,
        template_options=options,
        template_date=day,
        evaluations=evaluations,
        trainer_kind=kind,
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


def training_info(suite: Suite, run: TrainingRun | None) -> TrainingInfo | None:
    if run is None or suite.train is None:
        return None
    from evalkit.train import ACCURACY_KEYS, TRAINERS, training_curve

    accuracy = ACCURACY_KEYS[suite.trainer]
    steps = [entry for entry in run.log_history if "loss" in entry and accuracy in entry]
    last = steps[-1] if steps else {}
    return TrainingInfo(
        model=suite.train.output,
        steps=run.steps,
        seconds=round(run.seconds, 1),
        final_loss=last.get("loss"),
        final_reward_accuracy=last.get(accuracy),
        log_history=str(run.output_dir / "log_history.json"),
        curve=training_curve(run.log_history),
        trainer=TRAINERS[suite.trainer],
    )
