"""How long evalkit's commands take as whole processes, beside the import of torch alone.

`gate`, `report` and `compare` read a results file and never need torch, TRL or PEFT: they should
start in well under the time torch takes to import. `score` on a plain model needs torch and
transformers, never PEFT. Each command runs 5 times as a fresh process (median in the printed table
and in pytest-benchmark's); no assertion is on time: a slow CI machine must not fail the build.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from evalkit.config.suite import DEFAULT_SUITE
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs
from evalkit.world.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
EVALKIT = [sys.executable, "-m", "evalkit"]
ROUNDS = 5


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the golden results, and a tiny plain model with 8 pairs to score."""
    root = tmp_path_factory.mktemp("startup")
    shutil.copytree(GOLDEN / "pairs", root / "pairs")
    pairs = generate_pairs(4, seed=0)
    corpus = [m["content"] for p in pairs for text in (p.prompt, p.chosen, p.rejected) for m in text]
    tokenizer = train_tokenizer(corpus, vocab_size=320)
    torch.manual_seed(0)
    model = build_model(tokenizer, hidden_size=32, num_layers=2)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs[:8]]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "evalkit gate --suite": [*EVALKIT, "gate", "results.json", "--suite", str(DEFAULT_SUITE)],
    "evalkit report": [*EVALKIT, "report", "results.json"],
    "evalkit compare": [*EVALKIT, "compare", "results.json", "results.json"],
    "evalkit score (plain model, 8 pairs)": [
        *EVALKIT,
        *("score", "--model", "model", "--data", "pairs.jsonl", "--out", "out.jsonl", "--no-reference-cache"),
    ],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_startup(name: str, workdir: Path, benchmark: BenchmarkFixture) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times: list[float] = []

    def run() -> None:
        shutil.copy(GOLDEN / "results.json", workdir / "results.json")  # `gate` writes its verdicts into it
        started = time.perf_counter()
        subprocess.run(COMMANDS[name], cwd=workdir, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    print(f"\nstartup: {name:40s} median of {ROUNDS} {statistics.median(times):5.2f} s")
