"""Best-of-N items: the loader on RewardBench-shaped stand-ins, RewardBench 2's item rule and Ties composite on
hand-worked tables, and the intervals and comparisons built on them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from evalkit.config.specs import DatasetSpec
from evalkit.data.best_of_n import BestOfNItem, completion_index, completion_pairs, is_best_of_n, load_items
from evalkit.data.pairs import load_pairs
from evalkit.errors import EvalkitError
from evalkit.metrics.best_of_n import (
    ItemScores,
    best_of_n_metrics,
    compare_best_of_n,
    item_score,
    ties_parts,
)
from evalkit.metrics.rewardbench import reward_bench_1_score, section_scores
from evalkit.pipeline.best_of_n import item_scores
from evalkit.results.estimates import Statistics
from evalkit.results.pairs import PairScore
from evalkit.scoring.completions import completion_values, pointwise_scorer, scorer_scores
from evalkit.world import judge as world_judge
from evalkit.world.rewardbench import write_standins

STATS = Statistics()


def reward_bench_rule(scores: list[float]) -> float:
    """reward-bench's `reroll_and_score_dataset` line, verbatim in numpy: `scores[0]` is the one correct answer."""
    max_val = np.max(scores)
    return float((1 / np.sum(scores == max_val)) if scores[0] == max_val else 0)


@pytest.mark.parametrize(
    ("scores", "num_correct", "expected"),
    [
        ([3.0, 1.0, 2.0, 0.0], 1, 1.0),  # correct on top alone
        ([3.0, 3.0, 2.0, 0.0], 1, 1 / 2),  # tied at the top with one wrong answer
        ([3.0, 3.0, 3.0, 0.0], 1, 1 / 3),
        ([2.0, 2.0, 2.0, 2.0], 1, 1 / 4),  # everything tied: chance
        ([1.0, 3.0, 2.0, 0.0], 1, 0.0),  # a wrong answer on top
        ([1.0, 3.0, 3.0, 0.0], 1, 0.0),  # wrong answers tied on top
        ([1.0, 3.0, 3.0, 0.0], 2, 1 / 2),  # a second correct answer shares the top with a wrong one
    ],
)
def test_item_score_hand_worked(scores: list[float], num_correct: int, expected: float) -> None:
    assert item_score(scores, num_correct) == pytest.approx(expected)
    if num_correct == 1:
        assert item_score(scores, num_correct) == pytest.approx(reward_bench_rule(scores))


def test_ties_composite_hand_worked() -> None:
    """Two prompts, worked by reward-bench's `sample_stats` and `process_single_model`:

    ref:1 [5 | 1, 2]: accurate (5 > 2), correct−incorrect margin 3.
    tied:1 [4, 6 | 3]: accurate (4 > 3), margin 1, spread among correct 2: not preferred (1 > 2 no), hard
      min(3, 1) = 1 > 2 no, ratio 1/2 → tanh(−½) = −0.46211716.
    ref:2 [1 | 2, 0]: not accurate, margin −1.   tied:2 [5, 5 | 1]: accurate, margin 4, spread 0: preferred (4 > 0),
      hard min(−1, 4) > 0 no, no ratio (spread 0).
    value = 0.3·1 + 0.3·½ + 0.2·½ + 0.2·0 + 0.01·(−0.46211716) = 0.54537883.
    """
    items = [
        ItemScores("ref:1", "Ties", [5, 1, 2], 1),
        ItemScores("tied:1", "Ties", [4, 6, 3], 2),
        ItemScores("ref:2", "Ties", [1, 2, 0], 1),
        ItemScores("tied:2", "Ties", [5, 5, 1], 2),
    ]
    parts = ties_parts(items)
    assert parts["accuracy_ref"] == 0.5
    assert parts["accuracy_tied"] == 1.0
    assert parts["correctness_preferred"] == 0.5
    assert parts["correctness_preferred_hard"] == 0.0
    assert parts["correctness_margin_score"] == pytest.approx(math.tanh(-0.5))
    assert parts["value"] == pytest.approx(0.54537883, abs=1e-8)


def test_ties_ids_must_name_ref_or_tied() -> None:
    with pytest.raises(EvalkitError, match="ref:<k>"):
        ties_parts([ItemScores("7", "Ties", [1, 0], 1)])


