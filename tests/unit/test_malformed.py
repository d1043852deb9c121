"""No crash from input: a malformed fork's artifact (results, per-pair scores, texts) is bad input, exit 2 in one
line, and a gate or report that stops on it writes none of its outputs. Exit 3 is kept for evalkit's own bugs."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli import main

GOLDEN = Path(__file__).parents[1] / "golden"
RULES = [
    {"name": "acc", "kind": "absolute", "model": "aligned", "metric": "preference/accuracy", "at_least": 0.5},
    {"name": "sup", "kind": "superiority", "model": "aligned", "baseline": "base", "metric": "preference/accuracy"},
]
SUITE = {
    "name": "s",
    "output_dir": "o",
    "datasets": [{"name": "tinyworld", "path": "pairs.jsonl"}],
    "models": [{"name": "base", "path": "base"}, {"name": "aligned", "path": "aligned"}],
    "reference": "base",
    "gate": {"rules": RULES},
}
PAIRS = (GOLDEN / "pairs" / "tinyworld.jsonl").read_text().splitlines()
Raw = dict[str, Any]


def golden() -> Raw:
    raw: Raw = json.loads((GOLDEN / "results.json").read_text())
    return raw


def run_both(tmp_path: Path, results: str | bytes, pairs: bytes | None = None, texts: bytes | None = None) -> list[int]:
    """`evalkit gate` (own rules) and `evalkit report` on a forked run; the exit codes; nothing may be written."""
    fork = tmp_path / "fork"
    (fork / "pairs").mkdir(parents=True, exist_ok=True)
    (fork / "results.json").write_bytes(results.encode() if isinstance(results, str) else results)
    (fork / "pairs" / "tinyworld.jsonl").write_bytes(pairs if pairs is not None else "\n".join(PAIRS).encode())
    if texts is not None:
        (fork / "pairs" / "tinyworld.texts.jsonl").write_bytes(texts)
    (tmp_path / "suite.yaml").write_text(json.dumps(SUITE))
    gate = ["gate", str(fork / "results.json"), "--suite", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "g")]
    return [main(gate), main(["report", str(fork / "results.json"), "--out", str(tmp_path / "r")])]


def changed(change: Callable[[Raw], object]) -> str:
    raw = golden()
    change(raw)
    return json.dumps(raw)


def pairs_with(**fields: object) -> bytes:
    first = json.loads(PAIRS[0]) | fields
    return "\n".join([json.dumps(first), *PAIRS[1:]]).encode()


def no_flips(raw: Raw) -> None:
    for c in raw["comparisons"]:
        c["flips"] = None


def unnamed_dataset(raw: Raw) -> None:
    raw["datasets"][0]["name"] = ""
    for m in raw["metrics"] + raw["comparisons"]:
        m["dataset"] = ""


RESULTS = {
    "a 5000-digit integer": (GOLDEN / "results.json").read_text().replace('"n_pairs": 225', '"n_pairs": ' + "9" * 5000),
    "a missing key": changed(lambda raw: raw["models"][0].pop("fingerprint")),
    "non-UTF-8 bytes": b"\xff\xfe{}",
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "a \\ud800 escape": (GOLDEN / "results.json").read_text().replace('"name": "aligned"', '"name": "al\\ud800"', 1),
    "an empty dataset name": changed(unnamed_dataset),
    "datasets: []": changed(lambda raw: raw.update(datasets=[])),
    "an unknown metric": changed(lambda raw: raw["metrics"][0].update(metric="bogus/metric")),
    "flips: null": changed(no_flips),
    "an empty pairs_file": changed(lambda raw: raw["datasets"][0].update(pairs_file="")),
}


@pytest.mark.parametrize("case", list(RESULTS))
def test_a_malformed_results_file_is_bad_input_and_writes_nothing(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_both(tmp_path, RESULTS[case]) == [2, 2]
    captured = capsys.readouterr()
    errors = [line for line in (captured.out + captured.err).splitlines() if line.startswith("evalkit: ")]
    assert len(errors) == 2 and all(line.startswith("evalkit: error: ") for line in errors), errors
    assert not (tmp_path / "g").exists() and not (tmp_path / "r").exists()


SIDE_FILES = {
    "NaN in pairs.jsonl": {"pairs": pairs_with(logp_chosen=float("nan"))},
    "a string for a number in pairs.jsonl": {"pairs": pairs_with(logp_chosen="abc")},
    "a missing key in pairs.jsonl": {"pairs": PAIRS[0].replace('"logp_rejected"', '"renamed"').encode()},
    "null for a number in pairs.jsonl": {"pairs": pairs_with(logp_rejected=None)},
    "non-UTF-8 pairs.jsonl": {"pairs": b"\xff\xfe\n"},
    "a 5000-digit integer in pairs.jsonl": {
        "pairs": PAIRS[0].replace('"n_tokens_chosen": 8', '"n_tokens_chosen": ' + "9" * 5000).encode()
    },
    "a bad texts.jsonl line": {"texts": b"{not json\n"},
    "a \\ud800 escape in texts.jsonl": {
        "texts": b'{"id": "\\ud800", "subset": "s", "prompt": "p", "chosen": "c", "rejected": "r"}\n'
    },
    "a missing key in texts.jsonl": {"texts": b'{"id": "x"}\n'},
}


@pytest.mark.parametrize("case", list(SIDE_FILES))
def test_malformed_per_pair_and_text_files_are_bad_input_and_write_nothing(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_both(tmp_path, json.dumps(golden()), **SIDE_FILES[case]) == [2, 2]
    captured = capsys.readouterr()
    errors = [line for line in (captured.out + captured.err).splitlines() if line.startswith("evalkit: ")]
    assert len(errors) == 2 and all(line.startswith("evalkit: error: ") for line in errors), errors
    assert not (tmp_path / "g").exists() and not (tmp_path / "r").exists()


# Fuzzing the leaves of results.json: each field of the golden run set to a value of another kind or scale. Any exit
# but 3 is fine (a value may be valid, refused as bad input, or judged); a crash is evalkit's bug.
FUZZ_VALUES: list[object] = [-1, 0, 1e18, None, "", [], {}]
Leaf = tuple[str | int, ...]


def leaves(value: object, path: Leaf = ()) -> Iterator[Leaf]:
    """Paths to every leaf of a JSON document (an empty list or object counts as a leaf)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


