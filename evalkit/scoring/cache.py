"""Reference log-probs kept on disk across runs.

Every checkpoint of a training run is scored against the same reference on the same pairs, and
the reference's forward passes cost as much as the policy's. Its log-probs are kept here, one
file per key, so the second checkpoint (or next week's run) runs the policy only. A key covers
everything the numbers depend on: the reference's fingerprint (weights, config, tokenizer and
chat template files) and weights dtype, the exact token ids and `max_length` scored (which cover
the dataset, the tokenizer that encoded it and its chat template), the compute dtype and device
type, and the torch and transformers versions. Change any of them and the key changes, so a stale
entry never hits. Batching settings are left out on purpose: results do not depend on them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from evalkit.checkpoints import LoadedModel
from evalkit.console import is_main_process
from evalkit.results.files import JsonStore
from evalkit.results.schema import ScoringMode
from evalkit.scoring.score import CompletionLogps

FORMAT = 1


@dataclass(frozen=True)
class CachedScores:
    """A model's log-probs on some tokens, with how its passes ran when they were computed (so that a run
    that takes them from the cache records the same as the run that computed them)."""

    logps: list[CompletionLogps]
    mode: ScoringMode | None = None


def reference_key(reference: LoadedModel, tokens_key: str, dtype: str) -> str | None:
    """The cache key of `reference`'s log-probs on the tokens hashed in `tokens_key`; None when the
    reference's files are not pinned (a hub id without a known commit), which is never cached."""
    if not reference.pinned:
        return None
    parts = {
        "format": FORMAT,
        "reference": reference.info.fingerprint,
        "weights_dtype": reference.spec.dtype,
        "tokens": tokens_key,
        "dtype": dtype,
        "device": reference.model.device.type,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]


class ReferenceCache:
    """One JSON file of per-pair reference log-probs per key, written atomically by the main process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = JsonStore(directory)

    def load(self, key: str) -> CachedScores | None:
        stored = self.files.load(key)
        try:
            mode = stored.get("mode")
            return CachedScores(
                [CompletionLogps(*row) for row in stored["pairs"]], ScoringMode.model_validate(mode) if mode else None
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # absent or unreadable: score again and overwrite

    def save(self, key: str, scores: CachedScores) -> None:
        if not is_main_process():
            return
        rows = [[s.chosen, s.rejected, s.n_tokens_chosen, s.n_tokens_rejected, s.truncated] for s in scores.logps]
        mode = scores.mode.model_dump(mode="json") if scores.mode is not None else None
        self.files.save(key, {"format": FORMAT, "pairs": rows, "mode": mode})