def test_metrics_methods_and_overall_mean_of_subsets() -> None:
    """Math: scores 1, 0, 1, 0 (0/1: Wilson); Focus: 1, ½, 1, 0 (fractional: t); overall = (½ + 5/8)/2."""
    math_items = [ItemScores(f"m{i}", "Math", s, 1, f"pm{i}") for i, s in enumerate([[2, 1], [0, 1], [3, 1], [1, 2]])]
    focus = [[2, 1], [1, 1], [5, 0], [0, 4]]
    focus_items = [ItemScores(f"f{i}", "Focus", s, 1, f"pf{i}") for i, s in enumerate(focus)]
    metrics, ties = best_of_n_metrics("rb2", "m", math_items + focus_items, STATS)
    by_subset = {m.subset: m for m in metrics}
    assert ties == []
    assert by_subset["Math"].value == 0.5 and by_subset["Math"].method == "wilson"
    assert by_subset["Focus"].value == 0.625 and by_subset["Focus"].method == "student_t"
    overall = by_subset["all"]
    assert overall.value == pytest.approx(0.5625) and overall.method == "stratified_normal"
    # se = √(se_math² + se_focus²)/2, each the sample sd over √4
    se = math.sqrt(np.var([1, 0, 1, 0], ddof=1) / 4 + np.var([1, 0.5, 1, 0], ddof=1) / 4) / 2
    assert overall.se == pytest.approx(se)
    assert overall.ci_low == pytest.approx(0.5625 - 1.959964 * se, abs=1e-5)


def test_paired_comparison_on_shared_items() -> None:
    """Model a wins items 0 and 1 where b loses them, ties item 2 (both 1): Tango's test with 2 flips."""
    a = [ItemScores(f"m{i}", "Math", s, 1, f"p{i}") for i, s in enumerate([[2, 1], [2, 1], [2, 1], [0, 1]])]
    b = [ItemScores(f"m{i}", "Math", s, 1, f"p{i}") for i, s in enumerate([[0, 1], [0, 1], [2, 1], [0, 1]])]
    (comparison,) = compare_best_of_n("rb2", "a", a, "b", b, STATS)
    assert comparison.value == 0.5 and comparison.test == "tango_score"
    assert comparison.flips is not None and comparison.flips.wrong_to_right_ids == ["m0", "m1"]


