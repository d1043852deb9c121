"""Scoring a suite: every model (checkpoint sweeps expanded) on every dataset, one policy in memory beside the
reference, with the on-disk caches; generation and capability tasks run on each model while it is loaded.
`evalkit score` is the same scoring for one model, written as per-pair rows."""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from evalkit.capabilities.harness import CapabilityRunner
from evalkit.capabilities.runs import TaskRun
from evalkit.checkpoints import (
    Checkpoint,
    LoadedModel,
    ServedCheckpoint,
    load_model,
    load_served_checkpoint,
    release,
)
from evalkit.config.objectives import Objective, describe, objective_from, objective_info, reads_prompt, tokenization_of
from evalkit.config.specs import ModelSpec
from evalkit.config.suite import Suite
from evalkit.console import console, is_main_process, plain, stdout
from evalkit.data.pairs import PreferencePair
from evalkit.data.rendering import Rendering
from evalkit.data.unpaired import UnpairedExample, load_own
from evalkit.errors import EvalkitError
from evalkit.generate.decode import Sample
from evalkit.generate.panel import build_panel
from evalkit.generate.suite import PanelDecoder, drift_of
from evalkit.judges.suite import judge_and_summarise
from evalkit.metrics.compute import compute_metrics
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.metrics.paired import compare_models
from evalkit.metrics.unpaired import reward_beta, suite_unpaired_metrics
from evalkit.pipeline.checks import check_inputs
from evalkit.pipeline.completions import score_completions
from evalkit.pipeline.served import ServedRun, checkpoint_logps, reference_logps
from evalkit.report.formats import MISSING, format_delta, format_estimate
from evalkit.report.served import served_lines
from evalkit.report.views import AUDIT_COUNTS, audit_counts
from evalkit.results.completions import CompletionScore, completion_records
from evalkit.results.estimates import Comparison, Metric
from evalkit.results.files import write_jsonl
from evalkit.results.generation import Drift, GenerationResult
from evalkit.results.pairs import PairScore, pair_records
from evalkit.results.schema import ModelInfo, ObjectiveInfo, ScoringMode, TokenizationAudit
from evalkit.scoring.batching import from_main, start_processes
from evalkit.scoring.cache import ReferenceCache, ScoreStore, reference_key, reused, store_key
from evalkit.scoring.classifier import reward_model_dataset
from evalkit.scoring.dataset import ScoredDataset, scored_dataset, tokenize_set
from evalkit.scoring.score import CompletionLogps, ModelLogps, TokenizedPair
from evalkit.trainers import resolved_objective

"""A model in this process, or one a server holds (`scoring.backend: vllm`: only its tokenizer here)."""


@dataclass
class ScoredSuite:
    """Per-pair scores of every model on every dataset, with what tokenization did."""

    pairs: dict[str, list[PreferencePair]]
    scores: dict[str, list[PairScore]]
    audits: list[TokenizationAudit]
    models: list[ModelInfo]
    generation: GenerationResult | None = None
    capability_runs: list[TaskRun] = field(default_factory=list)
    """Every capability task on every model, when the suite has tasks."""
    completions: dict[str, list[CompletionScore]] = field(default_factory=dict)
    """Per unpaired dataset (KTO style), every model's per-completion rows (a reward model has none)."""


def score_suite(
    suite: Suite,
    datasets: dict[str, list[PreferencePair]],
    store: ScoreStore | None = None,
    capabilities: CapabilityRunner | None = None,
    unpaired: dict[str, list[UnpairedExample]] | None = None,
) -> ScoredSuite:
    """Score every model of the suite on every dataset, one policy in memory beside the reference; with
    `capabilities`, run its tasks on each model while it is loaded (in the main process); `unpaired`: the suite's
    datasets of labelled completions, scored one completion at a time (`evalkit.pipeline.completions`).

    Started by `torchrun` with several processes, each process scores its share of every dataset
    and all of them get every score back (see `evalkit.scoring.batching`).
    """
    start_processes()
    served = ServedRun(suite) if suite.scoring.backend == "vllm" else None
    if served is not None and suite.scoring.parity is not None and not datasets:
        console.print("[yellow]scoring.parity: the run has no dataset of pairs to sample; no parity check[/yellow]")
    try:
        return _score_models(suite, datasets, store, capabilities, served, unpaired or {})
    finally:
        if served is not None:
            served.close()


