"""Scoring a suite's unpaired datasets (KTO style: labelled completions) under one model, beside the reference.

Every completion is tokenized as TRL's `KTOTrainer` tokenizes it and scored with its KL partner
(`evalkit.scoring.unpaired`), under the model and under the reference on the model's own tokens (an adapter's
reference is its base, adapter disabled), so each row carries what a reward β·(ℓ − ℓ_ref) and KTO's KL point
need. Which reward and which metrics a model gets is decided later, from its objective
(`evalkit.metrics.unpaired.suite_unpaired_metrics`). Unpaired scores are computed in this process and not kept
across runs (pairs are, `scoring.cache`); a served run (`scoring.backend: vllm`) refuses unpaired datasets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from evalkit.checkpoints import LoadedModel, ServedCheckpoint
from evalkit.config.suite import Suite
from evalkit.data.unpaired import UnpairedExample
from evalkit.errors import EvalkitError
from evalkit.results.completions import CompletionScore
from evalkit.results.schema import TokenizationAudit
from evalkit.scoring.dataset import pad_token_id
from evalkit.scoring.score import ModelLogps
from evalkit.scoring.unpaired import TokenizedCompletions, completion_logps, completion_scores, tokenize_completions

Checkpoint = LoadedModel | ServedCheckpoint


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
) -> ScoredCompletions:
    """`policy`'s log-probs of every completion of `dataset` and its KL partner, and the reference's on the same
    tokens (none for the reference itself: its rewards are zero by definition). The reference's passes are kept in
    `reference_cache` by the exact tokens, so models sharing a tokenizer cost one reference pass in all."""
    if not isinstance(policy, LoadedModel) or isinstance(reference, ServedCheckpoint):
        raise EvalkitError(
            f"datasets.{dataset}: unpaired data is scored in this process; set scoring.backend: hf "
            "or score this dataset in a suite of its own"
        )
    settings = suite.scoring
    tokens = tokenize_completions(examples, policy.tokenizer, policy.rendering, settings.max_length)
    label = f"{policy.spec.name} on {dataset}"
    pad = pad_token_id(policy.tokenizer)
    own = completion_logps(policy.model, tokens, pad, settings, label)
    ref: ModelLogps | None = None
    if reference is not None and reference is not policy:
        key = _tokens_key(tokens, settings.max_length)
        if key not in reference_cache:
            if policy.shares_reference:
                with policy.as_reference() as model:
                    reference_cache[key] = completion_logps(model, tokens, pad, settings, f"reference for {label}")
            else:
                reference_cache[key] = completion_logps(
                    reference.model, tokens, pad, settings, f"reference for {label}"
                )
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
    return ScoredCompletions(rows, audit)


def _tokens_key(tokens: TokenizedCompletions, max_length: int) -> str:
    """The reference's log-probs depend on the token ids (each completion and its KL partner) and `max_length`."""
    digest = hashlib.sha256(f"completions|{max_length}".encode())
    for p in tokens.partnered:
        digest.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return digest.hexdigest()
