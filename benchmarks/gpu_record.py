"""What `benchmarks/gpu_bench.py` records: a row per way of scoring, the gains and agreement read off the rows, and
the markdown table and JSON line they are written as."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.workload import reward_margin
from evalkit.scoring.score import CompletionLogps

BETA = 0.1
"""β of the DPO loss and the implicit rewards, for every method alike."""


@dataclass
class Row:
    """One way of scoring the workload, timed."""

    shape: str
    dtype: str
    method: str
    seconds: float | None = None
    pairs_per_s: float | None = None
    tokens_per_s: float | None = None
    useful_tflops: float | None = None
    """The FLOPs evalkit's way needs (prompts once, head at completion tokens) over the time taken."""
    matmul_fraction: float | None = None
    """`useful_tflops` over the card's measured matmul rate in this dtype."""
    peak_gib: float | None = None
    peak_above_weights_gib: float | None = None
    mean_loss: float | None = None
    mode: str = ""
    error: str = ""


@dataclass
class ShapeResult:
    name: str
    config: dict[str, Any]
    parameters: int = 0
    rows: list[Row] = field(default_factory=list)
    agreement: dict[str, float] = field(default_factory=dict)
    gains: dict[str, float] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    memory_at_start_gib: float | None = None


def summarise(result: ShapeResult, scores: dict[str, dict[str, list[CompletionLogps]]]) -> None:
    """Speed-ups, the gains of each switch, and bfloat16 against float32 per pair."""
    rows = {(r.dtype, r.method): r for r in result.rows if r.seconds}
    ours = rows.get(("bfloat16", "evalkit"))
    for dtype in ("bfloat16", "float32"):
        base = rows.get((dtype, "evalkit"))
        for method, label in (("TRL evaluate()", "trl"), ("plain batched loop", "plain")):
            other = rows.get((dtype, method))
            if base and other and base.seconds and other.seconds:
                result.gains[f"{dtype}: evalkit over {label}"] = other.seconds / base.seconds
    unshared = rows.get(("bfloat16", "evalkit, no prompt sharing"))
    full = rows.get(("bfloat16", "evalkit, no sharing, no selective head"))
    if ours and unshared and ours.seconds and unshared.seconds and ours.mode == "prompt-shared":
        result.gains["bfloat16: prompt sharing"] = unshared.seconds / ours.seconds
    if unshared and full and unshared.seconds and full.seconds:
        result.gains["bfloat16: selective head"] = full.seconds / unshared.seconds
    if unshared and full and unshared.peak_above_weights_gib and full.peak_above_weights_gib:
        result.gains["bfloat16: selective head, memory"] = full.peak_above_weights_gib / unshared.peak_above_weights_gib
    fp32, bf16 = scores.get("float32/evalkit"), scores.get("bfloat16/evalkit")
    if fp32 and bf16:
        result.agreement = agreement(fp32, bf16)


def agreement(fp32: dict[str, list[CompletionLogps]], bf16: dict[str, list[CompletionLogps]]) -> dict[str, float]:
    """bfloat16 against float32 per pair: |Δ| of every summed log-prob (policy and reference, chosen and
    rejected), of every implicit reward margin, and how many pairs change their preferred answer."""
    deltas = [
        abs(a - b)
        for name in ("policy", "reference")
        for x, y in zip(fp32[name], bf16[name], strict=True)
        for a, b in ((x.chosen, y.chosen), (x.rejected, y.rejected))
    ]

    def margins(scores: dict[str, list[CompletionLogps]]) -> list[float]:
        return [reward_margin(p, r, BETA) for p, r in zip(scores["policy"], scores["reference"], strict=True)]

    m32, m16 = margins(fp32), margins(bf16)
    return {
        "max_abs_logp_delta": max(deltas),
        "mean_abs_logp_delta": sum(deltas) / len(deltas),
        "max_abs_margin_delta": max(abs(a - b) for a, b in zip(m32, m16, strict=True)),
        "preference_flips": float(sum((a > 0) != (b > 0) for a, b in zip(m32, m16, strict=True))),
        "pairs": float(len(m32)),
    }


def write(out: Path, record: dict[str, Any]) -> str:
    """The record as one JSON line and as a table, under `out`; returns the table."""
    text = table(record)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-bench.json").write_text(json.dumps(record) + "\n")
    (out / "gpu-bench.md").write_text(text + "\n")
    return text


def table(record: dict[str, Any]) -> str:
    """The rows as a markdown table, the agreement and gains below it."""
    title = "CPU dry run, tiny shapes: not a performance figure" if record["dry_run"] else record["card"]
    if record.get("card_bf16_peak_tflops"):
        title += f", data sheet {record['card_bf16_peak_tflops']:.0f} TFLOP/s bf16"
    lines = [
        f"evalkit GPU benchmark ({title}; torch {record['torch']}, transformers {record['transformers']},"
        f" TRL {record['trl']}; matmul {record['matmul_tflops']['bfloat16']:.0f} TFLOP/s bf16,"
        f" {record['matmul_tflops']['float32']:.1f} fp32; tests: {record['tests']['summary']})",
        "",
        "| shape | dtype | method | s | pairs/s | tokens/s | useful TFLOP/s | of matmul | peak GiB"
        " | above weights GiB | mean loss | mode |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def number(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:,.{digits}f}"

    def percent(value: float | None) -> str:
        return "" if value is None else f"{value:.0%}"

    for shape in record["shapes"].values():
        for row in shape["rows"]:
            if row["error"]:
                lines.append(f"| {row['shape']} | {row['dtype']} | {row['method']} | {row['error']} ||||||||")
                continue
            lines.append(
                f"| {row['shape']} | {row['dtype']} | {row['method']} | {number(row['seconds'], 2)}"
                f" | {number(row['pairs_per_s'], 1)} | {number(row['tokens_per_s'], 0)}"
                f" | {number(row['useful_tflops'], 3 if record['dry_run'] else 1)}"
                f" | {percent(row['matmul_fraction'])}"
                f" | {number(row['peak_gib'], 2)} | {number(row['peak_above_weights_gib'], 2)}"
                f" | {number(row['mean_loss'], 6)} | {row['mode']} |"
            )
    lines.append("")
    for name, shape in record["shapes"].items():
        parts = [f"{key} {value:.2f}x" for key, value in shape["gains"].items() if "memory" not in key]
        parts += [f"{key} {value:.2f}x less" for key, value in shape["gains"].items() if "memory" in key]
        a = shape["agreement"]
        if a:
            parts.append(
                f"bf16 vs fp32 per pair: max |Δ logp| {a['max_abs_logp_delta']:.4f},"
                f" mean {a['mean_abs_logp_delta']:.4f},"
                f" max |Δ margin| {a['max_abs_margin_delta']:.5f}, {a['preference_flips']:.0f} of {a['pairs']:.0f}"
                " preferences flipped"
            )
        parts += [f"{key} {value:.2e}" for key, value in shape["parity"].items()]
        lines.append(f"- {name} ({shape['parameters'] / 1e6:,.1f}M parameters): " + "; ".join(parts))
    return "\n".join(lines)
