"""Gate rules on an objective's metrics for a model whose objective only a record beside its checkpoint states:
evalkit's training record is read when the suite loads, TRL's pickled config (where the model allows pickles) and
a record the run's own training writes when the run starts; scoring records the very objective the rules were
checked against (`evalkit.trainers.resolved_objective`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from evalkit.config.objectives import OrpoObjective, objective_from
from evalkit.config.recorded import TRAIN_RECORD, recorded_objective
from evalkit.config.suite import Suite, parse_suite
from evalkit.errors import EvalkitError
from evalkit.gate.judge import evaluate_gate
from evalkit.metrics.compute import compute_metrics
from evalkit.pipeline.checks import check_objective_rules
from evalkit.pipeline.score import objective_info_of, scored_objectives
from evalkit.results.pairs import read_pair_scores
from tests.unit.test_objectives import objective_run
from tests.unit.test_trl_objective import save_simpo


def trained_by_evalkit(directory: Path, method: dict[str, Any] | None) -> str:
    """A checkpoint directory holding evalkit's training record of `method`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / TRAIN_RECORD).write_text(json.dumps({"steps": 4, "method": method}), encoding="utf-8")
    return str(directory)


def suite_of(path: str, *rules: dict[str, Any], **model: Any) -> Suite:
    """A suite scoring `aligned` at `path` (with `model`'s keys) against `base`, gated by `rules` on `aligned`."""
    return parse_suite(
        {
            "name": "s",
            "output_dir": "out",
            "datasets": [{"name": "tinyworld", "path": "d.jsonl"}],
            "models": [{"name": "base", "path": "b"}, {"name": "aligned", "path": path, **model}],
            "reference": "base",
            "gate": {"rules": [{"kind": "absolute", "model": "aligned", **rule} for rule in rules]},
        },
        "s.yaml",
    )


def problems(path: str, rule: dict[str, Any], **model: Any) -> list[str]:
    with pytest.raises(EvalkitError) as error:
        suite_of(path, rule, **model)
    return str(error.value).splitlines()


def log_odds(mean_logp: float) -> float:
    return mean_logp - math.log1p(-math.exp(mean_logp))


def test_a_rule_on_an_orpo_metric_is_checked_and_judged_on_the_recorded_orpo(tmp_path: Path) -> None:
    """ORPO (β 0.1) as `evalkit train` recorded it. `aligned` is right on q0..q5 of 8 (mean log-probs −1/2 against
    −1 for the rejected) and wrong on q6, q7 (−3/2 against −1): objective accuracy 6/8 = 0.75, which passes
    `at_least: 0.7` and fails `at_least: 0.8` on the value; `trl/log_odds_chosen` is the mean log-odds ratio,
    (6·(lo(−½) − lo(−1)) + 2·(lo(−3/2) − lo(−1)))/8 with lo(ℓ) = ℓ − log(1 − e^ℓ), about 0.554."""
    path = trained_by_evalkit(tmp_path / "aligned", {"name": "orpo", "beta": 0.1})
    on_value = {"judge_on": "value", "min_pairs": 2}
    suite = suite_of(
        path,
        {"metric": "objective/accuracy", "at_least": 0.7, **on_value},
        {"metric": "objective/accuracy", "at_least": 0.8, **on_value},
        {"metric": "trl/log_odds_chosen", "at_least": 0.5, **on_value},
    )
    info = objective_info_of(suite, suite.model("aligned"))
    assert objective_from(info) == OrpoObjective(name="orpo", beta=0.1)
    check_objective_rules(suite, "s.yaml")  # the run's own check agrees with the load's
    objective = objective_from(info)
    assert objective is not None and suite.gate is not None
    # The run as `evalkit bench` summarises it: every metric of the objective scoring recorded, from the pairs.
    result, directory = objective_run(tmp_path, "run", [1] * 6 + [0] * 2, objective)
    rows = read_pair_scores(directory / "pairs" / "tinyworld.jsonl")
    metrics = compute_metrics("tinyworld", rows, 0.1, objectives=scored_objectives(result.models))
    result = result.model_copy(update={"metrics": metrics})
    loose, tight, odds = evaluate_gate(suite.gate, result, directory)
    assert loose.value == 0.75 and loose.passed and tight.value == 0.75 and not tight.passed
    expected = (6 * (log_odds(-0.5) - log_odds(-1.0)) + 2 * (log_odds(-1.5) - log_odds(-1.0))) / 8
    assert odds.value == pytest.approx(expected) and expected == pytest.approx(0.554, abs=1e-3) and odds.passed


