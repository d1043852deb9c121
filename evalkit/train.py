"""DPO training: a thin wrapper that composes TRL's `DPOTrainer`, never subclasses it.

The suite's `train` section becomes a `DPOConfig` (and a `LoraConfig` when LoRA is asked for);
TRL does the training. With LoRA and no reference model TRL uses the base with the adapter
disabled as the reference, which is exactly what evalkit's scoring does afterwards. The output
directory gets the adapter (or full model), the tokenizer and `log_history.json`.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from evalkit.config import TrainSpec
from evalkit.console import progress_bar
from evalkit.data import PreferencePair


@dataclass(frozen=True)
class TrainingRun:
    """What a finished DPO run leaves behind for the report."""

    output_dir: Path
    steps: int
    seconds: float
    log_history: list[dict[str, Any]]


def train_dpo(spec: TrainSpec, base_path: Path, output_dir: Path, pairs: list[PreferencePair]) -> TrainingRun:
    """Train `base_path` with DPO on `pairs` and save the result to `output_dir`."""
    # Imported here: TRL pulls in much of the HF stack, and only training needs it.
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    lora = (
        LoraConfig(
            r=spec.lora.r,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=spec.lora.target_modules,
            task_type="CAUSAL_LM",
        )
        if spec.lora is not None
        else None
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evalkit-train-") as scratch:
        args = DPOConfig(
            output_dir=scratch,
            beta=spec.beta,
            learning_rate=spec.learning_rate,
            num_train_epochs=spec.epochs,
            per_device_train_batch_size=spec.batch_size,
            gradient_accumulation_steps=spec.gradient_accumulation_steps,
            warmup_steps=spec.warmup_steps,
            max_length=spec.max_length,
            seed=spec.seed,
            # TRL turns bf16 on whenever fp16 is off; evalkit trains in fp32 unless asked otherwise.
            bf16=False,
            fp16=False,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[_ProgressCallback()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict; the progress bar shows them
        trainer.train()
        trainer.save_model(str(output_dir))
    tokenizer.save_pretrained(output_dir)
    history = list(trainer.state.log_history)
    (output_dir / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    return TrainingRun(output_dir, trainer.state.global_step, time.perf_counter() - started, history)


class _ProgressCallback(TrainerCallback):
    """Shows DPO training on evalkit's progress bar, with the latest loss and reward accuracy."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar = progress_bar()
        self._bar.start()
        self._task = self._bar.add_task("DPO training", total=state.max_steps, status="")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            accuracy = logs.get("rewards/accuracies", float("nan"))
            self._bar.update(self._task, status=f"loss {logs['loss']:.3f} acc {accuracy:.2f}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.update(self._task, completed=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._bar.stop()
