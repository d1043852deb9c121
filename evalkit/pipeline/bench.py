"""The composition root: runs a suite from start to finish.

In pipeline order: build the tiny world (when the suite has one), train (when asked), score every model on
every dataset (`pipeline.score`), summarise the scores, judge the gate, and write `results.json`, the per-pair
files, the reports and what CI reads. Each step is a call into the stage that owns it; this module only wires
them and decides what is written where.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from evalkit import __version__
from evalkit.api.evaluation import Evaluation
from evalkit.api.evaluation import read_results as read_evaluation
from evalkit.api.inprocess import summarise_scores
from evalkit.capabilities.harness import CapabilityRunner, lm_eval_version
from evalkit.config.specs import DatasetSpec
from evalkit.config.suite import Suite, load_suite, parse_suite
from evalkit.console import is_main_process, stdout
from evalkit.data.best_of_n import BestOfNItem, completion_pairs
from evalkit.data.pairs import PreferencePair, dataset_fingerprint, load_pairs
from evalkit.data.unpaired import UnpairedExample, load_unpaired
from evalkit.gate.judge import evaluate_gate
from evalkit.gate.summary import publish
from evalkit.gate.terminal import verdict_lines
from evalkit.metrics.paired import with_false_discovery_rate
from evalkit.metrics.unpaired import compare_unpaired, reward_beta, suite_unpaired_metrics
from evalkit.pipeline.best_of_n import best_of_n_items, summarise_best_of_n
from evalkit.pipeline.candidate import Candidate
from evalkit.pipeline.checks import (
    COMPLETIONS_DIR,
    OUTPUT_FILES,
    OUTPUT_MARKER,
    check_inputs,
    check_objective_rules,
    check_outputs,
    output_lock,
)
from evalkit.pipeline.score import ScoredSuite, score_suite, scored_objectives
from evalkit.pipeline.training import holds_unpaired, run_training, training_infos
from evalkit.report.document import best_of_n_tables, summary_table, unpaired_tables, write_reports
from evalkit.report.statements import verdict_sentence
from evalkit.results.completions import completion_records
from evalkit.results.files import JsonStore, mark_output, read_results, write_jsonl, write_results
from evalkit.results.pairs import pair_records
from evalkit.results.provenance import environment
from evalkit.results.schema import SCHEMA_VERSION, DatasetInfo, RunResult, ScoringInfo, SuiteInfo
from evalkit.results.texts import texts_file, write_pair_texts
from evalkit.scoring.cache import ScoreStore
from evalkit.world import build_world


def run_suite(
    suite: str | Path | Suite | Mapping[str, Any], overrides: Sequence[str] = (), *, out: str | Path | None = None
) -> Evaluation | None:
    """Run a suite as `evalkit bench` does (train, score, generate, gate, write everything) and return its results.

    `suite` is a suite file, a parsed `Suite` or a mapping of suite keys; `overrides` are `--set` strings
    (`"scoring.batch_size=4"`); `out` replaces the suite's `output_dir`. Under `torchrun` the other
    processes get None, as `run_bench` gives them.
    """
    if isinstance(suite, (str, Path)):
        path = Path(suite)
    else:
        parsed = suite if isinstance(suite, Suite) else parse_suite(dict(suite), source="run_suite")
        directory = Path(out) if out is not None else parsed.output_dir
        path = directory / "suite.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / OUTPUT_MARKER).touch()  # the suite file is evalkit's: the run may write beside it
        path.write_text(yaml.safe_dump(parsed.model_dump(mode="json", exclude_unset=True), sort_keys=False))
    output = Path(out) if out is not None else load_suite(path, overrides, train_options=False).output_dir
    result = run_bench(path, output, overrides)
    if result is None:
        return None
    return read_evaluation(output / "results.json")


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
        check_inputs(suite, pending=suite.world.dir)  # your own models and data, before minutes of building the world
        build_world(suite.world)
    capabilities = _capability_runner(suite)  # after the world: its task files are written with it
    check_inputs(suite)
    trained = {run.output for run in suite.train}
    check_objective_rules(suite, str(suite_path), pending=trained)  # before training: its models' records wait
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_output(out_dir, None)  # the run is named once its results are written
    # Every dataset is read (and its rows checked) before any model loads; only the held-out pairs training writes wait.
    # Labelled completions (KTO style: `format: unpaired`, or told by their columns) are scored apart from pairs.
    heldout = {Path(run.heldout).resolve() for run in suite.train if run.heldout is not None}
    present = [d for d in suite.datasets if Path(d.path).resolve() not in heldout]
    unpaired = {d.name: load_unpaired(d) for d in present if holds_unpaired(d)}
    # Best-of-N datasets are read as items; their completions are scored as pairs by the same engine.
    items = best_of_n_items([d for d in present if d.name not in unpaired])
    ready = {d.name: _pairs_of(d, items) for d in present if d.name not in unpaired}
    training = training_infos(suite, run_training(suite))
    check_objective_rules(suite, str(suite_path))  # the trained models' records are written now
    for d in suite.datasets:  # the held-out data training wrote, scored unpaired where the suite says so
        if d.name not in ready and d.name not in unpaired and holds_unpaired(d):
            unpaired[d.name] = load_unpaired(d)
    datasets = {
        d.name: ready[d.name] if d.name in ready else load_pairs(d) for d in suite.datasets if d.name not in unpaired
    }
    scored = score_suite(suite, datasets, ScoreStore(out_dir / ".scores"), capabilities, unpaired)
    if not is_main_process():
        return None  # every process has every score and sample now; the main process summarises and writes

    objectives = scored_objectives(scored.models)
    pair_sets = [name for name in datasets if name not in items]
    summaries = summarise_scores(
        {name: scored.scores[name] for name in pair_sets},
        {name: datasets[name] for name in pair_sets},
        suite.scoring.beta,
        suite.statistics,
        suite.reference,
        objectives=objectives,
    )
    unpaired_comparisons = []
    for name, rows in scored.completions.items():
        summaries.metrics.extend(suite_unpaired_metrics(name, rows, objectives, suite.scoring.beta, suite.statistics))
        unpaired_comparisons += compare_unpaired(name, rows, objectives, suite.scoring.beta, suite.statistics)
    models = [info.name for info in scored.models]
    rms = frozenset(info.name for info in scored.models if info.reward_model)
    best_of_n = summarise_best_of_n(
        items, scored.scores, models, suite.scoring.beta, suite.statistics, objectives=objectives, reward_models=rms
    )
    fields = summaries.fields()
    if unpaired_comparisons:  # one family with the pairs' comparisons for the reports' significance marks
        fields["comparisons"] = with_false_discovery_rate([*summaries.comparisons, *unpaired_comparisons])
    fields["baselines"] = [*fields.get("baselines", []), *best_of_n.baselines]
    # The previous run's outputs go before any new one is written: a run stopped midway leaves none of them beside
    # the new files (`evalkit report` renders missing reports again from results.json).
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    result = RunResult(
        schema_version=SCHEMA_VERSION,
        evalkit_version=__version__,
        created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 1),
        suite=_suite_info(suite, suite_path),
        environment=environment(),
        reference=suite.reference,
        scoring=ScoringInfo(**suite.scoring.model_dump(mode="json", include=set(ScoringInfo.model_fields))),
        statistics=suite.statistics,
        models=scored.models,
        datasets=_write_pairs(suite, datasets, unpaired, scored, out_dir, items),
        audit=scored.audits,
        # One run keeps the one `training` record every reader knows; several are listed in order.
        training=training[0] if len(training) == 1 else None,
        trainings=training if len(training) > 1 else [],
        generation=scored.generation,
        capabilities=capabilities.result(scored.capability_runs, suite.statistics) if capabilities else None,
        command=command,
        **fields,
        **best_of_n.fields(),
    )
    if suite.gate is not None:
        baseline_dir = baseline_path.parent if baseline_path is not None else None
        verdicts = evaluate_gate(suite.gate, result, out_dir, baseline, baseline_dir)
        result = result.model_copy(update={"gate": verdicts})
    _write_outputs(result, out_dir)
    return result


def _pairs_of(spec: DatasetSpec, items: dict[str, list[BestOfNItem]]) -> list[PreferencePair]:
    """A dataset's pairs: its rows, or for a best-of-N dataset its completions laid out as pairs."""
    return completion_pairs(items[spec.name]) if spec.name in items else load_pairs(spec)


