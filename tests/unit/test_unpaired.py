import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.config.specs import ColumnMap, DatasetSpec
from evalkit.data.pairs import PreferencePair, load_pairs
from evalkit.data.unpaired import UnpairedExample, load_unpaired, training_order, unpair
from evalkit.errors import EvalkitError


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec(path: Path | str, **kwargs: Any) -> DatasetSpec:
    return DatasetSpec(name="u", path=str(path), **kwargs)


# A local stand-in shaped like trl-lib/kto-mix-14k: conversational prompt and completion, a boolean label.
KTO_MIX_ROWS = [
    {
        "prompt": [{"role": "user", "content": "Name a primary color."}],
        "completion": [{"role": "assistant", "content": "Red."}],
        "label": True,
    },
    {
        "prompt": [{"role": "user", "content": "Name a primary color."}],
        "completion": [{"role": "assistant", "content": "Green."}],
        "label": False,
    },
]


def test_kto_mix_shape_is_detected_and_loads_as_is(tmp_path: Path) -> None:
    examples = load_unpaired(spec(write_jsonl(tmp_path / "k.jsonl", KTO_MIX_ROWS)))
    assert examples == [
        UnpairedExample("u-0", KTO_MIX_ROWS[0]["prompt"], KTO_MIX_ROWS[0]["completion"], True),
        UnpairedExample("u-1", KTO_MIX_ROWS[1]["prompt"], KTO_MIX_ROWS[1]["completion"], False),
    ]
    assert examples[0].is_conversational


def test_standard_rows_from_csv_and_parquet_with_integer_labels(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"prompt": ["2+2=", "2+2="], "completion": [" four", " five"], "label": [1, 0]})
    frame.to_csv(tmp_path / "u.csv", index=False)
    frame.to_parquet(tmp_path / "u.parquet")
    for name in ("u.csv", "u.parquet"):
        examples = load_unpaired(spec(tmp_path / name))
        assert [(e.prompt, e.completion, e.label) for e in examples] == [
            ("2+2=", " four", True),
            ("2+2=", " five", False),
        ]


