"""Labelled completions (KTO style) tokenized as TRL's `KTOTrainer` tokenizes them, with the KL partners its
reference point is estimated from, scored through the same passes as pairs.

Tokenization follows TRL 1.16 `KTOTrainer._prepare_dataset`, one completion at a time: a conversational
prompt is rendered with the chat template and a generation prompt, prompt+completion is rendered whole,
and the completion is every token after their common prefix; a standard completion gets the EOS string
when it lacks it, and prompt and prompt+completion are encoded with the tokenizer's defaults. Rows
whose prompt alone fills `max_length` are dropped, as TRL drops them (and counted); longer rows lose
the end of their completion.

KTO's KL reference point. TRL estimates KL(π‖π_ref) from mismatched pairs: after the rows are
tokenized (and the over-long ones dropped), each consecutive group of `per_device_train_batch_size`
rows (`kl_group` here, 8 by default as in TRL) is rotated by one, so row i of a group is also scored
with the completion of row i − 1 after its own prompt (the first row with the group's last completion).
TRL builds these groups the same way for its eval dataset. The trainer then logs, per eval batch,
z = max(0, mean(log π(y'|x) − log π_ref(y'|x))) over the batch, and the eval log is the mean of
per-batch values, so it moves with the eval batch size. evalkit keeps TRL's groups and pools z over
every row of a dataset at once: exactly what `KTOTrainer.evaluate()` logs with one eval batch holding
the whole dataset, and the same at any batch size evalkit scores with. The KL partners are a pair's
second completion for the scoring passes (one prompt, two completions), so prompts are computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import Text
from evalkit.data.rendering import PLAIN, Rendering
from evalkit.data.unpaired import UnpairedExample
from evalkit.results.completions import CompletionScore
from evalkit.scoring.dataset import TokenizedSet, model_logps
from evalkit.scoring.score import ModelLogps, TokenizedPair, common_prefix, encode_text, prompt_key

KL_GROUP = 8
"""Rows per KL group: TRL's default `per_device_train_batch_size`, the size its KTO data are rotated in."""


@dataclass(frozen=True)
class TokenizedCompletion:
    """Token ids of one labelled completion, as KTOTrainer's `prompt_ids` and `completion_ids`."""

    id: str
    subset: str
    label: bool
    prompt_ids: list[int]
    completion_ids: list[int]
    prompt_is_prefix: bool
    """False when the prompt rendered alone is not a token prefix of prompt+completion."""


@dataclass(frozen=True)
class TokenizedCompletions:
    """A dataset's completions tokenized for one tokenizer, each scorable one with its KL partner."""

    n_rows: int
    scorable: list[TokenizedCompletion]
    partnered: list[TokenizedPair]
    """One per scorable row: its prompt, its completion (`chosen_ids`) and its KL partner's (`rejected_ids`)."""
    too_long: list[str]
    """Ids of rows whose prompt alone fills `max_length`: dropped, as TRL drops them."""
    prompt_not_prefix: int

    def as_pairs(self) -> TokenizedSet:
        """The rows as the pairs they are scored as: each completion a pair's first answer, its KL partner's the
        second, so prompts run once (in process) and every path that scores pairs scores them (a server too)."""
        return TokenizedSet(len(self.partnered), self.partnered, [], 0, 0)


def tokenize_completion(
    example: UnpairedExample, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN
) -> TokenizedCompletion:
    """Token ids of `example`, identical to what TRL's KTOTrainer feeds the model (chats rendered with `rendering`)."""
    prompt, completion = example.prompt, example.completion
    if example.is_conversational and tokenizer.chat_template is None:
        prompt, completion = _plain_text(example)
    if isinstance(completion, str):
        eos = tokenizer.eos_token or ""
        completion = completion if completion.endswith(eos) else completion + eos
    prompt_ids = encode_text(tokenizer, prompt, rendering, add_generation_prompt=True)
    whole = encode_text(tokenizer, _join(prompt, completion), rendering)
    length = common_prefix(prompt_ids, whole)
    return TokenizedCompletion(
        example.id, example.subset, example.label, prompt_ids[:length], whole[length:], length == len(prompt_ids)
    )


