"""`evalkit bench` gating a checkpoint on its objective's metrics when only the record beside it names the
objective: evalkit's training record (ORPO) read as the suite loads, TRL's saved config (SimPO, pickles allowed)
read as the run starts, refused in one line before any model is scored."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from transformers import PreTrainedTokenizerFast

from evalkit.cli import main
from evalkit.config.recorded import TRAIN_RECORD
from evalkit.results.files import read_results
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs
from tests.unit.test_trl_objective import save_simpo


def suite_file(tmp_path: Path, model: dict[str, object], metric: str) -> Path:
    rules = [
        {"kind": "absolute", "model": "tuned", "metric": metric, "at_least": 0.5, "judge_on": "value", "min_pairs": 2}
    ]
    suite = {
        "name": "recorded",
        "output_dir": str(tmp_path / "out"),
        "datasets": [{"name": "d", "path": str(tmp_path / "pairs.jsonl")}],
        "models": [{"name": "tuned", **model}],
        "gate": {"rules": rules},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    return path


def test_a_recorded_orpo_checkpoint_is_gated_on_its_log_odds(
    tmp_path: Path, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    torch.manual_seed(1)
    checkpoint = tmp_path / "tuned"
    build_model(tiny_tokenizer, hidden_size=32, num_layers=2).save_pretrained(checkpoint)
    tiny_tokenizer.save_pretrained(checkpoint)
    (checkpoint / TRAIN_RECORD).write_text(json.dumps({"method": {"name": "orpo", "beta": 0.1}}), encoding="utf-8")
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in generate_pairs(2, seed=3)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    code = main(["bench", str(suite_file(tmp_path, {"path": str(checkpoint)}, "trl/log_odds_chosen"))])
    result = read_results(tmp_path / "out" / "results.json")
    assert result.models[0].objective is not None and result.models[0].objective.name == "orpo"
    # TRL's ORPO log-odds ratio of each pair, from its per-token mean log-probs ℓ̄: lo(ℓ̄) = ℓ̄ − log(1 − e^ℓ̄).
    pairs = [json.loads(line) for line in (tmp_path / "out" / "pairs" / "d.jsonl").read_text().splitlines()]
    means = [(p["logp_chosen"] / p["n_tokens_chosen"], p["logp_rejected"] / p["n_tokens_rejected"]) for p in pairs]
    odds = [(c - math.log1p(-math.exp(c))) - (r - math.log1p(-math.exp(r))) for c, r in means]
    assert result.gate is not None
    (verdict,) = result.gate
    assert verdict.value == pytest.approx(sum(odds) / len(odds)) and verdict.n == len(pairs) > 0
    assert verdict.passed == (verdict.value >= 0.5) and code == (0 if verdict.passed else 1)


def test_an_orpo_rule_on_a_trl_simpo_checkpoint_stops_the_run_before_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    checkpoint = save_simpo(tmp_path / "simpo")
    build_model(tiny_tokenizer, hidden_size=32, num_layers=2).save_pretrained(checkpoint)
    tiny_tokenizer.save_pretrained(checkpoint)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    suite = suite_file(tmp_path, {"path": str(checkpoint), "allow_pickle": True}, "trl/log_odds_chosen")
    assert main(["bench", str(suite)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"evalkit: error: {suite}: gate.rules.0.metric: 'trl/log_odds_chosen' is logged by orpo only; "
        "'tuned' is scored with 'simpo'"
    )
    assert not (tmp_path / "out" / "results.json").exists()
