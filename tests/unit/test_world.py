import re
import threading
import time
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from evalkit.config.specs import WorldSpec
from evalkit.world import World
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


def test_one_build_at_a_time_then_the_others_reuse_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds of one world started together (the processes of a torchrun run): the second waits for the
    first's lock, then finds its world and reuses it."""
    import evalkit.world as world

    spans: list[tuple[float, float]] = []

    def build(spec: WorldSpec) -> World:
        started = time.monotonic()
        if not (spec.dir / "world.json").is_file():
            time.sleep(0.3)  # a build, long enough for the other thread to arrive
            spec.dir.mkdir(parents=True)
            (spec.dir / "world.json").write_text("{}")
        spans.append((started, time.monotonic()))
        return world.world_paths(spec.dir)

    monkeypatch.setattr(world, "_build_or_reuse", build)
    spec = WorldSpec(dir=tmp_path / "world")
    threads = [threading.Thread(target=world.build_world, args=(spec,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (_, first_end), (second, second_end) = sorted(spans)
    assert first_end <= second  # never both at once
    assert second_end - second < 0.3  # the second found the first's world


def test_a_directory_evalkit_did_not_build_is_never_replaced(tmp_path: Path) -> None:
    """Rebuilding replaces world.dir: pointed at a user's directory, evalkit refuses and deletes nothing."""
    from evalkit.errors import EvalkitError
    from evalkit.world import build_world

    mine = tmp_path / "my-project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(EvalkitError, match=r"world.dir: .*my-project exists and is not a tiny world evalkit built"):
        build_world(WorldSpec(dir=mine))
    assert (mine / "notes.txt").read_text() == "keep me"
