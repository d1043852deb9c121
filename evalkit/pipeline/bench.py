"""The composition root: runs a suite from start to finish.

This is the only module that loads real models (through `checkpoints`). It wires the stages in
pipeline order: build the tiny world (when the suite has one), train (when asked), score every
model on every dataset, compute metrics, and write `results.json`, the per-pair scores and the
reports. `evalkit score` uses the same `score_suite`.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import gc
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from transformers import PreTrainedModel

from evalkit import __version__
from evalkit.capabilities import CapabilityRunner, TaskRun, lm_eval_version
from evalkit.checkpoints import LoadedModel, is_loadable, load_model, release, reward_model
from evalkit.config.suite import (
    PAIRED_KINDS,
    DriftSpec,
    GenerationSpec,
    ModelSpec,
    SamplingSpec,
    Suite,
    load_suite,
    notice,
    parse_suite,
)
from evalkit.console import console, is_main_process, stdout
from evalkit.data.pairs import (
    PreferencePair,
    dataset_fingerprint,
    load_pairs,
    looks_like_hub_id,
    split_pairs,
    write_pairs,
)
from evalkit.data.rendering import DEFAULT_DATE, Rendering
from evalkit.errors import EvalkitError
from evalkit.gate.rules import evaluate_gate, publish, verdict_table
from evalkit.generate.samples import (
    Judge,
    PanelPrompt,
    Sample,
    build_panel,
    drift_estimate,
    generate,
    load_callable_judge,
    per_token_kls,
    summarise,
)
from evalkit.metrics.compute import compute_metrics
from evalkit.metrics.names import REGISTRY
from evalkit.pipeline.inprocess import summarise_scores
from evalkit.report.document import summary_table, write_reports
from evalkit.report.views import AUDIT_COUNTS, audit_counts
from evalkit.results.provenance import environment
from evalkit.results.schema import (
    SCHEMA_VERSION,
    DatasetInfo,
    Drift,
    GenerationPrompt,
    GenerationResult,
    GenerationSample,
    JsonStore,
    Metric,
    ModelInfo,
    PairScore,
    RunResult,
    ScoringInfo,
    ScoringMode,
    SuiteInfo,
    TokenizationAudit,
    TrainingInfo,
    pair_records,
    read_results,
    write_jsonl,
    write_results,
)
from evalkit.results.texts import texts_file, write_pair_texts
from evalkit.scoring.batching import from_main, share_out, start_processes
from evalkit.scoring.cache import CachedScores, ReferenceCache, reference_key
from evalkit.scoring.score import (
    CompletionLogps,
    TokenizedPair,
    fits,
    pair_scores,
    score_configured,
    tokenize_pair,
)
from evalkit.world import build_world

if TYPE_CHECKING:
    from evalkit.train import TrainingRun


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


@dataclass(frozen=True)
class Candidate:
    """`evalkit bench --model M [--ref R] [--data D]`: your own checkpoint, scored with a suite's
    datasets, statistics, generation panel and gate, without writing a suite."""

    model: str
    reference: str | None = None
    data: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False

    def into(self, suite: Suite) -> Suite:
        """`suite` with its models replaced by `candidate` (and `reference`), its training dropped,
        its datasets replaced by `data` when given, and the gate rules about other models left out."""
        raw = suite.model_dump(mode="json")
        # Gate rules check which keys were given: keep only those.
        raw["gate"] = suite.gate.model_dump(mode="json", exclude_unset=True) if suite.gate else None
        trust = {"allow_pickle": self.allow_pickle, "trust_remote_code": self.trust_remote_code}
        models = [{"name": "candidate", "path": self.model, **trust}]
        reference = self.reference or _adapter_base(self.model)
        if reference is not None:
            models.insert(0, {"name": "reference", "path": reference, **trust})
        raw |= {
            "name": f"{suite.name}-candidate",
            "output_dir": f"{suite.output_dir}-candidate",
            "models": models,
            "reference": "reference" if reference is not None else None,
            "train": None,
        }
        data = Path(self.data).resolve() if self.data is not None else None
        same = next((d for d in suite.datasets if Path(d.path).resolve() == data), None)
        if same is not None:
            # One of the suite's own datasets: its name, ids and subsets stay, so the run pairs with the baseline's.
            raw["datasets"] = [same.model_dump(mode="json", exclude_unset=True)]
            if raw.get("generation") and raw["generation"].get("from_dataset"):
                raw["generation"]["from_dataset"]["dataset"] = same.name
        elif self.data is not None:
            # A plain file name (see `config.SafeName`), whatever the file is called.
            name = re.sub(r"[^A-Za-z0-9._+-]+", "-", Path(self.data.rstrip("/")).stem).lstrip("._+-")[:64] or "data"
            raw |= {"datasets": [{"name": name, "path": self.data}], "world": None}
            if raw.get("generation") and raw["generation"].get("from_dataset"):
                raw["generation"]["from_dataset"]["dataset"] = name
            if suite.world is not None and suite.capabilities is not None and _reads_world(suite):
                notice("capabilities: the tasks are the tiny world's, which is not built with your data; left out")
                raw["capabilities"] = None
        if raw.get("gate"):
            # The suite's rules about its reference and its candidate now apply to yours; rules about other
            # models are left out.
            renamed = {suite.candidate or "": "candidate"}
            if suite.reference is not None and reference is not None:
                renamed[suite.reference] = "reference"
            kept = []
            for rule in raw["gate"]["rules"]:
                if rule["kind"] == "capability_non_inferiority" and raw.get("capabilities") is None:
                    continue  # its tasks were left out above
                named = [rule["model"]] + (
                    [rule["baseline"]] if rule.get("baseline") and rule["kind"] in PAIRED_KINDS else []
                )
                metric = rule.get("metric") or ""
                needs_reference = rule["kind"] == "drift_budget" or (
                    metric in REGISTRY and REGISTRY[metric].needs_reference
                )
                if all(name in renamed for name in named) and not (needs_reference and reference is None):
                    rule = {**rule, "model": renamed[rule["model"]]}
                    if rule["kind"] in PAIRED_KINDS:
                        rule["baseline"] = renamed[rule["baseline"]]
                    kept.append({**rule, "dataset": None} if self.data is not None and "dataset" in rule else rule)
                else:
                    notice(f"gate rule {rule.get('name') or rule['kind']!r} is about other models; left out")
            raw["gate"] = {**raw["gate"], "rules": kept} if kept else None
        return parse_suite(raw, source=f"evalkit bench --model {self.model}")


def _reads_world(suite: Suite) -> bool:
    """Whether the suite's capability tasks are files of its tiny world (written when the world is built)."""
    assert suite.world is not None and suite.capabilities is not None
    world = suite.world.dir.resolve()
    return any(world in (path.resolve(), *path.resolve().parents) for path in suite.capabilities.include_path)


