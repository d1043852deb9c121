"""Scoring models that are already in memory: the core under `evalkit.score` and the training callback.

`bench` loads checkpoints from disk and keeps their scores across runs; here the caller hands over
live objects (a notebook's model, a trainer's policy at some step) and nothing is cached on disk.
The steps are the ones `bench` runs: tokenize as TRL does (`evalkit.scoring.score.tokenize_pair`), leave
out pairs whose prompt fills `max_length` and count them, probe and score the policy, score the
reference on the policy's own tokens, zip both into per-pair rows; then `assemble_result` makes the
same `RunResult` a suite run writes, so every reader (reports, frames, `evalkit compare`) takes it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel

from evalkit import __version__
from evalkit.config.objectives import Objective, objective_info
from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair
from evalkit.data.rendering import Rendering
from evalkit.metrics.baselines import AnswerLengths, baseline_inputs, compare_with_baselines, compute_baselines
from evalkit.metrics.compute import compute_metrics, reliability_curves
from evalkit.metrics.flips import flips_to_show
from evalkit.metrics.paired import compare_models, with_false_discovery_rate
from evalkit.results.estimates import BaselineScore, Comparison, Metric, ReliabilityBin, Statistics
from evalkit.results.pairs import PairScore
from evalkit.results.provenance import environment
from evalkit.results.schema import (
    SCHEMA_VERSION,
    DatasetInfo,
    ModelInfo,
    ModelKind,
    PairText,
    RunResult,
    ScoringInfo,
    ScoringMode,
    SuiteInfo,
    TokenizationAudit,
)
from evalkit.results.texts import pair_text

ReferenceModel = Callable[[], AbstractContextManager[PreTrainedModel]]
"""Enters the reference and yields the model to run: a separate model, or the policy with its adapter disabled."""


def separate_model(model: PreTrainedModel) -> ReferenceModel:
    """A reference that is a model of its own."""
    return lambda: contextlib.nullcontext(model)


def adapter_disabled(model: Any) -> ReferenceModel:
    """The policy with its adapter disabled, as TRL's DPOTrainer does with `peft_config` and no `ref_model`
    (or with TRL's `ref` adapter active, when the policy carries one: TRL's way of re-training an adapter)."""

    @contextlib.contextmanager
    def entered() -> Iterator[PreTrainedModel]:
        if "ref" in getattr(model, "peft_config", {}):
            previous = model.active_adapter
            model.set_adapter("ref")
            try:
                yield model
            finally:
                model.set_adapter(previous)
        else:
            with model.disable_adapter():
                yield model

    return entered


def is_peft_model(model: Any) -> bool:
    """Whether `model` carries PEFT adapters (checked without importing PEFT for plain models)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def parameters_fingerprint(model: torch.nn.Module, rendering: Rendering, *, adapters: bool = True) -> str:
    """sha256 over a live model's parameters (names, dtypes, shapes, bytes) and its rendering: what its scores
    depend on besides the tokens. Two steps of a training run differ; the same weights loaded twice do not.
    `adapters=False` leaves a PEFT model's adapter weights out: the fingerprint of its base, adapter disabled."""
    names = list(getattr(model, "peft_config", {})) if not adapters else []
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if any(f".{adapter}." in name for adapter in names):
            continue
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    if not rendering.is_plain:
        digest.update(rendering.identity.encode())
    return digest.hexdigest()


def live_model_info(
    name: str, path: str, kind: ModelKind, model: Any, rendering: Rendering, fingerprint: str
) -> ModelInfo:
    """The results record of a model in memory (`path` says where it came from, in words)."""
    return ModelInfo(
        name=name,
        path=path,
        kind=kind,
        base=None,
        dtype=str(getattr(model, "dtype", "float32")).removeprefix("torch."),
        fingerprint=fingerprint,
        chat_template_kwargs=rendering.options,
        template_date=rendering.date.isoformat() if rendering.date is not None else None,
    )


def with_mode(info: ModelInfo, mode: ScoringMode | None, objective: Objective | None = None) -> ModelInfo:
    """`info` with the scoring mode its passes ran in on one dataset, and the objective it was scored with."""
    recorded = objective_info(objective) if objective is not None else None
    return info.model_copy(update={"scoring_modes": [mode] if mode is not None else [], "objective": recorded})


