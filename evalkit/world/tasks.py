"""Capability tasks of the tiny world, as lm-evaluation-harness task files (multiple choice, local JSON).

- `tinyworld_facts`: "Ada asks: What color is the sky?" with the fact's answer among three other facts'
  answers. Pretraining taught the facts; DPO never asks for them, so what it loses here is the tax.
- `tinyworld_arithmetic`: "What is 3 plus 4?" with the right sum among three near misses. The base saw
  right and wrong sums equally often; DPO teaches the right one, so this is a skill alignment adds.

Each document has an `id`; the choices are whole assistant answers, in the world's own phrasing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from evalkit.world.pairs import FACTS, NAMES

TASK_NAMES = ("tinyworld_facts", "tinyworld_arithmetic")


def facts_documents(seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    answers = list(FACTS.values())
    documents = []
    for name in NAMES:
        for index, (question, answer) in enumerate(FACTS.items()):
            choices = [answer, *rng.sample([a for a in answers if a != answer], 3)]
            rng.shuffle(choices)
            documents.append(
                {
                    "id": f"fact-{name}-{index:02d}",
                    "question": f"{name} asks: {question}",
                    "choices": [f"{c}." for c in choices],
                    "answer": choices.index(answer),
                }
            )
    return documents


def arithmetic_documents(seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    documents = []
    for a in range(10):
        for b in range(10):
            total = a + b
            near = [total + d for d in (-2, -1, 1, 2, 3) if total + d >= 0]
            choices = [total, *rng.sample(near, 3)]
            rng.shuffle(choices)
            documents.append(
                {
                    "id": f"sum-{a}-{b}",
                    "question": f"What is {a} plus {b}?",
                    "choices": [f"{a} + {b} = {c}." for c in choices],
                    "answer": choices.index(total),
                }
            )
    return documents


def _task_yaml(name: str, data_file: Path) -> str:
    # JSON is valid YAML: written this way, no YAML dependency and no quoting surprises in the templates.
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "answer",
        "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }
    return json.dumps(config, indent=2) + "\n"


def write_tasks(directory: Path) -> list[Path]:
    """Write the world's task files under `directory` (YAML files naming their JSON Lines data by absolute
    path); files already holding the same text are left alone. Returns the YAML files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, documents in zip(TASK_NAMES, (facts_documents(), arithmetic_documents()), strict=True):
        data = directory / f"{name}.jsonl"
        _write_if_changed(data, "".join(json.dumps(d) + "\n" for d in documents))
        task = directory / f"{name}.yaml"
        _write_if_changed(task, _task_yaml(name, data))
        written.append(task)
    return written


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
