"""evalkit from Python: score models on preference pairs, compare them, read results (`evalkit.run_suite`, in
`evalkit.pipeline.bench`, runs a suite).

A thin face over the pipeline `evalkit bench` runs: the same tokenization (TRL's), the same scoring
and metrics, the same `RunResult`, so a number here equals the CLI's on the same pairs. What it adds
is taking what a notebook holds: models in memory (or paths and hub ids) and pairs as a
`datasets.Dataset`, a pandas DataFrame, a list of dicts or a file.

    import evalkit
    run = evalkit.score(model, pairs_df, tokenizer=tokenizer, ref=base_model, beta=0.1)
    run.metrics_frame()          # one row per (dataset, subset, model, metric)
    run                          # the report's headline tables, inline
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from pydantic import BaseModel

from evalkit.api.evaluation import Evaluation, read_results
from evalkit.config.objectives import (
    Objective,
    needs_reference,
    reads_prompt,
    tokenization_of,
    with_beta,
)
from evalkit.config.recorded import recorded_objective
from evalkit.config.specs import ColumnMap, DataFormat, DatasetSpec, ModelSpec, ScoringSpec
from evalkit.data.pairs import PreferencePair, load_pairs, pairs_from_rows
from evalkit.data.rendering import Rendering
from evalkit.errors import EvalkitError
from evalkit.results.estimates import Flips, Statistics
from evalkit.results.pairs import PairScore
from evalkit.results.schema import DatasetInfo, ModelInfo, TokenizationAudit

# Pairs: a `datasets.Dataset`, a pandas DataFrame, a sequence of row dicts (or of `PreferencePair`s), or a path or
# hub id `evalkit bench` reads (JSONL, JSON, Parquet, CSV, a dataset folder). ModelLike: a `transformers` causal
# LM or a PEFT model in memory, a model or adapter directory, or a hub id.
if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from evalkit.api.inprocess import ReferenceModel

    Pairs: TypeAlias = Dataset | pd.DataFrame | Sequence[Mapping[str, Any]] | Sequence[PreferencePair] | str | Path
    ModelLike: TypeAlias = PreTrainedModel | PeftModel | str | Path
else:
    Pairs = ModelLike = Any

__all__ = ["Layout", "compare_models", "read_results", "score"]


DEFAULT_COLUMNS = ColumnMap()


@dataclass(frozen=True)
class Layout:
    """How rows become pairs, as a suite's dataset keys say it (the data layouts: docs/how-to/your-checkpoint.md)."""

    format: DataFormat = "auto"
    columns: ColumnMap = DEFAULT_COLUMNS
    id_column: str | None = None
    """Column of stable pair ids; without one, ids are `<dataset>-<row>`."""
    subset_column: str | None = None
    """Column naming each pair's subset; metrics are given per subset as well as overall."""


DEFAULT_LAYOUT = Layout()


def as_pairs(pairs: Pairs, dataset: str = "pairs", layout: Layout = DEFAULT_LAYOUT) -> list[PreferencePair]:
    """`pairs` as evalkit's typed pairs, laid out as a suite's dataset with these keys would be."""
    spec = DatasetSpec(
        name=dataset,
        path=str(pairs) if isinstance(pairs, (str, Path)) else "<in memory>",
        format=layout.format,
        columns=layout.columns,
        id_column=layout.id_column,
        subset_column=layout.subset_column,
    )
    if isinstance(pairs, (str, Path)):
        return load_pairs(spec)
    if isinstance(pairs, Sequence) and pairs and all(isinstance(p, PreferencePair) for p in pairs):
        return list(pairs)
    rows, kind = _rows(pairs)
    if not rows:
        raise EvalkitError(f"pairs: the {kind} has no rows; expected preference pairs")
    return pairs_from_rows(list(enumerate(rows)), spec, f"pairs ({kind})")