def _adapter_base(path: str) -> str | None:
    """The base an adapter directory names: the natural reference for a LoRA checkpoint."""
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except json.JSONDecodeError:
        return None
    return base if isinstance(base, str) and base else None


def run_bench(
    suite_path: Path,
    output_dir: Path | None = None,
    overrides: Sequence[str] = (),
    baseline_path: Path | None = None,
    candidate: Candidate | None = None,
    command: str | None = None,
) -> RunResult | None:
    """Run the suite at `suite_path`; write results, reports and gate verdicts; return the results.

    Under `torchrun`, the processes share the scoring, generation and judging out; the main process
    computes the metrics, judges the gate, writes everything and returns the results, the others None.
    """
    started = time.perf_counter()
    suite = load_suite(suite_path, overrides)
    if candidate is not None:
        suite = candidate.into(suite)
    out_dir = output_dir or suite.output_dir
    # Without a baseline, rules that need one are reported as skipped: the first run records it.
    baseline = read_results(baseline_path) if baseline_path is not None else None
    if suite.capabilities is not None:
        lm_eval_version()  # without lm-eval, stop now with what to install, before any heavy work
    baseline_files = [baseline_path, *baseline_path.parent.glob("pairs/*.jsonl")] if baseline_path is not None else []
    check_outputs(suite, out_dir, [suite_path, *baseline_files])
    with output_lock(out_dir) if is_main_process() else contextlib.nullcontext():
        return _bench(suite, suite_path, out_dir, baseline, baseline_path, started, command)


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """One run at a time per output directory: a second one started beside it stops at once, in one line."""
    # In the temporary directory, named by the output directory's path: writable wherever the run is, and a run
    # that stops on bad input leaves nothing beside the user's files.
    digest = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:24]
    lock = Path(tempfile.gettempdir()) / "evalkit-locks" / f"{digest}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes, or the process dies
        except BlockingIOError:
            raise EvalkitError(
                f"output_dir: another evalkit run is writing to {out_dir}; wait for it, or choose another --out"
            ) from None
        yield


