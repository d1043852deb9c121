"""A classifier reward model's rows: its scores are its rewards, with the same metrics, ties, intervals and paired
comparisons as implicit rewards; its per-pair file round-trips; suites name it and train it with RewardTrainer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evalkit.config.suite import load_suite
from evalkit.errors import EvalkitError
from evalkit.metrics.compute import compute_metrics
from evalkit.metrics.paired import compare_models
from evalkit.results.files import write_jsonl
from evalkit.results.pairs import PairScore, pair_records, read_pair_scores


def classifier_row(pair_id: str, chosen: float, rejected: float, model: str = "rm") -> PairScore:
    return PairScore(pair_id, "x", model, 0.0, 0.0, 3, 2, False, score_chosen=chosen, score_rejected=rejected)


def policy_row(pair_id: str, margin: float, model: str = "dpo") -> PairScore:
    """A policy row whose implicit reward margin is `margin` at β = 1 (the rejected answer's reward is 0)."""
    return PairScore(pair_id, "x", model, -1.0 + margin, -2.0, 3, 2, False, -1.0, -2.0)


# Hand-worked: scores (chosen, rejected) → margins 1.5, −0.5, 0 (a tie), 2.0.
#   accuracy (strict >) 2/4; ties 1/4; margin mean (1.5 − 0.5 + 0 + 2)/4 = 0.75; median (0 + 1.5)/2 = 0.75;
#   chosen mean (2 + 0 + 1 + 1)/4 = 1.0; rejected mean (0.5 + 0.5 + 1 − 1)/4 = 0.25;
#   loss mean of log(1 + e^(−m)).
RM = [
    classifier_row("a", 2.0, 0.5),
    classifier_row("b", 0.0, 0.5),
    classifier_row("c", 1.0, 1.0),
    classifier_row("d", 1.0, -1.0),
]


def test_reward_model_metrics_are_its_scores_hand_worked() -> None:
    m = {x.metric: x for x in compute_metrics("d", RM, beta=0.1) if x.subset == "all"}
    assert m["rewards/accuracies"].value == pytest.approx(0.5)
    assert m["rewards/ties"].value == pytest.approx(0.25)
    assert m["rewards/margins"].value == pytest.approx(0.75)
    assert m["rewards/margins_median"].value == pytest.approx(0.75)
    assert m["rewards/chosen"].value == pytest.approx(1.0)
    assert m["rewards/rejected"].value == pytest.approx(0.25)
    losses = [math.log1p(math.exp(-x)) for x in (1.5, -0.5, 0.0, 2.0)]
    assert m["loss"].value == pytest.approx(sum(losses) / 4)
    assert m["rewards/accuracies"].method == "wilson" and m["rewards/accuracies"].ci_low is not None
    # No log-probs, no reference: none of the policy's metrics, and β plays no part.
    assert not [name for name in m if name.startswith(("preference/", "logps/", "displacement/"))]
    again = {x.metric: x.value for x in compute_metrics("d", RM, beta=7.0) if x.subset == "all"}
    assert again["rewards/margins"] == m["rewards/margins"].value


def test_reward_model_against_a_policy_on_the_same_pairs() -> None:
    """The RM is right on a, d; the policy (margins 1, 1, −1, −1 at β = 1) on a, b. Flips RM vs policy:
    wrong→right d, right→wrong b; Tango's interval for Δ accuracy = 0."""
    policy = [policy_row(i, m) for i, m in zip("abcd", (1.0, 1.0, -1.0, -1.0), strict=True)]
    comparisons = compare_models("d", policy + RM, beta=1.0)
    by_metric = {c.metric: c for c in comparisons if c.subset == "all"}
    assert set(by_metric) == {"rewards/accuracies", "rewards/margins", "loss"}  # nothing of log-probs
    accuracy = by_metric["rewards/accuracies"]
    assert (accuracy.model, accuracy.baseline) == ("rm", "dpo")
    assert accuracy.value == pytest.approx(0.0) and accuracy.test == "tango_score"
    assert accuracy.flips is not None
    assert accuracy.flips.wrong_to_right_ids == ["d"] and accuracy.flips.right_to_wrong_ids == ["b"]
    assert by_metric["rewards/margins"].value == pytest.approx(0.75 - 0.0)


def test_per_pair_file_round_trips_reward_model_rows(tmp_path: Path) -> None:
    rows = [*RM[:2], policy_row("a", 1.0)]
    records = pair_records(rows, beta=1.0)
    assert records[0]["reward_chosen"] == 2.0 and records[0]["margin"] == 1.5
    assert "ref_logp_chosen" not in records[0] and "score_chosen" not in records[2]  # each kind its own columns
    write_jsonl(records, tmp_path / "p.jsonl")
    assert read_pair_scores(tmp_path / "p.jsonl") == rows
    (tmp_path / "bad.jsonl").write_text(json.dumps({**records[0], "score_chosen": "high"}) + "\n")
    with pytest.raises(EvalkitError, match="score_chosen: expected a finite score"):
        read_pair_scores(tmp_path / "bad.jsonl")


SUITE = """
name: s
output_dir: out
datasets: [{name: d, path: pairs.jsonl}]
models:
  - {name: base, path: base}
  - {name: rm, path: rm, kind: reward_model}
"""


def test_suites_train_a_reward_model_with_reward_config_options(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    train = "train: {base: base, output: rm, data: pairs.jsonl, args: {center_rewards_coefficient: 1e-2}}\n"
    path.write_text(SUITE + train)
    suite = load_suite(path)
    (run,) = suite.train
    assert suite.trainer_of(run) == "reward"
    assert run.args["center_rewards_coefficient"] == 0.01  # a number, as RewardConfig types it
    path.write_text(SUITE + train.replace("center_rewards_coefficient", "beta"))
    with pytest.raises(EvalkitError, match=r"train\.args\.beta: unknown RewardConfig option"):
        load_suite(path)
    path.write_text(SUITE + "reference: rm\n")
    with pytest.raises(EvalkitError, match="reference: 'rm' is a reward model"):
        load_suite(path)


def test_a_reward_model_has_no_log_prob_rules_and_no_reference(tmp_path: Path) -> None:
    from evalkit.cli import main

    path = tmp_path / "suite.yaml"
    rule = "gate: {rules: [{name: r, kind: absolute, model: rm, metric: preference/accuracy, at_least: 0.5}]}\n"
    path.write_text(SUITE + rule)
    with pytest.raises(EvalkitError, match="'preference/accuracy' is a policy's log-prob metric; the reward"):
        load_suite(path)
    path.write_text(SUITE + rule.replace("preference/accuracy", "rewards/accuracies"))
    assert load_suite(path).reference is None  # rewards/* of a reward model need no reference
    argv = ["score", "--model", "rm", "--reward-model", "--ref", "base", "--data", "d.jsonl", "--out", "o.jsonl"]
    assert main(argv) == 2
