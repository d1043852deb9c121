"""`method`: the objective each model is scored with, checked when the suite loads."""

from __future__ import annotations

from typing import Any

import pytest

from evalkit.config.objectives import (
    AlphapoObjective,
    DpoObjective,
    KtoObjective,
    OrpoObjective,
    SimpoObjective,
    describe,
    needs_reference,
)
from evalkit.config.suite import parse_suite
from evalkit.errors import EvalkitError

SUITE: dict[str, Any] = {
    "name": "objectives",
    "output_dir": "out",
    "datasets": [{"name": "d", "path": "pairs.jsonl"}],
    "models": [{"name": "base", "path": "b"}, {"name": "tuned", "path": "t"}],
    "reference": "base",
    "scoring": {"beta": 0.3},
}


def problem(**changes: Any) -> str:
    with pytest.raises(EvalkitError) as error:
        parse_suite({**SUITE, **changes}, "s.yaml")
    return str(error.value)


def test_a_model_without_a_method_is_scored_with_sigmoid_dpo_at_the_suites_beta() -> None:
    suite = parse_suite(SUITE)
    objective = suite.objective(suite.model("tuned"))
    assert objective == DpoObjective(name="dpo", loss_type=["sigmoid"], beta=0.3)
    assert describe(objective) == "dpo (sigmoid, β=0.3)"


def test_a_models_method_wins_over_the_suites_and_a_dpo_beta_left_out_is_the_suites() -> None:
    models = [{"name": "base", "path": "b"}, {"name": "tuned", "path": "t", "method": {"name": "simpo", "beta": 2.0}}]
    suite = parse_suite({**SUITE, "models": models, "method": {"name": "dpo", "loss_type": "ipo"}})
    assert suite.objective(suite.model("tuned")) == SimpoObjective(name="simpo", beta=2.0, gamma=0.5)
    base = suite.objective(suite.model("base"))
    assert isinstance(base, DpoObjective) and base.loss_types == ["ipo"] and base.beta == 0.3


def test_the_trained_model_is_scored_with_the_training_method() -> None:
    train = {"base": "base", "output": "tuned", "data": "t.jsonl", "method": {"name": "orpo", "beta": 0.2}}
    suite = parse_suite({**SUITE, "train": train}, train_options=False)
    assert suite.objective(suite.model("tuned")) == OrpoObjective(name="orpo", beta=0.2)
    assert isinstance(suite.objective(suite.model("base")), DpoObjective)


def test_which_objectives_need_a_reference() -> None:
    assert needs_reference(DpoObjective(name="dpo")) and needs_reference(KtoObjective(name="kto"))
    assert not needs_reference(SimpoObjective(name="simpo")) and not needs_reference(OrpoObjective(name="orpo"))
    assert not needs_reference(AlphapoObjective(name="alphapo", alpha=0.25))


def test_trainer_options_use_trls_names() -> None:
    assert SimpoObjective(name="simpo", beta=2.0, gamma=0.8).trainer_options() == {
        "loss_type": "simpo",
        "beta": 2.0,
        "simpo_gamma": 0.8,
        "label_smoothing": 0.0,
        "cpo_alpha": 0.0,
    }
    dpo = DpoObjective(name="dpo", loss_type=["sigmoid", "bco_pair"], loss_weights=[0.8, 0.2])
    assert dpo.trainer_options() == {
        "loss_type": ["sigmoid", "bco_pair"],
        "loss_weights": [0.8, 0.2],
        "label_smoothing": 0.0,
        "f_divergence_type": "reverse_kl",
        "f_alpha_divergence_coef": 0.5,
        "discopop_tau": 0.05,
    }


def test_an_unknown_objective_or_loss_type_is_a_near_miss_with_the_choices() -> None:
    assert problem(method={"name": "simpoo"}) == (
        "s.yaml: method.name: unknown name 'simpoo' (did you mean 'simpo'?); "
        "names are ['dpo', 'cpo', 'simpo', 'alphapo', 'orpo', 'kto']"
    )
    assert problem(method={"name": "dpo", "loss_type": "ipoo"}).startswith(
        "s.yaml: method.loss_type.0: unknown value 'ipoo' (did you mean 'ipo'?); expected one of ['sigmoid', 'hinge'"
    )
    assert problem(method={"name": "simpo", "gama": 1}) == "s.yaml: method.gama: unknown key (did you mean 'gamma'?)"
    assert problem(method={"name": "orpo", "alpha": 1}) == "s.yaml: method: `alpha` is not used by name 'orpo'"


def test_inconsistent_dpo_options_are_refused_when_the_suite_loads() -> None:
    weights = {"name": "dpo", "loss_type": ["sigmoid", "ipo"], "loss_weights": [1.0]}
    assert problem(method=weights) == "s.yaml: method: loss_weights: 1 weights for 2 loss types"
    assert "`robust` needs a flip probability below 0.5" in problem(
        method={"name": "dpo", "loss_type": "robust", "label_smoothing": 0.5}
    )
    assert "'js_divergence' is not defined for loss type 'nca_pair'" in problem(
        method={"name": "dpo", "loss_type": "nca_pair", "f_divergence_type": "js_divergence"}
    )


def test_train_args_cannot_set_what_the_method_sets_and_are_checked_against_its_trainer() -> None:
    train = {"base": "base", "output": "tuned", "data": "t.jsonl", "method": {"name": "simpo"}}
    assert problem(train={**train, "args": {"beta": 1.0}}) == (
        "s.yaml: train.args.beta: not set here; the objective's options go in `train.method`"
    )
    orpo = {**train, "method": {"name": "orpo"}, "args": {"loss_type": "sigmoid"}}
    assert problem(train=orpo) == "s.yaml: train.args.loss_type: unknown ORPOConfig option"
