"""Which model of one run is which model of another: by role and fingerprint, not by display name.

A suite run names its models as the suite does (`aligned`, `base`); `evalkit bench --model` names them
`candidate` and `reference`. Gating a candidate against a recorded baseline, or comparing the two
runs, needs the candidate of one to meet the candidate of the other, and the reference to meet the
reference. Each model is matched at most once, in this order of evidence:
1. the same role (`ModelInfo.role`), preferring the model with the same fingerprint among several;
2. the same fingerprint (the very same weights, tokenizer and rendering);
3. the same name (what runs written before roles existed fall back on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evalkit.results.schema import ModelInfo, RunResult

MatchedBy = Literal["role", "fingerprint", "name"]


@dataclass(frozen=True)
class Counterpart:
    """The model of the other run that stands for a model of this run."""

    name: str
    """Its name in the other run."""
    by: MatchedBy
    """The evidence: `fingerprint` when the weights are the same, else `role` or `name`."""


def counterparts(run: RunResult, other: RunResult) -> dict[str, Counterpart]:
    """Model name in `run` → its counterpart in `other`, for every model of `run` that has one."""
    taken: set[str] = set()
    found: dict[str, Counterpart] = {}
    for rule in (_same_role, _same_fingerprint, _same_name):
        for model in run.models:
            if model.name in found:
                continue
            match = rule(model, [m for m in other.models if m.name not in taken])
            if match is not None:
                by: MatchedBy = "fingerprint" if match.fingerprint == model.fingerprint else _evidence[rule]
                found[model.name] = Counterpart(match.name, by)
                taken.add(match.name)
    return found


def _same_role(model: ModelInfo, others: list[ModelInfo]) -> ModelInfo | None:
    if model.role is None:
        return None
    alike = [m for m in others if m.role == model.role]
    return next((m for m in alike if m.fingerprint == model.fingerprint), alike[0] if alike else None)


def _same_fingerprint(model: ModelInfo, others: list[ModelInfo]) -> ModelInfo | None:
    """The same weights, but never across roles: a candidate that is the reference's checkpoint is still held
    against the last release's candidate, not against its reference."""
    compatible = [m for m in others if model.role is None or m.role is None or m.role == model.role]
    return next((m for m in compatible if m.fingerprint == model.fingerprint), None)


def _same_name(model: ModelInfo, others: list[ModelInfo]) -> ModelInfo | None:
    return next((m for m in others if m.name == model.name), None)


_evidence: dict[object, MatchedBy] = {_same_role: "role", _same_fingerprint: "fingerprint", _same_name: "name"}


def dataset_counterpart(name: str, run: RunResult, other: RunResult) -> str | None:
    """The dataset of `other` that is `run`'s dataset `name`: the same name, else the same data (fingerprint)."""
    if any(d.name == name for d in other.datasets):
        return name
    ours = next((d for d in run.datasets if d.name == name), None)
    same = [d.name for d in other.datasets if ours is not None and d.fingerprint == ours.fingerprint]
    return same[0] if same else None
