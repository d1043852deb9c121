"""KL partners and KTO tokenization, worked by hand."""

from transformers import PreTrainedTokenizerFast

from evalkit.data.rendering import PLAIN
from evalkit.data.unpaired import UnpairedExample
from evalkit.scoring.unpaired import TokenizedCompletion, kl_partnered, tokenize_completion, tokenize_completions


def completion(key: str) -> TokenizedCompletion:
    return TokenizedCompletion(key, "all", True, [0], [ord(key)], True)


def test_each_group_is_rotated_by_one() -> None:
    """TRL: (x1, y1), …, (xn, yn) → (x1, yn), (x2, y1), …, (xn, yn−1) within each group; a group of one is its
    own partner."""
    rows = [completion(k) for k in "abcde"]
    partners = [(p.id, chr(p.rejected_ids[0])) for p in kl_partnered(rows, 2)]
    assert partners == [("a", "b"), ("b", "a"), ("c", "d"), ("d", "c"), ("e", "e")]
    assert [chr(p.rejected_ids[0]) for p in kl_partnered(rows, 8)] == ["e", "a", "b", "c", "d"]


def test_standard_completions_get_eos_and_long_prompts_are_dropped_before_grouping(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    short = UnpairedExample("s", "2+2=", " 4", True)
    tokens = tokenize_completion(short, tiny_tokenizer)
    assert tokens.completion_ids[-1] == tiny_tokenizer.eos_token_id
    assert tokens.prompt_ids + tokens.completion_ids == tiny_tokenizer("2+2= 4" + tiny_tokenizer.eos_token)["input_ids"]
    long = UnpairedExample("l", "word " * 50, " 5", False)
    kept = tokenize_completions([short, long, short], tiny_tokenizer, PLAIN, 20, 8)
    assert kept.too_long == ["l"] and [p.id for p in kept.partnered] == ["s", "s"]
