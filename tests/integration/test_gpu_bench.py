"""benchmarks/gpu.sh's benchmark in its dry run: the same code as on a GPU (benchmarks/gpu_bench.py), on the CPU with
tiny shapes of the three models, so a broken step shows here and not in the one device call a GPU run gets."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METHODS = {
    ("float32", "evalkit"),
    ("bfloat16", "evalkit, bf16 autocast over fp32 weights"),
    ("float32", "plain batched loop"),
    ("float32", "TRL evaluate()"),
    ("bfloat16", "evalkit"),
    ("bfloat16", "evalkit, token budget 128"),
    ("bfloat16", "evalkit, no prompt sharing"),
    ("bfloat16", "evalkit, no sharing, no selective head"),
    ("bfloat16", "plain batched loop"),
    ("bfloat16", "TRL evaluate()"),
}
"""Every way each shape is scored; the 8B shape leaves out the float32 baselines (no room for them on a card)."""
FP32_BASELINES = {
    ("bfloat16", "evalkit, bf16 autocast over fp32 weights"),
    *{("float32", m) for m in ("plain batched loop", "TRL evaluate()")},
}


def test_the_dry_run_scores_every_shape_every_way_and_the_ways_agree(tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OUT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_bench", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads((tmp_path / "gpu-bench.json").read_text()) == record
    assert (
        (tmp_path / "gpu-bench.md")
        .read_text()
        .startswith("evalkit GPU benchmark (CPU dry run, tiny shapes: not a performance figure")
    )
    assert (record["schema"], record["dry_run"], record["device"]) == ("evalkit-gpu-bench/1", True, "cpu")
    # The parity and invariance tests ran (one of them, in a dry run) on the device the tiny models were moved to.
    assert record["tests"]["passed"] is True and record["tests"]["device"] == "cpu"
    assert record["tests"]["summary"].startswith("1 passed"), record["tests"]
    assert set(record["shapes"]) == {"llama-3.2-1b", "llama-3.1-8b", "gemma-2-2b"}
    pairs = record["workload"]["pairs"]
    for name, shape in record["shapes"].items():
        rows = {(r["dtype"], r["method"]): r for r in shape["rows"]}
        assert set(rows) == (METHODS - FP32_BASELINES if name == "llama-3.1-8b" else METHODS), name
        for key, row in rows.items():
            assert row["error"] == "", (name, key, row["error"])
            assert row["seconds"] > 0 and row["pairs_per_s"] == pairs / row["seconds"]
            assert row["tokens_per_s"] > 2 * pairs * 3  # at least a prompt and two answer tokens per pair and model
            assert row["peak_gib"] is None  # no GPU memory to read on a CPU
        # Gemma's soft cap included: every shape takes the fast paths, and each switch turns one of them off.
        assert rows[("bfloat16", "evalkit")]["mode"] == "prompt-shared"
        assert rows[("bfloat16", "evalkit, no prompt sharing")]["mode"] == "whole sequences"
        assert rows[("bfloat16", "evalkit, no sharing, no selective head")]["mode"] == "whole sequences, full logits"
        # Every way computes the same DPO loss: within float rounding in float32, within bfloat16's in bfloat16.
        for (dtype, method), row in rows.items():
            if row["mean_loss"] is not None:
                expected = rows[(dtype, "evalkit")]["mean_loss"]
                assert abs(row["mean_loss"] - expected) < (1e-5 if dtype == "float32" else 2e-3), (name, method)
        if name != "llama-3.1-8b":
            assert shape["parity"]["float32: |evalkit - TRL| mean loss"] < 1e-5
            assert shape["parity"]["float32: max |evalkit - plain loop| logp"] < 1e-3
        agreement = shape["agreement"]
        assert agreement["pairs"] == pairs and agreement["preference_flips"] <= pairs
        assert 0 < agreement["mean_abs_logp_delta"] <= agreement["max_abs_logp_delta"] < 0.5
        assert all(math.isfinite(value) for value in agreement.values())
        assert shape["gains"]["bfloat16: evalkit over trl"] > 0 and shape["gains"]["bfloat16: prompt sharing"] > 0
