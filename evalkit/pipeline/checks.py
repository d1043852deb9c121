"""Checks before any heavy work: the suite's inputs exist, the outputs go to a directory of evalkit's own that
can be written, and one run at a time writes there."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from evalkit.config.rules import PreferenceRule
from evalkit.config.suite import Suite
from evalkit.data.locations import check_data_location, check_model_location
from evalkit.errors import EvalkitError
from evalkit.metrics.names import REGISTRY
from evalkit.results.files import OUTPUT_MARKER, check_writable
from evalkit.trainers import resolved_objective


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


COMPLETIONS_DIR = Path("completions")
"""Where an unpaired dataset's per-completion rows go, beside `pairs/`."""

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
    # The held-out pairs are written by training and then scored as a dataset: only the training data is theirs
    # to spare, every run's.
    training_data = {Path(run.data.path).resolve(): suite.train_key(i) for i, run in enumerate(suite.train)}
    for index, run in enumerate(suite.train):
        if run.heldout is not None and Path(run.heldout).resolve() in training_data:
            raise EvalkitError(
                f"{suite.train_key(index)}.heldout: {run.heldout} is also "
                f"{training_data[Path(run.heldout).resolve()]}.data.path; the held-out pairs need a file of their own"
            )
    read |= {path: f"{key}.data.path" for path, key in training_data.items()}
    read |= {path.resolve(): str(path) for path in inputs}
    written = [out_dir / name for name in OUTPUT_FILES] + [
        out_dir / folder / f"{d.name}.jsonl" for d in suite.datasets for folder in (Path("pairs"), COMPLETIONS_DIR)
    ]
    for path in written:
        if path.resolve() in read:
            raise EvalkitError(f"output_dir: writing {path} would replace {read[path.resolve()]}; choose another --out")
    check_writable(out_dir, "output_dir", "a run")


def check_inputs(suite: Suite, pending: Path | None = None) -> None:
    """Fail before any heavy work when a file, directory or hub id the suite names cannot be found: every dataset,
    every model and an adapter's base, in one line each with the nearest names (see `evalkit.data.locations`).

    Training's outputs (the trained models and what they hold, the held-out pairs) need not exist yet, nor anything
    under `pending` (the tiny world's directory, checked again once it is built).
    """
    produced_models = {run.output for run in suite.train}
    produced_data = {Path(run.heldout).resolve() for run in suite.train if run.heldout is not None}
    # What training writes inside an output directory (a merged copy under `<output>/merged`) comes later too.
    pending_dirs = [Path(suite.model(name).path).resolve() for name in produced_models]
    pending_dirs += [pending.resolve()] if pending is not None else []

    def later(path: str) -> bool:
        resolved = Path(path).resolve()
        return resolved in produced_data or any(resolved.is_relative_to(d) for d in pending_dirs)

    for d in suite.datasets:
        if not later(d.path):
            check_data_location(d.path, d.revision, f"datasets.{d.name}.path")
    for index, run in enumerate(suite.train):
        if not later(run.data.path):
            check_data_location(run.data.path, run.data.revision, f"{suite.train_key(index)}.data.path")
    for m in suite.models:
        if m.name in produced_models or later(m.path):
            continue
        check_model_location(m.path, m.revision, f"models.{m.name}.path")
        base = m.base or adapter_base(m.path)
        if base is not None and not m.checkpoints and not later(base):
            where = f"models.{m.name}.base" if m.base else f"models.{m.name} (its adapter's base)"
            check_model_location(base, None, where)


def adapter_base(path: str) -> str | None:
    """The base a local adapter directory names in its adapter_config.json (None for a model, or a hub id)."""
    config = Path(path) / "adapter_config.json"
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return base if isinstance(base, str) and base else None


def check_objective_rules(suite: Suite, source: str, pending: Collection[str] = ()) -> None:
    """Refuse, before any model is scored, a gate rule on an objective's metric that the model's objective does not
    have: the same check as when the suite loads, against the objective scoring will record
    (`evalkit.trainers.resolved_objective`), for the models whose objective only the run can read (a TRL config in
    a pickle, a training record this run writes). Rules on `pending` models (trained later in the run) wait."""
    rules = suite.gate.rules if suite.gate is not None else []
    problems = [
        f"{source}: {problem}"
        for index, rule in enumerate(rules)
        if isinstance(rule, PreferenceRule) and REGISTRY[rule.metric].quantity is not None and rule.model not in pending
        for problem in suite.objective_rule_problems(
            rule, f"gate.rules.{index}", resolved_objective(suite, suite.model(rule.model))
        )
    ]
    if problems:
        raise EvalkitError("\n".join(problems))
