"""Older results files, as the current schema reads them: migrated once, where they are read, so no reader
branches on a version."""

from __future__ import annotations

from typing import Any


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A results file of any 1.x schema, as the current schema reads it (missing fields take their defaults).

        1.0–1.3 recorded the settings of a percentile bootstrap that 1.4 no longer uses; they are dropped, and
        intervals from those files keep `method` None ("not recorded") rather than a guess. Verdicts before 1.5
        take the status their `passed` says; models before 1.5 get the roles runs give them now (`_with_roles`); a
    training before 1.8 was a `DPOTrainer` run. 1.9 added comparisons of two models' reward AUCs on labelled
    completions (`mover_auc`, with their group sizes and correlation): older files have none, and read as they are.
    """
    statistics = raw.get("statistics")
    if isinstance(statistics, dict):
        raw = {**raw, "statistics": {k: v for k, v in statistics.items() if not k.startswith("bootstrap_")}}
    gate = raw.get("gate")
    if isinstance(gate, list):
        # Before 1.5 a verdict was passed or failed; every rule that could not be judged stopped the run.
        verdicts = [
            {"status": "passed" if v.get("passed") else "failed", **v} if isinstance(v, dict) else v for v in gate
        ]
        raw = {**raw, "gate": verdicts}
    models = raw.get("models")
    if isinstance(models, list) and all(isinstance(m, dict) and "role" not in m for m in models):
        raw = {**raw, "models": _with_roles(models, raw)}
    training = raw.get("training")
    if isinstance(training, dict) and "trainer" not in training and _minor(raw) < 8:
        # Before 1.8 evalkit trained with DPOTrainer only; the trainer was not recorded.
        raw = {**raw, "training": {**training, "trainer": "DPOTrainer"}}
    return raw


def _minor(raw: dict[str, Any]) -> int:
    """The minor version of a 1.x file (0 when unreadable, so the oldest migrations apply)."""
    version = str(raw.get("schema_version", "1.0")).split(".")
    return int(version[1]) if len(version) > 1 and version[1].isdigit() else 0


def _with_roles(models: list[dict[str, Any]], raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Roles for a file written before 1.5, by the rule runs use now: the reference, and as candidate the trained
    model, else the last other model. Without them a candidate with the reference's weights would be matched to
    the baseline's reference by fingerprint, and pass a rule against the last release it should fail."""
    reference = raw.get("reference")
    training = raw.get("training")
    trained = training.get("model") if isinstance(training, dict) else None
    others = [m.get("name") for m in models if m.get("name") != reference]
    candidate = trained if trained in others else (others[-1] if others else None)
    roles = {reference: "reference", candidate: "candidate"}
    return [{**m, "role": roles.get(m.get("name"))} for m in models]
