"""evalkit's scoring on one GPU, side by side with TRL's `DPOTrainer.evaluate()` and a plain batched forward loop,
on randomly initialised models of real shapes (Llama-3.2-1B, Llama-3.1-8B, Gemma-2-2B with its 256k vocabulary).

Run by `benchmarks/gpu.sh` (`make perf-gpu`). In one run, per model shape:
- float32 weights: evalkit in float32 (the reference numbers), and where the shape leaves room, evalkit with
  bfloat16 autocast over the float32 weights, the plain loop and TRL in float32;
- the same weights cast to bfloat16: evalkit, evalkit by token budget, evalkit with prompt sharing off, then
  with the selective LM head off too, the plain loop, and TRL with `bf16=True`;
- pairs/s, tokens/s, useful TFLOP/s against the card's measured matmul rate, peak GPU memory
  (`torch.cuda.max_memory_allocated`), TRL's mean loss against evalkit's, and bf16 against fp32 per pair.
Before any timing it runs the scoring parity tests (evalkit against TRL, fp32, tiny models) and the batch and
padding invariance tests on the same device (`EVALKIT_TEST_DEVICE`).

It prints one JSON line and a markdown table and writes both under `--out` (`$OUT`, else `reports/gpu-bench`).
`--dry-run` runs the same code on the CPU with tiny shapes (2 layers, width 64, small vocabularies) in seconds:
what the tests check, not a performance figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from benchmarks.gpu_checks import run_parity_tests
from benchmarks.gpu_record import BETA, Row, ShapeResult, summarise, write
from benchmarks.gpu_shapes import FP32_BASELINES, SHAPES, build_model, shape_config
from benchmarks.workload import (
    ModelShape,
    evalkit_scores,
    mean_dpo_loss,
    model_flops,
    model_shape,
    plain_loop,
    tokenize,
    trl_trainer,
    word_tokenizer,
    workload,
)
from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair
from evalkit.scoring.logps import Runner
from evalkit.scoring.score import CompletionLogps, TokenizedPair, probe_scoring

CARD_PEAKS = {"H100": 989.4, "H200": 989.4}
"""Dense bf16 TFLOP/s of each card's data sheet (SXM), for the record beside the rate measured here."""
MAX_LENGTH = 1024
SCHEMA = "evalkit-gpu-bench/1"


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    shapes: list[str]
    pairs: int
    prompt: int
    answer: int
    batch_size: int
    token_budget: int
    budget_s: float
    """Seconds of measuring after which the remaining steps are skipped (and recorded as skipped)."""
    dry_run: bool
    device: torch.device
    tests: bool
    out: Path


class Clock:
    """The measuring budget: steps started after it ran out are skipped."""

    def __init__(self, budget_s: float) -> None:
        self.started, self.budget_s = time.perf_counter(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)


# --- timing ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    value: Any
    seconds: float
    peak_bytes: int | None
    baseline_bytes: int | None