OUTPUT_MARKER = ".evalkit-output"
"""Left in every output directory: evalkit replaces files only in a directory that carries it."""


def _bench(
    suite: Suite,
    suite_path: Path,
    out_dir: Path,
    baseline: RunResult | None,
    baseline_path: Path | None,
    started: float,
    command: str | None,
) -> RunResult | None:
    if suite.world is not None:
        build_world(suite.world)
    capabilities = _capability_runner(suite)  # after the world: its task files are written with it
    check_inputs(suite)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / OUTPUT_MARKER).write_text("written by evalkit: its outputs here may be replaced by the next run\n")
    training = run_training(suite) if suite.train is not None else None
    datasets = {d.name: load_pairs(d) for d in suite.datasets}
    scored = score_suite(suite, datasets, ScoreStore(out_dir / ".scores"), capabilities)
    if not is_main_process():
        return None  # every process has every score and sample now; the main process summarises and writes

    beta, statistics = suite.scoring.beta, suite.statistics
    summaries = summarise_scores(scored.scores, datasets, beta, statistics, suite.reference)
    # The previous run's outputs go before any new one is written: a run stopped midway leaves none of them beside
    # the new files (`evalkit report` renders missing reports again from results.json).
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    dataset_infos = []
    for spec in suite.datasets:
        pairs_file = Path("pairs") / f"{spec.name}.jsonl"
        write_jsonl(pair_records(scored.scores[spec.name], suite.scoring.beta), out_dir / pairs_file)
        write_pair_texts(spec.name, datasets[spec.name], out_dir / texts_file(pairs_file))  # beside the scores
        dataset_infos.append(
            DatasetInfo(
                name=spec.name,
                path=spec.path,
                fingerprint=dataset_fingerprint(spec),
                n_pairs=len(datasets[spec.name]),
                subsets=sorted({p.subset for p in datasets[spec.name]}),
                pairs_file=str(pairs_file),
            )
        )

    result = RunResult(
        schema_version=SCHEMA_VERSION,
        evalkit_version=__version__,
        created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 1),
        suite=SuiteInfo(
            name=suite.name,
            description=suite.description,
            path=str(suite_path),
            sha256=hashlib.sha256(suite_path.read_bytes()).hexdigest(),
            gate=suite.gate.model_dump(mode="json", exclude_defaults=True) if suite.gate is not None else None,
        ),
        environment=environment(),
        reference=suite.reference,
        scoring=ScoringInfo(**suite.scoring.model_dump(mode="json", include=set(ScoringInfo.model_fields))),
        statistics=statistics,
        models=scored.models,
        datasets=dataset_infos,
        audit=scored.audits,
        training=_training_info(suite, training),
        metrics=summaries.metrics,
        comparisons=summaries.comparisons,
        reliability=summaries.reliability,
        generation=scored.generation,
        capabilities=capabilities.result(scored.capability_runs, statistics) if capabilities is not None else None,
        flip_examples=summaries.flip_examples,
        command=command,
    )
    if suite.gate is not None:
        baseline_dir = baseline_path.parent if baseline_path is not None else None
        verdicts = evaluate_gate(suite.gate, result, out_dir, baseline, baseline_dir)
        result = result.model_copy(update={"gate": verdicts})
    write_results(result, out_dir / "results.json")
    written = write_reports(result, out_dir)
    stdout.print(summary_table(result))
    if result.gate is not None:
        written += publish(result.gate, out_dir, result)
        stdout.print(verdict_table(result.gate))
    stdout.print(f"wrote {out_dir / 'results.json'}, " + ", ".join(str(p) for p in written), markup=False)
    return result


def run_score(suite: Suite, out: Path) -> list[dict[str, object]]:
    """`evalkit score`: per-pair rows of the suite's first model, written to `out` as JSON Lines.

    Under `torchrun --nproc_per_node N -m evalkit score ...` the pairs are shared out between the
    processes and gathered back in order; only the main process writes and prints.
    """
    check_inputs(suite)
    if any(Path(d.path).exists() and Path(d.path).resolve() == out.resolve() for d in suite.datasets):
        raise EvalkitError(f"--out: {out} is the data being scored (--data); write the scores to another file")
    datasets = {d.name: load_pairs(d) for d in suite.datasets}
    scored = score_suite(suite, datasets)
    policy = suite.models[0].name
    rows = [r for rows in scored.scores.values() for r in rows if r.model == policy]
    records = pair_records(rows, suite.scoring.beta)
    if is_main_process():
        write_jsonl(records, out)
    beta, statistics = suite.scoring.beta, suite.statistics
    metrics = [
        m for name, rows in scored.scores.items() for m in compute_metrics(name, rows, beta, statistics=statistics)
    ]
    modes = [m for info in scored.models if info.name == policy for m in info.scoring_modes]
    stdout.print(_score_summary(policy, metrics, [a for a in scored.audits if a.model == policy], modes))
    stdout.print(f"wrote {len(records)} pairs to {out}", markup=False)
    return records


