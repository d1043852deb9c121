"""How fast evalkit scores preference pairs, side by side with TRL's `DPOTrainer.evaluate()` and a
plain one-sequence-at-a-time loop: same models, same pairs, same machine, one run.

The reference workload: a Llama of 4 layers × 256 hidden (MLP 1024, 4 heads) with a 32k vocabulary,
random weights, a policy and a reference; 128 pairs of ~250-token prompts with ~40-token answers
(long) and 256 pairs of ~20-token prompts (short). Text is words of a 32k-word vocabulary with a
word-level tokenizer (benchmarks/workload.py, shared with the GPU benchmark), so TRL and evalkit tokenize the
same text alike, offline.

Also measured: prompt sharing on and off, re-scoring a second checkpoint with a cold and a warm
reference cache, peak memory of the log-prob step against full logits, and model FLOP
utilisation against this machine's measured matmul rate. The figures go to pytest-benchmark's
table and `extra_info`, and a summary is printed at the end. No assertion is on time: a slow
machine must not fail the build; the only assertions check that every path computes the same
numbers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from benchmarks.workload import (
    BOS,
    EOS,
    PAD,
    ModelShape,
    evalkit_scores,
    mean_dpo_loss,
    model_flops,
    plain_loop,
    tokenize,
    trl_trainer,
    word_tokenizer,
    workload,
)
from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair
from evalkit.scoring.score import CompletionLogps, score_pairs, tokenize_pair

VOCAB, HIDDEN, MLP, LAYERS, HEADS = 32_000, 256, 1024, 4, 4
BETA = 0.1
FIGURES: dict[str, float] = {}
"""Medians (seconds) and other figures, by name, for the summary printed at the end."""
SHARING_ROUNDS: list[float] = []
"""Per-round ratios of scoring without and with prompt sharing, sorted."""


def llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=MLP,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return LlamaForCausalLM(config).eval()


WORKLOADS = {"long": (128, 250, 40), "short": (256, 20, 40)}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return word_tokenizer(VOCAB)


@pytest.fixture(scope="module")
def models() -> dict[str, LlamaForCausalLM]:
    return {"policy": llama(1), "reference": llama(2)}


@pytest.fixture(scope="module")
def data() -> dict[str, list[PreferencePair]]:
    return {name: workload(*shape, vocab_size=VOCAB) for name, shape in WORKLOADS.items()}


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    print("\n" + summarise(FIGURES))


def scored(
    models: dict[str, LlamaForCausalLM], tokenizer: PreTrainedTokenizerFast, pairs: list[PreferencePair], **options: Any
) -> dict[str, list[CompletionLogps]]:
    """evalkit from text to per-pair log-probs under policy and reference (tokenization included)."""
    settings = ScoringSpec(max_length=1024, batch_size=8, **options)
    return evalkit_scores(dict(models), tokenize(pairs, tokenizer), settings)


def plain(
    models: dict[str, LlamaForCausalLM], tokenizer: PreTrainedTokenizerFast, pairs: list[PreferencePair]
) -> dict[str, list[tuple[float, float]]]:
    """One sequence at a time, no padding, full logits (tokenization included)."""
    return plain_loop(dict(models), tokenize(pairs, tokenizer))


BODY_PARAMS = LAYERS * (4 * HIDDEN * HIDDEN + 3 * HIDDEN * MLP)
HEAD_PARAMS = HIDDEN * VOCAB
SHAPE = ModelShape(BODY_PARAMS, HEAD_PARAMS, LAYERS, HIDDEN)


# --- pairs per second ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_trl_evaluate(
    benchmark: BenchmarkFixture,
    name: str,
    models: dict[str, LlamaForCausalLM],
    tokenizer: PreTrainedTokenizerFast,
    data: dict[str, list[PreferencePair]],
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    trainer = trl_trainer(dict(models), tokenizer, data[name], tmp_path, BETA)
    setup = time.perf_counter() - started
    metrics = benchmark.pedantic(trainer.evaluate, rounds=1, iterations=1)
    record(benchmark, f"trl/{name}", pairs=len(data[name]), setup_s=setup)
    FIGURES[f"trl_loss/{name}"] = metrics["eval_loss"]


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_plain_loop(
    benchmark: BenchmarkFixture,
    name: str,
    models: dict[str, LlamaForCausalLM],
    tokenizer: PreTrainedTokenizerFast,
    data: dict[str, list[PreferencePair]],
) -> None:
    scores = benchmark.pedantic(plain, args=(models, tokenizer, data[name]), rounds=1, iterations=1)
    record(benchmark, f"plain/{name}", pairs=len(data[name]))
    ours = scored(models, tokenizer, data[name][:16])
    for model, rows in ours.items():
        for (chosen, rejected), row in zip(scores[model], rows, strict=False):
            assert row.chosen == pytest.approx(chosen, abs=1e-4) and row.rejected == pytest.approx(rejected, abs=1e-4)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_evalkit(
    benchmark: BenchmarkFixture,
    name: str,
    models: dict[str, LlamaForCausalLM],
    tokenizer: PreTrainedTokenizerFast,
    data: dict[str, list[PreferencePair]],
) -> None:
    scores = benchmark.pedantic(scored, args=(models, tokenizer, data[name]), rounds=3, iterations=1)
    record(benchmark, f"evalkit/{name}", pairs=len(data[name]))
    FIGURES[f"evalkit_loss/{name}"] = mean_dpo_loss(scores["policy"], scores["reference"], BETA)
    tokenized = [tokenize_pair(p, tokenizer) for p in data[name]]
    FIGURES[f"floor_tokens_twice/{name}"] = 2 * sum(
        2 * len(t.prompt_ids) + len(t.chosen_ids) + len(t.rejected_ids) for t in tokenized
    )
    FIGURES[f"floor_tokens_once/{name}"] = 2 * sum(
        len(t.prompt_ids) + len(t.chosen_ids) + len(t.rejected_ids) for t in tokenized
    )
    FIGURES[f"model_flops/{name}"] = 2 * sum(model_flops(SHAPE, t) for t in tokenized)  # policy and reference


def test_evalkit_without_prompt_sharing(
    benchmark: BenchmarkFixture,
    models: dict[str, LlamaForCausalLM],
    tokenizer: PreTrainedTokenizerFast,
    data: dict[str, list[PreferencePair]],
) -> None:
    """The long workload (prompts ~6× the answers) with prompt sharing off and everything else alike.

    Paired rounds: each timed run without sharing follows a run with sharing, timed here, so that the
    ratio of each round compares the two under the same machine conditions (this machine's speed drifts
    by 10-20% over minutes); the figure is the median of the per-round ratios."""
    args = (models, tokenizer, data["long"])
    shared_times: list[float] = []
    shared: dict[str, list[CompletionLogps]] = {}

    def shared_round() -> tuple[tuple[Any, ...], dict[str, Any]]:
        started = time.perf_counter()
        shared.update(scored(*args))
        shared_times.append(time.perf_counter() - started)
        return args, {"share_prompt": False}

    scores = benchmark.pedantic(scored, setup=shared_round, rounds=5, iterations=1)
    record(benchmark, "unshared/long", pairs=len(data["long"]))
    unshared_times = list(benchmark.stats.stats.data)
    ratios = sorted(off / on for off, on in zip(unshared_times, shared_times, strict=True))
    benchmark.extra_info |= {"shared_s": shared_times, "ratios": ratios}
    FIGURES["sharing/ratio"] = ratios[len(ratios) // 2]
    SHARING_ROUNDS[:] = ratios
    tokenized = [tokenize_pair(p, tokenizer) for p in data["long"]]
    FIGURES["sharing/flop_ratio"] = sum(model_flops(SHAPE, t, False) for t in tokenized) / sum(
        model_flops(SHAPE, t) for t in tokenized
    )
    for model, rows in shared.items():
        for a, b in zip(rows, scores[model], strict=True):
            assert a.chosen == pytest.approx(b.chosen, abs=1e-4) and a.rejected == pytest.approx(b.rejected, abs=1e-4)


PROMPT_ROUNDS: list[float] = []
"""Per-round ratios of scoring with and without the prompt's log-prob (ORPO's NLL term), sorted."""


def test_orpo_prompt_logprob(
    benchmark: BenchmarkFixture,
    models: dict[str, LlamaForCausalLM],
    tokenizer: PreTrainedTokenizerFast,
    data: dict[str, list[PreferencePair]],
) -> None:
    """What an ORPO model pays for `trl/nll_loss`: the policy on the long workload (prompts ~6x the answers, the
    worst case: the LM head runs over every prompt position too) with and without the prompt's log-prob, in paired
    rounds as for prompt sharing. The answers' log-probs must not change."""
    policy = {"policy": models["policy"]}
    tokenized = tokenize(data["long"], tokenizer)
    settings = ScoringSpec(max_length=1024, batch_size=8)
    plain_times: list[float] = []
    without: list[CompletionLogps] = []

    def with_prompt() -> list[CompletionLogps]:
        return score_pairs(policy["policy"], tokenized, settings, PAD, "policy", with_prompt=True)

    def plain_round() -> tuple[tuple[Any, ...], dict[str, Any]]:
        started = time.perf_counter()
        without[:] = score_pairs(policy["policy"], tokenized, settings, PAD, "policy")
        plain_times.append(time.perf_counter() - started)
        return (), {}

    rows = benchmark.pedantic(with_prompt, setup=plain_round, rounds=5, iterations=1)
    record(benchmark, "orpo_prompt/long", pairs=len(tokenized))
    ratios = sorted(on / off for on, off in zip(benchmark.stats.stats.data, plain_times, strict=True))
    benchmark.extra_info |= {"without_prompt_s": plain_times, "ratios": ratios}
    FIGURES["orpo_prompt/ratio"] = ratios[len(ratios) // 2]
    FIGURES["orpo_prompt/head_share"] = HEAD_PARAMS / (BODY_PARAMS + HEAD_PARAMS)
    PROMPT_ROUNDS[:] = ratios
    for a, b in zip(rows, without, strict=True):
        assert a.chosen == pytest.approx(b.chosen, abs=1e-4) and a.rejected == pytest.approx(b.rejected, abs=1e-4)
        assert b.prompt is None and a.prompt is not None and math.isfinite(a.prompt) and a.prompt < 0


# --- a second checkpoint against a cached reference ---------------------------------------------------------------


@pytest.fixture(scope="module")
def on_disk(
    tmp_path_factory: pytest.TempPathFactory,
    models: dict[str, LlamaForCausalLM],
    tokenizer: PreTrainedTokenizerFast,
    data: dict[str, list[PreferencePair]],
) -> Path:
    """The reference and two checkpoints saved as model directories, and the long pairs as JSON Lines."""
    root = tmp_path_factory.mktemp("checkpoints")
    for name, model in (
        ("reference", models["reference"]),
        ("checkpoint-1", models["policy"]),
        ("checkpoint-2", llama(3)),
    ):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    rows = [{"id": p.id, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in data["long"]]
    (root / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def score_checkpoint(root: Path, checkpoint: str, cache: Path) -> None:
    """What `evalkit score --model <checkpoint> --ref reference` does, minus writing the rows."""
    from evalkit.config.suite import parse_suite
    from evalkit.data.pairs import load_pairs
    from evalkit.pipeline.score import score_suite

    suite = parse_suite(
        {
            "name": "cache",
            "output_dir": str(root / "out"),
            "datasets": [{"name": "long", "path": str(root / "long.jsonl")}],
            "models": [
                {"name": "policy", "path": str(root / checkpoint)},
                {"name": "ref", "path": str(root / "reference")},
            ],
            "reference": "ref",
            "scoring": {"reference_cache": str(cache)},
        },
        source="benchmark",
    )
    score_suite(suite, {"long": load_pairs(suite.datasets[0])})


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_second_checkpoint_against_a_cached_reference(
    benchmark: BenchmarkFixture, cache: str, on_disk: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "reference-cache"
    if cache == "warm":
        score_checkpoint(on_disk, "checkpoint-1", directory)  # the first checkpoint leaves the reference behind

    def fresh() -> tuple[tuple[Path, str, Path], dict[str, Any]]:
        if cache == "cold":
            for file in directory.glob("*.json"):
                file.unlink()
        return (on_disk, "checkpoint-2", directory), {}

    benchmark.pedantic(score_checkpoint, setup=fresh, rounds=3, iterations=1)
    record(benchmark, f"cache/{cache}", pairs=WORKLOADS["long"][0])


# --- memory and utilisation -----------------------------------------------------------------------------------------

PEAK_SCRIPT = """
import json, re, sys, torch
from evalkit.scoring.logps import Runner, token_logps
rows, width, answer, vocab, how = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
head = torch.nn.Linear(256, vocab, bias=False)
hidden = torch.randn(rows, width, 256)  # (B, T, H): one batch of 8 pairs' whole sequences
ids = torch.randint(4, vocab, (rows, width))  # (B, T)
completion = torch.zeros(rows, width, dtype=torch.bool)
completion[:, width - answer :] = True
status = lambda key: int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
with torch.inference_mode():
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
    mask = completion[:, 1:]  # (B, T-1): position t predicts token t+1
    if how == "full":  # what a plain forward does: B×T×V logits, log-softmax over all of them
        log_probs = torch.log_softmax(head(hidden)[:, :-1].float(), dim=-1)  # (B, T-1, V)
        picked = log_probs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T-1)
        sums = torch.where(mask, picked.double(), 0.0).sum(dim=-1)
    else:  # evalkit: the head only where a completion token is predicted, log-softmax in chunks
        runner = Runner(None, torch.device("cpu"), None, head, vocab, False, None)
        at_row, at_col = mask.nonzero(as_tuple=True)
        logps = token_logps(runner, hidden[at_row, at_col], ids[at_row, at_col + 1])
        sums = torch.zeros(rows, dtype=torch.float64).index_add_(0, at_row, logps.double())
    peak = status("VmHWM") - before
print(json.dumps({"peak_bytes": peak, "sum": float(sums.sum())}))
"""


@pytest.mark.parametrize("vocab", [32_000, 128_256])
def test_logprob_step_peak_memory(benchmark: BenchmarkFixture, vocab: int) -> None:
    """Peak resident memory of the log-prob step for one batch of the long workload (8 pairs → 16 sequences of
    300 tokens, 40 completion tokens each), measured by the kernel (VmHWM, reset first) in a fresh process."""
    rows, width, answer = 16, 300, 40
    args = [str(rows), str(width), str(answer), str(vocab)]

    def run(how: str) -> dict[str, float]:
        done = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, *args, how], capture_output=True, text=True, check=True, timeout=600
        )
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    full = run("full")
    chunked = benchmark.pedantic(run, args=("chunked",), rounds=1, iterations=1)
    assert chunked["sum"] == pytest.approx(full["sum"], rel=1e-6)
    footprint = rows * width * vocab * 4
    benchmark.extra_info |= {
        "full_logits_bytes": footprint,
        "full_step_peak_bytes": full["peak_bytes"],
        "chunked_step_peak_bytes": chunked["peak_bytes"],
    }
    print(benchmark.extra_info)
    FIGURES[f"memory/{vocab}/footprint"] = footprint
    FIGURES[f"memory/{vocab}/full"] = full["peak_bytes"]
    FIGURES[f"memory/{vocab}/chunked"] = chunked["peak_bytes"]


def test_matmul_peak(benchmark: BenchmarkFixture) -> None:
    """This machine's fp32 matmul rate: the best of the shapes the model multiplies and a square one, each
    written into a preallocated output (a fresh one per product would time page faults, not arithmetic)."""
    shapes = [(4096, HIDDEN, MLP), (4096, MLP, HIDDEN), (1024, HIDDEN, VOCAB), (2048, 2048, 2048)]
    rates = []
    for m, k, n in shapes:
        a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        torch.mm(a, b, out=out)
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(5):
                torch.mm(a, b, out=out)
            best = min(best, (time.perf_counter() - started) / 5)
        rates.append(2 * m * k * n / best)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    by_shape = {str(shape): rate / 1e9 for shape, rate in zip(shapes, rates, strict=True)}
    benchmark.extra_info |= {"gflops": max(rates) / 1e9, "by_shape": by_shape}
    print(benchmark.extra_info)
    FIGURES["matmul_flops"] = max(rates)


def record(benchmark: BenchmarkFixture, name: str, **info: float) -> None:
    median = benchmark.stats.stats.median
    FIGURES[name] = median
    benchmark.extra_info |= {"pairs_per_s": info.get("pairs", 0) / median, **info}
    print(f"{name}: {median:.2f}s", benchmark.extra_info)


def summarise(figures: dict[str, float]) -> str:
    """The figures side by side, with the targets of issue 9."""
    lines = ["scoring speed (medians, this machine, this run)"]

    def get(name: str) -> float | None:
        return figures.get(name)

    peak = get("matmul_flops")
    if peak:
        lines.append(f"  fp32 matmul rate: {peak / 1e9:.0f} GFLOP/s")
    for name, (pairs, _, _) in WORKLOADS.items():
        ours, trl, plain = get(f"evalkit/{name}"), get(f"trl/{name}"), get(f"plain/{name}")
        if ours is None:
            continue
        line = f"  {name}: evalkit {pairs / ours:.1f} pairs/s ({ours:.1f}s)"
        if trl:
            target = 4 if name == "long" else 3
            line += f"; TRL evaluate() {pairs / trl:.2f} pairs/s ({trl:.1f}s) -> {trl / ours:.1f}x (target {target}x)"
        if plain:
            line += f"; plain loop {pairs / plain:.2f} pairs/s ({plain:.1f}s) -> {plain / ours:.1f}x"
        lines.append(line)
        if peak:
            params = BODY_PARAMS + HEAD_PARAMS
            once = 2 * params * figures[f"floor_tokens_once/{name}"] / peak
            twice = 2 * params * figures[f"floor_tokens_twice/{name}"] / peak
            mfu = figures[f"model_flops/{name}"] / ours / peak
            lines.append(
                f"    FLOP floor {twice:.1f}s ({once:.1f}s prompts once): evalkit at {ours / once:.2f}x the floor"
                f" (target <= 2x); MFU {mfu:.0%} of the measured matmul rate"
            )
        if get(f"trl_loss/{name}") is not None:
            lines.append(
                f"    mean DPO loss: TRL {figures[f'trl_loss/{name}']:.6f},"
                f" evalkit {figures[f'evalkit_loss/{name}']:.6f}"
            )
    ratio, bound = get("sharing/ratio"), get("sharing/flop_ratio")
    if ratio and bound:
        rounds = ", ".join(f"{r:.2f}" for r in SHARING_ROUNDS)
        lines.append(
            f"  prompt sharing (long): {ratio:.2f}x, median of paired rounds ({rounds}; target 1.5x);"
            f" the FLOP counts differ by {bound:.2f}x (the head runs at every answer token either way; without"
            " sharing, the activations are larger and less cache-friendly)"
        )
    prompt_ratio = get("orpo_prompt/ratio")
    if prompt_ratio:
        rounds = ", ".join(f"{r:.2f}" for r in PROMPT_ROUNDS)
        lines.append(
            f"  ORPO's prompt log-prob (long, policy only): {prompt_ratio:.2f}x the time without it, median of paired"
            f" rounds ({rounds}); the LM head is {figures['orpo_prompt/head_share']:.0%} of this model's parameters"
        )
    cold, warm = get("cache/cold"), get("cache/warm")
    if cold and warm:
        lines.append(
            f"  second checkpoint: cold reference cache {cold:.1f}s / warm {warm:.1f}s"
            f" = {cold / warm:.2f}x (target 1.8x)"
        )
    for vocab in (32_000, 128_256):
        footprint = get(f"memory/{vocab}/footprint")
        if footprint:
            full, chunked = figures[f"memory/{vocab}/full"], figures[f"memory/{vocab}/chunked"]
            lines.append(
                f"  log-prob step, vocab {vocab}: full logits {footprint / 2**20:.0f} MiB"
                f" (measured peak {full / 2**20:.0f} MiB); evalkit peak {chunked / 2**20:.0f} MiB"
                f" = {chunked / footprint:.1%} of the full logits (target <= 25%)"
            )
    return "\n".join(lines)