def _rows(table: object) -> tuple[list[dict[str, Any]], str]:
    """The rows of a table-like `pairs`, and what it was (for messages). Told apart by what they have, so neither
    pandas nor datasets is imported for the other."""
    kind, pairs = type(table).__name__, cast(Any, table)
    if hasattr(pairs, "to_dict") and hasattr(pairs, "columns") and hasattr(pairs, "iloc"):  # a pandas DataFrame
        return [_plain_row(row) for row in pairs.to_dict(orient="records")], "DataFrame"
    if hasattr(pairs, "to_list") and hasattr(pairs, "column_names"):  # a datasets.Dataset
        return list(pairs.to_list()), "Dataset"
    if isinstance(pairs, Sequence) and all(isinstance(row, Mapping) for row in pairs):
        return [dict(row) for row in pairs], "list"
    raise EvalkitError(
        f"pairs: got a {kind}; expected a datasets.Dataset, a pandas DataFrame, a list of dicts "
        "(prompt/chosen/rejected, or chosen/rejected messages) or a path to a data file"
    )


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """A DataFrame row as the rows of a file read: pandas' missing values (NaN in a column some rows lack) absent,
    and list cells as lists (a DataFrame read from Parquet holds chat messages as numpy arrays)."""
    return {
        key: value.tolist() if type(value).__module__ == "numpy" and hasattr(value, "tolist") else value
        for key, value in row.items()
        if not (isinstance(value, float) and value != value)
    }


def score(  # noqa: PLR0913 (the keyword options of a notebook call, each with a default)
    model: ModelLike,
    pairs: Pairs,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    ref: ModelLike | None = None,
    beta: float = 0.1,
    name: str = "model",
    ref_name: str = "reference",
    dataset: str = "pairs",
    layout: Layout = DEFAULT_LAYOUT,
    scoring: ScoringSpec | None = None,
    statistics: Statistics | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    template_date: datetime.date | None = None,
    method: Objective | Mapping[str, Any] | str | None = None,
    reward_model: bool = False,
) -> Evaluation:
    """Score `model` on `pairs`: per-pair log-probs, and metrics with intervals, as `evalkit bench` computes them.

    `ref` is the reference of the implicit rewards (a model in memory, a directory or a hub id); it is
    scored too, as a model of its own named `ref_name`, listed first, so the results compare `name`
    against it. A PEFT model with no `ref` is measured against its base with the adapter disabled, as
    TRL's DPOTrainer does with `peft_config`; a plain model with no `ref` gets the policy metrics only.
    `tokenizer` is needed for a model in memory unless its `name_or_path` is a directory holding one.
    `scoring` holds the other scoring settings (`max_length`, `batch_size`, `dtype`, ...); `beta` wins
    over its `beta`. `method` is the objective the model was trained with, as a suite's `method` says it
    (`{"name": "simpo", "beta": 2.0, "gamma": 0.5}`, `{"name": "dpo", "loss_type": "ipo"}`, or an objective
    from `evalkit.config.objectives`): the pairs are tokenized as its TRL trainer does, and the results add
    its `trl/*` and `objective/*` metrics; a DPO `beta` left out is `beta`. A reward model (a one-label
    sequence classifier in memory, or a directory or hub id with `reward_model=True`) is scored as
    RewardTrainer scores it, by its logit after each answer: reward accuracy, margin and loss, and no
    `ref` or `method`."""
    from evalkit.api import inprocess
    from evalkit.scoring.classifier import reward_model_dataset
    from evalkit.scoring.dataset import tokenize_set

    started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    settings = scoring_settings(scoring, beta=beta)
    if name == ref_name:
        raise EvalkitError(f"ref_name: {ref_name!r} is also the model's name; expected two different names")
    objective = objective_setting(method, settings.beta)
    pair_list = as_pairs(pairs, dataset, layout)  # the data is checked before any model loads: a typo costs no wait
    options = dict(chat_template_kwargs or {})
    classifier = reward_model or _is_classifier(model)
    if classifier and ref is not None:
        raise EvalkitError("ref: a reward model is scored by its own logit and has no reference; leave out ref")
    if classifier and objective is not None:
        raise EvalkitError("method: a reward model is scored by its own logit, not by an objective; leave out method")
    if objective is None and isinstance(model, (str, Path)) and not classifier:
        recorded = recorded_objective(str(model))  # as `evalkit bench` reads it from evalkit's training record
        objective = with_beta(recorded, settings.beta) if recorded is not None else None
    policy = _scorable(model, name, tokenizer, options, template_date, classifier)
    if classifier:
        tokens = tokenize_set(pair_list, policy.tokenizer, policy.rendering, settings.max_length)
        label = f"{name} on {dataset}"
        scored = reward_model_dataset(dataset, name, policy.model, policy.tokenizer, tokens, settings, label)
        rows, audits, models = scored.rows, [scored.audit], [inprocess.with_mode(policy.info, scored.mode)]
        reference_name = None
    else:
        rows, audits, models, reference_name = _policy_rows(
            policy, ref, ref_name, options, template_date, pair_list, dataset, settings, objective
        )
    info = DatasetInfo(
        name=dataset,
        path=str(pairs) if isinstance(pairs, (str, Path)) else "<in memory>",
        fingerprint=inprocess.pairs_fingerprint(pair_list),
        n_pairs=len(pair_list),
        subsets=sorted({p.subset for p in pair_list}),
        pairs_file=f"pairs/{dataset}.jsonl",
    )
    parts = inprocess.ResultParts(
        name=name,
        scores={dataset: rows},
        pairs={dataset: pair_list},
        models=models,
        datasets=[info],
        audits=audits,
        reference=reference_name,
        scoring=settings,
        statistics=statistics or Statistics(),
        objectives={name: objective} if objective is not None else None,
    )
    result = inprocess.assemble_result(parts, started, time.perf_counter() - clock)
    return Evaluation(result, {dataset: rows})


