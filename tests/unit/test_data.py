import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.config.specs import ColumnMap, DatasetSpec
from evalkit.data.pairs import PreferencePair, dataset_fingerprint, load_pairs, split_pairs, write_pairs
from evalkit.errors import EvalkitError


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec(path: Path | str, **kwargs: Any) -> DatasetSpec:
    return DatasetSpec(name="d", path=str(path), **kwargs)


# Local stand-ins shaped exactly like the public datasets (same columns, same value shapes).
ULTRAFEEDBACK_ROW = {  # argilla/ultrafeedback-binarized-preferences-cleaned
    "source": "evol_instruct",
    "prompt": "Name a primary color.",
    "chosen": [user("Name a primary color."), assistant("Red is a primary color.")],
    "chosen-rating": 5.0,
    "chosen-model": "gpt-4",
    "rejected": [user("Name a primary color."), assistant("Green.")],
    "rejected-rating": 2.0,
    "rejected-model": "alpaca-7b",
}
HH_RLHF_ROW = {  # Anthropic/hh-rlhf: two strings and nothing else
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Any tips for sleep?\n\nAssistant: Keep a regular bedtime.",
    "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Any tips for sleep?\n\nAssistant: Keep off.",
}


def test_explicit_rows_load_with_generated_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q?", "chosen": " yes", "rejected": " no"}] * 2)
    pairs = load_pairs(spec(path))
    assert pairs == [PreferencePair("d-0", "Q?", " yes", " no"), PreferencePair("d-1", "Q?", " yes", " no")]
    assert not pairs[0].is_conversational


def test_ultrafeedback_shape_loads_as_is(tmp_path: Path) -> None:
    (pair,) = load_pairs(spec(write_jsonl(tmp_path / "uf.jsonl", [ULTRAFEEDBACK_ROW])))
    assert pair.prompt == [user("Name a primary color.")]  # the shared first message, not the string column
    assert pair.chosen == [assistant("Red is a primary color.")]
    assert pair.rejected == [assistant("Green.")]
    assert pair.prompt_text == "Name a primary color."  # kept for tokenizers without a chat template


def test_conversational_rows_with_a_prompt_column(tmp_path: Path) -> None:
    rows = [
        {"prompt": [user("1+1?")], "chosen": [assistant("2")], "rejected": [assistant("3")]},
        {"prompt": "2+2?", "chosen": [assistant("4")], "rejected": [assistant("5")]},
    ]
    first = load_pairs(spec(write_jsonl(tmp_path / "c.jsonl", rows[:1])))[0]
    second = load_pairs(spec(write_jsonl(tmp_path / "s.jsonl", rows[1:])))[0]
    assert first.prompt == [user("1+1?")] and first.chosen == [assistant("2")]
    assert second.prompt == [user("2+2?")] and second.prompt_text == "2+2?"


def test_a_prompt_column_is_kept_when_the_answers_open_alike(tmp_path: Path) -> None:
    row = {
        "prompt": [user("What is 2+2?")],
        "chosen": [assistant("Let me compute."), assistant("4")],
        "rejected": [assistant("Let me compute."), assistant("5")],
    }
    (pair,) = load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", [row])))
    assert pair.prompt == [user("What is 2+2?")]
    assert pair.chosen == [assistant("Let me compute."), assistant("4")]


def test_a_string_prompt_after_a_system_message(tmp_path: Path) -> None:
    system = {"role": "system", "content": "Be brief."}
    row = {
        "prompt": "2+2?",
        "chosen": [system, user("2+2?"), assistant("4")],
        "rejected": [system, user("2+2?"), assistant("5")],
    }
    (pair,) = load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", [row])))
    assert pair.prompt == [system, user("2+2?")] and pair.chosen == [assistant("4")]


def test_repeated_ids_and_a_subset_named_all_are_refused(tmp_path: Path) -> None:
    rows = [{"id": "a", "prompt": "p", "chosen": "c", "rejected": "r"}] * 2
    with pytest.raises(EvalkitError, match=r"row 2: id 'a' repeats row 1; expected unique values in 'id'"):
        load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", rows), id_column="id"))
    rows = [{"cat": "all", "prompt": "p", "chosen": "c", "rejected": "r"}]
    with pytest.raises(EvalkitError, match=r"row 1: column 'cat': 'all' names every pair"):
        load_pairs(spec(write_jsonl(tmp_path / "q.jsonl", rows), subset_column="cat"))


def test_split_keeps_every_subset_in_training() -> None:
    pairs = [PreferencePair("a-0", "p", "c", "r", "a"), PreferencePair("a-1", "p", "c", "r", "a")]
    pairs += [PreferencePair("b-0", "p", "c", "r", "b")]
    split = split_pairs(pairs, eval_fraction=0.75, seed=0)
    assert [p.subset for p in split.train] == ["a"] and sorted(p.subset for p in split.held_out) == ["a", "b"]