def _suite_info(suite: Suite, suite_path: Path) -> SuiteInfo:
    return SuiteInfo(
        name=suite.name,
        description=suite.description,
        path=str(suite_path),
        sha256=hashlib.sha256(suite_path.read_bytes()).hexdigest(),
        gate=suite.gate.model_dump(mode="json", exclude_defaults=True) if suite.gate is not None else None,
    )


def _write_pairs(
    suite: Suite,
    datasets: dict[str, list[PreferencePair]],
    unpaired: dict[str, list[UnpairedExample]],
    scored: ScoredSuite,
    out_dir: Path,
    items: dict[str, list[BestOfNItem]],
) -> list[DatasetInfo]:
    """Each dataset's per-pair rows and their texts (an unpaired dataset's per-completion rows), written beside
    results.json, and the record that names them."""
    infos = []
    for spec in suite.datasets:
        if spec.name in unpaired:
            infos.append(_write_completions(suite, spec.name, unpaired[spec.name], scored, out_dir))
            continue
        pairs_file = Path("pairs") / f"{spec.name}.jsonl"
        write_jsonl(pair_records(scored.scores[spec.name], suite.scoring.beta), out_dir / pairs_file)
        write_pair_texts(spec.name, datasets[spec.name], out_dir / texts_file(pairs_file))  # beside the scores
        infos.append(
            DatasetInfo(
                name=spec.name,
                path=spec.path,
                fingerprint=dataset_fingerprint(spec),
                n_pairs=len(items[spec.name]) if spec.name in items else len(datasets[spec.name]),
                subsets=sorted({p.subset for p in datasets[spec.name]}),
                pairs_file=str(pairs_file),
                format="best_of_n" if spec.name in items else "pairs",
            )
        )
    return infos


