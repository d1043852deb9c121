"""Scores kept on disk across runs: the reference's log-probs, and every (model, dataset) a run has finished (pairs
and labelled completions alike).

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

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
import transformers

from evalkit.checkpoints import LoadedModel, ServedCheckpoint
from evalkit.console import console, is_main_process
from evalkit.results.completions import CompletionScore
from evalkit.results.files import JsonStore
from evalkit.results.pairs import PairScore, row_record
from evalkit.results.schema import ScoringMode, TokenizationAudit
from evalkit.scoring.batching import from_main
from evalkit.scoring.dataset import ScoredDataset
from evalkit.scoring.score import CompletionLogps, ModelLogps

T = TypeVar("T")

FORMAT = 3
"""3: with the log-probs of the tokens LD-DPO shares between a pair's answers; 2: each pair's log-probs stored by
field name (1 stored them by position)."""


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

    def load(self, key: str) -> ModelLogps | None:
        stored = self.files.load(key)
        try:
            mode = stored.get("mode")
            return ModelLogps(
                [CompletionLogps(**row) for row in stored["pairs"]], ScoringMode.model_validate(mode) if mode else None
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # absent or unreadable: score again and overwrite

    def save(self, key: str, scores: ModelLogps) -> None:
        if not is_main_process():
            return
        rows = [dataclasses.asdict(s) for s in scores.logps]
        mode = scores.mode.model_dump(mode="json") if scores.mode is not None else None
        self.files.save(key, {"format": FORMAT, "pairs": rows, "mode": mode})


def store_key(identity: str, models: Sequence[LoadedModel | ServedCheckpoint], served_by: str | None) -> str | None:
    """The store key of scores whose inputs `identity` names, computed with `models` (the policy, and the reference
    its rows hold): their weights dtypes count (float32, the default, is left out, so that earlier keys still hit),
    and `served_by` (a server backend) keeps an engine's numbers apart from this process's. None where a model's
    files are not pinned (a hub id without a known commit): such scores are never kept."""
    if not all(m.pinned for m in models):
        return None
    weights = [m.spec.dtype for m in models]
    if any(w != "float32" for w in weights):
        identity += f"|weights:{','.join(weights)}"
    if served_by is not None:
        identity += f"|served:{served_by}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def reused(load: Callable[[str], T | None] | None, key: str | None, label: str) -> T | None:
    """What an earlier run stored under `key` (None when nothing, no store or no key), said on the console. The main
    process looks and tells the others, so that every process takes the same branch (their collectives stay paired)."""
    stored = from_main(lambda: load(key)) if load is not None and key is not None else None
    if stored is not None:
        console.print(f"[dim]reusing the scores of {label} from an earlier run[/dim]")
    return stored


class ScoreStore:
    """Per (model, dataset) scores kept on disk as they finish, so a re-run after an interruption
    recomputes only what is missing. A key covers everything the scores depend on: the policy's and
    the reference's weights, tokenizer and config (their fingerprints), the exact token ids, pair
    ids and `max_length` scored, and the compute dtype; anything else changed makes a new key, so a
    stale entry never hits."""

    def __init__(self, directory: Path) -> None:
        self.files = JsonStore(directory)
        self.completions = CompletionStore(directory)
        """The rows of the run's labelled completions, in the same directory under keys of their own."""

    def load(self, key: str) -> ScoredDataset | None:
        stored = self.files.load(key)
        try:
            if "mode" not in stored:
                return None  # stored before scoring modes were recorded: score again, so the run records its mode
            mode = ScoringMode.model_validate(stored["mode"]) if stored.get("mode") else None
            rows = [PairScore(**row) for row in stored["rows"]]
            if any(r.prompt_key is None for r in rows):
                return None  # stored before prompts were recorded: score again, so pairs can be clustered
            if any(r.logp_chosen_shared is None and not r.is_reward_model for r in rows):
                return None  # stored before LD-DPO's shared tokens were summed: score again
            return ScoredDataset(rows, TokenizationAudit.model_validate(stored["audit"]), mode)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # absent or unreadable: score again and overwrite

    def save(self, key: str, scored: ScoredDataset) -> None:
        mode = scored.mode.model_dump(mode="json") if scored.mode is not None else None
        rows = [row_record(r) for r in scored.rows]
        self.files.save(key, {"rows": rows, "audit": scored.audit.model_dump(mode="json"), "mode": mode})


class CompletionStore:
    """Per (model, unpaired dataset) rows kept on disk beside the pairs' (`ScoreStore`), under keys of their own: a
    rerun scores only the labelled completions whose model, reference, tokens or settings changed."""

    def __init__(self, directory: Path) -> None:
        self.files = JsonStore(directory)

    def load(self, key: str) -> tuple[list[CompletionScore], TokenizationAudit] | None:
        stored = self.files.load(key)
        try:
            rows = [CompletionScore(**row) for row in stored["rows"]]
            return rows, TokenizationAudit.model_validate(stored["audit"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # absent or unreadable: score again and overwrite

    def save(self, key: str, rows: list[CompletionScore], audit: TokenizationAudit) -> None:
        if not is_main_process():
            return
        records = [dataclasses.asdict(r) for r in rows]
        self.files.save(key, {"kind": "completions", "rows": records, "audit": audit.model_dump(mode="json")})
