import json
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.results import SCHEMA_FILE, atomic_write_text, json_schema, read_results, write_results

GOLDEN = Path(__file__).parents[1] / "golden"


def test_results_round_trip(tmp_path: Path) -> None:
    result = read_results(GOLDEN / "results.json")
    write_results(result, tmp_path / "results.json")
    assert read_results(tmp_path / "results.json") == result
    assert result.value("tinyworld", "aligned", "rewards/accuracies") is not None
    assert result.value("tinyworld", "base", "rewards/accuracies") is None  # the reference has no rewards


def test_shipped_json_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "run `make schema` after changing results.py"


def test_unreadable_results_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match="results file not found"):
        read_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops")
    with pytest.raises(EvalkitError, match=r"bad.json:2: invalid JSON"):
        read_results(bad)
    bad.write_text('{"metrics": []}')
    with pytest.raises(EvalkitError, match="not an evalkit results file"):
        read_results(bad)
    raw = json.loads((GOLDEN / "results.json").read_text())
    bad.write_text(json.dumps(raw | {"schema_version": "2.0"}))
    with pytest.raises(EvalkitError, match=r"schema_version '2.0' is not readable .*expected 1.x"):
        read_results(bad)
    del raw["metrics"]
    bad.write_text(json.dumps(raw))
    with pytest.raises(EvalkitError, match=r"bad.json: metrics: Field required"):
        read_results(bad)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("interrupted")

    with pytest.raises(TypeError):
        atomic_write_text(target, Boom())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