def _score_summary(
    model: str, metrics: list[Metric], audits: list[TokenizationAudit], modes: list[ScoringMode]
) -> Table:
    table = Table(title=f"evalkit score · {model}", title_justify="left")
    for column in ("dataset", "metric", "value", "n"):
        table.add_column(column, justify="left" if column in ("dataset", "metric") else "right")
    for m in metrics:
        if m.model == model and m.subset == "all":
            table.add_row(m.dataset, m.metric, f"{m.value:.4f}", str(m.n))
    for a in audits:
        for label, count in zip(AUDIT_COUNTS, audit_counts(a), strict=True):
            table.add_row(a.dataset, f"audit: {label}", str(count), str(a.n_pairs))
    for mode in modes:
        table.add_row(mode.dataset, f"scoring mode: {mode.mode} ({mode.reason})", "", "")
    return table


def _capability_runner(suite: Suite) -> CapabilityRunner | None:
    """The suite's capability tasks, found in lm-eval's index (unknown names stop the run here)."""
    spec = suite.capabilities
    if spec is None or not is_main_process():
        return None
    return CapabilityRunner(spec, JsonStore(spec.cache) if spec.cache is not None else None)


OUTPUT_FILES = ("results.json", "report.md", "report.html", "junit.xml", "summary.md")


def check_outputs(suite: Suite, out_dir: Path, inputs: Sequence[Path] = ()) -> None:
    """Refuse, before any work, a run that would write over one of its own inputs (a dataset, the training data,
    a baseline, the suite), or into the directory it runs from."""
    if out_dir.resolve() == Path.cwd().resolve():
        raise EvalkitError(
            f"output_dir: {str(out_dir) or '(empty)'} is the current directory; name a directory of its own"
        )
    # In a directory written before the marker existed, evalkit's own files stand for it (an interrupted run of
    # an older version left its score store and per-pair files, not yet a results.json).
    evidence = [OUTPUT_MARKER, "results.json", ".scores", "pairs"]
    foreign = not any((out_dir / name).exists() for name in evidence)
    if out_dir.is_dir() and any(out_dir.iterdir()) and foreign:
        raise EvalkitError(
            f"output_dir: {out_dir} holds files evalkit did not write; choose a new directory or an earlier "
            "evalkit output directory"
        )
    read = {Path(d.path).resolve(): f"datasets.{d.name}.path" for d in suite.datasets if Path(d.path).exists()}
    if suite.train is not None:
        # The held-out pairs are written by training and then scored as a dataset: only the training data is theirs
        # to spare.
        training_data = Path(suite.train.data.path).resolve()
        if suite.train.heldout is not None and Path(suite.train.heldout).resolve() == training_data:
            raise EvalkitError(
                f"train.heldout: {suite.train.heldout} is also train.data.path; the held-out pairs need a file of "
                "their own"
            )
        read[training_data] = "train.data.path"
    read |= {path.resolve(): str(path) for path in inputs}
    written = [out_dir / name for name in OUTPUT_FILES] + [
        out_dir / "pairs" / f"{d.name}.jsonl" for d in suite.datasets
    ]
    for path in written:
        if path.resolve() in read:
            raise EvalkitError(f"output_dir: writing {path} would replace {read[path.resolve()]}; choose another --out")
    _check_writable(out_dir)


MIN_FREE_BYTES = 64 * 2**20
"""Free space a run needs in its output directory before it starts (reports and per-pair files are a few MB)."""