def _policy_rows(
    policy: _Scorable,
    ref: ModelLike | None,
    ref_name: str,
    options: dict[str, Any],
    template_date: datetime.date | None,
    pair_list: list[PreferencePair],
    dataset: str,
    settings: ScoringSpec,
    objective: Objective | None,
) -> tuple[list[PairScore], list[TokenizationAudit], list[ModelInfo], str | None]:
    """A policy's rows (its log-probs, and the reference's on its tokens) with the reference's own rows first,
    their audits and model records, and the reference's name (None without one)."""
    from evalkit.api import inprocess
    from evalkit.scoring.dataset import model_logps, pad_token_id, scored_dataset, tokenize_set

    name = policy.info.name
    reference, reference_info = policy.own_reference, None
    if ref is not None:  # scored on the policy's tokens: a reference in memory needs no tokenizer of its own
        separate = _scorable(ref, ref_name, policy.tokenizer, options, template_date)
        reference, reference_info = inprocess.separate_model(separate.model), separate.info
    elif reference is not None:
        fingerprint = inprocess.parameters_fingerprint(policy.model, policy.rendering, adapters=False)
        path = f"{policy.info.path} (adapter disabled)"
        reference_info = inprocess.live_model_info(ref_name, path, "model", policy.model, policy.rendering, fingerprint)
    if objective is not None and needs_reference(objective) and reference is None:
        raise EvalkitError(
            f"method: {objective.name!r} compares the model with a reference; pass ref=... (or a PEFT model, "
            "whose base is its reference)"
        )
    tokens = tokenize_set(
        pair_list, policy.tokenizer, policy.rendering, settings.max_length, tokenization_of(objective)
    )
    pad = pad_token_id(policy.tokenizer)
    own = model_logps(policy.model, tokens, pad, settings, f"{name} on {dataset}", with_prompt=reads_prompt(objective))
    ref_logps = None
    if reference is not None:
        with reference() as ref_model:
            ref_logps = model_logps(ref_model, tokens, pad, settings, f"reference for {name} on {dataset}")
    scored = scored_dataset(dataset, name, tokens, own, ref_logps)
    rows, audits, models = scored.rows, [scored.audit], [inprocess.with_mode(policy.info, scored.mode, objective)]
    if ref_logps is None or reference_info is None:
        return rows, audits, models, None
    as_model = scored_dataset(dataset, ref_name, tokens, ref_logps, None)
    models.insert(0, inprocess.with_mode(reference_info, as_model.mode))
    return as_model.rows + rows, [as_model.audit, *audits], models, ref_name


