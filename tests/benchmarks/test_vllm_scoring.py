"""Scoring throughput through a real vLLM server against evalkit in process, on the same workload in one run, and
the parity figures of the two (`make perf`; needs `.venv-vllm`, which `make test` sets up).

The workload: a random Llama of 4 layers × 256 hidden (MLP 1024, 4 heads of 64) with an 8k word vocabulary, fp32;
96 pairs of ~120-word prompts with ~30-word answers (benchmarks/workload.py). In process: `score_pairs` with
evalkit's defaults (batches of 8, prompt sharing). Through vLLM: token ids to `/v1/completions` with
`prompt_logprobs`, 8 requests in flight, no cache (every round asks the server). On a CPU the two share the same
cores, so the figure says that the path works and what it costs here; the engine's gain is on GPUs (paged
attention, continuous batching, tensor parallelism). No assertion is on time; the parity assertions hold the
numbers to fp32 rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.workload import PAD, tokenize, word_tokenizer, workload
from evalkit.config.specs import ParitySpec, ScoringSpec
from evalkit.generate.endpoint import Endpoint, EndpointClient
from evalkit.results.schema import ParityResult
from evalkit.scoring.score import TokenizedPair, score_pairs
from evalkit.scoring.served import compare_logps, local_token_logps, score_served, served_token_logps
from tests.integration.vllm_server import VLLMServer, serve_vllm

VOCAB, HIDDEN, MLP, LAYERS, HEADS = 8_000, 256, 1024, 4, 4
PAIRS, PROMPT, ANSWER = 96, 120, 30
MAX_LENGTH = 511  # vLLM needs one position free for the token it decodes (max-model-len 512)
CONCURRENCY = 8
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LlamaForCausalLM, VLLMServer]]:
    directory = tmp_path_factory.mktemp("perf-vllm") / "model"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=MLP,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(directory)
    word_tokenizer(VOCAB).save_pretrained(directory)
    with serve_vllm(directory, directory.parent / "vllm.log") as server:
        yield model, server


@pytest.fixture(scope="module")
def pairs() -> list[TokenizedPair]:
    return tokenize(workload(PAIRS, PROMPT, ANSWER, VOCAB, seed=1), word_tokenizer(VOCAB))


def client(server: VLLMServer) -> EndpointClient:
    return EndpointClient(Endpoint(server.base_url, server.name, concurrency=CONCURRENCY, cache_dir=None))


def test_in_process(
    benchmark: BenchmarkFixture, served: tuple[LlamaForCausalLM, VLLMServer], pairs: list[TokenizedPair]
) -> None:
    model, _ = served
    settings = ScoringSpec(max_length=MAX_LENGTH)
    benchmark.pedantic(lambda: score_pairs(model, pairs, settings, PAD, "in process"), rounds=3, warmup_rounds=1)
    FIGURES["in process"] = benchmark.stats.stats.median


def test_through_vllm(
    benchmark: BenchmarkFixture, served: tuple[LlamaForCausalLM, VLLMServer], pairs: list[TokenizedPair]
) -> None:
    _, server = served
    with client(server) as engine:
        benchmark.pedantic(lambda: score_served(engine, pairs, MAX_LENGTH, "vllm"), rounds=3, warmup_rounds=1)
    FIGURES["through vLLM"] = benchmark.stats.stats.median


def test_parity_and_summary(
    benchmark: BenchmarkFixture, served: tuple[LlamaForCausalLM, VLLMServer], pairs: list[TokenizedPair]
) -> None:
    """Every pair of the workload, token by token, in process (fp32, one sequence per pass) against the server
    (fp32); timed once, both sides together."""
    model, server = served

    def parity() -> ParityResult:
        with client(server) as engine:
            remote = served_token_logps(engine, pairs, MAX_LENGTH, "parity")
        local = local_token_logps(model, pairs, MAX_LENGTH, "float32")
        return compare_logps(local, remote, ParitySpec(pairs=len(pairs)), len(pairs), "float32")

    found = benchmark.pedantic(parity, rounds=1, iterations=1)
    assert found.sequence_max < 1e-3 and found.token_max < 1e-4
    benchmark.extra_info |= found.model_dump()
    tokens = sum(len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    print(f"\nscoring {len(pairs)} pairs (~{tokens} tokens, prompts counted once), fp32, this machine:")
    for name, seconds in FIGURES.items():
        print(f"  {name:<14} {seconds:7.2f} s  {len(pairs) / seconds:7.1f} pairs/s")
    print(
        f"  parity over {found.n_tokens} tokens: per token max {found.token_max:.1e} median {found.token_median:.1e}; "
        f"per sequence max {found.sequence_max:.1e} median {found.sequence_median:.1e} nats"
    )
