"""Shared fixtures: tiny tokenizers and models built offline in seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx2
import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.data.rendering import chat_token_ids
from evalkit.world.model import build_model, pretrain
from evalkit.world.pairs import generate_pairs
from evalkit.world.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The world's tokenizer, trained on a small sample of the world's text."""
    pairs = generate_pairs(30, seed=0)
    corpus = [m["content"] for p in pairs for text in (p.prompt, p.chosen, p.rejected) for m in text]
    return train_tokenizer(corpus, vocab_size=320)


@pytest.fixture(scope="session")
def test_device() -> torch.device:
    """Where the tiny models of the scoring and parity tests run: the CPU, or `EVALKIT_TEST_DEVICE` (`cuda`, as
    benchmarks/gpu.sh sets it to run those tests on a GPU before timing anything there)."""
    return torch.device(os.environ.get("EVALKIT_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer: PreTrainedTokenizerFast, test_device: torch.device) -> LlamaForCausalLM:
    """A random 2-layer, width-32 Llama: enough to test exact arithmetic of scoring (on `test_device`)."""
    torch.manual_seed(0)
    return build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval().to(test_device)


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


@dataclass(frozen=True)
class ServedModel:
    """A tiny world model served by `transformers serve` on a loopback port, and the same model in memory."""

    base_url: str
    name: str
    """The served model name (its directory, as `transformers serve` lists it)."""
    model: LlamaForCausalLM
    tokenizer: PreTrainedTokenizerFast


SERVE_STARTUP_SECONDS = 120


@pytest.fixture(scope="session")
def served_world(
    tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast
) -> Iterator[ServedModel]:
    """A tiny world model, pretrained briefly on world conversations so it writes text (a random one repeats
    its last prompt token), saved, and served by `transformers serve <dir> --device cpu` on a free loopback
    port until the session ends. Needs the `serve` extra (fastapi, uvicorn, openai), part of `dev`."""
    directory = tmp_path_factory.mktemp("served") / "base"
    torch.manual_seed(0)
    model = build_model(tiny_tokenizer, hidden_size=32, num_layers=2)
    pairs = generate_pairs(30, seed=0)
    sequences = [chat_token_ids(tiny_tokenizer, p.prompt + reply) for p in pairs for reply in (p.chosen, p.rejected)]
    pretrain(model, sequences, steps=150, pad_id=int(tiny_tokenizer.pad_token_id), seed=0)
    model.eval()
    model.save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = directory.parent / "serve.log"
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(directory)]
    command += ["--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    environment = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + SERVE_STARTUP_SECONDS
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {server.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"transformers serve not ready in {SERVE_STARTUP_SECONDS} s:\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield ServedModel(f"http://127.0.0.1:{port}/v1", str(directory), model, tiny_tokenizer)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
