"""One confinement rule for every write: a path a results file names stays inside the output directory, and an
output directory that holds another run is never written over by a reader of a different run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evalkit
from evalkit.cli import main
from evalkit.errors import EvalkitError

GOLDEN = Path(__file__).parents[1] / "golden"
RULE = {"name": "acc", "kind": "absolute", "model": "aligned", "metric": "preference/accuracy", "at_least": 0.5}


def fork(directory: Path, **changes: object) -> Path:
    """A copy of the golden run (results and per-pair file) in `directory`, its top-level keys changed."""
    (directory / "pairs").mkdir(parents=True)
    (directory / "pairs" / "tinyworld.jsonl").write_text((GOLDEN / "pairs" / "tinyworld.jsonl").read_text())
    raw = json.loads((GOLDEN / "results.json").read_text()) | changes
    (directory / "results.json").write_text(json.dumps(raw))
    return directory / "results.json"


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("escape", ["../escaped.jsonl", "ABSOLUTE", "pairs/../../escaped.jsonl"])
def test_a_duplicate_dataset_cannot_steer_save_outside_out(tmp_path: Path, escape: str) -> None:
    golden = json.loads((GOLDEN / "results.json").read_text())["datasets"][0]
    escape = escape.replace("ABSOLUTE", str(tmp_path / "escaped.jsonl"))
    path = fork(tmp_path / "fork", datasets=[golden, golden | {"pairs_file": escape}])
    before = files(tmp_path)
    with pytest.raises(EvalkitError, match=r"datasets: .*'tinyworld' .*twice"):
        evalkit.read_results(path).save(tmp_path / "out")
    assert files(tmp_path) == before  # an absolute escape lands in tmp_path: any new file shows here


@pytest.mark.parametrize("escape", ["../escaped.jsonl", "ABSOLUTE", "pairs/../../escaped.jsonl", ""])
def test_save_writes_per_pair_files_only_inside_out(tmp_path: Path, escape: str) -> None:
    evaluation = evalkit.read_results(fork(tmp_path / "run"))
    escape = escape.replace("ABSOLUTE", str(tmp_path / "escaped.jsonl"))
    datasets = [evaluation.result.datasets[0].model_copy(update={"pairs_file": escape})]
    forked = type(evaluation)(evaluation.result.model_copy(update={"datasets": datasets}), evaluation.pairs)
    before = files(tmp_path)
    with pytest.raises(EvalkitError, match=r"datasets\.tinyworld\.pairs_file: .*inside"):
        forked.save(tmp_path / "out")
    assert files(tmp_path) == before  # an absolute escape lands in tmp_path: any new file shows here


def test_save_refuses_a_directory_holding_another_run(tmp_path: Path) -> None:
    other = fork(tmp_path / "other", created_at="2020-01-01T00:00:00+00:00")
    (other.parent / ".evalkit-output").write_text("written by evalkit\n")
    before = {p: p.read_bytes() for p in files(other.parent)}
    mine = evalkit.read_results(fork(tmp_path / "mine"))
    with pytest.raises(EvalkitError, match=r"holds another run"):
        mine.save(other.parent)
    assert {p: p.read_bytes() for p in files(other.parent)} == before
    mine.save(tmp_path / "mine")  # its own directory: the same run
    mine.save(tmp_path / "fresh")
    mine.save(tmp_path / "fresh")  # what it wrote itself: the same run again
    mine.save(other.parent, replace=True)  # the caller's word that the directory is its own to overwrite
    assert evalkit.read_results(other.parent).result.created_at == mine.result.created_at


def test_gate_out_refuses_a_directory_holding_another_run(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    models = [{"name": "base", "path": "base"}, {"name": "aligned", "path": "aligned"}]
    datasets = [{"name": "tinyworld", "path": "pairs.jsonl"}]
    gate = {"rules": [RULE]}
    suite.write_text(json.dumps({"name": "s", "output_dir": "o", "datasets": datasets, "models": models, "gate": gate}))
    other = fork(tmp_path / "other", created_at="2020-01-01T00:00:00+00:00")
    (other.parent / ".evalkit-output").write_text("written by evalkit\n")
    before = {p: p.read_bytes() for p in files(other.parent)}
    forked = fork(tmp_path / "fork")
    assert main(["gate", str(forked), "--suite", str(suite), "--out", str(other.parent)]) == 2
    assert {p: p.read_bytes() for p in files(other.parent)} == before
    assert main(["gate", str(forked), "--suite", str(suite), "--out", str(tmp_path / "judged")]) == 0
    assert main(["gate", str(forked), "--suite", str(suite), "--out", str(tmp_path / "judged")]) == 0  # same run
    assert main(["report", str(forked), "--out", str(other.parent)]) == 2