def tokenize_completions(
    examples: Sequence[UnpairedExample],
    tokenizer: PreTrainedTokenizerBase,
    rendering: Rendering,
    max_length: int,
    kl_group: int = KL_GROUP,
) -> TokenizedCompletions:
    """Every example tokenized, the rows whose prompt fills `max_length` dropped, the rest given KL partners."""
    tokenized = [tokenize_completion(e, tokenizer, rendering) for e in examples]
    scorable = [t for t in tokenized if len(t.prompt_ids) < max_length]
    return TokenizedCompletions(
        n_rows=len(examples),
        scorable=scorable,
        partnered=kl_partnered(scorable, kl_group),
        too_long=[t.id for t in tokenized if len(t.prompt_ids) >= max_length],
        prompt_not_prefix=sum(not t.prompt_is_prefix for t in tokenized),
    )


def kl_partnered(rows: Sequence[TokenizedCompletion], kl_group: int) -> list[TokenizedPair]:
    """Each row with the completion of the row before it in its group of `kl_group` (the first row with the
    group's last): TRL's `KL_completion_ids`. A group of one row is its own partner, as in TRL."""
    out = []
    for start in range(0, len(rows), kl_group):
        group = rows[start : start + kl_group]
        for row, partner in zip(group, [group[-1], *group[:-1]], strict=True):
            out.append(
                TokenizedPair(
                    row.id, row.subset, row.prompt_ids, row.completion_ids, partner.completion_ids, row.prompt_is_prefix
                )
            )
    return out


def completion_logps(
    model: PreTrainedModel, tokens: TokenizedCompletions, pad_token_id: int, settings: ScoringSpec, label: str
) -> ModelLogps:
    """`model`'s summed log-probs of each scorable completion (`chosen`) and of its KL partner (`rejected`)."""
    return model_logps(model, tokens.as_pairs(), pad_token_id, settings, label)


def completion_scores(
    model: str, tokens: TokenizedCompletions, policy: ModelLogps, reference: ModelLogps | None
) -> list[CompletionScore]:
    """Zip a model's log-probs (and the reference's, on the same tokens) into per-completion rows."""
    rows = []
    for index, (row, logps) in enumerate(zip(tokens.scorable, policy.logps, strict=True)):
        ref = reference.logps[index] if reference is not None else None
        rows.append(
            CompletionScore(
                id=row.id,
                subset=row.subset,
                model=model,
                label=row.label,
                logp=logps.chosen,
                n_tokens=logps.n_tokens_chosen,
                truncated=logps.truncated,
                kl_logp=logps.rejected,
                kl_n_tokens=logps.n_tokens_rejected,
                ref_logp=ref.chosen if ref is not None else None,
                ref_kl_logp=ref.rejected if ref is not None else None,
                prompt_key=prompt_key(row.prompt_ids),
            )
        )
    return rows


def _join(prompt: Text, completion: Text) -> Text:
    if isinstance(prompt, list) and isinstance(completion, list):
        return prompt + completion
    assert isinstance(prompt, str) and isinstance(completion, str), "an example is all-text or all-messages"
    return prompt + completion


def _plain_text(example: UnpairedExample) -> tuple[str, str]:
    """The plain-text prompt and completion of a conversational example, for a tokenizer with no chat template:
    as `evalkit.data.pairs.as_plain_text` makes them for pairs."""
    assert isinstance(example.prompt, list) and isinstance(example.completion, list)
    prompt = example.prompt_text if example.prompt_text is not None else example.prompt[-1]["content"]
    text = example.completion[-1]["content"]
    joined = not prompt or prompt[-1].isspace() or not text or text[0].isspace()
    return prompt, text if joined else "\n" + text