def _check_writable(out_dir: Path) -> None:
    """Fail before the expensive work, not after it, where the outputs cannot be written."""
    # Probed where the directory would be created, without creating it: a run that stops on bad input leaves nothing.
    existing = next((p for p in [out_dir, *out_dir.absolute().parents] if p.exists()), Path("/"))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        probe = existing / f".evalkit-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EvalkitError(f"output_dir: cannot write in {out_dir}: {exc.strerror or exc}") from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise EvalkitError(
            f"output_dir: {out_dir} has {free / 2**20:.0f} MB free; a run needs at least "
            f"{MIN_FREE_BYTES / 2**20:.0f} MB"
        )


def check_inputs(suite: Suite) -> None:
    """Fail before any heavy work when a file or directory the suite names is missing.

    Training's outputs (the trained model, the held-out pairs) need not exist yet.
    """
    train = suite.train
    produced_model = train.output if train is not None else None
    produced_data = Path(train.heldout).resolve() if train is not None and train.heldout else None
    for d in suite.datasets:
        if Path(d.path).resolve() == produced_data:
            continue
        if not Path(d.path).exists() and not looks_like_hub_id(d.path):
            raise EvalkitError(f"datasets.{d.name}.path: file not found (nor a hub dataset id): {d.path}")
    for m in suite.models:
        if m.name != produced_model and not is_loadable(m.path):
            raise EvalkitError(f"models.{m.name}.path: directory not found (nor a hub model id): {m.path}")
    if train is not None and not Path(train.data.path).exists() and not looks_like_hub_id(train.data.path):
        raise EvalkitError(f"train.data.path: file not found (nor a hub dataset id): {train.data.path}")


class ScoreStore:
    """Per (model, dataset) scores kept on disk as they finish, so a re-run after an interruption
    recomputes only what is missing. A key covers everything the scores depend on: the policy's and
    the reference's weights, tokenizer and config (their fingerprints), the exact token ids, pair
    ids and `max_length` scored, and the compute dtype; anything else changed makes a new key, so a
    stale entry never hits."""

    def __init__(self, directory: Path) -> None:
        self.files = JsonStore(directory)

    def load(self, key: str) -> tuple[list[PairScore], TokenizationAudit, ScoringMode | None] | None:
        stored = self.files.load(key)
        try:
            if "mode" not in stored:
                return None  # stored before scoring modes were recorded: score again, so the run records its mode
            mode = ScoringMode.model_validate(stored["mode"]) if stored.get("mode") else None
            rows = [PairScore(**row) for row in stored["rows"]]
            if any(r.prompt_key is None for r in rows):
                return None  # stored before prompts were recorded: score again, so pairs can be clustered
            return rows, TokenizationAudit.model_validate(stored["audit"]), mode
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # absent or unreadable: score again and overwrite

    def save(self, key: str, rows: list[PairScore], audit: TokenizationAudit, mode: ScoringMode | None) -> None:
        mode_entry = mode.model_dump(mode="json") if mode is not None else None
        self.files.save(
            key, {"rows": [vars(r) for r in rows], "audit": audit.model_dump(mode="json"), "mode": mode_entry}
        )


def score_suite(
    suite: Suite,
    datasets: dict[str, list[PreferencePair]],
    store: ScoreStore | None = None,
    capabilities: CapabilityRunner | None = None,
) -> ScoredSuite:
    """Score every model of the suite on every dataset, one policy in memory beside the reference; with
    `capabilities`, run its tasks on each model while it is loaded (in the main process).

    Started by `torchrun` with several processes, each process scores its share of every dataset
    and all of them get every score back (see `evalkit.scoring.batching`).
    """
    start_processes()
    reference = _load(suite, suite.model(suite.reference)) if suite.reference else None
    scored = ScoredSuite(pairs=datasets, scores={name: [] for name in datasets}, audits=[], models=[])
    reference_cache: dict[str, CachedScores] = {}
    panel = build_panel(suite.generation, datasets) if suite.generation is not None else []
    samples: list[Sample] = []
    drift: list[Drift] = []
    for spec in expand_checkpoints(suite.models):
        is_reference = reference is not None and spec.name == reference.spec.name
        loaded = reference if is_reference and reference is not None else _load(suite, spec, reference)
        try:
            modes: list[ScoringMode] = []
            for name, pairs in datasets.items():
                rows, audit, mode = _score_dataset(suite, name, pairs, loaded, reference, reference_cache, store)
                scored.scores[name].extend(rows)
                scored.audits.append(audit)
                modes += [mode] if mode is not None else []
            role = "reference" if is_reference else "candidate" if spec.name == suite.candidate else None
            scored.models.append(loaded.info.model_copy(update={"scoring_modes": modes, "role": role}))
            if capabilities is not None and is_main_process():
                scored.capability_runs.extend(capabilities.run(loaded))
            if suite.generation is not None:
                samples += _generate(suite.generation, panel, loaded)
                if suite.generation.drift is not None and reference is not None and not is_reference:
                    drift.append(_drift(suite, suite.generation.drift, panel, loaded, reference))
        finally:
            if loaded is not reference:
                release(loaded)
                del loaded
                gc.collect()
    if suite.generation is not None:
        scored.generation = _judge_and_summarise(suite, suite.generation, panel, samples, drift, scored.models)
    return scored