def test_conversational_identical_answers_stay_a_tied_pair(tmp_path: Path) -> None:
    row = {"chosen": [user("q"), assistant("same")], "rejected": [user("q"), assistant("same")]}
    (pair,) = load_pairs(spec(write_jsonl(tmp_path / "t.jsonl", [row])))
    assert pair.prompt == [user("q")] and pair.chosen == pair.rejected == [assistant("same")]


def test_hh_rlhf_prompt_ends_at_the_last_assistant_marker(tmp_path: Path) -> None:
    (pair,) = load_pairs(spec(write_jsonl(tmp_path / "hh.jsonl", [HH_RLHF_ROW])))
    assert pair.prompt == "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Any tips for sleep?\n\nAssistant:"
    # Both answers start with " Keep": a character-level common prefix would have moved it into the prompt.
    assert pair.chosen == " Keep a regular bedtime." and pair.rejected == " Keep off."


def test_hh_rlhf_prompt_is_cut_in_the_shared_dialogue(tmp_path: Path) -> None:
    # The chosen answer itself invents a further turn: the prompt still ends where the two part.
    dialogue = "\n\nHuman: Hi\n\nAssistant:"
    row = {"chosen": dialogue + " Hello.\n\nHuman: thanks\n\nAssistant: welcome", "rejected": dialogue + " Go away."}
    (pair,) = load_pairs(spec(write_jsonl(tmp_path / "hh.jsonl", [row])))
    assert pair.prompt == dialogue and pair.rejected == " Go away."
    assert pair.chosen == " Hello.\n\nHuman: thanks\n\nAssistant: welcome"


def test_hh_rlhf_rows_that_diverge_before_any_answer_are_named(tmp_path: Path) -> None:
    row = {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"}
    with pytest.raises(EvalkitError, match=r"row 1: no prompt column and no '\\n\\nAssistant:' in the dialogue"):
        load_pairs(spec(write_jsonl(tmp_path / "hh.jsonl", [row])))


def test_strings_without_prompt_or_marker_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"row 1: no prompt column and no '\\n\\nAssistant:'"):
        load_pairs(spec(write_jsonl(tmp_path / "x.jsonl", [{"chosen": "a", "rejected": "b"}])))


def test_column_mapping_format_id_and_subset(tmp_path: Path) -> None:
    rows = [{"uid": 7, "cat": "math", "question": "1+1?", "good": " 2", "bad": " 3"}]
    columns = ColumnMap(prompt="question", chosen="good", rejected="bad")
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    (pair,) = load_pairs(spec(path, columns=columns, format="explicit", id_column="uid", subset_column="cat"))
    assert pair == PreferencePair("7", "1+1?", " 2", " 3", "math")


def test_limit_then_seeded_sample_in_file_order(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(20)]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    assert [p.prompt for p in load_pairs(spec(path, limit=3))] == ["q0", "q1", "q2"]
    sampled = [p.id for p in load_pairs(spec(path, limit=10, sample=4, seed=1))]
    assert sampled == [p.id for p in load_pairs(spec(path, limit=10, sample=4, seed=1))]
    assert sampled != [p.id for p in load_pairs(spec(path, limit=10, sample=4, seed=2))]
    assert len(sampled) == 4 and sampled == sorted(sampled, key=lambda i: int(i.split("-")[1]))
    assert all(int(i.split("-")[1]) < 10 for i in sampled)


def test_json_csv_and_parquet_load_through_datasets(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    (tmp_path / "p.json").write_text(json.dumps([{"prompt": "p", "chosen": "c", "rejected": "r"}]))
    for name in ("p.csv", "p.parquet", "p.json"):
        assert load_pairs(spec(tmp_path / name)) == [PreferencePair("d-0", "p", "c", "r")]


def test_a_dataset_folder_with_splits_loads_like_a_hub_dataset(tmp_path: Path) -> None:
    """A local folder laid out like Anthropic/hh-rlhf on the hub goes through the same `load_dataset` call."""
    import pandas as pd

    data = tmp_path / "hh-rlhf" / "data"
    data.mkdir(parents=True)
    pd.DataFrame([HH_RLHF_ROW] * 3).to_parquet(data / "train-00000-of-00001.parquet")
    pd.DataFrame([HH_RLHF_ROW]).to_parquet(data / "test-00000-of-00001.parquet")
    assert len(load_pairs(spec(tmp_path / "hh-rlhf", split="train"))) == 3
    (pair,) = load_pairs(spec(tmp_path / "hh-rlhf", split="test"))
    assert pair.chosen == " Keep a regular bedtime."


def test_hub_ids_are_passed_with_revision_config_and_split(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls: list[dict[str, Any]] = []

    def fake_load_dataset(**kwargs: Any) -> datasets.Dataset:
        calls.append(kwargs)
        return datasets.Dataset.from_list([HH_RLHF_ROW])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    pairs = load_pairs(spec("Anthropic/hh-rlhf", revision="abc123", split="test", hub_config="harmless-base"))
    assert calls == [{"path": "Anthropic/hh-rlhf", "name": "harmless-base", "revision": "abc123", "split": "test"}]
    assert pairs[0].prompt.endswith("\n\nAssistant:")  # type: ignore[union-attr]
    assert dataset_fingerprint(spec("Anthropic/hh-rlhf", revision="abc123")) == "Anthropic/hh-rlhf@abc123"


def test_malformed_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": oops}\n')
    with pytest.raises(EvalkitError, match=rf"^{path}:2: invalid JSON"):
        load_pairs(spec(path))


def test_non_utf8_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "\xff"}\n')
    with pytest.raises(EvalkitError, match=rf"^{path}:2: not UTF-8 text"):
        load_pairs(spec(path))


def test_missing_column_names_row_and_column(tmp_path: Path) -> None:
    rows = [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]
    with pytest.raises(EvalkitError, match=r"p.jsonl: row 2: missing column 'rejected'"):
        load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", rows)))


def test_mistyped_column_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "chosen": 3, "rejected": "c"}])
    with pytest.raises(EvalkitError, match=r"row 1: column 'chosen': expected a string, got int"):
        load_pairs(spec(path))
    path = write_jsonl(tmp_path / "m.jsonl", [{"chosen": [{"role": "user"}], "rejected": [assistant("x")]}])
    with pytest.raises(EvalkitError, match=r"row 1: column 'chosen': expected a non-empty list of \{role, content\}"):
        load_pairs(spec(path))