def _score_models(
    suite: Suite,
    datasets: dict[str, list[PreferencePair]],
    store: ScoreStore | None,
    capabilities: CapabilityRunner | None,
    served: ServedRun | None,
    unpaired: dict[str, list[UnpairedExample]],
) -> ScoredSuite:
    specs = expand_checkpoints(suite.models)
    if served is not None:  # every server probed before any work
        for spec in ([suite.model(suite.reference)] if suite.reference else []) + specs:
            served.open(_served(suite, spec))
    reference = _load(suite, suite.model(suite.reference), served) if suite.reference else None
    scored = ScoredSuite(pairs=datasets, scores={name: [] for name in datasets}, audits=[], models=[])
    scored.completions = {name: [] for name in unpaired}
    reference_cache: dict[str, ModelLogps] = {}
    panel = build_panel(suite.generation, datasets) if suite.generation is not None else []
    samples: list[Sample] = []
    drift: list[Drift] = []
    decoder = PanelDecoder(suite.generation) if suite.generation is not None else None
    for spec in specs:
        is_reference = reference is not None and spec.name == reference.spec.name
        classifier = spec.kind == "reward_model"  # no reference, no generation: a classifier only scores
        loaded = reference if is_reference and reference is not None else _load(suite, spec, served, reference)
        objective = resolved_objective(suite, spec)  # once per model: it may unpickle a TRL config
        try:
            modes: list[ScoringMode] = []
            for name, pairs in datasets.items():
                result = score_dataset(
                    suite, name, pairs, loaded, reference, reference_cache, store, served, objective=objective
                )
                scored.scores[name].extend(result.rows)
                scored.audits.append(result.audit)
                modes += [result.mode] if result.mode is not None else []
            for name, examples in ({} if classifier else unpaired).items():  # a classifier has no log-ratio
                kept = store.completions if store is not None else None
                completions = score_completions(suite, name, examples, loaded, reference, reference_cache, kept, served)
                scored.completions[name].extend(completions.rows)
                scored.audits.append(completions.audit)
            if served is not None and isinstance(loaded, ServedCheckpoint):
                served.check_parity(loaded, datasets)
            role = "reference" if is_reference else "candidate" if spec.name == suite.candidate_model else None
            recorded = objective_info(objective) if objective is not None else None
            update = {"scoring_modes": modes, "role": role, "objective": recorded}
            scored.models.append(loaded.info.model_copy(update=update))
            if classifier:
                continue
            if capabilities is not None and is_main_process():  # in process, or on its server (validated)
                scored.capability_runs.extend(capabilities.run(loaded))
            if suite.generation is not None and decoder is not None:
                samples += decoder.samples(panel, loaded)
                drifts = suite.generation.drift is not None and not is_reference
                if drifts and isinstance(loaded, LoadedModel) and isinstance(reference, LoadedModel):
                    assert suite.generation.drift is not None
                    drift.append(drift_of(suite, suite.generation.drift, panel, loaded, reference))
        finally:
            if loaded is not reference and isinstance(loaded, LoadedModel):
                release(loaded)
                del loaded
                gc.collect()
    if served is not None:
        scored.models = [served.recorded(info) for info in scored.models]
    if suite.generation is not None and decoder is not None:
        generators = [m for m in scored.models if not m.reward_model]  # a classifier writes no answers
        generation = judge_and_summarise(suite, suite.generation, panel, samples, drift, generators)
        # Pairwise judges ran once every model had answered (`judge_and_summarise`); the decoder's statement first.
        scored.generation = generation.model_copy(update={"backends": [decoder.backend(), *generation.backends]})
    return scored


def objective_info_of(suite: Suite, spec: ModelSpec) -> ObjectiveInfo | None:
    """The objective `spec` is scored with (`evalkit.trainers.resolved_objective`), as results.json records it."""
    objective = resolved_objective(suite, spec)
    return objective_info(objective) if objective is not None else None


def _load(suite: Suite, spec: ModelSpec, served: ServedRun | None, reference: Checkpoint | None = None) -> Checkpoint:
    """`spec` loaded with the suite's rendering: its template options, and the suite's pinned date if it names one;
    on a server (`served`), only its tokenizer (a reward model never shares the reference's weights: it is another
    architecture)."""
    if served is not None:
        return _served(suite, spec)
    assert reference is None or isinstance(reference, LoadedModel), "one backend for every model"
    options = suite.template_options(spec)
    shared = reference if spec.kind == "policy" else None
    return load_model(spec, shared, template_options=options, template_date=suite.rendering.date)


