"""One dataset under one model: its pairs tokenized as TRL tokenizes them, the model's log-probs on those that fit,
and per-pair rows with the tokenization audit. Suite runs (with their caches), `evalkit.score` and the training
callback all score a dataset through these steps."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair
from evalkit.data.rendering import Rendering
from evalkit.results.pairs import PairScore
from evalkit.results.schema import ScoringMode, Tokenization, TokenizationAudit
from evalkit.scoring.legacy import tokenize_pair_legacy
from evalkit.scoring.score import ModelLogps, TokenizedPair, fits, pair_scores, score_configured, tokenize_pair


@dataclass(frozen=True)
class TokenizedSet:
    """A dataset's pairs tokenized for one tokenizer, split into those that can be scored and those left out."""

    n_pairs: int
    scorable: list[TokenizedPair]
    too_long: list[str]
    """Ids of pairs whose prompt alone fills `max_length`: left out of the metrics, and said so in the audit."""
    prompt_not_prefix: int
    doubled_bos: int
    tokenization: Tokenization = "dpo"
    """Whose tokenization the pairs had (DPOTrainer's, or CPOTrainer's and ORPOTrainer's: `legacy`)."""

    @property
    def fingerprint(self) -> str:
        """sha256 of the ids and tokens scored: equal for the same pairs under the same tokenizer and template."""
        digest = hashlib.sha256()
        for p in self.scorable:
            digest.update(json.dumps([p.id, p.subset, p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class ScoredDataset:
    """Per-pair rows of one model on one dataset, what tokenization did, and how the policy's passes ran."""

    rows: list[PairScore]
    audit: TokenizationAudit
    mode: ScoringMode | None


def tokenize_set(
    pairs: Sequence[PreferencePair],
    tokenizer: PreTrainedTokenizerBase,
    rendering: Rendering,
    max_length: int,
    tokenization: Tokenization = "dpo",
) -> TokenizedSet:
    """`pairs` tokenized exactly as TRL's DPOTrainer does (`legacy`: as its CPOTrainer and ORPOTrainer do, for the
    models they train: `evalkit.config.objectives.tokenization_of`), the ones whose prompt fills `max_length` set
    apart."""
    tokenize = tokenize_pair_legacy if tokenization == "legacy" else tokenize_pair
    tokenized = [tokenize(p, tokenizer, rendering) for p in pairs]
    return TokenizedSet(
        n_pairs=len(pairs),
        scorable=[t for t in tokenized if fits(t, max_length)],
        too_long=[t.id for t in tokenized if not fits(t, max_length)],
        prompt_not_prefix=sum(not t.prompt_is_prefix for t in tokenized),
        doubled_bos=sum(t.doubled_bos for t in tokenized),
        tokenization=tokenization,
    )


def model_logps(
    model: PreTrainedModel,
    tokens: TokenizedSet,
    pad_token_id: int,
    settings: ScoringSpec,
    label: str,
    with_prompt: bool = False,
) -> ModelLogps:
    """`model`'s log-probs on the scorable pairs of `tokens`, with the mode its probes chose (and each prompt's
    log-prob, `with_prompt`, for an objective that reads it: `evalkit.config.objectives.reads_prompt`).

    The model is put in eval mode for the passes (no dropout) and handed back in the mode it came in:
    a trainer's policy goes on training afterwards."""
    was_training = model.training
    try:
        return score_configured(model, tokens.scorable, settings, pad_token_id, label, with_prompt)
    finally:
        model.train(was_training)


def scored_dataset(
    dataset: str, model: str, tokens: TokenizedSet, policy: ModelLogps, reference: ModelLogps | None
) -> ScoredDataset:
    """Zip the policy's (and the reference's) log-probs into per-pair rows, with the tokenization audit."""
    rows = pair_scores(model, tokens.scorable, policy.logps, reference.logps if reference is not None else None)
    audit = TokenizationAudit(
        dataset=dataset,
        model=model,
        n_pairs=tokens.n_pairs,
        n_scored=len(tokens.scorable),
        truncated=sum(s.truncated for s in policy.logps),
        prompt_too_long=tokens.too_long,
        prompt_not_prefix=tokens.prompt_not_prefix,
        doubled_bos=tokens.doubled_bos,
        tokenization=tokens.tokenization,
    )
    mode = policy.mode.model_copy(update={"dataset": dataset}) if policy.mode is not None else None
    return ScoredDataset(rows, audit, mode)


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id padding is written with (masked out by scoring): the pad token, else EOS, as TRL falls back."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    assert pad is not None, "a tokenizer with neither a pad nor an EOS token"
    return int(pad)
