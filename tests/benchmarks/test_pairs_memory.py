"""Memory for reading a 250 MB per-pair file (`pairs/<dataset>.jsonl`) against its size: the bound is 2×.

Two measures, both reported in the benchmark's extra_info and printed:
- `traced`: tracemalloc's peak while the rows are read and held, over the file's size. The reader makes only
  Python objects (slotted records, floats, strings), all of which tracemalloc sees; this is the one asserted.
- `rss`: the growth of the peak resident size of a fresh process that reads the file (VmHWM after the read less
  VmRSS before it, Linux), over the file's size: what the operating system saw, allocator slack included.

The file is the rows `evalkit bench` writes with a reference (rewards and margin too), each with its own id.
Memory, not time, is the figure here; the benchmark times one read for scale.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from evalkit.results.pairs import read_pair_scores

TARGET_BYTES = 250 * 10**6
BOUND = 2.0


def row(i: int) -> str:
    record = {
        "id": f"arithmetic-{i:08d}",
        "subset": ("arithmetic", "logic", "style")[i % 3],
        "model": "policy",
        "logp_chosen": -0.18963146209716797 - i * 1e-9,
        "logp_rejected": -2.0301742553710938 + i * 1e-9,
        "n_tokens_chosen": 8 + i % 500,
        "n_tokens_rejected": 9 + i % 500,
        "truncated": i % 7 == 0,
        "ref_logp_chosen": -0.3 - i * 1e-9,
        "ref_logp_rejected": -1.9 + i * 1e-9,
        "prompt_key": f"{i // 2 * 2654435761 % 2**64:016x}",
        "reward_chosen": 0.011,
        "reward_rejected": -0.013,
        "margin": 0.024,
    }
    return json.dumps(record) + "\n"


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "world.jsonl"
    written, i = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < TARGET_BYTES:
            block = "".join(row(j) for j in range(i, i + 10_000))
            out.write(block)
            written, i = written + len(block), i + 10_000
    return path


RSS_PROBE = """
import sys
from pathlib import Path
from evalkit.results.pairs import read_pair_scores
def status(key: str) -> int:
    line = next(line for line in open("/proc/self/status") if line.startswith(key + ":"))
    return int(line.split()[1]) * 1024
before = status("VmRSS")
rows = read_pair_scores(Path(sys.argv[1]))
print(len(rows), status("VmHWM") - before)
"""
"""VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's (kept across fork and exec), so it would report
pytest's own peak; VmHWM belongs to the new process's memory, made afresh at exec."""


def test_reading_a_250_mb_per_pair_file_holds_under_twice_its_size(
    benchmark: BenchmarkFixture, pairs_file: Path
) -> None:
    size = pairs_file.stat().st_size
    peaks: list[int] = []

    def read() -> int:
        tracemalloc.start()
        try:
            rows = read_pair_scores(pairs_file)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        return len(rows)

    n_rows = benchmark.pedantic(read, rounds=1, iterations=1)
    probe = subprocess.run([sys.executable, "-c", RSS_PROBE, str(pairs_file)], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    rss_rows, grown = (int(field) for field in probe.stdout.split())
    assert rss_rows == n_rows
    traced, rss = peaks[0] / size, grown / size
    benchmark.extra_info.update(
        {"file_bytes": size, "rows": n_rows, "traced_peak_ratio": round(traced, 3), "rss_growth_ratio": round(rss, 3)}
    )
    print(
        f"\nper-pair file {size / 1e6:.0f} MB, {n_rows:,} rows: traced peak {traced:.2f}×, peak RSS growth {rss:.2f}×"
    )
    assert traced < BOUND
