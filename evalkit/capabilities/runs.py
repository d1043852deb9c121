"""What a capability task run leaves per model: each document's values, matched across models by id and hash."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DocumentScore:
    """One document of a task under one model: lm-eval's per-document metric values."""

    id: str
    doc_hash: str
    values: dict[str, float]
    """Metric name (`acc`, `exact_match,strict-match` for a filtered one) → the document's value."""


@dataclass(frozen=True)
class TaskRun:
    """One task under one model, as lm-eval scored it."""

    task: str
    model: str
    version: str | None
    num_fewshot: int | None
    higher_is_better: dict[str, bool | None]
    documents: list[DocumentScore]