def test_empty_missing_and_unsupported_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(EvalkitError, match=r"e\.jsonl: empty file"):
        load_pairs(spec(empty))
    with pytest.raises(EvalkitError, match=r"nope\.jsonl: data file not found"):
        load_pairs(spec(tmp_path / "nope.jsonl"))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(EvalkitError, match=r"unsupported file type '\.txt'"):
        load_pairs(spec(tmp_path / "x.txt"))


def test_split_is_seeded_stratified_and_disjoint() -> None:
    pairs = [PreferencePair(f"{s}-{i}", "p", "c", "r", s) for s in ("a", "b") for i in range(8)]
    split = split_pairs(pairs, eval_fraction=0.25, seed=3)
    assert split == split_pairs(pairs, eval_fraction=0.25, seed=3)
    assert sorted(p.subset for p in split.held_out) == ["a", "a", "b", "b"]
    assert {p.id for p in split.train}.isdisjoint(p.id for p in split.held_out)
    assert len(split.train) + len(split.held_out) == len(pairs)


def test_written_pairs_load_back(tmp_path: Path) -> None:
    pairs = [PreferencePair("x", [user("q")], [assistant("a")], [assistant("b")], "s")]
    write_pairs(pairs, tmp_path / "w.jsonl")
    assert load_pairs(spec(tmp_path / "w.jsonl", id_column="id", subset_column="subset")) == pairs


def test_local_fingerprint_follows_the_bytes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    before = dataset_fingerprint(spec(path))
    write_jsonl(path, [{"prompt": "a", "chosen": "b", "rejected": "d"}])
    assert dataset_fingerprint(spec(path)) != before


def test_empty_answers_are_refused_and_identical_ones_are_ties(tmp_path: Path) -> None:
    rows = [{"prompt": "p", "chosen": "", "rejected": "r"}]
    with pytest.raises(EvalkitError, match=r"row 1: column 'chosen': the answer is empty"):
        load_pairs(spec(write_jsonl(tmp_path / "e.jsonl", rows)))
    rows = [{"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant:"}]
    with pytest.raises(EvalkitError, match=r"row 1: column 'rejected': the answer is empty"):
        load_pairs(spec(write_jsonl(tmp_path / "h.jsonl", rows)))
    (tie,) = load_pairs(
        spec(write_jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "chosen": " same", "rejected": " same"}]))
    )
    assert tie.chosen == tie.rejected


def test_a_column_the_data_lacks_is_named_with_the_columns_found(tmp_path: Path) -> None:
    rows = [{"question": "a", "good": "b", "bad": "c"}]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(EvalkitError) as raised:
        load_pairs(spec(path))
    assert str(raised.value) == (
        f"{path}: no column 'chosen' (columns.chosen); found 'question', 'good', 'bad'; "
        "set columns.chosen to one of them"
    )
    typo = spec(path, columns=ColumnMap(prompt="question", chosen="good", rejected="bda"))
    with pytest.raises(EvalkitError, match=r"no column 'bda' \(columns.rejected\); found .*; did you mean 'bad'\?$"):
        load_pairs(typo)
    mapped = spec(path, columns=ColumnMap(prompt="question", chosen="good", rejected="bad"), id_column="qid")
    with pytest.raises(EvalkitError, match=r"no column 'qid' \(id_column\); found 'question', 'good', 'bad'"):
        load_pairs(mapped)


def test_a_row_missing_an_answer_names_the_columns_it_has(tmp_path: Path) -> None:
    rows = [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]
    with pytest.raises(EvalkitError, match=r"row 2: missing column 'rejected'; .*, found 'prompt', 'chosen'$"):
        load_pairs(spec(write_jsonl(tmp_path / "p.jsonl", rows)))