def test_a_hub_dataset_goes_through_the_same_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls: list[dict[str, Any]] = []

    def fake_load_dataset(**kwargs: Any) -> datasets.Dataset:
        calls.append(kwargs)
        return datasets.Dataset.from_list(KTO_MIX_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    examples = load_unpaired(spec("trl-lib/kto-mix-14k", revision="abc", split="test"))
    assert calls == [{"path": "trl-lib/kto-mix-14k", "name": None, "revision": "abc", "split": "test"}]
    assert [e.label for e in examples] == [True, False]


def test_a_string_prompt_beside_messages_is_one_user_message_and_a_repeated_prompt_is_removed(
    tmp_path: Path,
) -> None:
    question = {"role": "user", "content": "Hi?"}
    rows = [
        {"prompt": "Hi?", "completion": [question, {"role": "assistant", "content": "Hello."}], "label": True},
        {"prompt": "Hi?", "completion": [{"role": "assistant", "content": "Go away."}], "label": False},
    ]
    first, second = load_unpaired(spec(write_jsonl(tmp_path / "u.jsonl", rows)))
    assert first.prompt == [question] and first.completion == [{"role": "assistant", "content": "Hello."}]
    assert first.prompt_text == "Hi?" and second.completion == [{"role": "assistant", "content": "Go away."}]


def test_mapped_columns_ids_and_subsets(tmp_path: Path) -> None:
    rows = [
        {"q": "a", "answer": "x", "good": True, "key": 7, "kind": "math"},
        {"q": "b", "answer": "y", "good": False, "key": 8, "kind": "chat"},
    ]
    columns = ColumnMap(prompt="q", completion="answer", label="good")
    examples = load_unpaired(
        spec(
            write_jsonl(tmp_path / "u.jsonl", rows),
            format="unpaired",
            columns=columns,
            id_column="key",
            subset_column="kind",
        )
    )
    assert [(e.id, e.subset, e.label) for e in examples] == [("7", "math", True), ("8", "chat", False)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "p", "completion": "c", "label": "yes"}], "'yes'; expected true (desirable) or false"),
        ([{"prompt": "p", "completion": "c", "label": 2}], "2; expected true (desirable) or false"),
        ([{"prompt": "p", "completion": "", "label": True}], "the completion is empty"),
        ([{"prompt": [{"role": "user", "content": "p"}], "completion": "c", "label": True}], "messages beside"),
        ([{"prompt": "p", "completion": "c", "label": True}] * 2, "every row is desirable"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, rows: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(EvalkitError, match="row 1: |every row") as caught:
        load_unpaired(spec(write_jsonl(tmp_path / "u.jsonl", rows)))
    assert message in str(caught.value)


def test_a_missing_column_is_named_with_the_nearest(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [{"prompt": "p", "completions": "c", "label": True}])
    with pytest.raises(
        EvalkitError, match=r"no column 'completion' \(columns.completion\).*did you mean 'completions'"
    ):
        load_unpaired(spec(path, format="unpaired"))


def test_unpaired_data_where_pairs_are_expected_says_so(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "k.jsonl", KTO_MIX_ROWS)
    with pytest.raises(EvalkitError, match="unpaired data .*expected preference pairs"):
        load_pairs(spec(path))


def test_pairs_unpair_in_trl_order(tmp_path: Path) -> None:
    """TRL's unpair_preference_dataset writes each chunk's chosen answers, then its rejected ones."""
    pairs = [PreferencePair("a", "p1", "c1", "r1", "s"), PreferencePair("b", "p2", "c2", "r2", "s")]
    assert [(e.id, e.completion, e.label, e.subset) for e in unpair(pairs)] == [
        ("a/chosen", "c1", True, "s"),
        ("b/chosen", "c2", True, "s"),
        ("a/rejected", "r1", False, "s"),
        ("b/rejected", "r2", False, "s"),
    ]
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p1", "chosen": "c1", "rejected": "r1"}])
    assert [(e.id, e.label) for e in load_unpaired(spec(path))] == [("u-0/chosen", True), ("u-0/rejected", False)]


def test_trl_unpairs_in_the_same_order() -> None:
    from datasets import Dataset
    from trl.data_utils import unpair_preference_dataset

    rows = {"prompt": ["p1", "p2"], "chosen": ["c1", "c2"], "rejected": ["r1", "r2"]}
    trl = unpair_preference_dataset(Dataset.from_dict(rows))
    ours = unpair([PreferencePair(str(i), p, c, r) for i, (p, c, r) in enumerate(zip(*rows.values(), strict=True))])
    assert [(e.prompt, e.completion, e.label) for e in ours] == list(
        zip(trl["prompt"], trl["completion"], trl["label"], strict=True)
    )


def test_training_order_mixes_both_labels_into_the_first_batches() -> None:
    """KTOTrainer reads its rows in order: in TRL's unpaired order the first 100 of 200 rows are all desirable.
    Shuffled with a seed, five batches of 8 hold both labels; every row stays, once; the same seed, the same order."""
    unpaired = unpair([PreferencePair(str(i), f"p{i}", f"c{i}", f"r{i}", "s") for i in range(100)])
    assert all(e.label for e in unpaired[:100])
    shuffled = training_order(unpaired, seed=0)
    assert sorted(e.id for e in shuffled) == sorted(e.id for e in unpaired)
    assert shuffled == training_order(unpaired, seed=0) != training_order(unpaired, seed=1)
    assert 10 <= sum(e.label for e in shuffled[:40]) <= 30
    assert all({e.label for e in shuffled[start : start + 8]} == {True, False} for start in range(0, 40, 8))


def test_pairs_marked_unpaired_are_unpaired_as_trl_does(tmp_path: Path) -> None:
    """A suite scores its held-out pairs as labelled completions with `format: unpaired`: each chosen answer
    desirable (`<id>/chosen`), each rejected one undesirable, chosen answers first; the pairs' own layout kept."""
    rows = [
        {"id": "p1", "subset": "math", "prompt": "1+1=", "chosen": "2", "rejected": "3"},
        {"id": "p2", "subset": "chat", "prompt": "Hi.", "chosen": "Hello!", "rejected": "Go away."},
    ]
    path = write_jsonl(tmp_path / "eval.jsonl", rows)
    examples = load_unpaired(spec(path, format="unpaired", id_column="id", subset_column="subset"))
    assert [(e.id, e.subset, e.prompt, e.completion, e.label) for e in examples] == [
        ("p1/chosen", "math", "1+1=", "2", True),
        ("p2/chosen", "chat", "Hi.", "Hello!", True),
        ("p1/rejected", "math", "1+1=", "3", False),
        ("p2/rejected", "chat", "Hi.", "Go away.", False),
    ]
