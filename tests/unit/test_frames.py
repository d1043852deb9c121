"""Tidy frames read from a real results file (the golden run, judged by the default suite's gate)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import evalkit
from evalkit.cli import main
from evalkit.config.suite import DEFAULT_SUITE

ROOT = Path(__file__).parents[2]
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> evalkit.Evaluation:
    run = tmp_path_factory.mktemp("golden")
    # `evalkit gate` writes the judged results.json into --out (never over its input); the pairs go beside it.
    shutil.copytree(GOLDEN / "pairs", run / "judged" / "pairs")
    suite = str(DEFAULT_SUITE)
    # With no baseline recorded, the rule against the last release waits (skipped, exit 0); every other is decided.
    assert main(["gate", str(GOLDEN / "results.json"), "--suite", suite, "--out", str(run / "judged")]) == 0
    judged = evalkit.read_results(run / "judged")
    waiting = [v.kind for v in judged.result.gate or [] if v.status == "skipped"]
    assert waiting == ["non_inferiority"]
    return judged


def test_metrics_frame_is_one_row_per_cell_and_metric(judged: evalkit.Evaluation) -> None:
    frame = judged.metrics_frame()
    assert len(frame) == len(judged.result.metrics)
    assert not frame.duplicated(["dataset", "subset", "model", "metric"]).any()
    record = judged.result.metric("tinyworld", "aligned", "rewards/accuracies")
    assert record is not None
    row = frame.query("dataset == 'tinyworld' and model == 'aligned' and subset == 'all'").set_index("metric")
    assert row.loc["rewards/accuracies", ["value", "ci_low", "ci_high", "n"]].tolist() == [
        record.value,
        record.ci_low,
        record.ci_high,
        record.n,
    ]


def test_gate_frame_is_one_row_per_rule(judged: evalkit.Evaluation) -> None:
    verdicts = judged.result.gate
    assert verdicts
    frame = judged.gate_frame()
    assert frame.rule.tolist() == [v.rule for v in verdicts]
    assert frame.passed.tolist() == [v.passed for v in verdicts]
    assert frame.status.tolist() == [v.status for v in verdicts]
    expected = [v.p_adjusted if v.p_adjusted is not None else float("nan") for v in verdicts]  # None: not tested
    assert frame.p_adjusted.tolist() == pytest.approx(expected, nan_ok=True)


def test_samples_frame_has_the_prompt_text_and_a_column_per_judge(judged: evalkit.Evaluation) -> None:
    generation = judged.result.generation
    assert generation is not None
    frame = judged.samples_frame()
    assert len(frame) == len(generation.samples)
    judges = sorted({name for s in generation.samples for name in s.scores})
    assert judges and all(name in frame.columns for name in judges)
    first = generation.samples[0]
    row = frame.iloc[0]
    assert (row.model, row.completion, row[judges[0]]) == (first.model, first.completion, first.scores[judges[0]])
    assert row.prompt == next(p.text for p in generation.prompts if p.id == first.prompt_id)


def test_comparisons_and_pairs_frames_carry_flips_and_rewards(judged: evalkit.Evaluation) -> None:
    comparisons = judged.comparisons_frame()
    accuracy = comparisons.query("subset == 'all' and metric == 'preference/accuracy'").iloc[0]
    record = judged.result.comparison("tinyworld", accuracy.model, accuracy.baseline, "preference/accuracy")
    assert record is not None and record.flips is not None
    assert (accuracy.wrong_to_right, accuracy.right_to_wrong) == (
        record.flips.wrong_to_right,
        record.flips.right_to_wrong,
    )
    assert pd.isna(comparisons.query("metric == 'rewards/margins'").wrong_to_right).all()  # flips: accuracies only
    pairs = judged.pairs_frame()
    aligned = pairs[pairs.model == "aligned"]
    beta = judged.result.scoring.beta
    expected = beta * (aligned.logp_chosen - aligned.ref_logp_chosen) - beta * (
        aligned.logp_rejected - aligned.ref_logp_rejected
    )
    assert aligned.margin.tolist() == pytest.approx(expected.tolist())
    assert pairs[pairs.model == "base"].margin.isna().all()  # the reference has no rewards


def test_inline_display_of_a_judged_run_shows_the_gate_and_every_rule(judged: evalkit.Evaluation) -> None:
    inline = judged._repr_html_()
    assert "Gate " in inline and "<script" not in inline
    assert all(v.rule.replace("'", "&#39;") in inline for v in judged.result.gate or [])
