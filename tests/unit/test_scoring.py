import math
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.data import PreferencePair
from evalkit.scoring import TokenizedPair, as_plain_text, fits, pair_scores, score_pairs, tokenize_pair
from evalkit.world.pairs import generate_pairs

PAD = 0


class BigramModel(torch.nn.Module):
    """A model whose next-token distribution depends only on the current token.

    Rows are P(next | current) over the vocabulary {0: pad, 1: a, 2: b, 3: c}, so every
    expected log-prob below can be worked out by hand.
    """

    TABLE = torch.tensor(
        [
            [0.25, 0.25, 0.25, 0.25],  # after pad (never scored)
            [0.125, 0.5, 0.25, 0.125],  # after a
            [0.125, 0.125, 0.5, 0.25],  # after b
            [0.0625, 0.0625, 0.125, 0.75],  # after c
        ]
    )
    device = torch.device("cpu")

    def forward(self, input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.log(self.TABLE[input_ids]))  # (B, T, V)


def pair(pair_id: str, prompt: list[int], chosen: list[int], rejected: list[int]) -> TokenizedPair:
    return TokenizedPair(pair_id, "all", prompt, chosen, rejected, prompt_is_prefix=True)


def test_summed_completion_logps_match_hand_computation() -> None:
    # prompt "a", chosen "b c", rejected "c c":
    #   log p(chosen)   = log P(b|a) + log P(c|b) = log 1/4 + log 1/4 = -2·log 4
    #   log p(rejected) = log P(c|a) + log P(c|c) = log 1/8 + log 3/4
    # The prompt token itself is never scored.
    (scores,) = score_pairs(BigramModel(), [pair("x", [1], [2, 3], [3, 3])], 64, 4, PAD, "test")
    assert scores.chosen == pytest.approx(-2 * math.log(4), abs=1e-6)
    assert scores.rejected == pytest.approx(math.log(1 / 8) + math.log(3 / 4), abs=1e-6)
    assert (scores.n_tokens_chosen, scores.n_tokens_rejected, scores.truncated) == (2, 2, False)


def test_padding_beside_a_longer_pair_changes_nothing() -> None:
    short = pair("s", [1], [2], [3])  # log P(b|a) = log 1/4 ; log P(c|a) = log 1/8
    long = pair("l", [1, 2, 3, 3], [1, 1, 1], [2, 2, 2, 2])
    alone = score_pairs(BigramModel(), [short], 64, 1, PAD, "test")[0]
    batched = score_pairs(BigramModel(), [short, long], 64, 2, PAD, "test")[0]
    assert alone == batched
    assert alone.chosen == pytest.approx(math.log(1 / 4)) and alone.rejected == pytest.approx(math.log(1 / 8))


def test_max_length_cuts_the_end_of_the_completion() -> None:
    # max_length 3 keeps "a b c" of "a b c c": the chosen keeps 2 of its 3 tokens.
    (scores,) = score_pairs(BigramModel(), [pair("t", [1], [2, 3, 3], [3])], 3, 1, PAD, "test")
    assert scores.chosen == pytest.approx(math.log(1 / 4) + math.log(1 / 4))
    assert scores.n_tokens_chosen == 2 and scores.n_tokens_rejected == 1 and scores.truncated


def test_a_prompt_that_fills_max_length_does_not_fit() -> None:
    assert fits(pair("p", [1, 2], [3], [3]), max_length=3)
    assert not fits(pair("p", [1, 2, 3], [3], [3]), max_length=3)


