"""Property-based tests: whatever a user feeds the data adapters and the suite loader, it either
loads or fails with an `EvalkitError` (one line, exit 2), never another exception."""

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.config.specs import DatasetSpec
from evalkit.config.suite import load_suite
from evalkit.data.pairs import PreferencePair, load_pairs
from evalkit.errors import EvalkitError

text = st.text(max_size=20)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", 3]), "content": text})
cell = st.one_of(
    st.none(), text, st.integers(), st.lists(message, max_size=3), st.lists(text, max_size=2), st.booleans()
)
row = st.dictionaries(st.sampled_from(["prompt", "chosen", "rejected", "id", "subset", "extra"]), cell, max_size=6)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def loads_or_refuses(path: Path, **spec: Any) -> None:
    try:
        pairs = load_pairs(DatasetSpec(name="d", path=str(path), **spec))
    except EvalkitError as error:
        assert "\n" not in str(error) and str(error)
        return
    assert all(isinstance(p, PreferencePair) and p.chosen and p.rejected for p in pairs)


@SETTINGS
@given(rows=st.lists(row, min_size=0, max_size=4), subset=st.booleans(), ids=st.booleans())
def test_any_json_lines_load_or_fail_with_a_clear_error(rows: list[dict[str, Any]], subset: bool, ids: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "pairs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        loads_or_refuses(path, subset_column="subset" if subset else None, id_column="id" if ids else None)


@SETTINGS
@given(content=st.binary(max_size=200), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]))
def test_any_bytes_load_or_fail_with_a_clear_error(content: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"pairs{suffix}"
        path.write_bytes(content)
        loads_or_refuses(path)


yaml_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)),
    max_leaves=8,
)
suite_keys = st.sampled_from(
    ["name", "output_dir", "datasets", "models", "reference", "scoring", "train", "gate", "generation", "world", "x"]
)


@SETTINGS
@given(raw=st.dictionaries(suite_keys, yaml_value, max_size=6))
def test_any_suite_mapping_loads_or_fails_with_a_clear_error(raw: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "suite.yaml"
        path.write_text(yaml.safe_dump(raw))
        try:
            load_suite(path)
        except EvalkitError as error:  # every problem at once, each on its own line naming the file
            lines = str(error).splitlines()
            assert lines and all(line.startswith(f"{path}: ") for line in lines)
            assert len(lines) == len(set(lines))


@SETTINGS
@given(content=st.text(max_size=200))
def test_any_suite_text_loads_or_fails_with_a_clear_error(content: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "suite.yaml"
        path.write_text(content)
        try:
            load_suite(path)
        except EvalkitError as error:
            assert str(error).startswith(str(path))
