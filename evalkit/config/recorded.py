"""What a checkpoint's directory says about how it was trained, read without loading it: evalkit's training record
and TRL's saved config. A suite that names no objective for a model gets it from here, so the rules on the
objective's metrics are checked when the suite loads (a JSON read), not after the model is scored."""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.config.objectives import OBJECTIVE, Objective

TRAIN_RECORD = "evalkit_train.json"
"""What `evalkit train` writes beside the model it trains: its settings, the objective, the pinned date."""

TRL_ARGS = "training_args.bin"
"""What TRL's (transformers') Trainer saves in its output directory and each `checkpoint-<step>`: its pickled
config."""


def recorded_objective(path: str) -> Objective | None:
    """The objective evalkit's training trained a model (or a `checkpoint-<step>` of its run) with, as its training
    record states it; None for any other checkpoint, and for records older than the objective they state."""
    for directory in (Path(path), Path(path).parent):
        record = directory / TRAIN_RECORD
        if not record.is_file():
            continue
        try:
            method = json.loads(record.read_text(encoding="utf-8")).get("method")
            return OBJECTIVE.validate_python(method) if method is not None else None
        except (ValueError, AttributeError):  # pydantic's ValidationError is a ValueError
            return None
    return None


def holds_trl_config(path: str) -> bool:
    """Whether TRL's pickled config sits in `path` (a local checkpoint directory, or a sweep's root or one of its
    `checkpoint-<step>` directories)."""
    root = Path(path)
    return (root / TRL_ARGS).is_file() or any(root.glob(f"checkpoint-*/{TRL_ARGS}"))