def test_conversational_pair_tokenizes_like_trl(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    p = generate_pairs(1, seed=0)[0]
    t = tokenize_pair(p, tiny_tokenizer)
    prompt = tiny_tokenizer.apply_chat_template(p.prompt, add_generation_prompt=True, tokenize=False)
    assert tiny_tokenizer.decode(t.prompt_ids) == prompt
    assert tiny_tokenizer.decode(t.chosen_ids) == p.chosen[0]["content"] + "<|end|>"  # type: ignore[index]
    assert tiny_tokenizer.decode(t.rejected_ids) == p.rejected[0]["content"] + "<|end|>"  # type: ignore[index]
    assert t.prompt_is_prefix


def test_standard_pair_gets_one_bos_and_one_eos(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    t = tokenize_pair(PreferencePair("s", "What is 2 plus 3?", " 2 + 3 = 5.", " 2 + 3 = 6.<|end|>"), tiny_tokenizer)
    assert t.prompt_ids[0] == tiny_tokenizer.bos_token_id
    assert t.prompt_ids.count(tiny_tokenizer.bos_token_id) == 1
    assert t.chosen_ids[-1] == t.rejected_ids[-1] == tiny_tokenizer.eos_token_id
    assert t.rejected_ids.count(tiny_tokenizer.eos_token_id) == 1  # already there: not appended twice


def test_real_model_scores_equal_unbatched_forward_and_do_not_depend_on_batch_size(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    pairs = [tokenize_pair(p, tiny_tokenizer) for p in generate_pairs(4, seed=5)]
    by_size = {size: score_pairs(tiny_model, pairs, 1024, size, tiny_tokenizer.pad_token_id, "t") for size in (1, 3, 8)}
    for size in (3, 8):
        for a, b in zip(by_size[1], by_size[size], strict=True):
            assert a.chosen == pytest.approx(b.chosen, abs=1e-5)
            assert a.rejected == pytest.approx(b.rejected, abs=1e-5)
    # Against a plain forward of one sequence with no padding at all.
    first = pairs[0]
    ids = torch.tensor([first.prompt_ids + first.chosen_ids])
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(ids).logits[0, :-1].float(), -1)
    targets = ids[0, 1:]
    expected = logp[torch.arange(len(targets)), targets][len(first.prompt_ids) - 1 :].sum().item()
    assert by_size[1][0].chosen == pytest.approx(expected, abs=1e-5)


def test_pair_scores_carry_reference_logps() -> None:
    p = pair("x", [1], [2], [3])
    (policy,) = score_pairs(BigramModel(), [p], 64, 1, PAD, "t")
    (row,) = pair_scores("m", [p], [policy], [policy])
    assert row.model == "m" and row.ref_logp_chosen == row.logp_chosen
    assert pair_scores("m", [p], [policy], None)[0].ref_logp_chosen is None


def test_left_and_right_padding_give_the_same_logps(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    pairs = [tokenize_pair(p, tiny_tokenizer) for p in generate_pairs(4, seed=6)]
    pad = tiny_tokenizer.pad_token_id
    right = score_pairs(tiny_model, pairs, 1024, 8, pad, "t", padding_side="right")
    left = score_pairs(tiny_model, pairs, 1024, 8, pad, "t", padding_side="left")
    for a, b in zip(right, left, strict=True):
        assert a.chosen == pytest.approx(b.chosen, abs=1e-5)
        assert a.rejected == pytest.approx(b.rejected, abs=1e-5)


def test_without_a_chat_template_messages_fall_back_to_plain_text(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    plain = tiny_tokenizer.__class__(
        tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|end|>", bos_token="<s>"
    )
    assert plain.chat_template is None
    pair = PreferencePair(
        "u",
        [{"role": "user", "content": "Name a fruit."}],
        [{"role": "assistant", "content": " An apple."}],
        [{"role": "assistant", "content": " A car."}],
        prompt_text="Name a fruit.",
    )
    as_text = tokenize_pair(PreferencePair("u", "Name a fruit.", " An apple.", " A car."), plain)
    assert tokenize_pair(pair, plain) == as_text
    assert plain.decode(as_text.chosen_ids) == " An apple.<|end|>"
    # Without whitespace at the boundary, a newline keeps prompt and answer apart.
    glued = PreferencePair(
        "v", pair.prompt, [{"role": "assistant", "content": "Pear."}], pair.rejected, prompt_text="Fruit?"
    )
    assert as_plain_text(glued).chosen == "\nPear." and as_plain_text(glued).rejected == " A car."


def test_doubled_bos_is_flagged(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    assert not tokenize_pair(PreferencePair("a", "Hello", " there", " you"), tiny_tokenizer).doubled_bos
    # The text already starts with BOS and the tokenizer adds another.
    assert tokenize_pair(PreferencePair("b", "<s>Hello", " there", " you"), tiny_tokenizer).doubled_bos