def _served(suite: Suite, spec: ModelSpec) -> ServedCheckpoint:
    options = suite.template_options(spec)
    return load_served_checkpoint(spec, template_options=options, template_date=suite.rendering.date)


def expand_checkpoints(models: Sequence[ModelSpec]) -> list[ModelSpec]:
    """Models with `checkpoints: true` become one model per `checkpoint-<step>` directory, in step
    order, named `<name>@<step>`, followed by the final model when the directory holds one."""
    expanded: list[ModelSpec] = []
    for spec in models:
        if not spec.checkpoints:
            expanded.append(spec)
            continue
        root = Path(spec.path)
        steps = sorted(
            (int(d.name.removeprefix("checkpoint-")), d)
            for d in root.glob("checkpoint-*")
            if d.is_dir() and d.name.removeprefix("checkpoint-").isdigit()
        )
        for step, directory in steps:
            expanded.append(spec.model_copy(update={"name": f"{spec.name}@{step}", "path": str(directory)}))
        has_final = (root / "adapter_config.json").is_file() or (root / "config.json").is_file()
        if has_final:
            expanded.append(spec)
        if not steps and not has_final:
            raise EvalkitError(f"models.{spec.name}.path: no checkpoint-* directories or saved model in {root}")
    return expanded


def score_dataset(
    suite: Suite,
    dataset: str,
    pairs: list[PreferencePair],
    policy: Checkpoint,
    reference: Checkpoint | None,
    reference_cache: dict[str, ModelLogps],
    store: ScoreStore | None = None,
    served: ServedRun | None = None,
    *,
    objective: Objective | None = None,
) -> ScoredDataset:
    """Score one dataset under one model, and under the reference on the same tokens; with how the
    policy's passes run (None when it has no pair to score). `objective`: the policy's
    (`evalkit.trainers.resolved_objective`), which picks its tokenization and whether its prompts are scored.

    Reference log-probs are cached by the exact token ids scored, so models that share a
    tokenizer (the usual case: checkpoints of one base) cost one reference pass in all, and kept
    on disk (`scoring.reference_cache`), so later runs against the same reference cost none.
    The reference model itself gets no reward metrics: its rewards are zero by definition.
    """
    settings = suite.scoring
    classifier = policy.spec.kind == "reward_model"
    # Tokens are the policy's: a CPO/ORPO model's pairs as its trainer tokenized them, its reference scored on them.
    tokens = tokenize_set(pairs, policy.tokenizer, policy.rendering, settings.max_length, tokenization_of(objective))
    if tokens.too_long:
        console.print(
            f"[yellow]{dataset}: {len(tokens.too_long)} pairs have a prompt that fills max_length="
            f"{settings.max_length} and are left out of the metrics (see the audit)[/yellow]"
        )
    label = f"{policy.spec.name} on {dataset}"
    key = _tokens_key(tokens.scorable, settings.max_length, policy.rendering)
    against = reference if reference is not None and reference is not policy and not classifier else None
    references = against.info.fingerprint if against is not None else "none"
    ids = hashlib.sha256(json.dumps([t.id for t in tokens.scorable]).encode()).hexdigest()
    with_prompt = not classifier and reads_prompt(objective)
    identity = f"{policy.info.fingerprint}|{references}|{key}|{ids}|{settings.dtype}" + ("|logit" if classifier else "")
    identity += "|prompt" if with_prompt else ""
    computed_with = [policy, *([against] if against is not None else [])]
    kept = store_key(identity, computed_with, settings.backend if served is not None else None)
    stored = reused(store.load if store is not None else None, kept, label)
    if stored is not None:
        if reference is policy:
            reference_cache[key] = ModelLogps([_logps(r) for r in stored.rows], stored.mode)
        return ScoredDataset(
            [r.as_model(policy.spec.name) for r in stored.rows],
            stored.audit.model_copy(
                update={"model": policy.spec.name, "dataset": dataset, "tokenization": tokens.tokenization}
            ),
            stored.mode.model_copy(update={"dataset": dataset}) if stored.mode is not None else None,
        )
    if classifier:
        assert isinstance(policy, LoadedModel), "a reward model is scored in this process (refused with a server)"
        scored = reward_model_dataset(
            dataset, policy.spec.name, policy.model, policy.tokenizer, tokens, settings, label
        )
        if store is not None and kept is not None and is_main_process():
            store.save(kept, scored)
        return scored
    ref: ModelLogps | None = None
    if reference is policy:
        own = _cached_reference(
            suite,
            reference,
            key,
            reference_cache,
            lambda: checkpoint_logps(policy, tokens, settings, label, served, with_prompt),
        )
        if with_prompt and own.logps and own.logps[0].prompt is None:  # the reference's cached passes had no prompt
            own = checkpoint_logps(policy, tokens, settings, label, served, with_prompt)
    else:
        own = checkpoint_logps(policy, tokens, settings, label, served, with_prompt)
        if reference is not None:
            # The reference is scored on the policy's own tokens, so both log-probs cover the same text.
            ref = _cached_reference(
                suite,
                reference,
                key,
                reference_cache,
                lambda: reference_logps(policy, reference, tokens, settings, label, served),
            )
    # The mode as recorded when the scores were computed, in this run or the one that filled the cache.
    scored = scored_dataset(dataset, policy.spec.name, tokens, own, ref)
    if store is not None and kept is not None and is_main_process():
        store.save(kept, scored)
    return scored


