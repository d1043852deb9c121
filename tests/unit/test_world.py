import re

from transformers import PreTrainedTokenizerFast

from evalkit.world.pairs import SUBSETS, arithmetic, formatting, generate_pairs, helpfulness, max_pairs_per_subset


def test_generation_is_deterministic_and_distinct() -> None:
    first, again = generate_pairs(50, seed=1), generate_pairs(50, seed=1)
    assert first == again
    assert generate_pairs(50, seed=2) != first
    assert len({p.id for p in first}) == len(first) == 50 * len(SUBSETS)
    for subset in SUBSETS:
        prompts = [p.prompt[0]["content"] for p in first if p.subset == subset]  # type: ignore[index]
        assert len(set(prompts)) == 50


def test_every_prompt_has_one_good_and_one_different_bad_reply() -> None:
    for exchanges in SUBSETS.values():
        seen = {}
        for e in exchanges():
            assert e.good != e.bad
            assert seen.setdefault(e.prompt, (e.good, e.bad)) == (e.good, e.bad)


def test_arithmetic_prefers_the_true_sum() -> None:
    for e in arithmetic():
        a, b, good = map(int, re.fullmatch(r"(\d+) \+ (\d+) = (\d+)\.", e.good).groups())  # type: ignore[union-attr]
        bad = int(re.fullmatch(r"\d+ \+ \d+ = (\d+)\.", e.bad).group(1))  # type: ignore[union-attr]
        assert good == a + b and bad != a + b and bad >= 0


def test_helpfulness_and_format_preferences() -> None:
    assert all(e.good.startswith("Sure,") and e.bad.startswith("No,") for e in helpfulness())
    for e in formatting():
        wants_upper = "capital" in e.prompt or "upper" in e.prompt
        assert (e.good == e.good.upper()) is wants_upper
        assert e.good.lower() == e.bad.lower()


def test_default_world_size_fits_every_subset() -> None:
    assert max_pairs_per_subset() >= 400


def test_chat_template_renders_prompt_as_token_prefix(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    prompt = [{"role": "user", "content": "What is 2 plus 3?"}]
    reply = [{"role": "assistant", "content": "2 + 3 = 5."}]
    head = tiny_tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    whole = tiny_tokenizer.apply_chat_template(prompt + reply, tokenize=False)
    assert head == "<s><|user|>What is 2 plus 3?<|end|><|assistant|>"
    assert whole == head + "2 + 3 = 5.<|end|>"
    assert tiny_tokenizer.eos_token == "<|end|>" and tiny_tokenizer.pad_token == "<pad>"
    assert tiny_tokenizer("hi")["input_ids"][0] == tiny_tokenizer.bos_token_id
