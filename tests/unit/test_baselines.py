import numpy as np
import pytest
from scipy.stats import t as scipy_t

from evalkit.api.inprocess import character_lengths
from evalkit.data.pairs import PreferencePair
from evalkit.metrics.baselines import (
    AnswerLengths,
    baseline_inputs,
    compare_with_baselines,
    compute_baselines,
    pick_scores,
)
from evalkit.results.pairs import PairScore


def row(pair_id: str, subset: str, right: bool, tokens: tuple[int, int], model: str = "m") -> PairScore:
    logps = (-1.0, -2.0) if right else (-2.0, -1.0)
    return PairScore(pair_id, subset, model, *logps, tokens[0], tokens[1], False)


# Hand-worked, per pair: the model's verdict (logp chosen > rejected), tokens and characters (chosen, rejected), and
# the score of "pick the longer" by each (1: it picks the chosen answer; 0: the rejected one; ½: equal lengths).
#   a (x): right  tokens 5/3 → 1    chars 10/20 → 0
#   b (x): wrong  tokens 2/4 → 0    chars  8/4  → 1
#   c (y): right  tokens 3/3 → ½    chars  5/5  → ½
#   d (y): right  tokens 6/1 → 1    chars  3/7  → 0
# longer_tokens = (1 + 0 + ½ + 1)/4 = 0.625, shorter_tokens = 0.375, longer_chars = 0.375, shorter_chars = 0.625.
ROWS = [
    row("a", "x", True, (5, 3)),
    row("b", "x", False, (2, 4)),
    row("c", "y", True, (3, 3)),
    row("d", "y", True, (6, 1)),
]
CHARS = {
    "a": AnswerLengths(10, 20),
    "b": AnswerLengths(8, 4),
    "c": AnswerLengths(5, 5),
    "d": AnswerLengths(3, 7),
}


def test_pick_scores_give_a_length_tie_half() -> None:
    chosen, rejected = np.array([5, 2, 3]), np.array([3, 4, 3])
    assert pick_scores(chosen, rejected, longer=True).tolist() == [1.0, 0.0, 0.5]
    assert pick_scores(chosen, rejected, longer=False).tolist() == [0.0, 1.0, 0.5]


def test_baselines_match_hand_computation() -> None:
    inputs = baseline_inputs("d", ROWS, CHARS)
    assert inputs is not None
    found = {(b.subset, b.baseline): b for b in compute_baselines("d", inputs)}
    assert found["all", "longer_tokens"].value == pytest.approx(0.625)
    assert found["all", "shorter_tokens"].value == pytest.approx(0.375)
    assert found["all", "longer_chars"].value == pytest.approx(0.375)
    assert found["all", "shorter_chars"].value == pytest.approx(0.625)
    assert (found["all", "longer_tokens"].ties, found["all", "longer_tokens"].n) == (1, 4)
    assert found["all", "longer_tokens"].tokens_of == "m" and found["all", "longer_chars"].tokens_of is None
    assert found["x", "longer_tokens"].value == 0.5 and found["y", "longer_tokens"].value == 0.75
    chance = found["all", "chance"]
    assert (chance.value, chance.ci_low, chance.method, chance.ties) == (0.5, None, "none", 0)
    # A ½ has less variance than a coin: Wilson runs on n·p(1 − p)/v = 4·0.625·0.375/v, v the scores' variance.
    scores = np.array([1, 0, 0.5, 1])
    assert found["all", "longer_tokens"].n_effective == pytest.approx(4 * 0.625 * 0.375 / scores.var())
    assert found["all", "longer_tokens"].method == "wilson"


def test_character_baselines_need_the_texts() -> None:
    inputs = baseline_inputs("d", ROWS, {})
    assert inputs is not None
    names = {b.baseline for b in compute_baselines("d", inputs)}
    assert names == {"longer_tokens", "shorter_tokens", "chance"}


def test_model_against_a_baseline_is_a_paired_test_on_the_same_pairs() -> None:
    inputs = baseline_inputs("d", ROWS, CHARS)
    assert inputs is not None
    found = {(c.subset, c.baseline, c.metric): c for c in compare_with_baselines("d", ROWS, inputs, beta=0.1)}
    assert not any(metric == "rewards/accuracies" for _, _, metric in found)  # no reference: no rewards
    # Model 1, 0, 1, 1 against longer_tokens 1, 0, ½, 1: differences 0, 0, ½, 0, mean 0.125, sd 0.25, se 0.125,
    # t = 1 on 3 degrees of freedom (the ½ rules out Tango's test, which counts whole flips).
    c = found["all", "longer_tokens", "preference/accuracy"]
    assert (c.model_value, c.baseline_value, c.value) == pytest.approx((0.75, 0.625, 0.125))
    assert (c.method, c.test, c.se, c.df) == ("student_t", "paired_t", pytest.approx(0.125), 3)
    assert c.p_value == pytest.approx(2 * scipy_t.sf(1.0, 3))
    # On subset x the baseline scores 1, 0 (no tie) and the model too: Tango's test, no discordant pair.
    x = found["x", "longer_tokens", "preference/accuracy"]
    assert (x.method, x.value, x.flips.wrong_to_right, x.flips.right_to_wrong) == ("tango", 0.0, 0, 0)  # type: ignore[union-attr]
    # Chance is a constant, tested on the model's own accuracy (`baseline_tests`), never as a paired difference.
    assert not any(baseline == "chance" for _, baseline, _ in found)


def test_a_length_baseline_where_every_pair_ties_is_chance_and_not_compared_again() -> None:
    tied = [row("a", "all", True, (3, 3)), row("b", "all", True, (4, 4))]
    inputs = baseline_inputs("d", tied, {})
    assert inputs is not None
    assert compare_with_baselines("d", tied, inputs, beta=0.1) == []
    assert {(b.baseline, b.value, b.ties) for b in compute_baselines("d", inputs)} == {
        ("longer_tokens", 0.5, 2),
        ("shorter_tokens", 0.5, 2),
        ("chance", 0.5, 0),
    }


def test_character_lengths_read_the_answers_text() -> None:
    pairs = [
        PreferencePair("s", "Q?", "yes", "no!!"),
        PreferencePair(
            "c",
            [{"role": "user", "content": "Q?"}],
            [{"role": "assistant", "content": "long answer"}],
            [{"role": "assistant", "content": "short"}],
        ),
    ]
    lengths = character_lengths("d", pairs)
    assert lengths["s"] == AnswerLengths(3, 4)
    assert lengths["c"] == AnswerLengths(len("assistant: long answer"), len("assistant: short"))
