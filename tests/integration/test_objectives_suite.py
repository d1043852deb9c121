"""The shipped `suites/objectives.yaml`, end to end offline and shrunk: five runs (DPO, IPO, SimPO, ORPO, KTO) in
order, each through its own TRL trainer, sharing one hold-out that every model is then scored on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.results.files import read_results

SUITE = Path(__file__).parents[2] / "suites" / "objectives.yaml"
RUNS = ["dpo", "ipo", "simpo", "orpo", "kto"]
REDUCED = [
    *("--set", "world.pairs_per_subset=16", "--set", "world.pretrain_steps=60", "--set", "gate=null"),
    *(arg for i in range(len(RUNS)) for arg in ("--set", f"train.{i}.args.max_steps=2")),
]


@pytest.mark.slow
def test_objectives_suite_trains_five_objectives_on_one_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = SUITE.read_text().replace(".evalkit/world", str(tmp_path / "world"))
    suite = tmp_path / "objectives.yaml"
    suite.write_text(text.replace("reports/objectives", str(tmp_path / "out")))
    assert main(["bench", str(suite), *REDUCED]) == 0

    result = read_results(tmp_path / "out" / "results.json")
    trainers = ["DPOTrainer", "DPOTrainer", "CPOTrainer", "ORPOTrainer", "KTOTrainer"]
    assert [(t.model, t.trainer, t.steps) for t in result.trainings] == [
        (r, t, 2) for r, t in zip(RUNS, trainers, strict=True)
    ]
    objectives = {m.name: m.objective.name if m.objective else None for m in result.models}
    assert objectives == {"base": None, "dpo": "dpo", "ipo": "dpo", "simpo": "simpo", "orpo": "orpo", "kto": "kto"}
    # SimPO's and ORPO's pairs are tokenized as CPOTrainer and ORPOTrainer tokenize them; the others as DPOTrainer.
    tokenization = {a.model: a.tokenization for a in result.audit if a.dataset == "heldout"}
    assert tokenization == {
        "base": "dpo",
        "dpo": "dpo",
        "ipo": "dpo",
        "simpo": "legacy",
        "orpo": "legacy",
        "kto": "dpo",
    }
    # One hold-out: every run held out the same pairs, and every model is scored on all of them.
    dataset, unpaired = result.datasets
    heldout = [json.loads(line)["id"] for line in (tmp_path / "out" / "heldout.jsonl").read_text().splitlines()]
    assert dataset.n_pairs == len(heldout) > 0
    # The same hold-out unpaired: every answer a labelled completion, every model with rewards has its AUC.
    assert (unpaired.name, unpaired.format, unpaired.n_pairs) == ("heldout-unpaired", "unpaired", 2 * len(heldout))
    for run in RUNS:
        auc = result.metric("heldout-unpaired", run, "objective/auc")
        assert auc is not None and (auc.n_positive, auc.n_negative) == (len(heldout), len(heldout))
    # Every two runs compared on the reward AUC, whatever their objectives (scale-free); the base has no rewards.
    compared = {
        (c.model, c.baseline) for c in result.comparisons if (c.dataset, c.subset) == ("heldout-unpaired", "all")
    }
    assert compared == {(later, earlier) for i, later in enumerate(RUNS) for earlier in RUNS[:i]}
    for run in RUNS:
        record = json.loads((tmp_path / "out" / "models" / run / "evalkit_train.json").read_text())
        assert record["train"]["heldout"] == str(tmp_path / "out" / "heldout.jsonl")
        assert result.value("heldout", run, "preference/accuracy") is not None
        assert result.value("heldout", run, "rewards/accuracies") is not None
    assert result.models[-1].role == "candidate"  # the last run's output
    report = (tmp_path / "out" / "report.md").read_text()
    assert all(f"`{run}`: 2 " in report for run in RUNS)