def test_a_rule_on_an_orpo_metric_for_a_model_recorded_as_sigmoid_dpo_is_refused_in_one_line(tmp_path: Path) -> None:
    path = trained_by_evalkit(tmp_path / "aligned", {"name": "dpo", "loss_type": ["sigmoid"], "beta": 0.1})
    assert problems(path, {"metric": "trl/log_odds_chosen", "at_least": 0.5}) == [
        "s.yaml: gate.rules.0.metric: 'trl/log_odds_chosen' is logged by orpo only; 'aligned' is scored with 'dpo'"
    ]
    assert problems(path, {"metric": "trl/kl", "at_most": 1.0}) == [
        "s.yaml: gate.rules.0.metric: 'trl/kl' is computed for kto models only; 'aligned' is scored with 'dpo'"
    ]
    suite_of(path, {"metric": "objective/accuracy", "at_least": 0.5})  # every objective has it
    # The suite's word comes first: a `method` on the model overrides its record.
    suite_of(path, {"metric": "trl/log_odds_chosen", "at_least": 0.5}, method={"name": "orpo"})


def test_a_model_with_neither_a_method_nor_a_record_is_refused_naming_the_key(tmp_path: Path) -> None:
    """A local directory with no record, a record from before objectives were recorded, a hub id: give a method."""
    (tmp_path / "plain").mkdir()
    older = trained_by_evalkit(tmp_path / "older", None)
    for path in (str(tmp_path / "plain"), older, "org/hub-model"):
        assert problems(path, {"metric": "objective/accuracy", "at_least": 0.5}) == [
            "s.yaml: gate.rules.0.metric: 'objective/accuracy' is a metric of the model's objective; give 'aligned' "
            "a `method` (or the suite one)"
        ]
    assert recorded_objective(older) is None
    unknown = problems(older, {"metric": "objective/accuracy", "at_least": 0.5, "model": "algned"})
    assert len(unknown) == 1 and unknown[0].startswith("s.yaml: gate.rules.0.model: no model named 'algned'")


def test_trls_saved_config_is_read_when_the_run_starts_where_pickles_are_allowed(tmp_path: Path) -> None:
    """A SimPO run of TRL's own script left only `training_args.bin`: without `allow_pickle` the suite is refused
    with both ways out; with it the suite loads, and the run refuses an ORPO metric before any model is scored."""
    path = str(save_simpo(tmp_path / "simpo"))
    orpo_rule = {"metric": "trl/log_odds_chosen", "at_least": 0.5}
    assert problems(path, orpo_rule) == [
        "s.yaml: gate.rules.0.metric: 'trl/log_odds_chosen' is a metric of the model's objective; give 'aligned' a "
        f"`method` (or the suite one), or `allow_pickle: true` to read it from the TRL config in {path}"
    ]
    suite = suite_of(path, orpo_rule, allow_pickle=True)
    with pytest.raises(EvalkitError) as error:
        check_objective_rules(suite, "s.yaml")
    assert str(error.value).splitlines() == [
        "s.yaml: gate.rules.0.metric: 'trl/log_odds_chosen' is logged by orpo only; 'aligned' is scored with 'simpo'"
    ]
    check_objective_rules(suite_of(path, {"metric": "objective/accuracy", "at_least": 0.5}, allow_pickle=True), "s")


def test_the_record_of_a_model_the_suite_trains_is_read_once_the_training_wrote_it(tmp_path: Path) -> None:
    """A run with no `method` trains what its `args` say; a record already in its output may be an older run's,
    so the rule waits for the run (pending while it trains) and is checked against the record it writes."""
    output = tmp_path / "aligned"
    train = {"base": "base", "output": "aligned", "data": str(tmp_path / "t.jsonl")}
    raw = {
        "name": "s",
        "output_dir": "out",
        "datasets": [{"name": "d", "path": "d.jsonl"}],
        "models": [{"name": "base", "path": "b"}, {"name": "aligned", "path": str(output)}],
        "reference": "base",
        "train": train,
        "gate": {"rules": [{"kind": "absolute", "model": "aligned", "metric": "trl/log_odds_chosen", "at_least": 0}]},
    }
    trained_by_evalkit(output, {"name": "dpo", "loss_type": ["sigmoid"], "beta": 0.1})  # an earlier run's
    suite = parse_suite(raw, "s.yaml", train_options=False)
    check_objective_rules(suite, "s.yaml", pending={"aligned"})
    trained_by_evalkit(output, {"name": "orpo", "beta": 0.1})  # this run's
    check_objective_rules(suite, "s.yaml")
    trained_by_evalkit(output, {"name": "dpo", "loss_type": ["ipo"], "beta": 0.1})  # or this one
    with pytest.raises(EvalkitError, match="^s.yaml: gate.rules.0.metric: 'trl/log_odds_chosen' is logged by orpo"):
        check_objective_rules(suite, "s.yaml")