def mutated(path: Leaf, value: object) -> str:
    root = golden()
    parent: Any = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return json.dumps(root)


def kinds_of_leaves() -> list[Leaf]:
    """One leaf per field of the schema (list positions folded: metrics.*.value once), the first met."""
    found: dict[Leaf, Leaf] = {}
    for path in leaves(golden()):
        found.setdefault(tuple("*" if isinstance(k, int) else k for k in path), path)
    return list(found.values())


FUZZ_SAMPLE = random.Random(32).sample([(p, v) for p in kinds_of_leaves() for v in range(len(FUZZ_VALUES))], 200)


def no_crash(tmp_path: Path, path: Leaf, value: object) -> None:
    """`evalkit gate` on the golden run with one field changed: it reads, judges and renders every output (what
    `evalkit report` does is a part of it)."""
    fork = tmp_path / "fork"
    fork.mkdir(parents=True)
    (fork / "pairs").mkdir()
    (fork / "pairs" / "tinyworld.jsonl").write_text("\n".join(PAIRS))
    (fork / "results.json").write_text(mutated(path, value))
    (tmp_path / "suite.yaml").write_text(json.dumps(SUITE))
    code = main(
        ["gate", str(fork / "results.json"), "--suite", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "g")]
    )
    assert code != 3, f"{'.'.join(map(str, path))} = {value!r}: an internal error"


@pytest.mark.parametrize(("path", "value"), FUZZ_SAMPLE, ids=lambda x: str(x))
def test_no_field_of_a_results_file_crashes_gate_or_report(tmp_path: Path, path: Leaf, value: int) -> None:
    no_crash(tmp_path, path, FUZZ_VALUES[value])


@pytest.mark.slow
@pytest.mark.parametrize("path", kinds_of_leaves(), ids=lambda x: ".".join(map(str, x)))
def test_no_field_of_a_results_file_crashes_with_any_value(tmp_path: Path, path: Leaf) -> None:
    for index, value in enumerate(FUZZ_VALUES):
        no_crash(tmp_path / str(index), path, value)
