import math
import random

import pytest

from evalkit.metrics import compute_metrics, pooled_metrics
from evalkit.scoring import PairScore


def row(pair_id: str, subset: str, lc: float, lr: float, rc: float | None, rr: float | None) -> PairScore:
    return PairScore(pair_id, subset, "m", lc, lr, 2, 2, False, rc, rr)


# β = 0.5. Hand-worked per pair (reward = β·(logp − ref_logp)):
#   p1: rewards  0.5 / −0.5 → margin  1.0 (right); policy −1 > −3 (right)
#   p2: rewards  0.0 /  0.0 → margin  0.0 (tie);   policy −4 > −2 (wrong)
#   p3: rewards −0.5 /  1.0 → margin −1.5 (wrong); policy −2 > −1 (wrong)
ROWS = [
    row("p1", "x", -1.0, -3.0, -2.0, -2.0),
    row("p2", "x", -4.0, -2.0, -4.0, -2.0),
    row("p3", "y", -2.0, -1.0, -1.0, -3.0),
]


def test_pooled_metrics_match_hand_computation() -> None:
    values = pooled_metrics(ROWS, beta=0.5)
    assert values["preference/accuracy"] == pytest.approx(1 / 3)
    assert values["rewards/accuracies"] == pytest.approx(1 / 3)  # the tie does not count as right
    assert values["rewards/ties"] == pytest.approx(1 / 3)
    assert values["rewards/margins"] == pytest.approx((1.0 + 0.0 - 1.5) / 3)
    assert values["rewards/chosen"] == pytest.approx(0.0)
    assert values["rewards/rejected"] == pytest.approx(1 / 6)
    expected_loss = (math.log(1 + math.exp(-1.0)) + math.log(2) + math.log(1 + math.exp(1.5))) / 3
    assert values["loss"] == pytest.approx(expected_loss)  # ≈ 0.90261
    assert values["logps/chosen"] == pytest.approx(-7 / 3)
    assert values["logps/rejected"] == pytest.approx(-2.0)


def test_without_reference_only_policy_metrics() -> None:
    values = pooled_metrics([row("p", "x", -1.0, -2.0, None, None)], beta=0.1)
    assert set(values) == {"preference/accuracy", "logps/chosen", "logps/rejected"}
    assert values["preference/accuracy"] == 1.0


def test_metrics_cover_all_pairs_and_each_subset() -> None:
    metrics = compute_metrics("d", ROWS, beta=0.5)
    table = {(m.subset, m.metric): (m.value, m.n) for m in metrics}
    assert table[("all", "rewards/accuracies")] == (pytest.approx(1 / 3), 3)
    assert table[("x", "rewards/accuracies")] == (0.5, 2)
    assert table[("x", "preference/accuracy")] == (0.5, 2)
    assert table[("y", "rewards/margins")] == (pytest.approx(-1.5), 1)
    assert next(m for m in metrics if m.metric == "loss").higher_is_better is False


def test_no_subset_column_gives_only_the_overall_cell() -> None:
    rows = [row("p", "all", -1.0, -2.0, -1.0, -1.0)]
    assert {m.subset for m in compute_metrics("d", rows, beta=0.1)} == {"all"}


def test_metrics_do_not_depend_on_row_order() -> None:
    shuffled = ROWS[:]
    random.Random(0).shuffle(shuffled)

    def key(m):
        return (m.subset, m.metric)

    assert sorted(compute_metrics("d", shuffled, 0.5), key=key) == sorted(compute_metrics("d", ROWS, 0.5), key=key)
