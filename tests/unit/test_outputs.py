"""Output directories: a run writes only where it may, never over its inputs, one run at a time, and refuses
before any work when it could not write its outputs."""

import shutil
from pathlib import Path

import pytest

from evalkit.config.suite import Suite, parse_suite
from evalkit.errors import EvalkitError
from evalkit.pipeline.checks import check_outputs, output_lock


def one_model_suite(data: str = "d.jsonl") -> Suite:
    return parse_suite(
        {
            "name": "x",
            "output_dir": "o",
            "datasets": [{"name": "d", "path": data}],
            "models": [{"name": "m", "path": "m"}],
        }
    )


def test_a_run_never_writes_over_its_own_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "out" / "pairs" / "d.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("{}\n")
    (tmp_path / "out" / ".evalkit-output").write_text("")  # an earlier evalkit output directory holds the data
    suite = one_model_suite(str(data))
    with pytest.raises(EvalkitError, match=r"output_dir: writing .*d\.jsonl would replace datasets\.d\.path"):
        check_outputs(suite, tmp_path / "out")
    with pytest.raises(EvalkitError, match=r"output_dir: \. is the current directory"):
        check_outputs(suite, Path("."))
    baseline = tmp_path / "release" / "results.json"
    baseline.parent.mkdir()
    baseline.write_text("{}")
    with pytest.raises(EvalkitError, match=r"would replace .*release/results\.json"):
        check_outputs(suite, tmp_path / "release", [baseline])
    check_outputs(suite, tmp_path / "elsewhere", [baseline])  # nothing in the way
    train = {"base": "m", "output": "t", "data": {"path": str(data)}, "heldout": str(data), "eval_fraction": 0.2}
    with pytest.raises(EvalkitError, match=r"train\.heldout: .* is also train\.data\.path"):
        check_outputs(
            parse_suite(
                {
                    **suite.model_dump(mode="json"),
                    "models": [{"name": "m", "path": "m"}, {"name": "t", "path": "t"}],
                    "train": train,
                },
                train_options=False,
            ),
            tmp_path / "elsewhere",
        )


def test_one_run_at_a_time_per_output_directory(tmp_path: Path) -> None:
    with output_lock(tmp_path / "out"):
        with (
            pytest.raises(EvalkitError, match=r"another evalkit run is writing to .*out; wait for it"),
            output_lock(tmp_path / "out"),
        ):
            pass
        with output_lock(tmp_path / "other"):  # another directory is free
            pass
    with output_lock(tmp_path / "out"):  # released when the run ends
        pass


def test_a_directory_of_someone_elses_files_is_never_an_output_directory(tmp_path: Path) -> None:
    suite = one_model_suite()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("my own notes")
    with pytest.raises(EvalkitError, match=r"output_dir: .*theirs holds files evalkit did not write"):
        check_outputs(suite, theirs)
    ours = tmp_path / "ours"
    check_outputs(suite, ours)  # new: fine
    ours.mkdir()
    (ours / ".evalkit-output").write_text("")  # as every run leaves it
    (ours / "report.md").write_text("an evalkit report")
    check_outputs(suite, ours)  # carries the marker evalkit left: its files may be replaced


def test_an_output_directory_of_an_older_interrupted_run_is_still_evalkits(tmp_path: Path) -> None:
    suite = one_model_suite()
    older = tmp_path / "older"
    (older / ".scores").mkdir(parents=True)  # scores kept, stopped before results.json
    check_outputs(suite, older)


def test_an_unwritable_output_directory_is_refused_before_any_work(tmp_path: Path) -> None:
    suite = one_model_suite()
    a_file = tmp_path / "taken"
    a_file.write_text("")
    with pytest.raises(EvalkitError, match=r"output_dir: cannot write in .*taken"):
        check_outputs(suite, a_file)

    # A read-only file system and a full disk, simulated (this machine runs as root, which writes anywhere).
    def read_only(self: Path, data: bytes) -> int:
        raise OSError(30, "Read-only file system", str(self))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "write_bytes", read_only)
        with pytest.raises(EvalkitError, match=r"output_dir: cannot write in .*ro: Read-only file system"):
            check_outputs(suite, tmp_path / "ro")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shutil.disk_usage", lambda _: shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30, 5 * 2**20))
        with pytest.raises(EvalkitError, match=r"output_dir: .*full has 5 MB free; a run needs at least 64 MB"):
            check_outputs(suite, tmp_path / "full")
