"""Running the suite's tasks through lm-evaluation-harness on each loaded model, with a cache per (model, task)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.config.specs import CapabilitiesSpec
from evalkit.console import console, plain
from evalkit.errors import EvalkitError
from evalkit.results.capabilities import CapabilityResult, CapabilityTask
from evalkit.results.estimates import Statistics
from evalkit.results.files import JsonStore
from evalkit.results.provenance import git_sha

if TYPE_CHECKING:
    from evalkit.checkpoints import LoadedModel, ServedCheckpoint

    Checkpoint = LoadedModel | ServedCheckpoint

from evalkit.capabilities.code import check_task_code
from evalkit.capabilities.runs import DocumentScore, TaskRun
from evalkit.capabilities.scores import compare_runs, score_runs, with_fdr
from evalkit.capabilities.served import check_prompt_logprobs, served_lm, served_name, server_failures

INSTALL_HINT = "install the capabilities extra: pip install 'lm-eval[api]>=0.4.13,<0.5'"
CACHE_FORMAT = 1
"""Bump when what is stored per (model, task) changes, so older entries are computed again."""


def lm_eval_version() -> str:
    """The installed lm-eval's version; a one-line `EvalkitError` saying what to install when it is absent."""
    try:
        return importlib.metadata.version("lm-eval")
    except importlib.metadata.PackageNotFoundError:
        raise EvalkitError(f"capabilities: lm-eval is not installed; {INSTALL_HINT}") from None


@dataclass(frozen=True)
class ResolvedTask:
    """A task name of the suite, found in lm-eval's index."""

    name: str
    source: str
    """Its YAML file, or `python` for a task defined in code."""
    fingerprint: str | None
    """sha256 over its YAML file and the local data files it names (`_fingerprint`); None without a YAML file."""


