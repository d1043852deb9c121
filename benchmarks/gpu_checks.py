"""The GPU benchmark's correctness checks, run before any timing: the scoring parity tests (evalkit against TRL,
float32, tiny models) and the batch and padding invariance tests, their tiny models on the benchmark's device."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

PARITY_TESTS = [
    "tests/unit/test_scoring.py",
    "tests/integration/test_trl_parity.py",
]
PARITY_SELECTION = (
    "separate_reference_model or peft_and_no_reference or batch_size or padding or prompt_sharing or token_budget"
    " or chunked or truncation or tie_exactly or bfloat16"
)
"""The parity tests (evalkit against TRL, fp32, tiny models) and the batch and padding invariance tests."""
TESTS_TIMEOUT_S = 180
DRY_PARITY_SELECTION = "left_and_right_padding"
"""One of them in a dry run: enough to show the tests run on the device asked for, in seconds."""


def run_parity_tests(device: torch.device, dry_run: bool) -> dict[str, Any]:
    """The parity and invariance tests, their tiny models on this run's device."""
    selection = DRY_PARITY_SELECTION if dry_run else PARITY_SELECTION
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PARITY_TESTS, "-k", selection]
    env = os.environ | {"EVALKIT_TEST_DEVICE": device.type, "HF_HUB_OFFLINE": "1"}
    if dry_run:
        env["OMP_NUM_THREADS"] = "1"
    root = Path(__file__).resolve().parents[1]
    started = time.perf_counter()
    record: dict[str, Any] = {"device": device.type, "selection": selection}
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=TESTS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return record | {"passed": False, "summary": f"stopped after {TESTS_TIMEOUT_S} s", "seconds": TESTS_TIMEOUT_S}
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    if done.returncode != 0:
        print(done.stdout[-8000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
    return record | {
        "passed": done.returncode == 0,
        "summary": lines[-1] if lines else done.stderr.strip()[-300:],
        "seconds": time.perf_counter() - started,
    }
