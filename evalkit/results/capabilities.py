"""Capability tasks in `results.json`: lm-evaluation-harness tasks as they ran, their scores and comparisons."""

from __future__ import annotations

from evalkit.results.estimates import Comparison, Metric
from evalkit.results.record import Record


class CapabilityTask(Record):
    """One lm-evaluation-harness task as it ran: what it is, so two runs of "the same task" can be told apart."""

    name: str
    version: str | None
    """The task's own `metadata.version`, as lm-eval reports it."""
    source: str
    """The task's YAML file (lm-eval's own for its tasks); `python` for a task defined in code."""
    fingerprint: str | None
    """sha256 over the task's YAML file and the local data files it names, by content, not by where they lie (for a
    group, over its tasks' too);
    None for a task defined in Python. Data a task downloads from the hub is not covered: its version is."""
    num_fewshot: int | None
    limit: int | None
    n_documents: int
    """Documents every model was scored on (for a group, those of all its tasks)."""
    metrics: list[str]
    """Per-document metrics the task reports (`acc`, `acc_norm`, `exact_match`, ...); the first is its primary."""


class CapabilityResult(Record):
    """Capability tasks run through lm-evaluation-harness on every model: each task's score with an interval,
    and between models a paired comparison on the same documents, with the flipped documents."""

    lm_eval_version: str
    apply_chat_template: bool
    tasks: list[CapabilityTask]
    scores: list[Metric]
    """Per (task, model, metric): `dataset` is the task, `subset` `all`, `n` the documents; Wilson's interval for
    0/1 scores, Student t for others."""
    comparisons: list[Comparison]
    """Every later-listed model against every earlier-listed one per task and metric (`dataset` is the task):
    Tango's score interval and test for 0/1 scores, with the flipped document ids; a paired t otherwise.
    `p_adjusted` is Benjamini–Hochberg over these comparisons."""
    endpoint: str | None = None
    """The API root of the server that scored the documents (lm-eval's `local-completions` against its
    `/v1/completions`); None: in evalkit's process, and in files older than this field."""
    served_models: dict[str, str] = {}
    """With an endpoint: suite model name → the served model name asked for."""