def timed(device: torch.device, compute: Callable[[], Any]) -> Timed:
    """`compute()`, its wall time with the GPU's work finished, and the peak memory it allocated."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device) if cuda else None
    started = time.perf_counter()
    value = compute()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    return Timed(value, seconds, peak, baseline)


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """The best rate of a square matrix product in `dtype` (the card's practical peak, measured here)."""
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = math.inf
    for _ in range(5):
        run = timed(device, lambda: [torch.mm(a, b, out=out) for _ in range(4)])
        best = min(best, run.seconds / 4)
    return 2 * size**3 / best / 1e12


# --- one shape -------------------------------------------------------------------------------------------------------


@dataclass
class Workload:
    pairs: list[PreferencePair]
    tokenized: list[TokenizedPair]
    tokenizer: PreTrainedTokenizerFast
    tokens: int
    """Tokens of text scored per model: every pair's prompt, chosen and rejected."""


class ShapeRun:
    """The measurements of one model shape, each step recorded as a row (or an error) and never fatal."""

    def __init__(self, plan: Plan, clock: Clock, name: str, work: Workload, peaks: dict[str, float]) -> None:
        self.plan, self.clock, self.work, self.peaks = plan, clock, work, peaks
        self.result = ShapeResult(name, shape_config(name, plan.dry_run))
        self.scores: dict[str, dict[str, list[CompletionLogps]]] = {}
        self.flops = 0.0

    def step(self, dtype: str, method: str, compute: Callable[[], Any], loss: Callable[[Any], float]) -> Any:
        row = Row(self.result.name, dtype, method)
        self.result.rows.append(row)
        if self.clock.left() <= 0:
            row.error = "skipped: the time budget ran out"
            return None
        try:
            run = timed(self.plan.device, compute)
        except Exception as error:  # an OOM or a library's error: recorded, and the next step still runs
            traceback.print_exc()
            row.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
            release(self.plan.device)
            return None
        pairs = len(self.work.pairs)
        row.seconds = run.seconds
        row.pairs_per_s = pairs / run.seconds
        row.tokens_per_s = 2 * self.work.tokens / run.seconds
        row.useful_tflops = self.flops / run.seconds / 1e12
        peak = self.peaks.get(dtype)
        row.matmul_fraction = row.useful_tflops / peak if peak else None
        if run.peak_bytes is not None and run.baseline_bytes is not None:
            row.peak_gib = run.peak_bytes / 2**30
            row.peak_above_weights_gib = (run.peak_bytes - run.baseline_bytes) / 2**30
        row.mean_loss = loss(run.value)
        return run.value

    def evalkit(
        self,
        models: dict[str, PreTrainedModel],
        dtype: str,
        method: str,
        runners: dict[str, Runner] | None = None,
        **options: Any,
    ) -> None:
        settings = ScoringSpec(max_length=MAX_LENGTH, batch_size=self.plan.batch_size, dtype=dtype, **options)
        warm = self.work.tokenized[: self.plan.batch_size]
        evalkit_scores(models, warm, settings, runners)  # kernels chosen and compiled before the timing
        scores = self.step(
            dtype, method, lambda: evalkit_scores(models, self.work.tokenized, settings, runners), self._evalkit_loss
        )
        if scores is None:
            return
        self.scores[f"{dtype}/{method}"] = scores
        modes = {
            probe_mode(model, self.work.tokenized, settings, (runners or {}).get(name))
            for name, model in models.items()
        }
        self.result.rows[-1].mode = ", ".join(sorted(modes))

    def plain(self, models: dict[str, PreTrainedModel], dtype: str) -> None:
        plain_loop(models, self.work.tokenized[: self.plan.batch_size], self.plan.batch_size)
        got = self.step(
            dtype,
            "plain batched loop",
            lambda: plain_loop(models, self.work.tokenized, self.plan.batch_size),
            lambda scores: mean_dpo_loss(as_logps(scores["policy"]), as_logps(scores["reference"]), BETA),
        )
        ours = self.scores.get(f"{dtype}/evalkit")
        if got is not None and ours is not None:
            self.result.parity[f"{dtype}: max |evalkit - plain loop| logp"] = max(
                abs(a - b)
                for name in ("policy", "reference")
                for row, (chosen, rejected) in zip(ours[name], got[name], strict=True)
                for a, b in ((row.chosen, chosen), (row.rejected, rejected))
            )

    def trl(self, models: dict[str, PreTrainedModel], dtype: str, copies: bool) -> None:
        with tempfile.TemporaryDirectory() as out:
            try:
                trainer = trl_trainer(
                    models,
                    self.work.tokenizer,
                    self.work.pairs,
                    Path(out),
                    BETA,
                    self.plan.batch_size,
                    bf16=dtype == "bfloat16" and self.plan.device.type == "cuda",  # (TRL refuses it on a CPU)
                    copies=copies,
                )
            except Exception as error:
                traceback.print_exc()
                row = Row(self.result.name, dtype, "TRL evaluate()", error=f"{type(error).__name__}: {error}"[:300])
                self.result.rows.append(row)
                return
            metrics = self.step(dtype, "TRL evaluate()", trainer.evaluate, lambda m: float(m["eval_loss"]))
            del trainer
        release(self.plan.device)
        ours = next((r for r in self.result.rows if (r.dtype, r.method) == (dtype, "evalkit")), None)
        if metrics is not None and ours is not None and ours.mean_loss is not None:
            self.result.parity[f"{dtype}: |evalkit - TRL| mean loss"] = abs(ours.mean_loss - metrics["eval_loss"])

    def _evalkit_loss(self, scores: dict[str, list[CompletionLogps]]) -> float:
        return mean_dpo_loss(scores["policy"], scores["reference"], BETA)


def as_logps(rows: list[tuple[float, float]]) -> list[CompletionLogps]:
    return [CompletionLogps(c, r, 0, 0, False) for c, r in rows]


def probe_mode(model: PreTrainedModel, pairs: list[TokenizedPair], settings: ScoringSpec, runner: Runner | None) -> str:
    if runner is not None:
        return "whole sequences, full logits" if runner.decoder is None else runner.mode
    probed = probe_scoring(model, pairs, settings.max_length, settings.share_prompt, settings.dtype)
    assert probed is not None
    return probed.mode if probed.decoder is not None else f"{probed.mode}, full logits"


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def full_logits_runners(models: dict[str, PreTrainedModel], pairs: list[TokenizedPair]) -> dict[str, Runner] | None:
    """Each model run as the probes choose with prompt sharing off, but through its own forward and full logits (the
    selective head off); None where the probes already chose full logits (nothing to turn off)."""
    runners = {}
    for name, model in models.items():
        with torch.inference_mode():
            runner = probe_scoring(model, pairs, MAX_LENGTH, share_prompt=False)
        assert runner is not None
        if runner.decoder is None:
            return None
        runners[name] = dataclasses.replace(runner, decoder=None, head=None, reason="selective head turned off")
    return runners


def measure_shape(plan: Plan, clock: Clock, name: str, peaks: dict[str, float]) -> ShapeResult:
    config = shape_config(name, plan.dry_run)
    tokenizer = word_tokenizer(config["vocab_size"])
    pairs = workload(plan.pairs, plan.prompt, plan.answer, config["vocab_size"], seed=0)
    tokenized = tokenize(pairs, tokenizer)
    tokens = sum(len(t.prompt_ids) + len(t.chosen_ids) + len(t.rejected_ids) for t in tokenized)
    run = ShapeRun(plan, clock, name, Workload(pairs, tokenized, tokenizer, tokens), peaks)
    if plan.device.type == "cuda":  # what an earlier shape left behind, if anything
        run.result.memory_at_start_gib = torch.cuda.memory_allocated(plan.device) / 2**30
    baselines = FP32_BASELINES[name]
    models = {"policy": build_model(config, 1, plan.device), "reference": build_model(config, 2, plan.device)}
    shape: ModelShape = model_shape(models["policy"])
    run.result.parameters = sum(p.numel() for p in models["policy"].parameters())
    run.flops = 2 * sum(model_flops(shape, t) for t in tokenized)  # policy and reference

    # float32 weights: the reference numbers, then (where there is room) what float32 costs the others.
    run.evalkit(models, "float32", "evalkit")
    if baselines:
        run.evalkit(models, "bfloat16", "evalkit, bf16 autocast over fp32 weights")
        run.plain(models, "float32")
        run.trl(models, "float32", copies=True)

    # The same weights in bfloat16, as a user on a GPU loads them (`models[].dtype: bfloat16`).
    for model in models.values():
        torch.nn.Module.to(model, torch.bfloat16)  # parameter by parameter: the card never holds both copies
    release(plan.device)
    run.evalkit(models, "bfloat16", "evalkit")
    run.evalkit(models, "bfloat16", f"evalkit, token budget {plan.token_budget}", token_budget=plan.token_budget)
    run.evalkit(models, "bfloat16", "evalkit, no prompt sharing", share_prompt=False)
    runners = full_logits_runners(models, tokenized)
    if runners is None:
        run.result.rows.append(
            Row(name, "bfloat16", "evalkit, no sharing, no selective head", error="n/a: full logits already")
        )
    else:
        run.evalkit(models, "bfloat16", "evalkit, no sharing, no selective head", runners)
    run.plain(models, "bfloat16")
    run.trl(models, "bfloat16", copies=False)  # last: accelerate may wrap the models' forward
    del models
    release(plan.device)

    summarise(run.result, run.scores)
    return run.result


# --- the run ---------------------------------------------------------------------------------------------------------


def environment(device: torch.device) -> dict[str, Any]:
    """The versions evalkit records for every run (`results.provenance`), with the card and CUDA beside them."""
    from evalkit.results.provenance import environment as run_environment

    recorded = run_environment()
    packages = recorded.packages
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "device": str(device),
        "card": card,
        "python": recorded.python,
        "torch": packages["torch"],
        "cuda": torch.version.cuda,
        "transformers": packages["transformers"],
        "trl": None if packages["trl"] == "not installed" else packages["trl"],
    }


