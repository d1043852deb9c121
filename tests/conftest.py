"""Shared fixtures: tiny tokenizers and models built offline in seconds."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs
from evalkit.world.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The world's tokenizer, trained on a small sample of the world's text."""
    pairs = generate_pairs(30, seed=0)
    corpus = [m["content"] for p in pairs for text in (p.prompt, p.chosen, p.rejected) for m in text]
    return train_tokenizer(corpus, vocab_size=320)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A random 2-layer, width-32 Llama: enough to test exact arithmetic of scoring."""
    torch.manual_seed(0)
    return build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()


SchemaCheck = Callable[[Any, dict[str, Any], dict[str, Any]], list[str]]


def _schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    """Where `value` breaks `schema`: the JSON Schema keywords the shipped schema uses, no more.

    jsonschema is not a dependency; this covers $ref, type, enum, anyOf, properties, required,
    additionalProperties, items and the numeric bounds, which is all pydantic emits here.
    """
    if "$ref" in schema:
        return _schema_errors(value, root["$defs"][schema["$ref"].split("/")[-1]], root, path)
    if "anyOf" in schema:
        options = [_schema_errors(value, option, root, path) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{path}: matches no option of anyOf"]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int if kind == "integer" else (int, float)):
            return [f"{path}: expected {kind}, got {value!r}"]
    elif kind is not None and not isinstance(value, kinds[kind]):
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    bounds = {
        "minimum": lambda b: value >= b,
        "maximum": lambda b: value <= b,
        "exclusiveMinimum": lambda b: value > b,
        "exclusiveMaximum": lambda b: value < b,
    }
    errors += [
        f"{path}: {key} {schema[key]}" for key, holds in bounds.items() if key in schema and not holds(schema[key])
    ]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in properties:
                errors += _schema_errors(item, properties[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += _schema_errors(item, schema["items"], root, f"{path}[{index}]")
    return errors


@pytest.fixture(scope="session")
def schema_errors() -> SchemaCheck:
    """`check(value, schema, root)`: where a results file breaks the shipped JSON Schema (empty when it holds)."""
    return _schema_errors
