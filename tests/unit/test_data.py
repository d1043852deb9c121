import json
from pathlib import Path

import pytest

from evalkit.config import DatasetSpec
from evalkit.data import PreferencePair, load_pairs, split_pairs, write_pairs
from evalkit.errors import EvalkitError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec(path: Path, **kwargs: object) -> DatasetSpec:
    return DatasetSpec(name="d", path=path, **kwargs)


def test_standard_rows_load_with_generated_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q?", "chosen": " yes", "rejected": " no"}] * 2)
    pairs = load_pairs(spec(path))
    assert pairs == [PreferencePair("d-0", "Q?", " yes", " no"), PreferencePair("d-1", "Q?", " yes", " no")]
    assert not pairs[0].is_conversational


def test_conversational_rows_keep_messages_and_read_id_and_subset(tmp_path: Path) -> None:
    row = {
        "uid": 7,
        "cat": "math",
        "prompt": [{"role": "user", "content": "1+1?"}],
        "chosen": [{"role": "assistant", "content": "2"}],
        "rejected": [{"role": "assistant", "content": "3"}],
    }
    (pair,) = load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", [row]), id_column="uid", subset_column="cat"))
    assert pair.id == "7" and pair.subset == "math" and pair.is_conversational
    assert pair.chosen == [{"role": "assistant", "content": "2"}]


def test_limit_keeps_the_first_rows(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(5)]
    pairs = load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", rows), limit=2))
    assert [p.prompt for p in pairs] == ["q0", "q1"]


def test_malformed_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": oops}\n')
    with pytest.raises(EvalkitError, match=rf"^{path}:2: invalid JSON"):
        load_pairs(spec(path))


def test_missing_column_names_row_and_column(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]
    )
    with pytest.raises(EvalkitError, match=r"p.jsonl: row 2: missing column 'rejected'"):
        load_pairs(spec(path))


def test_mistyped_column_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "chosen": 3, "rejected": "c"}])
    with pytest.raises(EvalkitError, match=r"row 1: column 'chosen': expected a string or a list of"):
        load_pairs(spec(path))


def test_mixed_string_and_messages_is_rejected(tmp_path: Path) -> None:
    row = {
        "prompt": "a",
        "chosen": [{"role": "assistant", "content": "b"}],
        "rejected": [{"role": "assistant", "content": "c"}],
    }
    with pytest.raises(EvalkitError, match="'prompt' must be a message list"):
        load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", [row])))


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(EvalkitError, match="e.jsonl: empty file"):
        load_pairs(spec(empty))
    with pytest.raises(EvalkitError, match="nope.jsonl: data file not found"):
        load_pairs(spec(tmp_path / "nope.jsonl"))
    with pytest.raises(EvalkitError, match="unsupported file type '.txt'"):
        load_pairs(spec(tmp_path / "x.txt"))


def test_csv_and_parquet_load_through_datasets(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        assert load_pairs(spec(tmp_path / name)) == [PreferencePair("d-0", "p", "c", "r")]


def test_split_is_seeded_stratified_and_disjoint() -> None:
    pairs = [PreferencePair(f"{s}-{i}", "p", "c", "r", s) for s in ("a", "b") for i in range(8)]
    split = split_pairs(pairs, eval_fraction=0.25, seed=3)
    assert split == split_pairs(pairs, eval_fraction=0.25, seed=3)
    assert sorted(p.subset for p in split.held_out) == ["a", "a", "b", "b"]
    assert {p.id for p in split.train}.isdisjoint(p.id for p in split.held_out)
    assert len(split.train) + len(split.held_out) == len(pairs)


def test_written_pairs_load_back(tmp_path: Path) -> None:
    pairs = [
        PreferencePair(
            "x",
            [{"role": "user", "content": "q"}],
            [{"role": "assistant", "content": "a"}],
            [{"role": "assistant", "content": "b"}],
            "s",
        )
    ]
    write_pairs(pairs, tmp_path / "w.jsonl")
    assert load_pairs(spec(tmp_path / "w.jsonl", id_column="id", subset_column="subset")) == pairs