def pairs_fingerprint(pairs: Sequence[PreferencePair]) -> str:
    """sha256 of in-memory pairs (ids, subsets, text): equal fingerprints let `evalkit compare` test pair by pair."""
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(json.dumps([p.id, p.subset, p.prompt, p.chosen, p.rejected], ensure_ascii=False).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ResultParts:
    """What a run scored, before metrics: the pieces `assemble_result` turns into a `RunResult`."""

    name: str
    """The run's name (`suite.name` in results.json)."""
    scores: Mapping[str, list[PairScore]]
    """Per dataset, every model's rows, models in the order their comparisons run (baseline first)."""
    pairs: Mapping[str, Sequence[PreferencePair]]
    models: list[ModelInfo]
    datasets: list[DatasetInfo]
    audits: list[TokenizationAudit]
    reference: str | None
    scoring: ScoringSpec
    statistics: Statistics
    description: str = ""
    compared_with: str | None = None
    """When set, each model is compared with this one only (a training curve: every step against the reference,
    not every step against every other); otherwise each later model with each earlier one, as a suite run."""
    objectives: Mapping[str, Objective] | None = None
    """Model name → the objective it is scored with (its `trl/*` and `objective/*` metrics); None: none."""


@dataclass(frozen=True)
class Summaries:
    """What a run's per-pair scores say: metrics, paired comparisons, reliability, and the flipped pairs' text."""

    metrics: list[Metric]
    comparisons: list[Comparison]
    reliability: list[ReliabilityBin]
    flip_examples: list[PairText]
    baselines: list[BaselineScore]
    baseline_comparisons: list[Comparison]

    def fields(self) -> dict[str, Any]:
        """The `RunResult` fields these fill in."""
        return {
            "metrics": self.metrics,
            "comparisons": self.comparisons,
            "reliability": self.reliability,
            "flip_examples": self.flip_examples,
            "baselines": self.baselines,
            "baseline_comparisons": self.baseline_comparisons,
        }


def summarise_scores(
    scores: Mapping[str, list[PairScore]],
    pairs: Mapping[str, Sequence[PreferencePair]],
    beta: float,
    statistics: Statistics,
    reference: str | None,
    compared_with: str | None = None,
    objectives: Mapping[str, Objective] | None = None,
) -> Summaries:
    """Metrics, paired comparisons and reliability of every dataset's rows, as a suite run computes them (each later
    model against each earlier one, or each against `compared_with` only), and the text of the flipped pairs the
    reports show (results.json carries exactly those). Models named in `objectives` get their objective's metrics
    too (`evalkit.metrics.objectives`), and every dataset its content-blind baselines (`evalkit.metrics.baselines`)."""
    metrics, comparisons, reliability, baselines, against_baselines = [], [], [], [], []
    for dataset, rows in scores.items():
        metrics += compute_metrics(dataset, rows, beta, statistics=statistics, objectives=objectives)
        reliability += reliability_curves(dataset, rows, beta, statistics=statistics)
        comparisons += compare_models(
            dataset, rows, beta, statistics=statistics, against=compared_with, objectives=objectives
        )
        inputs = baseline_inputs(dataset, rows, character_lengths(dataset, pairs.get(dataset, [])))
        if inputs is not None:
            baselines += compute_baselines(dataset, inputs, statistics)
            against_baselines += compare_with_baselines(dataset, rows, inputs, beta, statistics)
    comparisons = with_false_discovery_rate(comparisons)  # one family: every comparison the reports mark
    shown = {(name, i) for name, ids in flips_to_show(comparisons, reference).items() for i in ids}
    flip_examples = [
        pair_text(name, p) for name, dataset_pairs in pairs.items() for p in dataset_pairs if (name, p.id) in shown
    ]
    return Summaries(
        metrics, comparisons, reliability, flip_examples, baselines, with_false_discovery_rate(against_baselines)
    )


def character_lengths(dataset: str, pairs: Sequence[PreferencePair]) -> dict[str, AnswerLengths]:
    """Each pair's answers' lengths in characters of their plain text (`pair_text`: a message list as its
    `role: content` paragraphs), for the content-blind baselines."""
    out = {}
    for pair in pairs:
        text = pair_text(dataset, pair)
        out[pair.id] = AnswerLengths(len(text.chosen), len(text.rejected))
    return out


def assemble_result(parts: ResultParts, started: datetime.datetime, duration_s: float) -> RunResult:
    """The `RunResult` of in-memory scores: metrics, paired comparisons and reliability as a suite run computes
    them, and the text of the flipped pairs the reports show."""
    summaries = summarise_scores(
        parts.scores,
        parts.pairs,
        parts.scoring.beta,
        parts.statistics,
        parts.reference,
        parts.compared_with,
        parts.objectives,
    )
    settings = parts.scoring.model_dump(mode="json", include=set(ScoringInfo.model_fields) - {"reference_cache"})
    return RunResult(
        schema_version=SCHEMA_VERSION,
        evalkit_version=__version__,
        created_at=started.isoformat(timespec="seconds"),
        duration_s=round(duration_s, 1),
        suite=SuiteInfo(name=parts.name, description=parts.description, path="<python>", sha256=""),
        environment=environment(),
        reference=parts.reference,
        scoring=ScoringInfo(**settings),
        statistics=parts.statistics,
        models=parts.models,
        datasets=parts.datasets,
        audit=parts.audits,
        training=None,
        **summaries.fields(),
    )
