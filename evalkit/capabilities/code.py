"""Task files that run Python: lm-eval's `!function module.name` imports the module beside a task YAML and calls
it, so a task directory from someone else is code from someone else. Such tasks run only with the suite's
explicit `capabilities.allow_code: true`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evalkit.config.specs import CapabilitiesSpec
from evalkit.errors import EvalkitError

TASK_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class TaskCode:
    """One `!function` a task file names."""

    file: Path
    function: str


def check_task_code(spec: CapabilitiesSpec) -> None:
    """Refuse, in one line, task files under `include_path` (or files they `include`) that run Python, unless
    the suite allows it (`capabilities.allow_code: true`)."""
    if spec.allow_code:
        return
    found = next(task_code(spec.include_path), None)
    if found is not None:
        raise EvalkitError(
            f"capabilities.include_path: {found.file} runs Python (!function {found.function}); lm-eval imports and "
            "calls it, so set `capabilities.allow_code: true` only if you trust these task files"
        )


def task_code(paths: list[Path]) -> Iterator[TaskCode]:
    """Every `!function` in the task files under `paths` and in the files they include, in file order."""
    seen: set[Path] = set()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in TASK_SUFFIXES) if path.is_dir() else [path]
        for file in files:
            yield from _functions(file, seen)


def _functions(file: Path, seen: set[Path]) -> Iterator[TaskCode]:
    resolved = file.resolve()
    if resolved in seen or not resolved.is_file():
        return
    seen.add(resolved)
    functions: list[str] = []
    try:
        config = yaml.load(resolved.read_text(encoding="utf-8"), Loader=_loader(functions))  # a SafeLoader
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise EvalkitError(f"capabilities.include_path: {file}: not a YAML task file ({_first(exc)})") from None
    for name in functions:
        yield TaskCode(file, name)
    included = config.get("include") if isinstance(config, dict) else None
    for name in [included] if isinstance(included, str) else included if isinstance(included, list) else []:
        if isinstance(name, str):
            yield from _functions(resolved.parent / name, seen)  # relative to the including file, as lm-eval does


def _loader(functions: list[str]) -> type[yaml.SafeLoader]:
    """A safe YAML loader that notes each `!function` it meets (and reads any other tag as plain data)."""

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        value = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if suffix == "function":
            functions.append(str(value))
        return value

    Loader.add_multi_constructor("!", tagged)
    return Loader


def _first(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]