def _is_classifier(model: object) -> bool:
    """Whether a model in memory is a sequence classifier (a reward model), or a PEFT adapter on one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__.endswith("ForSequenceClassification")


def compare_models(baseline: Evaluation, candidate: Evaluation) -> Evaluation:
    """Two scored runs on the same pairs as one run: the baseline's models, then the candidate's, each later
    model compared with each earlier one pair by pair (`evalkit.metrics.paired.compare_models`: Tango's score
    interval for accuracies, paired t for margins and losses, flipped pairs), Benjamini–Hochberg over all.

    The datasets must hold the same pairs (equal fingerprints) and the model names must differ, except for
    a model both runs scored with the same weights (the shared reference), which is taken once.
    """
    from evalkit.api import inprocess

    started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    before, after = baseline.result, candidate.result
    if before.scoring.beta != after.scoring.beta:
        raise EvalkitError(f"compare_models: β differs ({before.scoring.beta}, {after.scoring.beta}); expected one β")
    if [d.fingerprint for d in before.datasets] != [d.fingerprint for d in after.datasets]:
        raise EvalkitError("compare_models: the runs scored other pairs; expected the same data (equal fingerprints)")
    known = {m.name: m for m in before.models}
    shared = {m.name for m in after.models if m.name in known and known[m.name].fingerprint == m.fingerprint}
    clash = [m.name for m in after.models if m.name in known and m.name not in shared]
    if clash:
        raise EvalkitError(f"compare_models: both runs have a model named {clash[0]!r}; score one with another `name`")
    if before.reference and after.reference and before.reference != after.reference:
        raise EvalkitError(
            f"compare_models: the runs' rewards are against different references ({before.reference!r} and "
            f"{after.reference!r}); expected one reference, scored in both runs"
        )
    scores: dict[str, list[PairScore]] = {}
    for info in before.datasets:
        rows_before, rows_after = baseline.pairs.get(info.name), candidate.pairs.get(info.name)
        if rows_before is None or rows_after is None:
            raise EvalkitError(f"compare_models: dataset {info.name!r} has no per-pair scores in both runs")
        scores[info.name] = list(rows_before) + [r for r in rows_after if r.model not in shared]
    parts = inprocess.ResultParts(
        name=f"{before.suite.name} vs {after.suite.name}",
        scores=scores,
        pairs={},
        models=list(before.models) + [m for m in after.models if m.name not in shared],
        datasets=list(before.datasets),
        audits=list(before.audit) + [a for a in after.audit if a.model not in shared],
        reference=before.reference or after.reference,
        scoring=ScoringSpec(**before.scoring.model_dump(exclude={"reference_cache"})),
        statistics=before.effective_statistics,
    )
    result = inprocess.assemble_result(parts, started, time.perf_counter() - clock)
    kept = {(t.dataset, t.id): t for t in [*before.flip_examples, *after.flip_examples]}
    shown = {(c.dataset, i) for c in result.comparisons if c.flips for i in _flipped(c.flips)}
    result = result.model_copy(update={"flip_examples": [t for key, t in kept.items() if key in shown]})
    return Evaluation(result, scores)


def _flipped(flips: Flips) -> list[str]:
    return [*flips.wrong_to_right_ids, *flips.right_to_wrong_ids]


@dataclass(frozen=True)
class _Scorable:
    """A model ready to score: its tokenizer, rendering and record, and the reference it brings (a PEFT model:
    itself with the adapter disabled)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    rendering: Rendering
    info: ModelInfo
    own_reference: ReferenceModel | None


