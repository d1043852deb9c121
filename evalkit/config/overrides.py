"""`--set key.path=value` overrides of a parsed suite, and the size limit on what a suite's YAML may expand to."""

from __future__ import annotations

from typing import Any

import yaml

from evalkit.config.messages import suggestion
from evalkit.errors import EvalkitError

MAX_SUITE_VALUES = 100_000
"""Values a suite may hold once its YAML aliases are expanded: aliases share one object, so a few hundred bytes
of nested aliases stand for billions of values that validation would walk."""


def expanded_size(value: Any, sizes: dict[int, int] | None = None) -> int:
    """How many values `value` holds with every alias expanded, counted once per distinct object (linear time)."""
    sizes = {} if sizes is None else sizes
    if id(value) in sizes:
        return sizes[id(value)]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    total = 1
    for child in children:
        total += expanded_size(child, sizes)
        if total > MAX_SUITE_VALUES:
            break
    sizes[id(value)] = total
    return total


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `key.path=value` in a parsed suite (`--set`). The value is read as YAML (`0.1`, `true`,
    `[a, b]`); a list item is named by its index or its `name` (`models.base.path=...`)."""
    key_path, separator, text = override.partition("=")
    if not separator or not key_path:
        raise EvalkitError(f"--set {override}: expected key.path=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    *parents, last = key_path.split(".")
    node: Any = raw
    for depth, part in enumerate(parents):
        node = _child(node, part, ".".join(parents[: depth + 1]), override)
    if isinstance(node, list):
        node[_index(node, last, key_path, override)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise EvalkitError(f"--set {override}: {'.'.join(parents)} is a value, not a section")


def _child(node: Any, part: str, where: str, override: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where, override)]
    if not isinstance(node, dict):
        raise EvalkitError(f"--set {override}: {where} is a value, not a section")
    if node.get(part) is None:
        node[part] = {}
    return node[part]


def _index(items: list[Any], part: str, where: str, override: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for position, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return position
    names = [str(item.get("name")) for item in items if isinstance(item, dict)]
    raise EvalkitError(f"--set {override}: {where}: no item {part!r}{suggestion(part, names)}; items are {names}")
