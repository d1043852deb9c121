"""The shipped `suites/reward-models.yaml`, end to end offline: the default suite trains the DPO policy, then this
suite trains a classifier reward model with RewardTrainer and compares the two on the same held-out pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.report.statements import verdict_sentence
from evalkit.results.files import read_results
from evalkit.results.pairs import read_pair_scores

SUITE = Path(__file__).parents[2] / "suites" / "reward-models.yaml"


@pytest.mark.slow
def test_reward_model_suite_trains_and_compares_with_the_dpo_policy(
    default_suite: Path, reduced: list[str], tmp_path: Path
) -> None:
    quick = ["--set", "generation=null", "--set", "capabilities=null"]  # only the DPO policy is needed of it
    assert main(["bench", str(default_suite), *reduced, *quick]) == 0
    text = SUITE.read_text().replace(".evalkit/world", str(tmp_path / "world"))
    text = text.replace("reports/default", str(tmp_path / "out")).replace("reports/reward-models", str(tmp_path / "rm"))
    suite = tmp_path / "reward-models.yaml"
    suite.write_text(text)
    assert main(["bench", str(suite), *reduced]) == 0

    result = read_results(tmp_path / "rm" / "results.json")
    assert result.training is not None and result.training.trainer == "RewardTrainer" and result.training.steps > 0
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
    report = (tmp_path / "rm" / "report.md").read_text()
    assert "reward model steps" in report
    sentence = verdict_sentence(result)  # the classifier against the policy, pair by pair, in the run's last line
    assert "; rm " in sentence and "aligned on tinyworld: reward accuracy" in sentence