def _scorable(
    model: ModelLike,
    name: str,
    tokenizer: PreTrainedTokenizerBase | None,
    options: dict[str, Any],
    template_date: datetime.date | None,
    classifier: bool = False,
) -> _Scorable:
    """`model`, in memory or loaded from a path or hub id as `evalkit bench` loads it (an adapter onto its base);
    `classifier`: as a reward model, recorded as one."""
    from evalkit.api import inprocess
    from evalkit.checkpoints import load_model, say_pinned
    from evalkit.data.rendering import DEFAULT_DATE, rendering_for

    if isinstance(model, (str, Path)):
        spec = ModelSpec(name=name, path=str(model), kind="reward_model" if classifier else "policy")
        loaded = load_model(spec, template_options=options, template_date=template_date)
        peft = inprocess.is_peft_model(loaded.model) and not classifier
        own = inprocess.adapter_disabled(loaded.model) if peft else None
        return _Scorable(loaded.model, loaded.tokenizer, loaded.rendering, loaded.info, own)
    if not hasattr(model, "forward") or not hasattr(model, "config"):
        raise EvalkitError(f"{name}: got a {type(model).__name__}; expected a transformers model, a path or a hub id")
    model = cast("PreTrainedModel", model)  # a PEFT model is scored through the same calls as its base
    tokenizer = tokenizer or _own_tokenizer(model, name)
    rendering = rendering_for(tokenizer, options, template_date or DEFAULT_DATE)
    if rendering.date is not None:
        say_pinned(name, rendering.date)
    peft = inprocess.is_peft_model(model)
    path = str(getattr(model, "name_or_path", "") or "<in memory>")
    fingerprint = inprocess.parameters_fingerprint(model, rendering)
    info = inprocess.live_model_info(name, path, "adapter" if peft else "model", model, rendering, fingerprint)
    if classifier:
        labels = getattr(model.config, "num_labels", None)
        if labels != 1:
            raise EvalkitError(f"{name}: a classifier with {labels} labels; a reward model has one label, its score")
        return _Scorable(model, tokenizer, rendering, info.model_copy(update={"reward_model": True}), None)
    return _Scorable(model, tokenizer, rendering, info, inprocess.adapter_disabled(model) if peft else None)


def scoring_settings(scoring: ScoringSpec | None, **updates: Any) -> ScoringSpec:
    """`scoring` (default: a suite's defaults) with `updates`, checked as a suite's `scoring:` keys are."""
    from pydantic import ValidationError

    try:
        return ScoringSpec.model_validate({**(scoring or ScoringSpec()).model_dump(), **updates})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise EvalkitError(f"scoring.{'.'.join(map(str, error['loc']))}: {error['msg']}") from None


def objective_setting(method: Objective | Mapping[str, Any] | str | None, beta: float) -> Objective | None:
    """`method` checked as a suite's `method` key is (a name alone: its TRL defaults), with a DPO β left unset filled
    in by `beta`; a bad one is a one-line error in the suite's words."""
    from pydantic import ValidationError

    from evalkit.config.messages import every_problem

    if method is None:
        return None
    given = {"name": method} if isinstance(method, str) else method
    if not isinstance(given, BaseModel | Mapping):
        raise EvalkitError(f"method: got a {type(method).__name__}; expected a name, a mapping or an objective")
    raw = given.model_dump() if isinstance(given, BaseModel) else dict(given)
    try:
        spec = ModelSpec.model_validate({"name": "model", "path": "<in memory>", "method": raw})
    except ValidationError as exc:
        first = every_problem("evalkit.score", exc, ModelSpec, {"method": raw}).splitlines()[0]
        raise EvalkitError(first.removeprefix("evalkit.score: ")) from None
    assert spec.method is not None
    return with_beta(spec.method, beta)


def _own_tokenizer(model: Any, name: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    source = getattr(model, "name_or_path", "")
    if source and Path(source).is_dir():
        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError):
            pass
    raise EvalkitError(f"{name}: a model in memory needs its tokenizer; pass tokenizer=...")