def run(plan: Plan) -> dict[str, Any]:
    started = time.perf_counter()
    record: dict[str, Any] = {"schema": SCHEMA, "dry_run": plan.dry_run} | environment(plan.device)
    record["workload"] = {
        "pairs": plan.pairs,
        "prompt_words": plan.prompt,
        "answer_words": plan.answer,
        "batch_size": plan.batch_size,
        "token_budget": plan.token_budget,
        "beta": BETA,
    }
    record["tests"] = (
        run_parity_tests(plan.device, plan.dry_run)
        if plan.tests
        else {"passed": None, "summary": "not run (--no-tests)"}
    )
    size = 256 if plan.dry_run else 8192
    peaks = {name: matmul_tflops(plan.device, getattr(torch, name), size) for name in ("bfloat16", "float32")}
    record["matmul_tflops"] = peaks
    record["card_bf16_peak_tflops"] = next((peak for card, peak in CARD_PEAKS.items() if card in record["card"]), None)
    clock = Clock(plan.budget_s)
    record["shapes"] = {}
    for name in plan.shapes:
        record["shapes"][name] = dataclasses.asdict(measure_shape(plan, clock, name, peaks))
        record["wall_s"] = time.perf_counter() - started
        write(plan.out, record)  # a run stopped later still leaves what it measured
    return record


