"""Scoring a suite's unpaired datasets (KTO style: labelled completions) under one model, beside the reference.

Every completion is tokenized as TRL's `KTOTrainer` tokenizes it and scored with its KL partner
(`evalkit.scoring.unpaired`), under the model and under the reference on the model's own tokens (an adapter's
reference is its base, adapter disabled), so each row carries what a reward β·(ℓ − ℓ_ref) and KTO's KL point
need. Which reward and which metrics a model gets is decided later, from its objective
(`evalkit.metrics.unpaired.suite_unpaired_metrics`). A run's finished rows are kept in its output directory's store,
as its pairs' are, so a rerun scores only what changed. In a served run (`scoring.backend: vllm`) each completion and
its KL partner are scored on the model's server, as a pair's two answers are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from evalkit.checkpoints import Checkpoint
from evalkit.config.suite import Suite
from evalkit.data.unpaired import UnpairedExample
from evalkit.pipeline.served import ServedRun, checkpoint_logps, reference_logps
from evalkit.results.completions import CompletionScore
from evalkit.results.schema import TokenizationAudit
from evalkit.scoring.cache import CompletionStore, reused, store_key
from evalkit.scoring.score import ModelLogps
from evalkit.scoring.unpaired import TokenizedCompletions, completion_scores, tokenize_completions


@dataclass(frozen=True)
class ScoredCompletions:
    """One model's rows on one unpaired dataset, and what tokenization did (counted per completion)."""

    rows: list[CompletionScore]
    audit: TokenizationAudit


def score_completions(
    suite: Suite,
    dataset: str,
    examples: list[UnpairedExample],
    policy: Checkpoint,
    reference: Checkpoint | None,
    reference_cache: dict[str, ModelLogps],
    store: CompletionStore | None = None,
    served: ServedRun | None = None,
) -> ScoredCompletions:
    """`policy`'s log-probs of every completion of `dataset` and its KL partner, and the reference's on the same
    tokens (none for the reference itself: its rewards are zero by definition). The reference's passes are kept in
    `reference_cache` by the exact tokens, so models sharing a tokenizer cost one reference pass in all; the rows,
    in `store` under a key of both models' fingerprints, the exact tokens, ids and labels, and the compute dtype."""
    settings = suite.scoring
    tokens = tokenize_completions(examples, policy.tokenizer, policy.rendering, settings.max_length)
    label = f"{policy.spec.name} on {dataset}"
    key = _tokens_key(tokens, settings.max_length)
    against = reference if reference is not None and reference is not policy else None
    references = against.info.fingerprint if against is not None else "none"
    rows_of = [[e.id, e.subset, e.label] for e in examples]
    identity = f"completions|{policy.info.fingerprint}|{references}|{key}|{json.dumps(rows_of)}|{settings.dtype}"
    computed_with = [policy, *([against] if against is not None else [])]
    kept = store_key(identity, computed_with, settings.backend if served is not None else None)
    stored = reused(store.load if store is not None else None, kept, label)
    if stored is not None:
        rows, audit = stored
        renamed = [replace(r, model=policy.spec.name) for r in rows]
        return ScoredCompletions(renamed, audit.model_copy(update={"model": policy.spec.name, "dataset": dataset}))
    # Each completion and its KL partner are scored as a pair's two answers, in process or on the model's server.
    pairs = tokens.as_pairs()
    own = checkpoint_logps(policy, pairs, settings, label, served)
    ref: ModelLogps | None = None
    if against is not None:
        if key not in reference_cache:
            reference_cache[key] = reference_logps(policy, against, pairs, settings, label, served)
        ref = reference_cache[key]
    rows = completion_scores(policy.spec.name, tokens, own, ref)
    audit = TokenizationAudit(
        dataset=dataset,
        model=policy.spec.name,
        n_pairs=tokens.n_rows,
        n_scored=len(tokens.scorable),
        truncated=sum(r.truncated for r in rows),
        prompt_too_long=tokens.too_long,
        prompt_not_prefix=tokens.prompt_not_prefix,
    )
    if store is not None and kept is not None:
        store.save(kept, rows, audit)
    return ScoredCompletions(rows, audit)


def _tokens_key(tokens: TokenizedCompletions, max_length: int) -> str:
    """The reference's log-probs depend on the token ids (each completion and its KL partner) and `max_length`."""
    digest = hashlib.sha256(f"completions|{max_length}".encode())
    for p in tokens.partnered:
        digest.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return digest.hexdigest()
