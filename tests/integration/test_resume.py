"""A bench killed mid-scoring leaves the previous outputs intact, resumes without redoing what it
finished, and ends with the results of a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli import main


def normalised(results: Path, out_dir: Path) -> dict[str, Any]:
    """A results file without what legitimately differs between runs: times, output paths, the command."""
    raw = json.loads(results.read_text().replace(str(out_dir), "OUT"))
    for key in ("created_at", "duration_s", "command"):
        raw.pop(key)
    if raw.get("training"):
        raw["training"].pop("seconds")
    return raw


@pytest.mark.slow
def test_sigkill_mid_scoring_then_rerun_matches_an_uninterrupted_run(
    tmp_path: Path, default_suite: Path, reduced: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean"
    clean_model = ["--set", f"models.aligned.path={clean / 'models' / 'aligned'}"]
    assert main(["bench", str(default_suite), *reduced, *clean_model, "--out", str(clean)]) == 0

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("previous results\n")
    bench = [sys.executable, "-m", "evalkit", "bench", str(default_suite), *reduced]
    process = subprocess.Popen(bench, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    stored = out / ".scores"
    deadline = time.monotonic() + 240
    while not (stored.is_dir() and any(stored.glob("*.json"))):
        assert process.poll() is None, "the bench finished before it could be interrupted"
        assert time.monotonic() < deadline, "no scores were stored in time"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before_kill = len(list(stored.glob("*.json")))
    assert (out / "results.json").read_text() == "previous results\n"  # nothing half-written
    assert not list(out.glob(".*.tmp"))

    capsys.readouterr()
    assert main(["bench", str(default_suite), *reduced]) == 0
    log = capsys.readouterr().err
    assert "reusing the scores of base on tinyworld from an earlier run" in log
    assert log.count("reusing the scores of") == done_before_kill
    assert normalised(out / "results.json", out) == normalised(clean / "results.json", clean)


@pytest.mark.slow
def test_same_inputs_give_byte_identical_results_apart_from_times(
    tmp_path: Path, default_suite: Path, reduced: list[str]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        model = ["--set", f"models.aligned.path={out / 'models' / 'aligned'}"]
        assert main(["bench", str(default_suite), *reduced, *model, "--out", str(out)]) == 0
    assert normalised(first / "results.json", first) == normalised(second / "results.json", second)
    for name in ("pairs/tinyworld.jsonl",):
        assert (first / name).read_bytes() == (second / name).read_bytes()