def _write_completions(
    suite: Suite, name: str, examples: list[UnpairedExample], scored: ScoredSuite, out_dir: Path
) -> DatasetInfo:
    """An unpaired dataset's per-completion rows (`completions/<dataset>.jsonl`) and the record that names them.
    Each row's `reward` is β·(ℓ − ℓ_ref) at its model's β (`reward_beta`), the reward its metrics are of."""
    completions_file = COMPLETIONS_DIR / f"{name}.jsonl"
    objectives, rows = scored_objectives(scored.models), scored.completions[name]
    records = [
        record
        for model in dict.fromkeys(r.model for r in rows)
        for record in completion_records(
            [r for r in rows if r.model == model], reward_beta(objectives.get(model), suite.scoring.beta)
        )
    ]
    write_jsonl(records, out_dir / completions_file)
    spec = next(d for d in suite.datasets if d.name == name)
    return DatasetInfo(
        name=name,
        path=spec.path,
        fingerprint=dataset_fingerprint(spec),
        n_pairs=len(examples),
        subsets=sorted({e.subset for e in examples}),
        pairs_file=str(completions_file),
        format="unpaired",
    )


def _write_outputs(result: RunResult, out_dir: Path) -> None:
    write_results(result, out_dir / "results.json")
    mark_output(out_dir, result)
    written = write_reports(result, out_dir)
    stdout.print(summary_table(result))  # the headline values with their intervals
    for table in [*best_of_n_tables(result), *unpaired_tables(result)]:
        stdout.print(table)
    if result.gate is not None:
        written += publish(result.gate, out_dir, result)
        stdout.print(verdict_lines(result.gate), soft_wrap=True)  # one line per rule
    stdout.print(f"wrote {out_dir / 'results.json'}, " + ", ".join(str(p) for p in written), markup=False)
    if sentence := verdict_sentence(result):
        stdout.print(sentence, markup=False, soft_wrap=True)  # the run's last line states the decision


def _capability_runner(suite: Suite) -> CapabilityRunner | None:
    """The suite's capability tasks, found in lm-eval's index (unknown names stop the run here)."""
    spec = suite.capabilities
    if spec is None or not is_main_process():
        return None
    return CapabilityRunner(spec, JsonStore(spec.cache) if spec.cache is not None else None)
