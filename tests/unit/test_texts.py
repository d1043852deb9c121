"""The per-pair texts file beside the scores: written by bench, read by the report's pair explorer."""

from pathlib import Path

from evalkit.data.pairs import PreferencePair
from evalkit.results.schema import DatasetInfo
from evalkit.results.texts import read_pair_texts, texts_file, write_pair_texts


def info(pairs_file: str) -> DatasetInfo:
    return DatasetInfo(name="d", path="d.jsonl", n_pairs=2, subsets=["s"], fingerprint="0" * 64, pairs_file=pairs_file)


def test_texts_lie_beside_the_scores_and_join_on_id(tmp_path: Path) -> None:
    assert texts_file("pairs/tinyworld.jsonl") == Path("pairs/tinyworld.texts.jsonl")
    pairs = [
        PreferencePair("b", "What is 2+2?", "4", "5", subset="math"),
        PreferencePair(
            "a",
            [{"role": "user", "content": "Hi <b>"}],
            [{"role": "assistant", "content": "Hello."}],
            [{"role": "assistant", "content": "Go away."}],
        ),
    ]
    write_pair_texts("d", pairs, tmp_path / texts_file("pairs/d.jsonl"))
    lines = (tmp_path / "pairs/d.texts.jsonl").read_text().splitlines()
    assert lines[0] == '{"id": "b", "subset": "math", "prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}'
    texts = read_pair_texts(tmp_path, info("pairs/d.jsonl"))
    assert texts is not None and list(texts) == ["b", "a"]
    # conversational rows as plain text: one `role: content` paragraph per message
    assert (texts["a"].prompt, texts["a"].chosen, texts["a"].subset) == ("user: Hi <b>", "assistant: Hello.", "all")


def test_a_texts_file_outside_the_results_directory_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "outside.texts.jsonl").write_text(
        '{"id": "x", "subset": "s", "prompt": "", "chosen": "", "rejected": ""}\n'
    )
    inside = tmp_path / "run"
    inside.mkdir()
    assert read_pair_texts(inside, info("../outside.jsonl")) is None
    assert read_pair_texts(inside, info("pairs/missing.jsonl")) is None
