"""Best-of-N items ranked by each model's own objective: the reward of one completion beside each objective's
pairwise scorer, on a hand-worked item where the summed and the mean log-prob rank the completions differently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from evalkit.config.objectives import DpoObjective, Objective
from evalkit.data.best_of_n import BestOfNItem
from evalkit.metrics.cells import Cell
from evalkit.metrics.objectives import completion_rewards, objective_pairs, reward_label
from evalkit.pipeline.best_of_n import summarise_best_of_n
from evalkit.results.estimates import Statistics
from evalkit.results.pairs import PairScore

OBJECTIVE: TypeAdapter[Objective] = TypeAdapter(Objective)

# One item, completion 0 correct. ℓ = [-6, -3, -10, -4] over T = [20, 3, 10, 2] tokens: the sum ranks completion 1
# first, the mean per token (-0.3, -1, -1, -2) completion 0. Against ℓ_ref = [-10, -6, -9, -5] the log-ratios
# u = [4, 3, -1, 1] rank completion 0 first, u/T = [0.2, 1, -0.1, 0.5] completion 1.
LOGP = [-6.0, -3.0, -10.0, -4.0]
TOKENS = [20, 3, 10, 2]
REF = [-10.0, -6.0, -9.0, -5.0]
ITEM = BestOfNItem("q", "prompt", ["long right"], ["a", "b", "c"], "Focus")


def rows(model: str, reference: bool) -> list[PairScore]:
    """The item's completions as the pair engine lays them out: pairs (0, 1) and (2, 3)."""
    ref = REF if reference else [None] * 4
    return [
        PairScore(f"q#{i}", "Focus", model, LOGP[i], LOGP[i + 1], TOKENS[i], TOKENS[i + 1], False, ref[i], ref[i + 1])
        for i in (0, 2)
    ]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"name": "simpo", "beta": 2.0, "gamma": 0.5}, [-0.6, -2.0, -2.0, -4.0]),  # β·ℓ/T; γ ranks nothing
        ({"name": "cpo", "beta": 0.5}, [-3.0, -1.5, -5.0, -2.0]),  # β·ℓ
        ({"name": "cpo", "loss_type": "ipo", "beta": 0.5}, [-0.3, -1.0, -1.0, -2.0]),  # ℓ/T, unscaled
        (
            {"name": "alphapo", "alpha": 0.25, "beta": 1.0},
            [(1 - math.exp(-0.25 * m)) / 0.25 for m in (-0.3, -1.0, -1.0, -2.0)],
        ),
        ({"name": "orpo", "beta": 0.1}, [m - math.log(1 - math.exp(m)) for m in (-0.3, -1.0, -1.0, -2.0)]),
        ({"name": "dpo", "beta": 0.1}, [0.4, 0.3, -0.1, 0.1]),  # β·u
        ({"name": "dpo", "loss_type": "ipo", "beta": 0.1}, [0.2, 1.0, -0.1, 0.5]),  # u/T
        ({"name": "dpo", "loss_type": "sigmoid_norm", "beta": 0.1}, [0.02, 0.1, -0.01, 0.05]),  # β·u/T
        ({"name": "dpo", "loss_type": "bco_pair", "beta": 0.1}, [0.4, 0.3, -0.1, 0.1]),
        ({"name": "kto", "beta": 0.1}, [0.4, 0.3, -0.1, 0.1]),
    ],
)
def test_completion_rewards_hand_worked(settings: dict[str, object], expected: list[float]) -> None:
    objective = OBJECTIVE.validate_python(settings)
    got = completion_rewards(objective, np.array(LOGP), np.array(REF), np.array(TOKENS, dtype=float))
    assert got is not None and list(got) == pytest.approx(expected)


def test_reference_based_rewards_need_the_reference() -> None:
    dpo = DpoObjective(name="dpo", beta=0.1)
    assert completion_rewards(dpo, np.array(LOGP), None, np.array(TOKENS, dtype=float)) is None


@pytest.mark.parametrize(
    "settings",
    [
        {"name": "simpo", "beta": 2.0, "gamma": 0.5},
        {"name": "alphapo", "alpha": 0.25, "beta": 1.5, "gamma": 0.3},
        {"name": "cpo", "loss_type": "hinge", "beta": 0.5, "alpha": 0.2},
        {"name": "cpo", "loss_type": "ipo", "beta": 0.5},
        {"name": "orpo", "beta": 0.1},
        {"name": "dpo", "beta": 0.1},
        {"name": "dpo", "loss_type": "ipo", "beta": 0.1},
        {"name": "dpo", "loss_type": "sigmoid_norm", "beta": 0.1, "f_divergence_type": "js_divergence"},
        {"name": "dpo", "loss_type": ["apo_zero", "sigmoid"], "beta": 0.1},
    ],
)
def test_the_pairwise_margin_is_the_difference_of_completion_rewards(settings: dict[str, object]) -> None:
    """One formula per objective: the margin its pairwise scorer computes is reward(chosen) − reward(rejected),
    less γ where the objective has one (γ/β·β)."""
    objective = OBJECTIVE.validate_python(settings)
    chosen, rejected = np.array([-6.0, -3.0]), np.array([-10.0, -4.0])
    ref_c, ref_r = np.array([-10.0, -6.0]), np.array([-9.0, -5.0])
    t_c, t_r = np.array([20.0, 3.0]), np.array([10.0, 2.0])
    cell = Cell(["0", "1"], chosen, rejected, t_c, t_r, ref_c, ref_r)
    pairs = objective_pairs(cell, objective)
    assert pairs is not None
    r_c, r_r = completion_rewards(objective, chosen, ref_c, t_c), completion_rewards(objective, rejected, ref_r, t_r)
    assert r_c is not None and r_r is not None
    gamma = float(settings.get("gamma", 0.0))  # type: ignore[arg-type]
    assert list(pairs.margin) == pytest.approx(list(r_c - r_r - gamma))


def test_each_model_ranks_the_item_by_its_own_objective() -> None:
    """SimPO's mean ranks the correct long answer first (score 1), CPO's sum does not (0); DPO's β·u ranks it first
    (1), IPO's u/T does not (0); a model with no objective gets DPO's β·u at the suite's β; the reference none."""
    objectives = {
        name: OBJECTIVE.validate_python(settings)
        for name, settings in {
            "simpo": {"name": "simpo", "beta": 2.0},
            "cpo": {"name": "cpo"},
            "ipo": {"name": "dpo", "loss_type": "ipo", "beta": 0.1},
            "orpo": {"name": "orpo"},
        }.items()
    }
    models = ["ref", "simpo", "cpo", "ipo", "orpo", "plain"]
    scored = [*rows("ref", reference=False), *(r for m in models[1:] for r in rows(m, reference=True))]
    summary = summarise_best_of_n({"rb2": [ITEM]}, {"rb2": scored}, models, 0.1, Statistics(), objectives=objectives)
    scores = {m.model: m.value for m in summary.metrics if m.subset == "Focus"}
    assert scores == {"simpo": 1.0, "cpo": 0.0, "ipo": 0.0, "orpo": 1.0, "plain": 1.0}
    assert summary.rewards["simpo"] == reward_label(objectives["simpo"]) == "simpo: β·ℓ/T (γ left out)"
    assert summary.rewards["ipo"] == "dpo ipo: (ℓ − ℓ_ref)/T"
    assert summary.rewards["plain"].startswith("dpo sigmoid: β·(ℓ − ℓ_ref)")
    assert "ref" not in summary.rewards
