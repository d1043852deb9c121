"""Pairs tokenized as TRL 1.16's CPOTrainer and ORPOTrainer tokenize them (`tokenize_row`), for CPO, SimPO, AlphaPO
and ORPO models, so that their log-probs equal what their trainer logged.

Those trainers predate DPOTrainer's tokenization and keep their own (`trl/experimental/{cpo,orpo}`):
- conversational rows are first rendered to text (`maybe_apply_chat_template`): the prompt with a generation prompt
  (or continuing a final assistant message), each answer the text of prompt+answer past the prompt's characters;
- the prompt is encoded with no special tokens, each answer as `enc(prompt + answer)` past the prompt's tokens, one
  token earlier when the prompt's last token merged with the answer's first (`build_tokenized_answer`);
- the BOS id is put before the prompt when the tokenizer has one and the prompt does not start with it, the EOS id
  after each answer when it does not end with it (`add_bos_token_if_needed`, `add_eos_token_if_needed`);
- `max_length` cuts the end of each answer (CPOConfig and ORPOConfig 1.16 have no `max_prompt_length`).

Where this differs from DPOTrainer's tokens: a tokenizer that has a BOS token its post-processor does not add
(GPT-2 style) gets a BOS here and none under DPO; a chat template whose turns end in a token other than EOS gets an
EOS after it here and none under DPO; the EOS is an id here and a string under DPO.

One thing a shared prompt cannot hold: when the prompt's last token merges with one answer's first token but not
with the other's, the trainer masks that prompt token in one answer and not in the other. evalkit's pair has one
prompt (their common prefix), so it scores that token with the unmerged answer; such pairs are counted in the
audit's `prompt_not_prefix`, as a merge across the boundary is under DPO's tokenization.
"""

from __future__ import annotations

from itertools import takewhile

from transformers import PreTrainedTokenizerBase

from evalkit.data.pairs import PreferencePair, as_plain_text
from evalkit.data.rendering import PLAIN, Rendering, chat_text
from evalkit.scoring.score import TokenizedPair, common_prefix


def tokenize_pair_legacy(
    pair: PreferencePair, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN
) -> TokenizedPair:
    """Token ids for `pair`, identical to what TRL's CPOTrainer and ORPOTrainer feed the model (chats rendered with
    `rendering`)."""
    prompt, chosen, rejected = legacy_texts(pair, tokenizer, rendering)
    encoded = _encode(tokenizer, prompt)
    chosen_prompt, chosen_ids = _answer_ids(tokenizer, prompt, encoded, chosen)
    rejected_prompt, rejected_ids = _answer_ids(tokenizer, prompt, encoded, rejected)
    shared = common_prefix(chosen_prompt, rejected_prompt)
    chosen_ids = chosen_prompt[shared:] + chosen_ids
    rejected_ids = rejected_prompt[shared:] + rejected_ids
    prompt_ids = chosen_prompt[:shared]
    bos = tokenizer.bos_token_id
    if bos is not None and (not prompt_ids or prompt_ids[0] != bos):
        prompt_ids = [bos, *prompt_ids]
    return TokenizedPair(
        id=pair.id,
        subset=pair.subset,
        prompt_ids=prompt_ids,
        chosen_ids=chosen_ids,
        rejected_ids=rejected_ids,
        prompt_is_prefix=len(chosen_prompt) == len(rejected_prompt) == len(encoded),
        doubled_bos=bos is not None and (prompt_ids + chosen_ids)[:2] == [bos, bos],
    )


def legacy_texts(
    pair: PreferencePair, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN
) -> tuple[str, str, str]:
    """Prompt, chosen and rejected as the text the trainers tokenize (TRL's `maybe_apply_chat_template` for chats;
    a chat scored with a tokenizer that has no template falls back to plain text, as DPO scoring does)."""
    if pair.is_conversational and tokenizer.chat_template is None:
        pair = as_plain_text(pair)
    if not pair.is_conversational:
        assert isinstance(pair.prompt, str) and isinstance(pair.chosen, str) and isinstance(pair.rejected, str)
        return pair.prompt, pair.chosen, pair.rejected
    assert isinstance(pair.prompt, list) and isinstance(pair.chosen, list) and isinstance(pair.rejected, list)
    continues = bool(pair.prompt) and pair.prompt[-1].get("role") == "assistant"
    prompt = chat_text(tokenizer, pair.prompt, rendering, add_generation_prompt=not continues, continues=continues)
    whole_chosen = chat_text(tokenizer, pair.prompt + pair.chosen, rendering)
    whole_rejected = chat_text(tokenizer, pair.prompt + pair.rejected, rendering)
    for whole in (whole_chosen, whole_rejected):  # the prompt's characters both renderings share
        prompt = "".join(a for a, _ in takewhile(lambda ab: ab[0] == ab[1], zip(prompt, whole, strict=False)))
    return prompt, whole_chosen[len(prompt) :], whole_rejected[len(prompt) :]


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _answer_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: str, prompt_ids: list[int], answer: str
) -> tuple[list[int], list[int]]:
    """The prompt's and the answer's ids in `enc(prompt + answer)` (`build_tokenized_answer`), the EOS id after the
    answer unless it ends with it (`add_eos_token_if_needed`)."""
    whole = _encode(tokenizer, prompt + answer)
    start = len(prompt_ids)
    if whole[:start] != prompt_ids:  # the prompt's last token merged with the answer's first
        start -= 1
    answer_ids = whole[start:]
    eos = tokenizer.eos_token_id
    if eos is not None and (not answer_ids or answer_ids[-1] != eos):
        answer_ids = [*answer_ids, eos]
    return whole[:start], answer_ids