def _load(suite: Suite, spec: ModelSpec, reference: LoadedModel | None = None) -> LoadedModel:
    """`spec` loaded with the suite's rendering: its template options, and the suite's pinned date if it names one."""
    options = suite.template_options(spec)
    return load_model(spec, reference, template_options=options, template_date=suite.rendering.date)


def _generate(spec: GenerationSpec, panel: list[PanelPrompt], model: LoadedModel) -> list[Sample]:
    name, tokenizer, rendering = model.spec.name, model.tokenizer, model.rendering
    batch, sampling = spec.batch_size, spec.sampling
    return generate(model.model, tokenizer, panel, name, spec.max_new_tokens, batch, sampling, rendering=rendering)


def _drift(
    suite: Suite, spec: DriftSpec, panel: list[PanelPrompt], policy: LoadedModel, reference: LoadedModel
) -> Drift:
    """Sample from the policy's own distribution, then sum the per-token KL to the reference along each sample."""
    assert suite.generation is not None
    sampling = SamplingSpec(k=spec.samples, temperature=1.0, top_p=1.0, seed=spec.seed)
    name, tokenizer, batch = policy.spec.name, policy.tokenizer, suite.scoring.batch_size
    max_new_tokens, rendering = suite.generation.max_new_tokens, policy.rendering
    # The reference reads the policy's tokens, rendered the policy's way.
    drawn = generate(
        policy.model, tokenizer, panel, name, max_new_tokens, 1, sampling, own_distribution=True, rendering=rendering
    )
    as_reference = policy.as_reference if policy.shares_reference else lambda: contextlib.nullcontext(reference.model)
    kls = per_token_kls(policy.model, as_reference, tokenizer, panel, drawn, batch, rendering)
    return drift_estimate(name, reference.spec.name, drawn, kls, spec.samples, max_new_tokens, suite.statistics)


def _judge_and_summarise(
    suite: Suite,
    spec: GenerationSpec,
    panel: list[PanelPrompt],
    samples: list[Sample],
    drift: list[Drift],
    models: list[ModelInfo],
) -> GenerationResult:
    texts = {p.id: p.text for p in panel}
    scores: dict[str, list[float]] = {}

    def judged(function: Judge) -> list[float]:  # each process judges its share of the samples
        return share_out(samples, lambda s: float(function(texts[s.prompt_id], s.completion)))

    for judge in spec.judges:
        if judge.callable is not None:
            scores[judge.name] = judged(load_callable_judge(judge.callable))
        else:
            assert judge.reward_model is not None
            where, options = f"generation.judges.{judge.name}", suite.rendering.chat_template_kwargs
            with reward_model(judge.reward_model, where, options, suite.rendering.date) as function:
                scores[judge.name] = judged(function)
    names = [m.name for m in models]
    baseline = suite.reference if suite.reference in names else None
    stats, judges, win_rates = summarise(panel, samples, scores, names, baseline, suite.statistics)
    sampling = spec.sampling
    decoding = "greedy"
    if sampling is not None:
        decoding = f"sampling (k={sampling.k}, temperature={sampling.temperature}, top_p={sampling.top_p}"
        decoding += f", seed={sampling.seed})"
    return GenerationResult(
        decoding=decoding,
        max_new_tokens=spec.max_new_tokens,
        prompts=[GenerationPrompt(id=p.id, text=p.text) for p in panel],
        samples=[
            GenerationSample(
                prompt_id=s.prompt_id,
                model=s.model,
                index=s.index,
                completion=s.completion,
                n_tokens=s.n_tokens,
                ended=s.ended,
                scores={name: values[i] for name, values in scores.items()},
            )
            for i, s in enumerate(samples)
        ],
        stats=stats,
        judges=judges,
        win_rates=win_rates,
        drift=drift,
    )


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


