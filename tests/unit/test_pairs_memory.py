"""Reading a per-pair file (or its texts) holds about its own size in memory, not several times it: a fork's
file may be up to `MAX_PAIRS_FILE_BYTES`, and a reader that cost 9× its size would need 19 GB for one.

tracemalloc sees every allocation the readers make (Python objects; numpy's buffers too), so its peak during a
read, over the file's size, is the ratio the benchmark `tests/benchmarks/test_pairs_memory.py` reports at 250 MB.
"""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.results.pairs import read_pair_scores
from evalkit.results.schema import DatasetInfo
from evalkit.results.texts import read_pair_texts

BOUND = 2.0
"""Peak memory of a read over the file's size; the issue's bound."""


def score_row(i: int, with_reference: bool) -> dict[str, object]:
    """A row as `evalkit bench` writes it: unique id, shared subset and model, a prompt key per prompt."""
    row: dict[str, object] = {
        "id": f"arithmetic-{i:07d}",
        "subset": "arithmetic",
        "model": "policy",
        "logp_chosen": -0.18963146209716797 - i * 1e-7,
        "logp_rejected": -2.0301742553710938 + i * 1e-7,
        "n_tokens_chosen": 8 + i % 300,
        "n_tokens_rejected": 9 + i % 300,
        "truncated": i % 7 == 0,
        "ref_logp_chosen": -0.3 - i * 1e-7 if with_reference else None,
        "ref_logp_rejected": -1.9 + i * 1e-7 if with_reference else None,
        "prompt_key": f"{i * 2654435761 % 2**64:016x}",
    }
    if with_reference:
        row |= {"reward_chosen": 0.011, "reward_rejected": -0.013, "margin": 0.024}
    return row


def write_rows(path: Path, rows: int, with_reference: bool) -> int:
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            out.write(json.dumps(score_row(i, with_reference)) + "\n")
    return path.stat().st_size


def peak_ratio(read: Callable[[], object], size: int) -> float:
    """Peak traced memory while `read` runs and its result is held, over `size` bytes."""
    tracemalloc.start()
    try:
        held = read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held  # the rows are what is measured: a reader that dropped them would measure nothing
    return peak / size


def test_reading_per_pair_scores_holds_less_than_twice_the_file(tmp_path: Path) -> None:
    for with_reference in (False, True):
        path = tmp_path / f"scores-{with_reference}.jsonl"
        size = write_rows(path, 20_000, with_reference)
        ratio = peak_ratio(lambda: read_pair_scores(path), size)  # noqa: B023 (called at once)
        assert ratio < BOUND, f"{ratio:.2f}× the file's {size:,} bytes (reference: {with_reference})"


def test_a_line_longer_than_a_row_is_refused_without_being_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scores.jsonl"
    write_rows(path, 3, with_reference=False)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(score_row(3, False) | {"id": "x" * 5000}) + "\n")
    monkeypatch.setattr("evalkit.results.pairs.MAX_PAIR_ROW_BYTES", 4096)
    with pytest.raises(EvalkitError, match=rf"^{re.escape(str(path))}:4: a line longer than 4,096 bytes; expected "):
        read_pair_scores(path)


def test_reading_pair_texts_holds_less_than_twice_the_file(tmp_path: Path) -> None:
    (tmp_path / "pairs").mkdir()
    path = tmp_path / "pairs" / "world.texts.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(10_000):
            row = {"id": f"p{i:06d}", "subset": "arithmetic", "prompt": f"What is {i} + {i}? " * 4}
            out.write(json.dumps(row | {"chosen": f"{2 * i}, because " * 6, "rejected": f"{2 * i + 1}. " * 6}) + "\n")
    info = DatasetInfo.model_construct(name="world", pairs_file="pairs/world.jsonl")
    ratio = peak_ratio(lambda: read_pair_texts(tmp_path, info), path.stat().st_size)
    assert ratio < BOUND, f"{ratio:.2f}× the file's {path.stat().st_size:,} bytes"