def parse(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dry-run", action="store_true", default=os.environ.get("EVALKIT_GPU_DRY_RUN") == "1")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--pairs", type=int, help="pairs per workload (default 128, dry run 8)")
    parser.add_argument("--budget-s", type=float, default=270.0, help="seconds of measuring before steps are skipped")
    parser.add_argument("--no-tests", action="store_true", help="skip the parity and invariance tests")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "reports/gpu-bench"))
    args = parser.parse_args(argv)
    dry = bool(args.dry_run)
    if not dry and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --dry-run (or EVALKIT_GPU_DRY_RUN=1) for the CPU dry run")
    if dry:  # tiny matrices gain nothing from threads, and on a shared CPU, waiting threads cost 10-40×
        torch.set_num_threads(1)
    plan = Plan(
        shapes=list(args.shapes),
        pairs=args.pairs or (8 if dry else 128),
        prompt=16 if dry else 250,
        answer=4 if dry else 40,
        batch_size=4 if dry else 8,
        token_budget=128 if dry else 8192,
        budget_s=args.budget_s,
        dry_run=dry,
        device=torch.device("cpu") if dry else torch.device("cuda", 0),
        tests=not args.no_tests,
        out=args.out,
    )
    return plan


def main(argv: list[str] | None = None) -> int:
    plan = parse(argv)
    record = run(plan)
    print(write(plan.out, record))
    print(json.dumps(record))
    failed = record["tests"]["passed"] is False or any(
        row["error"] and not row["error"].startswith(("skipped", "n/a"))
        for shape in record["shapes"].values()
        for row in shape["rows"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
