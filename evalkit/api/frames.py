"""Tidy pandas frames of a run: what a notebook filters, pivots and plots.

One row per observation, one column per variable: metrics one row per (dataset, subset, model,
metric) with its value, interval and n; comparisons one row per (dataset, subset, model, baseline,
metric); per-pair scores one row per (dataset, pair, model); gate verdicts one row per rule;
generation samples one row per (prompt, model, sample). Every frame is read from `results.json`'s
records (and the per-pair rows), never recomputed, so its numbers are the reports' numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from evalkit.results.pairs import PairScore, implicit_reward
from evalkit.results.schema import RunResult

METRIC_COLUMNS = [
    "dataset",
    "subset",
    "model",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "higher_is_better",
    "method",
]
COMPARISON_COLUMNS = [
    "dataset",
    "subset",
    "model",
    "baseline",
    "metric",
    "model_value",
    "baseline_value",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "higher_is_better",
    "test",
    "p_value",
    "p_adjusted",
    "wrong_to_right",
    "right_to_wrong",
]
"""`value` is the difference model − baseline; the flip counts are there for accuracies only."""
PAIR_COLUMNS = ["dataset", *(f.name for f in dataclasses.fields(PairScore))]
GATE_COLUMNS = [
    "rule",
    "kind",
    "status",
    "passed",
    "dataset",
    "subset",
    "model",
    "baseline",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "bound",
    "threshold",
    "p_value",
    "p_adjusted",
    "alpha",
    "n",
    "test",
    "reason",
]
SAMPLE_COLUMNS = ["prompt_id", "prompt", "model", "index", "completion", "n_tokens", "ended"]


def metrics_frame(result: RunResult) -> pd.DataFrame:
    """Every metric of every (dataset, subset, model) cell, with its interval, n and how the interval was made."""
    rows = [{column: getattr(m, column) for column in METRIC_COLUMNS} for m in result.metrics]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def comparisons_frame(result: RunResult) -> pd.DataFrame:
    """Every paired comparison of two models on the same pairs: Δ with its interval, the test, raw and BH p."""
    rows = []
    for c in result.comparisons:
        row = {column: getattr(c, column) for column in COMPARISON_COLUMNS[:-2]}
        row["wrong_to_right"] = c.flips.wrong_to_right if c.flips is not None else None
        row["right_to_wrong"] = c.flips.right_to_wrong if c.flips is not None else None
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    return frame.astype({"wrong_to_right": "Int64", "right_to_wrong": "Int64"})


def pairs_frame(pairs: Mapping[str, Sequence[PairScore]], beta: float) -> pd.DataFrame:
    """One row per (dataset, pair, model): log-probs, token counts, truncation, the reference's log-probs and,
    where there are any, the implicit rewards r = β·(log π − log π_ref) and margin r_chosen − r_rejected."""
    rows = [{"dataset": dataset, **dataclasses.asdict(row)} for dataset, scored in pairs.items() for row in scored]
    frame = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    reference = frame[["ref_logp_chosen", "ref_logp_rejected"]].astype("float64")  # None → NaN
    for side in ("chosen", "rejected"):
        logps = frame[f"logp_{side}"].astype("float64")
        frame[f"reward_{side}"] = implicit_reward(logps, reference[f"ref_logp_{side}"], beta)
    frame["margin"] = frame["reward_chosen"] - frame["reward_rejected"]
    return frame


def gate_frame(result: RunResult) -> pd.DataFrame:
    """One row per gate rule: its status (passed, failed, undecidable, skipped), the numbers it was decided on and
    its one-line reason."""
    rows = [{column: getattr(v, column) for column in GATE_COLUMNS} for v in result.gate or []]
    return pd.DataFrame(rows, columns=GATE_COLUMNS)


def samples_frame(result: RunResult) -> pd.DataFrame:
    """One row per generation sample: its prompt, model, completion and shape, and a column per judge."""
    generation = result.generation
    if generation is None:
        return pd.DataFrame(columns=SAMPLE_COLUMNS)
    prompts = {p.id: p.text for p in generation.prompts}
    judges = list(dict.fromkeys(name for s in generation.samples for name in s.scores))
    rows = [
        {
            "prompt_id": s.prompt_id,
            "prompt": prompts.get(s.prompt_id),
            "model": s.model,
            "index": s.index,
            "completion": s.completion,
            "n_tokens": s.n_tokens,
            "ended": s.ended,
            **{judge: s.scores.get(judge, np.nan) for judge in judges},
        }
        for s in generation.samples
    ]
    return pd.DataFrame(rows, columns=[*SAMPLE_COLUMNS, *judges])
