"""The shipped `suites/reward-models.yaml`, end to end offline and on its own: it trains the DPO policy, then a
classifier reward model with RewardTrainer, and compares the two on the same held-out pairs and on best-of-4 items."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.report.statements import verdict_sentence
from evalkit.results.files import read_results
from evalkit.results.pairs import read_pair_scores

SUITE = Path(__file__).parents[2] / "suites" / "reward-models.yaml"


REDUCED = [
    *("--set", "world.pairs_per_subset=16", "--set", "world.pretrain_steps=60"),
    *("--set", "train.0.args.num_train_epochs=1", "--set", "train.1.args.num_train_epochs=1"),
    *("--set", "gate=null"),  # models trained this little are not meant to pass it
]


@pytest.mark.slow
def test_reward_model_suite_trains_both_models_and_compares_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # what the run keeps relative to the working directory stays here
    text = SUITE.read_text().replace(".evalkit/world", str(tmp_path / "world"))
    suite = tmp_path / "reward-models.yaml"
    suite.write_text(text.replace("reports/reward-models", str(tmp_path / "rm")))
    assert main(["bench", str(suite), *REDUCED]) == 0

    result = read_results(tmp_path / "rm" / "results.json")
    assert result.training is None  # two runs: listed in order
    assert [(t.model, t.trainer) for t in result.trainings] == [("aligned", "DPOTrainer"), ("rm", "RewardTrainer")]
    assert all(t.steps > 0 for t in result.trainings)
    assert {m.name: m.role for m in result.models} == {"base": "reference", "aligned": None, "rm": "candidate"}
    kinds = {m.name: m.reward_model for m in result.models}
    assert kinds == {"base": False, "aligned": False, "rm": True}
    rm = {m.metric: m for m in result.metrics if m.model == "rm" and m.subset == "all"}
    assert {"rewards/accuracies", "rewards/ties", "rewards/margins", "loss"} <= rm.keys()
    assert not [name for name in rm if name.startswith("preference/")]
    paired = {c.metric: c for c in result.comparisons if c.model == "rm" and c.subset == "all"}
    assert paired["rewards/accuracies"].baseline == "aligned" and paired["rewards/accuracies"].test == "tango_score"
    assert paired["rewards/accuracies"].flips is not None
    rows = [r for r in read_pair_scores(tmp_path / "rm" / "pairs" / "tinyworld.jsonl") if r.model == "rm"]
    assert rows and all(r.is_reward_model and r.ref_logp_chosen is None for r in rows)
    # the same models on RewardBench 2-shaped best-of-4 items the world wrote: each scored per subset and overall,
    # against each other item by item, beside the length baselines
    scores = {(m.model, m.subset) for m in result.best_of_n if m.dataset == "rewardbench-2-standin"}
    assert {("aligned", "all"), ("rm", "all"), ("aligned", "Ties"), ("rm", "Math")} <= scores
    assert any(c.model == "rm" and c.baseline == "aligned" for c in result.best_of_n_comparisons)
    assert {b.baseline for b in result.baselines if b.dataset == "rewardbench-2-standin"} >= {"longer_tokens"}
    report = (tmp_path / "rm" / "report.md").read_text()
    assert "`aligned`: " in report and " DPO steps" in report and "reward model steps" in report
    sentence = verdict_sentence(result)  # the classifier against the policy, pair by pair, in the run's last line
    assert "; rm " in sentence and "aligned on tinyworld: reward accuracy" in sentence