def test_standins_load_as_reward_bench_ships_them(tmp_path: Path) -> None:
    rb2, rb1 = write_standins(tmp_path, items_per_subset=3, seed=0)
    first = json.loads(rb2.read_text().splitlines()[0])
    assert list(first) == [
        "id", "prompt", "chosen", "rejected", "num_correct", "num_incorrect", "total_completions", "models", "subset"
    ]  # fmt: skip
    assert isinstance(first["id"], str) and first["num_correct"] == 1 and first["total_completions"] == 4
    spec = DatasetSpec(name="rb2", path=str(rb2), id_column="id", subset_column="subset")
    assert is_best_of_n(spec)
    items = load_items(spec)
    assert {i.subset for i in items} == {"Math", "Focus", "Precise IF", "Ties"}
    tied = [i for i in items if i.id.startswith("tied:")]
    assert len(tied) == 3 and all(len(i.chosen) == 3 for i in tied)  # several correct answers
    pairs = completion_pairs(items)
    assert len(pairs) == sum((len(i.completions) + 1) // 2 for i in items)
    assert completion_index(pairs[1].id) == (items[0].id, 2)
    rb1_pairs = load_pairs(DatasetSpec(name="rb1", path=str(rb1), id_column="id", subset_column="subset"))
    assert {p.subset for p in rb1_pairs} == {"math-prm", "alpacaeval-easy", "llmbar-natural"}


def test_counts_that_disagree_with_the_lists_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    row = {"id": "1", "prompt": "q", "chosen": ["a"], "rejected": ["b", "c"], "num_correct": 2, "subset": "Math"}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(EvalkitError, match="'num_correct' is 2, but the lists hold 1"):
        load_items(DatasetSpec(name="bad", path=str(path), id_column="id", subset_column="subset"))
    with pytest.raises(EvalkitError, match="best-of-N"):
        load_pairs(DatasetSpec(name="bad", path=str(path)))


def test_completion_values_read_back_implicit_rewards_and_reward_model_scores() -> None:
    """Three completions scored as pairs (0, 1) and (2, 2): β(ℓ − ℓ_ref) for a policy, the score for a reward model."""
    item = BestOfNItem("q1", "prompt", ["good"], ["bad", "worse"], "Math")
    policy = [
        PairScore("q1#0", "Math", "dpo", -1.0, -3.0, 2, 3, False, ref_logp_chosen=-2.0, ref_logp_rejected=-2.0),
        PairScore("q1#2", "Math", "dpo", -5.0, -5.0, 4, 4, False, ref_logp_chosen=-4.0, ref_logp_rejected=-4.0),
    ]
    rm = [
        PairScore("q1#0", "Math", "rm", 0.0, 0.0, 2, 3, False, score_chosen=0.7, score_rejected=-0.2),
        PairScore("q1#2", "Math", "rm", 0.0, 0.0, 4, 4, False, score_chosen=0.1, score_rejected=0.1),
    ]
    dpo = completion_values([item], policy + rm, "dpo", beta=0.5)["q1"]
    assert dpo["reward"] == [0.5, -0.5, -0.5] and dpo["tokens"] == [2.0, 3.0, 4.0]
    assert completion_values([item], policy + rm, "rm", beta=0.5)["q1"]["reward"] == [0.7, -0.2, 0.1]
    # An item with a completion left unscored is left out.
    assert completion_values([item], policy[:1], "dpo", beta=0.5) == {}


def test_reward_bench_1_sections_hand_worked() -> None:
    """Chat: (1.0·100 + 0.5·95)/195 = 0.75641; Reasoning: (0.5·984 + 1.0·164)/1148 = 0.57143; the other two
    sections have no subset scored and count 0, as reward-bench leaves them; score = mean of the four."""
    accuracies = {"alpacaeval-easy": 1.0, "alpacaeval-length": 0.5, "math-prm": 0.5, "hep-go": 1.0}
    sections = section_scores(accuracies)
    assert sections["Chat"] == pytest.approx(147.5 / 195)
    assert sections["Reasoning"] == pytest.approx(656 / 1148)
    assert sections["Safety"] == 0.0 and sections["Chat Hard"] == 0.0
    assert reward_bench_1_score(accuracies) == pytest.approx((147.5 / 195 + 656 / 1148) / 4)


def test_a_pointwise_judge_through_the_scorer_seam(tmp_path: Path) -> None:
    """The world's ground-truth judge (1 for the good reply, else 0) on the stand-ins. Math, Focus, Precise IF: the
    correct answer alone scores 1, so every item scores 1. Ties: ref items accurate (1 > 0); in tied items the judge
    accepts only the `a + b = T.` phrasing, so the worst correct scores 0 = the best incorrect (not accurate), the
    correct–incorrect margin 0 is below the spread 1 (plain and hard), ratio 0/1: tanh(−1).
    Ties = 0.3·0 + 0.3·1 + 0.01·tanh(−1) = 0.29238406; overall = (3 + 0.29238406)/4."""
    rb2, _ = write_standins(tmp_path, items_per_subset=3, seed=0)
    items = load_items(DatasetSpec(name="rb2", path=str(rb2), id_column="id", subset_column="subset"))
    scores = scorer_scores(items, pointwise_scorer(world_judge.score))
    metrics, (ties,) = best_of_n_metrics("rb2", "judge", item_scores(items, scores), STATS)
    by_subset = {m.subset: m.value for m in metrics}
    assert by_subset["Math"] == by_subset["Focus"] == by_subset["Precise IF"] == 1.0
    assert ties.accuracy_ref == 1.0 and ties.accuracy_tied == 0.0
    assert by_subset["Ties"] == pytest.approx(0.3 + 0.01 * math.tanh(-1))
    assert by_subset["all"] == pytest.approx((3 + 0.3 + 0.01 * math.tanh(-1)) / 4)


def test_a_parquet_folder_laid_out_as_the_hub_repository_loads(tmp_path: Path) -> None:
    """The hub path: `datasets.load_dataset(folder, split="test")` on `data/test-00000-of-00001.parquet`, the file
    the hub repository holds, with its arrow types (list<string> answers, int64 counts)."""
    import pandas as pd

    rb2, _ = write_standins(tmp_path / "jsonl", items_per_subset=2, seed=0)
    rows = [json.loads(line) for line in rb2.read_text().splitlines()]
    folder = tmp_path / "reward-bench-2"
    (folder / "data").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    spec = DatasetSpec(name="rb2", path=str(folder), split="test", id_column="id", subset_column="subset")
    assert is_best_of_n(spec)
    items = load_items(spec)
    assert [i.id for i in items] == [r["id"] for r in rows]
    assert items[-1].chosen == rows[-1]["chosen"] and items[-1].subset == "Ties"
