"""`torchrun --nproc_per_node 2 -m evalkit bench`: the processes share scoring, generation, drift and
judging out, and the main process alone writes results that are byte for byte those of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def normalised(results: Path, out_dir: Path) -> dict[str, Any]:
    """A results file without what legitimately differs: times, output paths, the command, the environment."""
    raw = json.loads(results.read_text().replace(str(out_dir), "OUT"))
    for key in ("created_at", "duration_s", "command", "environment"):
        raw.pop(key)
    raw["training"].pop("seconds")
    return dict(raw)


@pytest.mark.slow
def test_two_processes_bench_exactly_what_one_process_benches(
    tmp_path: Path, default_suite: Path, reduced: list[str]
) -> None:
    # Small batches, so that every stage has several units to share out; no reference cache, so that the
    # second run scores the reference itself.
    settings = [*reduced, "--set", "scoring.batch_size=4", "--set", "generation.batch_size=4"]
    settings += ["--set", "scoring.reference_cache=null"]
    # One thread per process in both runs: the same kernels, so the same bits.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def bench(launcher: list[str], out: Path) -> subprocess.CompletedProcess[str]:
        argv = [*launcher, "-m", "evalkit", "bench", str(default_suite), *settings, "--out", str(out)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)

    one = bench([sys.executable], tmp_path / "one")  # builds the world and trains the adapter
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    two = bench(torchrun, tmp_path / "two")  # reuses both; scores, generates and judges in two processes
    assert two.returncode == 0, two.stderr[-3000:]

    # The main process speaks: its logs on stderr, its results on stdout.
    assert two.stderr.count("tiny world: reusing") == 1 and two.stdout.count("wrote ") == 1
    assert normalised(tmp_path / "two" / "results.json", tmp_path / "two") == normalised(
        tmp_path / "one" / "results.json", tmp_path / "one"
    )
    assert json.loads((tmp_path / "two" / "results.json").read_text())["environment"]["processes"] == 2
    for name in ("pairs/tinyworld.jsonl", "report.md"):
        assert (tmp_path / "two" / name).read_bytes() != b""
    assert (tmp_path / "two" / "pairs/tinyworld.jsonl").read_bytes() == (
        tmp_path / "one" / "pairs/tinyworld.jsonl"
    ).read_bytes()
    results = json.loads((tmp_path / "two" / "results.json").read_text())
    assert len(results["generation"]["samples"]) == 2 * len(results["generation"]["prompts"])
    assert len(results["generation"]["drift"]) == 1

    # Again: the main process finds the stored scores and hands them to the other, so both skip scoring alike.
    again = bench(torchrun, tmp_path / "two")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("reusing the scores of") == 2  # base and aligned, said once
    assert normalised(tmp_path / "two" / "results.json", tmp_path / "two") == normalised(
        tmp_path / "one" / "results.json", tmp_path / "one"
    )