def run_training(suite: Suite, output_dir: Path | None = None) -> TrainingRun:
    """Train the suite's `train.output` model; with `eval_fraction`, hold out (and write) a seeded split."""
    # Imported here: the trainer's modules pull in PEFT, which scoring a plain model never needs.
    from evalkit.train import finished_run, train_dpo

    assert suite.train is not None
    spec = suite.train
    pairs = load_pairs(spec.data)
    eval_pairs = None
    if spec.eval_fraction is not None and spec.heldout is not None:
        split = split_pairs(pairs, spec.eval_fraction, spec.split_seed)
        pairs, eval_pairs = split.train, split.held_out
        if is_main_process():  # every process splits alike; one writes
            write_pairs(eval_pairs, spec.heldout)
    held_out = f", {len(eval_pairs)} held out to {spec.heldout}" if eval_pairs else ""
    console.print(f"training {spec.output!r} from {spec.base!r} with DPO on {len(pairs)} pairs{held_out}")
    base = suite.model(spec.base)
    if Path(base.path).exists():
        # An absolute base path goes into the adapter's config, so the adapter loads from any directory.
        base = base.model_copy(update={"path": str(Path(base.path).resolve())})
    output = output_dir or Path(suite.model(spec.output).path)
    earlier = finished_run(spec, base, output, suite.template_options(suite.model(spec.output)), training_date(suite))
    if earlier is not None:
        console.print(f"[dim]reusing {output}: trained earlier with these settings on this base[/dim]")
        return earlier
    options = suite.template_options(suite.model(spec.output))
    return train_dpo(
        spec, base, output, pairs, eval_pairs, template_options=options, template_date=training_date(suite)
    )


def training_date(suite: Suite) -> datetime.date:
    """The date training pins a clock-reading template to: the suite's, else evalkit's default."""
    return suite.rendering.date or DEFAULT_DATE


def _score_dataset(
    suite: Suite,
    dataset: str,
    pairs: list[PreferencePair],
    policy: LoadedModel,
    reference: LoadedModel | None,
    reference_cache: dict[str, CachedScores],
    store: ScoreStore | None = None,
) -> tuple[list[PairScore], TokenizationAudit, ScoringMode | None]:
    """Score one dataset under one model, and under the reference on the same tokens; with how the
    policy's passes run (None when it has no pair to score).

    Reference log-probs are cached by the exact token ids scored, so models that share a
    tokenizer (the usual case: checkpoints of one base) cost one reference pass in all, and kept
    on disk (`scoring.reference_cache`), so later runs against the same reference cost none.
    The reference model itself gets no reward metrics: its rewards are zero by definition.
    """
    settings = suite.scoring
    tokenized = [tokenize_pair(p, policy.tokenizer, policy.rendering) for p in pairs]
    scorable = [t for t in tokenized if fits(t, settings.max_length)]
    too_long = [t.id for t in tokenized if not fits(t, settings.max_length)]
    if too_long:
        console.print(
            f"[yellow]{dataset}: {len(too_long)} pairs have a prompt that fills max_length="
            f"{settings.max_length} and are left out of the metrics (see the audit)[/yellow]"
        )
    label = f"{policy.spec.name} on {dataset}"
    key = _tokens_key(scorable, settings.max_length, policy.rendering)
    references = reference.info.fingerprint if reference is not None and reference is not policy else "none"
    ids = hashlib.sha256(json.dumps([t.id for t in scorable]).encode()).hexdigest()
    identity = f"{policy.info.fingerprint}|{references}|{key}|{ids}|{settings.dtype}"
    store_key = hashlib.sha256(identity.encode()).hexdigest()[:32]
    # The main process looks, so that every process takes the same branch (their collectives stay paired).
    stored = from_main(lambda: store.load(store_key)) if store is not None else None
    if stored is not None:
        console.print(f"[dim]reusing the scores of {label} from an earlier run[/dim]")
        rows, audit, mode = stored
        if reference is policy:
            reference_cache[key] = CachedScores(
                [
                    CompletionLogps(r.logp_chosen, r.logp_rejected, r.n_tokens_chosen, r.n_tokens_rejected, r.truncated)
                    for r in rows
                ],
                mode,
            )
        return (
            [PairScore(**{**vars(r), "model": policy.spec.name}) for r in rows],
            audit.model_copy(update={"model": policy.spec.name, "dataset": dataset}),
            mode.model_copy(update={"dataset": dataset}) if mode is not None else None,
        )
    ref: list[CompletionLogps] | None = None
    if reference is policy:
        computed = _cached_reference(
            suite, reference, key, reference_cache, lambda: _scored(policy.model, policy, scorable, suite, label)
        )
    else:
        computed = _scored(policy.model, policy, scorable, suite, label)
        if reference is not None:
            # The reference is scored on the policy's own tokens, so both log-probs cover the same text.
            ref = _cached_reference(
                suite,
                reference,
                key,
                reference_cache,
                lambda: _reference_scores(policy, reference, scorable, suite, label),
            ).logps
    own = computed.logps
    # As recorded when the scores were computed, in this run or the one that filled the cache.
    mode = computed.mode.model_copy(update={"dataset": dataset}) if computed.mode is not None else None
    audit = TokenizationAudit(
        dataset=dataset,
        model=policy.spec.name,
        n_pairs=len(pairs),
        n_scored=len(scorable),
        truncated=sum(s.truncated for s in own),
        prompt_too_long=too_long,
        prompt_not_prefix=sum(not t.prompt_is_prefix for t in tokenized),
        doubled_bos=sum(t.doubled_bos for t in tokenized),
    )
    rows = pair_scores(policy.spec.name, scorable, own, ref)
    if store is not None and is_main_process():
        store.save(store_key, rows, audit, mode)
    return rows, audit, mode


