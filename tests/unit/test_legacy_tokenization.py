"""The legacy tokenization (TRL's CPOTrainer and ORPOTrainer) on a six-letter tokenizer whose ids are worked out by
hand: `a`=3, `b`=4, `c`=5, space=6, `ab`=7 (the one merge), end-of-turn=8; BOS=0, EOS=1. It adds no special
tokens itself (no post-processor), as GPT-2's does not."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

from evalkit.config.objectives import (
    AlphapoObjective,
    CpoObjective,
    DpoObjective,
    KtoObjective,
    OrpoObjective,
    SimpoObjective,
    tokenization_of,
)
from evalkit.data.pairs import PreferencePair
from evalkit.scoring.legacy import legacy_texts, tokenize_pair_legacy
from evalkit.scoring.score import tokenize_pair

BOS, EOS, A, B, C, SPACE, AB, EOT = 0, 1, 3, 4, 5, 6, 7, 8


@pytest.fixture(scope="module")
def letters() -> PreTrainedTokenizerFast:
    vocab = {"<s>": BOS, "</s>": EOS, "<pad>": 2, "a": A, "b": B, "c": C, " ": SPACE, "ab": AB, "<eot>": EOT}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(BPE(vocab, [("a", "b")])), bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<eot>"]})
    assert tokenizer("a c")["input_ids"] == [A, SPACE, C]  # no BOS from the tokenizer itself
    return tokenizer


def test_bos_before_the_prompt_and_eos_after_each_answer(letters: PreTrainedTokenizerFast) -> None:
    t = tokenize_pair_legacy(PreferencePair("p", "a c", " b", " c"), letters)
    assert (t.prompt_ids, t.chosen_ids, t.rejected_ids) == ([BOS, A, SPACE, C], [SPACE, B, EOS], [SPACE, C, EOS])
    assert t.prompt_is_prefix and not t.doubled_bos
    dpo = tokenize_pair(PreferencePair("p", "a c", " b", " c"), letters)
    assert dpo.prompt_ids == [A, SPACE, C]  # DPOTrainer adds no BOS the tokenizer does not add
    assert (dpo.chosen_ids, dpo.rejected_ids) == (t.chosen_ids, t.rejected_ids)


def test_a_bos_or_eos_already_there_is_not_added_again(letters: PreTrainedTokenizerFast) -> None:
    t = tokenize_pair_legacy(PreferencePair("p", "<s>a", " b</s>", " c"), letters)
    assert (t.prompt_ids, t.chosen_ids, t.rejected_ids) == ([BOS, A], [SPACE, B, EOS], [SPACE, C, EOS])


def test_a_merge_across_the_boundary_moves_the_prompts_last_token_into_the_answer(
    letters: PreTrainedTokenizerFast,
) -> None:
    # "a" + "b" is one token `ab`: both answers merge, so the prompt is BOS alone and both answers start with `ab`.
    both = tokenize_pair_legacy(PreferencePair("p", "a", "b", "bc"), letters)
    assert (both.prompt_ids, both.chosen_ids, both.rejected_ids) == ([BOS], [AB, EOS], [AB, C, EOS])
    assert not both.prompt_is_prefix
    # Only the chosen answer merges: the trainer masks `a` in the rejected sequence; the shared prompt cannot, so
    # `a` is scored with the rejected answer, and the pair is counted as one whose prompt is not a prefix.
    one = tokenize_pair_legacy(PreferencePair("p", "a", "b", "c"), letters)
    assert (one.prompt_ids, one.chosen_ids, one.rejected_ids) == ([BOS], [AB, EOS], [A, C, EOS])
    assert not one.prompt_is_prefix


def test_a_chat_ends_its_turns_with_the_end_of_turn_token_then_eos(letters: PreTrainedTokenizerFast) -> None:
    letters.chat_template = "{% for m in messages %}{{ m['content'] }}<eot>{% endfor %}"
    try:
        pair = PreferencePair(
            "p",
            [{"role": "user", "content": "a c"}],
            [{"role": "assistant", "content": "b"}],
            [{"role": "assistant", "content": "c"}],
        )
        assert legacy_texts(pair, letters) == ("a c<eot>", "b<eot>", "c<eot>")
        t = tokenize_pair_legacy(pair, letters)
        assert (t.prompt_ids, t.chosen_ids, t.rejected_ids) == ([BOS, A, SPACE, C, EOT], [B, EOT, EOS], [C, EOT, EOS])
        dpo = tokenize_pair(pair, letters)  # the template's tokens only: no BOS, the turn ends at `<eot>`
        assert (dpo.prompt_ids, dpo.chosen_ids, dpo.rejected_ids) == ([A, SPACE, C, EOT], [B, EOT], [C, EOT])
    finally:
        letters.chat_template = None


def test_a_prompt_ending_in_an_assistant_message_is_continued(letters: PreTrainedTokenizerFast) -> None:
    letters.chat_template = (
        "{% for m in messages %}{{ m['content'] }}{% if not (loop.last and continue_final_message) %}<eot>"
        "{% endif %}{% endfor %}"
    )
    try:
        pair = PreferencePair(
            "p",
            [{"role": "user", "content": "c"}, {"role": "assistant", "content": "a"}],
            [{"role": "assistant", "content": "b"}],
            [{"role": "assistant", "content": "c"}],
        )
        # TRL renders the prompt with its final message left open, then keeps the characters prompt+answer share.
        assert legacy_texts(pair, letters) == ("c<eot>a", "<eot>b<eot>", "<eot>c<eot>")
    finally:
        letters.chat_template = None


def test_the_cpo_family_and_orpo_tokenize_the_legacy_way_dpo_and_kto_as_dpo() -> None:
    legacy = [
        CpoObjective(name="cpo"),
        SimpoObjective(name="simpo"),
        AlphapoObjective(name="alphapo", alpha=0.25),
        OrpoObjective(name="orpo"),
    ]
    assert [tokenization_of(o) for o in legacy] == ["legacy"] * 4
    assert [tokenization_of(o) for o in (DpoObjective(name="dpo"), KtoObjective(name="kto"), None)] == ["dpo"] * 3
