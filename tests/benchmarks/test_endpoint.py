"""Completions per second on one panel: in process (`model.generate` in batches) against an OpenAI-compatible
endpoint (`transformers serve` on a loopback port, the `served_world` fixture), one request at a time and
eight in flight. Same model, same panel, greedy, no cache (every round asks the server again).

What the figures mean on this workload: the tiny world model (2 layers × 32) decodes in microseconds, so
the endpoint's cost is mostly HTTP and the server's per-request work; `transformers serve` without
`--continuous-batching` runs one `generate` at a time, so concurrency overlaps only that overhead. On a
vLLM server with a real model the batching is the server's and concurrency is where the speed comes from.
No assertion is on time; the assertions check that every path returns the same completions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from evalkit.config.specs import GenerationSpec, PanelSource
from evalkit.generate.decode import Sample, generate
from evalkit.generate.endpoint import Endpoint, EndpointClient, generate_via_endpoint
from evalkit.generate.panel import PanelPrompt, build_panel
from evalkit.world.pairs import generate_pairs

MAX_NEW_TOKENS = 32
ROUNDS = 3
FIGURES: dict[str, float] = {}
"""Median seconds per panel, by path."""
COMPLETIONS: dict[str, list[tuple[str, str]]] = {}


@pytest.fixture(scope="module")
def panel() -> list[PanelPrompt]:
    spec = GenerationSpec(from_dataset=PanelSource(dataset="world", n=32, seed=5))
    return build_panel(spec, {"world": generate_pairs(11, seed=5)})


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    if not FIGURES:
        return
    size = len(COMPLETIONS[next(iter(COMPLETIONS))])
    lines = [f"endpoint generation, {size} prompts × {MAX_NEW_TOKENS} new tokens (median of {ROUNDS} rounds)"]
    for name, seconds in FIGURES.items():
        lines.append(f"  {name:<28} {seconds:7.3f} s  {size / seconds:8.1f} completions/s")
    if {"in process", "endpoint, concurrency 1", "endpoint, concurrency 8"} <= FIGURES.keys():
        lines.append(f"  endpoint (8) / in process: {FIGURES['in process'] / FIGURES['endpoint, concurrency 8']:.2f}×")
        one, eight = FIGURES["endpoint, concurrency 1"], FIGURES["endpoint, concurrency 8"]
        lines.append(f"  concurrency 8 / concurrency 1: {one / eight:.2f}×")
    print("\n" + "\n".join(lines))


def texts(samples: list[Sample]) -> list[tuple[str, str]]:
    return [(s.prompt_id, s.completion) for s in samples]


def record(name: str, benchmark: BenchmarkFixture, samples: list[Sample]) -> None:
    FIGURES[name] = float(benchmark.stats.stats.median)
    COMPLETIONS[name] = texts(samples)
    first = next(iter(COMPLETIONS.values()))
    assert COMPLETIONS[name] == first, f"{name} decoded other completions"


def test_in_process(benchmark: BenchmarkFixture, served_world: Any, panel: list[PanelPrompt]) -> None:
    def run() -> list[Sample]:
        return generate(served_world.model, served_world.tokenizer, panel, "base", MAX_NEW_TOKENS, 8, None)

    record("in process", benchmark, benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1))


@pytest.mark.parametrize("concurrency", [1, 8])
def test_endpoint(benchmark: BenchmarkFixture, served_world: Any, panel: list[PanelPrompt], concurrency: int) -> None:
    endpoint = Endpoint(served_world.base_url, served_world.name, concurrency=concurrency)  # no cache

    def run() -> list[Sample]:
        with EndpointClient(endpoint) as client:
            return generate_via_endpoint(client, panel, "base", MAX_NEW_TOKENS, None, tokenizer=served_world.tokenizer)

    samples = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info |= {"concurrency": concurrency, "completions": len(samples)}
    record(f"endpoint, concurrency {concurrency}", benchmark, samples)
