"""`torchrun --nproc_per_node 2 -m evalkit score`: two gloo processes on CPU share the pairs out, and the
scores they gather back are byte for byte those of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs


@pytest.mark.slow
def test_two_processes_write_exactly_what_one_process_writes(
    tmp_path: Path, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    for name, seed in (("reference", 0), ("policy", 1)):
        torch.manual_seed(seed)
        build_model(tiny_tokenizer, hidden_size=32, num_layers=2).save_pretrained(tmp_path / name)
        tiny_tokenizer.save_pretrained(tmp_path / name)
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in generate_pairs(7, seed=3)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def score(launcher: list[str], out: Path) -> subprocess.CompletedProcess[str]:
        argv = ["score", "--model", str(tmp_path / "policy"), "--ref", str(tmp_path / "reference")]
        argv += [
            "--data",
            str(tmp_path / "pairs.jsonl"),
            "--batch-size",
            "2",
            "--no-reference-cache",
            "--out",
            str(out),
        ]
        # One thread per process in both runs: the same kernels, so the same bits.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run([*launcher, "-m", "evalkit", *argv], capture_output=True, text=True, timeout=300, env=env)

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    two = score(torchrun, tmp_path / "two.jsonl")
    assert two.returncode == 0, two.stderr[-2000:]
    one = score([sys.executable], tmp_path / "one.jsonl")
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.stdout.count("wrote 21 pairs") == 1  # only the main process writes and speaks
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert len((tmp_path / "one.jsonl").read_text().splitlines()) == 21