def _logps(row: PairScore) -> CompletionLogps:
    return CompletionLogps(
        row.logp_chosen,
        row.logp_rejected,
        row.n_tokens_chosen,
        row.n_tokens_rejected,
        row.truncated,
        chosen_shared=row.logp_chosen_shared,
        rejected_shared=row.logp_rejected_shared,
        prompt=row.logp_prompt,
        n_tokens_prompt=row.n_tokens_prompt,
    )


def _cached_reference(
    suite: Suite,
    reference: Checkpoint,
    tokens_key: str,
    in_memory: dict[str, ModelLogps],
    compute: Callable[[], ModelLogps],
) -> ModelLogps:
    """The reference's log-probs on the tokens of `tokens_key`: from this run, from an earlier run
    (the on-disk cache), or computed now and kept in both. A served reference keeps its answers in the
    endpoint's response cache instead."""
    if tokens_key in in_memory:
        return in_memory[tokens_key]
    directory = suite.scoring.reference_cache
    disk = ReferenceCache(directory) if directory is not None and isinstance(reference, LoadedModel) else None
    disk_key = (
        reference_key(reference, tokens_key, suite.scoring.dtype)
        if disk is not None and isinstance(reference, LoadedModel)
        else None
    )
    scores = from_main(lambda: disk.load(disk_key)) if disk is not None and disk_key is not None else None
    if scores is not None:
        console.print(f"[dim]reference log-probs of {reference.spec.name} from the cache in {directory}[/dim]")
    else:
        scores = compute()
        if disk is not None and disk_key is not None:
            disk.save(disk_key, scores)
    in_memory[tokens_key] = scores
    return scores


def _tokens_key(pairs: list[TokenizedPair], max_length: int, rendering: Rendering) -> str:
    """What the scores depend on besides the models: the token ids and `max_length`, and the template options
    and pinned date that rendered the tokens when there are any (the ids cover them already; named, a key says
    what it keys; left out otherwise, so that the keys of earlier runs still hit)."""
    named = "" if rendering.is_plain else f"|{rendering.identity}"
    digest = hashlib.sha256(f"{max_length}{named}".encode())
    for p in pairs:
        digest.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return digest.hexdigest()