def _cached_reference(
    suite: Suite,
    reference: LoadedModel,
    tokens_key: str,
    in_memory: dict[str, CachedScores],
    compute: Callable[[], CachedScores],
) -> CachedScores:
    """The reference's log-probs on the tokens of `tokens_key`: from this run, from an earlier run
    (the on-disk cache), or computed now and kept in both."""
    if tokens_key in in_memory:
        return in_memory[tokens_key]
    directory = suite.scoring.reference_cache
    disk = ReferenceCache(directory) if directory is not None else None
    disk_key = reference_key(reference, tokens_key, suite.scoring.dtype) if disk is not None else None
    scores = from_main(lambda: disk.load(disk_key)) if disk is not None and disk_key is not None else None
    if scores is not None:
        console.print(f"[dim]reference log-probs of {reference.spec.name} from the cache in {directory}[/dim]")
    else:
        scores = compute()
        if disk is not None and disk_key is not None:
            disk.save(disk_key, scores)
    in_memory[tokens_key] = scores
    return scores


def _reference_scores(
    policy: LoadedModel, reference: LoadedModel, pairs: list[TokenizedPair], suite: Suite, label: str
) -> CachedScores:
    if policy.shares_reference:
        with policy.as_reference() as model:
            return _scored(model, policy, pairs, suite, f"reference for {label} (adapter disabled)")
    return _scored(reference.model, policy, pairs, suite, f"reference for {label}")


def _tokens_key(pairs: list[TokenizedPair], max_length: int, rendering: Rendering) -> str:
    """What the scores depend on besides the models: the token ids and `max_length`, and the template options
    and pinned date that rendered the tokens when there are any (the ids cover them already; named, a key says
    what it keys; left out otherwise, so that the keys of earlier runs still hit)."""
    named = "" if rendering.is_plain else f"|{rendering.identity}"
    digest = hashlib.sha256(f"{max_length}{named}".encode())
    for p in pairs:
        digest.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return digest.hexdigest()


def _scored(
    model: PreTrainedModel, tokens_from: LoadedModel, pairs: list[TokenizedPair], suite: Suite, label: str
) -> CachedScores:
    """`model`'s log-probs on `pairs` (tokenized by `tokens_from`), with the way the probes chose to run it."""
    pad_id = tokens_from.tokenizer.pad_token_id
    assert pad_id is not None
    scored = score_configured(model, pairs, suite.scoring, pad_id, label)
    return CachedScores(scored.logps, scored.mode)


def _training_info(suite: Suite, run: TrainingRun | None) -> TrainingInfo | None:
    if run is None or suite.train is None:
        return None
    from evalkit.train import training_curve

    steps = [entry for entry in run.log_history if "loss" in entry and "rewards/accuracies" in entry]
    last = steps[-1] if steps else {}
    return TrainingInfo(
        model=suite.train.output,
        steps=run.steps,
        seconds=round(run.seconds, 1),
        final_loss=last.get("loss"),
        final_reward_accuracy=last.get("rewards/accuracies"),
        log_history=str(run.output_dir / "log_history.json"),
        curve=training_curve(run.log_history),
    )