class CapabilityRunner:
    """The suite's tasks, resolved once: run on each model as it is loaded, then summarised."""

    def __init__(self, spec: CapabilitiesSpec, store: JsonStore | None = None) -> None:
        self.spec = spec
        self.version = lm_eval_version()
        self.store = store
        self.manager = _task_manager(spec)
        self.tasks = [_resolve(name, self.manager) for name in spec.tasks]
        self.served: dict[str, str] = {}
        """Suite model name → the name the server was asked for (with `spec.endpoint`)."""

    def run(self, loaded: Checkpoint) -> list[TaskRun]:
        """Every task on one model, loaded here (its adapter, if any, attached) or on the server
        (`capabilities.endpoint`, where scoring may be served too: only its tokenizer here); results kept from an
        earlier run of the same model are reused (a model whose files are not pinned, e.g. a hub id without a
        commit, keeps none)."""
        name = loaded.spec.name
        if self.spec.endpoint is not None:
            self.served[name] = served_name(self.spec.endpoint, loaded)
        keys = {t.name: self._key(t, loaded.info.fingerprint) for t in self.tasks} if loaded.pinned else {}
        runs: dict[str, TaskRun] = {}
        for task in self.tasks:
            stored = self._load(keys.get(task.name))
            if stored is not None:
                console.print(f"[dim]reusing {plain(task.name)} results of {plain(name)} from an earlier run[/dim]")
                runs[task.name] = dataclasses.replace(stored, model=name)
        missing = [t.name for t in self.tasks if t.name not in runs]
        if missing:
            console.print(f"capabilities: {plain(', '.join(missing))} on {plain(name)} (lm-eval {self.version})")
            for run in self._evaluate(loaded, missing):
                runs[run.task] = run
                key = keys.get(run.task)
                if key is not None and self.store is not None:
                    self.store.save(key, {"format": CACHE_FORMAT, "run": dataclasses.asdict(run)})
        return [runs[t.name] for t in self.tasks]

    def result(self, runs: Sequence[TaskRun], statistics: Statistics) -> CapabilityResult:
        """Scores, paired comparisons and what each task was, for `results.json`."""
        infos = []
        for task in self.tasks:
            mine = [r for r in runs if r.task == task.name]
            first = mine[0] if mine else None
            infos.append(
                CapabilityTask(
                    name=task.name,
                    version=first.version if first else None,
                    source=task.source,
                    fingerprint=task.fingerprint,
                    num_fewshot=first.num_fewshot if first else self.spec.num_fewshot,
                    limit=self.spec.limit,
                    n_documents=min((len(r.documents) for r in mine), default=0),
                    metrics=list(first.higher_is_better) if first else [],
                )
            )
        comparisons = with_fdr(compare_runs(runs, statistics))
        return CapabilityResult(
            lm_eval_version=self.version,
            apply_chat_template=self.spec.apply_chat_template,
            tasks=infos,
            scores=score_runs(runs, statistics),
            comparisons=comparisons,
            endpoint=self.spec.endpoint.base_url if self.spec.endpoint is not None else None,
            served_models=dict(self.served),
        )

    def _key(self, task: ResolvedTask, fingerprint: str) -> str:
        spec = self.spec
        # The task's files by content (not by where they lie), so a moved checkout still hits.
        identity = json.dumps(
            {
                "format": CACHE_FORMAT,
                "model": fingerprint,
                "task": task.name,
                "files": task.fingerprint,
                "num_fewshot": spec.num_fewshot,
                "limit": spec.limit,
                "apply_chat_template": spec.apply_chat_template,
                "lm_eval": self.version,
                # a server rounds differently from this process (the key is absent in process, so that entries kept
                # before servers could score stay valid); the model is its fingerprint, wherever it is served
                **({"scored_by": "local-completions"} if spec.endpoint is not None else {}),
            }
        )
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    def _load(self, key: str | None) -> TaskRun | None:
        if key is None or self.store is None:
            return None
        stored = self.store.load(key)
        try:
            if stored["format"] != CACHE_FORMAT:
                return None
            run = dict(stored["run"])
            run["documents"] = [DocumentScore(**d) for d in run["documents"]]
            return TaskRun(**run)
        except (TypeError, KeyError, ValueError):
            return None  # absent or unreadable: evaluate again and overwrite

    def _evaluate(self, loaded: Checkpoint, tasks: list[str]) -> list[TaskRun]:
        spec = self.spec
        if spec.apply_chat_template and not getattr(loaded.tokenizer, "chat_template", None):
            raise EvalkitError(
                f"capabilities.apply_chat_template: model {loaded.spec.name!r} has no chat template; "
                "set it to false for base models"
            )
        from lm_eval import simple_evaluate

        with _quiet(), self._failures(loaded):
            out = simple_evaluate(
                model=self._model(loaded),
                tasks=tasks,
                num_fewshot=spec.num_fewshot,
                limit=spec.limit,
                task_manager=self.manager,
                log_samples=True,
                bootstrap_iters=0,  # evalkit's intervals come from the documents, not lm-eval's bootstrap
                apply_chat_template=spec.apply_chat_template,
                verbosity="ERROR",
            )
        assert out is not None, "simple_evaluate returns results in the main process"
        return [_task_run(task, loaded.spec.name, out) for task in tasks]

    def _model(self, loaded: Checkpoint) -> Any:
        """lm-eval's model of `loaded`: the server's (`capabilities.endpoint`), checked before any task runs, or the
        loaded checkpoint in this process."""
        spec = self.spec
        if spec.endpoint is not None:
            check_prompt_logprobs(spec.endpoint, loaded, list(loaded.tokenizer("Hello world")["input_ids"]))
            return served_lm(spec.endpoint, loaded, spec.apply_chat_template)
        from lm_eval.models.huggingface import HFLM

        from evalkit.checkpoints import LoadedModel  # deferred: torch is loaded by now

        assert isinstance(loaded, LoadedModel), "validated: without an endpoint, tasks run on a model in process"
        return HFLM(
            pretrained=loaded.model,
            tokenizer=copy.deepcopy(loaded.tokenizer),  # lm-eval may give it a pad token; evalkit's stays as is
            batch_size=spec.batch_size,
            chat_template_args=loaded.rendering.template_kwargs(),  # the options and pinned date evalkit renders
        )

    def _failures(self, loaded: Checkpoint) -> contextlib.AbstractContextManager[None]:
        """A server's failures as one line (in process there is no server to fail)."""
        endpoint = self.spec.endpoint
        return server_failures(endpoint, loaded) if endpoint is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """lm-eval's warnings about being handed a loaded model (which is what evalkit means to do) left out; off a
    terminal its tqdm bars too, and always the git call that prints 'fatal: not a git repository' outside one."""
    from unittest import mock

    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        # lm-eval runs `git describe` with the terminal as its stderr; evalkit's own lookup is silent (and records the
        # same commit in results.json).
        stack.enter_context(mock.patch("lm_eval.evaluator.get_git_commit_hash", git_sha))
        if not console.is_terminal:
            # lm-eval passes `disable=False` to its bars, which overrides TQDM_DISABLE; in a log each bar is one line of
            # thousands of carriage-return frames. Its errors still arrive as exceptions, its logs through `logging`.
            stack.enter_context(contextlib.redirect_stderr(stack.enter_context(open(os.devnull, "w"))))
        try:
            yield
        finally:
            logger.setLevel(level)