def run_score(suite: Suite, out: Path) -> list[dict[str, object]]:
    """`evalkit score`: per-pair rows of the suite's first model, written to `out` as JSON Lines, and its metrics
    with their intervals (beside the reference's, with the paired difference, when there is one) on the terminal.
    Labelled completions (KTO style) give per-completion rows and the metrics of a suite's unpaired dataset.

    The data's own `id` and `subset` columns are kept where no other is named. Under
    `torchrun --nproc_per_node N -m evalkit score ...` the pairs are shared out between the processes and gathered
    back in order; only the main process writes and prints.
    """
    check_inputs(suite)
    if any(Path(d.path).exists() and Path(d.path).resolve() == out.resolve() for d in suite.datasets):
        raise EvalkitError(f"--out: {out} is the data being scored (--data); write the scores to another file")
    own = [load_own(d) for d in suite.datasets]  # every row checked before a model loads
    suite = suite.model_copy(update={"datasets": [o.spec for o in own]})
    datasets = {o.spec.name: o.pairs for o in own if not o.unpaired}
    unpaired = {o.spec.name: o.examples for o in own if o.unpaired}
    if unpaired and suite.models[0].kind == "reward_model":
        raise EvalkitError("--reward-model: a reward model scores pairs; labelled completions have no pair to score")
    if unpaired and suite.scoring.parity is not None:
        raise EvalkitError("--parity: the parity check samples pairs; this data holds labelled completions")
    scored = score_suite(suite, datasets, unpaired=unpaired)
    policy, beta, statistics = suite.models[0].name, suite.scoring.beta, suite.statistics
    objectives = scored_objectives(scored.models)
    rows = [r for rows in scored.scores.values() for r in rows if r.model == policy]
    completions = [r for rows in scored.completions.values() for r in rows if r.model == policy]
    records = pair_records(rows, beta) + completion_records(completions, reward_beta(objectives.get(policy), beta))
    if is_main_process():
        write_jsonl(records, out)
    metrics, comparisons = [], []
    for name, dataset_rows in scored.scores.items():
        metrics += compute_metrics(name, dataset_rows, beta, statistics=statistics, objectives=objectives)
        if suite.reference is not None:
            comparisons += compare_models(
                name, dataset_rows, beta, statistics=statistics, against=suite.reference, objectives=objectives
            )
    for name, completion_rows in scored.completions.items():
        metrics += suite_unpaired_metrics(name, completion_rows, objectives, beta, statistics)
    modes = [m for info in scored.models if info.name == policy for m in info.scoring_modes]
    audits = [a for a in scored.audits if a.model == policy]
    level = suite.statistics.confidence_level
    # Labelled completions have no model-against-reference comparison: the reference's own rewards are 0.
    reference = suite.reference if not unpaired else None
    stdout.print(score_table(policy, reference, metrics, comparisons, audits, level, objectives.get(policy)))
    for mode in modes:
        stdout.print(f"scoring mode on {mode.dataset}: {mode.mode} ({mode.reason})", markup=False, soft_wrap=True)
    for line in served_lines(scored.models):
        stdout.print(line, markup=False, soft_wrap=True)
    stdout.print(f"wrote {len(records)} {'completions' if unpaired else 'pairs'} to {out}", markup=False)
    return records


def scored_objectives(models: Sequence[ModelInfo]) -> dict[str, Objective]:
    """Model name → the objective it was scored with, as `score_suite` recorded it (the suite's `method`, or the
    one evalkit's training recorded beside the checkpoint)."""
    return {m.name: objective for m in models if (objective := objective_from(m.objective)) is not None}


def score_table(
    model: str,
    reference: str | None,
    metrics: list[Metric],
    comparisons: list[Comparison],
    audits: list[TokenizationAudit],
    confidence_level: float,
    objective: Objective | None = None,
) -> Table:
    """Every metric of `model` over all pairs with its interval; with a reference, the reference's value beside it
    and the paired difference (model − reference, on the same pairs) with its interval. The title names the
    objective the `trl/*` and `objective/*` rows follow."""
    title = f"evalkit score · {model}" + (f" ({describe(objective)})" if objective is not None else "")
    title += f" against {reference}" if reference else ""
    table = Table(title=plain(title), title_justify="left")
    columns = ["dataset", "metric", model, *([reference, f"Δ [{confidence_level:.0%} CI]"] if reference else []), "n"]
    for index, column in enumerate(columns):
        table.add_column(plain(column), justify="left" if index < 2 else "right")
    found = {(m.dataset, m.model, m.metric): m for m in metrics if m.subset == ALL_SUBSETS}
    deltas = {(c.dataset, c.metric): c for c in comparisons if c.subset == ALL_SUBSETS and c.model == model}
    for (dataset, owner, metric), m in found.items():
        if owner != model:
            continue
        cells = [plain(dataset), metric, format_estimate(m)]
        if reference is not None:
            delta = deltas.get((dataset, metric))
            theirs = found.get((dataset, reference, metric))
            cells += [format_estimate(theirs), format_delta(delta) if delta else MISSING]
        table.add_row(*cells, str(m.n))
    blanks = [""] * (len(columns) - 4)
    for a in audits:
        for label, count in zip(AUDIT_COUNTS, audit_counts(a), strict=True):
            table.add_row(plain(a.dataset), f"audit: {label}", str(count), *blanks, str(a.n_pairs))
    return table
