"""One short real training run per TRL trainer `train.method` selects, on the tiny world's pairs (slow tier).

Each run: a 2-layer, width-32 Llama with the world's tokenizer, LoRA r=4, two optimiser steps of four
pairs, an evaluation on four held-out pairs. What is checked is what evalkit adds around TRL: the right
trainer is composed, TRL's own loss of that objective was logged (ORPO's log-odds, KTO's KL point, the
CPO family's NLL), the adapter moved the model, and the training record states the objective, TRL's
defaults filled in, so scoring reads the method from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from evalkit.api.callback import EvalkitCallback
from evalkit.config.objectives import with_beta
from evalkit.config.recorded import recorded_objective
from evalkit.config.specs import ModelSpec
from evalkit.config.training import TrainSpec
from evalkit.data.unpaired import unpair
from evalkit.train import train_model
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs

pytestmark = pytest.mark.slow

PAIRS = generate_pairs(4, seed=2)  # 12 pairs: 8 to train on, 4 held out


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast) -> ModelSpec:
    path = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    build_model(tiny_tokenizer, hidden_size=32, num_layers=2).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return ModelSpec(name="base", path=str(path))


def spec(method: dict[str, Any]) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "base": "base",
            "output": "out",
            "data": "unused.jsonl",
            "method": method,
            "lora": {"r": 4, "alpha": 8},
            "args": {
                "max_steps": 2,
                "per_device_train_batch_size": 4,
                "per_device_eval_batch_size": 1,
                "learning_rate": 1e-2,
                "eval_steps": 2,
            },
        }
    )


@pytest.mark.parametrize(
    ("method", "trainer", "logged"),
    [
        ({"name": "dpo", "loss_type": "ipo"}, "DPOTrainer", "eval_rewards/accuracies"),
        ({"name": "cpo"}, "CPOTrainer", "eval_nll_loss"),
        ({"name": "simpo", "beta": 2.0}, "CPOTrainer", "eval_nll_loss"),
        ({"name": "alphapo", "alpha": 0.25}, "CPOTrainer", "eval_nll_loss"),
        ({"name": "orpo"}, "ORPOTrainer", "eval_log_odds_ratio"),
        ({"name": "kto"}, "KTOTrainer", "eval_kl"),
    ],
    ids=lambda value: value["name"] if isinstance(value, dict) else None,
)
def test_each_trainer_trains_and_records_its_objective(
    method: dict[str, Any], trainer: str, logged: str, base: ModelSpec, tmp_path: Path
) -> None:
    output = tmp_path / method["name"]
    made: list[EvalkitCallback] = []

    def callback(trainer: Any) -> EvalkitCallback:
        made.append(EvalkitCallback(trainer, [p.__dict__ for p in PAIRS[8:]]))
        return made[-1]

    run = train_model(spec(method), base, output, PAIRS[:8], PAIRS[8:], evaluations=[callback])
    # The callback scores the held-out pairs on the tokens its trainer feeds the model.
    assert made[0].tokens.tokenization == ("legacy" if trainer in ("CPOTrainer", "ORPOTrainer") else "dpo")
    # Its results say which objective the model was scored with, as a suite run's do.
    scored = made[0].evaluations[max(made[0].evaluations)].result.models[-1]
    assert scored.objective is not None and scored.objective.name == method["name"]
    assert run.steps == 2 and any(logged in entry for entry in run.log_history)
    (trl,) = [e for e in run.log_history if "eval_loss" in e]
    (ours,) = [e for e in run.log_history if "eval_evalkit/n" in e]
    if method["name"] == "kto":  # TRL's KTO eval batches of one row: its loss uses each row's own KL point
        assert {"eval_evalkit/trl/kl", "eval_evalkit/objective/auc"} <= set(ours)
        # KTOTrainer reads its rows in order; in TRL's unpaired order its two steps of four would be the eight
        # chosen answers alone, and no step would log a rejected reward. evalkit shuffles them first.
        assert any("rewards/rejected" in e for e in run.log_history if "loss" in e)
    elif method["name"] == "orpo":  # TRL's NLL covers the prompt's tokens too (see evalkit.metrics.objectives.orpo)
        assert "eval_evalkit/objective/accuracy" in ours
    else:  # at an eval batch of one pair, TRL's eval_loss is the mean of per-pair losses
        assert ours["eval_evalkit/objective/loss"] == pytest.approx(trl["eval_loss"], abs=1e-5)
    record = json.loads((output / "evalkit_train.json").read_text())
    assert record["trainer"] == trainer and record["method"]["name"] == method["name"]
    trained = spec(method).method
    assert trained is not None
    assert recorded_objective(str(output)) == with_beta(trained, 0.1)  # a DPO β left unset is DPOConfig's 0.1
    # evalkit.score on the directory reads the record too, as `evalkit bench` does.
    import evalkit

    again = evalkit.score(str(output), PAIRS[8:], name="trained").result.models[-1]
    assert again.objective is not None and again.objective.settings == with_beta(trained, 0.1).model_dump(mode="json")
    adapter = json.loads((output / "adapter_config.json").read_text())
    assert adapter["r"] == 4
    weights = {k: v for k, v in _adapter_weights(output).items() if "lora_B" in k}
    assert any(float(w.abs().max()) > 0 for w in weights.values())  # LoRA B starts at zero: it was trained


def test_kto_trains_on_labelled_completions(base: ModelSpec, tmp_path: Path) -> None:
    examples = unpair(PAIRS[:8])[:-3]  # unbalanced on purpose: 8 desirable, 5 undesirable
    run = train_model(spec({"name": "kto", "undesirable_weight": 1.5}), base, tmp_path / "kto", examples)
    assert run.steps == 2 and any("kl" in entry for entry in run.log_history)
    objective = recorded_objective(str(tmp_path / "kto"))
    assert objective is not None and objective.name == "kto" and objective.undesirable_weight == 1.5  # type: ignore[union-attr]


def _adapter_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_a_trained_model_is_scored_with_the_objective_its_record_states(
    base: ModelSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evalkit score` names no method: the SimPO model's training record says it, so its objective's metrics come."""
    from evalkit.cli import main
    from evalkit.data.pairs import write_pairs

    train_model(spec({"name": "simpo", "beta": 2.0}), base, tmp_path / "simpo", PAIRS[:8])
    write_pairs(PAIRS[8:], tmp_path / "heldout.jsonl")
    capsys.readouterr()
    argv = ["score", "--model", str(tmp_path / "simpo"), "--ref", base.path, "--data", str(tmp_path / "heldout.jsonl")]
    assert main([*argv, "--out", str(tmp_path / "scores.jsonl")]) == 0
    shown = capsys.readouterr().out
    assert "objective/accuracy" in shown and "trl/rewards/margins" in shown