def _task_manager(spec: CapabilitiesSpec) -> Any:
    """lm-eval's task index over `include_path`; its own ~14,000 tasks are indexed (about ten seconds) only
    when the suite names a task the local files do not define."""
    for path in spec.include_path:
        if not path.exists():
            raise EvalkitError(f"capabilities.include_path: not found: {path}")
    check_task_code(spec)  # before lm-eval reads a task file: loading one imports what its `!function`s name
    from lm_eval.tasks import TaskManager

    include = [str(p) for p in spec.include_path] or None
    if include is not None:
        local = TaskManager(include_path=include, include_defaults=False)
        if all(name in local.task_index for name in spec.tasks):
            return local
    return TaskManager(include_path=include)


def _resolve(name: str, manager: Any) -> ResolvedTask:
    entry = manager.task_index.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(manager.task_index), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise EvalkitError(f"capabilities.tasks: no lm-eval task named {name!r}{hint}")
    if entry.yaml_path is None:
        return ResolvedTask(name, "python", None)
    return ResolvedTask(name, str(entry.yaml_path), _fingerprint(entry, manager))


def _fingerprint(entry: Any, manager: Any, depth: int = 0) -> str:
    """sha256 over the YAML file, every local data file its `dataset_kwargs.data_files` names and, for a group,
    the same of each task it names. What the task is, not where it lies: the data files' paths in the YAML count
    by file name only (their content counts in full), so a task whose files moved keeps its fingerprint."""
    yaml_path = Path(entry.yaml_path)
    config = entry.cfg or {}
    text = yaml_path.read_bytes()
    for data_file in sorted(_data_files(config), key=len, reverse=True):
        text = text.replace(data_file.encode(), Path(data_file).name.encode())
    digest = hashlib.sha256(text)
    children = config.get("task")
    for child in children if isinstance(children, list) else []:
        found = manager.task_index.get(child) if isinstance(child, str) else None
        if found is not None and found.yaml_path is not None and depth < 8:
            digest.update(_fingerprint(found, manager, depth + 1).encode())
    for data_file in _data_files(config):
        path = Path(data_file) if Path(data_file).is_absolute() else yaml_path.parent / data_file
        for candidate in (path, Path(data_file)):
            if candidate.is_file():
                digest.update(candidate.name.encode() + b"\0" + candidate.read_bytes())
                break
    return digest.hexdigest()


def _data_files(config: dict[str, Any]) -> list[str]:
    kwargs = config.get("dataset_kwargs") or {}
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    if isinstance(files, str):
        return [files]
    if isinstance(files, dict):
        return [f for value in files.values() for f in ([value] if isinstance(value, str) else list(value))]
    return [str(f) for f in files] if isinstance(files, list) else []


def _leaves(task: str, groups: dict[str, list[str]], depth: int = 0) -> list[str]:
    """The tasks that ran documents for `task`: itself, or the tasks of a group (of groups)."""
    if task not in groups or depth > 8:
        return [task]
    return [leaf for child in groups[task] for leaf in _leaves(child, groups, depth + 1)]


def _task_run(task: str, model: str, out: dict[str, Any]) -> TaskRun:
    """One task's per-document values from `simple_evaluate`'s output; a group (`mmlu`) pools the documents of
    its tasks, each id prefixed with its task's name. Metrics whose per-document values are not numbers
    (corpus-level ones such as BLEU, per-instruction lists) are left out: they have no paired comparison."""
    leaves = _leaves(task, out.get("group_subtasks") or {})
    samples = [(leaf, sample) for leaf in leaves for sample in out["samples"].get(leaf, [])]
    if not samples:
        raise EvalkitError(f"capabilities.tasks: {task!r} ran no document")
    directions: dict[str, bool | None] = {}
    for leaf in (task, *leaves):
        for metric, higher in out.get("higher_is_better", {}).get(leaf, {}).items():
            directions.setdefault(metric, higher)
    by_document: dict[tuple[str, str], dict[str, float]] = {}
    for leaf, sample in samples:
        suffix = "" if sample.get("filter", "none") == "none" else f",{sample['filter']}"
        doc = sample.get("doc")
        own_id = doc.get("id") if isinstance(doc, dict) else None
        document = str(own_id) if isinstance(own_id, (str, int)) else str(sample["doc_id"])
        key = (document if leaf == task else f"{leaf}/{document}", str(sample["doc_hash"]))
        values = by_document.setdefault(key, {})
        for metric in sample.get("metrics", directions):
            value = sample.get(metric)
            if isinstance(value, (bool, int, float)) and np.isfinite(value):
                values[metric + suffix] = float(value)
    names = list(dict.fromkeys(m for values in by_document.values() for m in values))
    return TaskRun(
        task=task,
        model=model,
        version=str(out["versions"][task]) if out.get("versions", {}).get(task) is not None else None,
        num_fewshot=out.get("n-shot", {}).get(task, out.get("n-shot", {}).get(leaves[0])),
        higher_is_better={m: directions.get(m.split(",")[0]) for m in names},
        documents=[DocumentScore(id=i, doc_hash=h, values=v) for (i, h), v in by_document.items()],
    )
