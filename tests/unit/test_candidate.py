"""`evalkit bench --model`: a suite's datasets, panel and gate, applied to your own checkpoint."""

import json
from pathlib import Path

import pytest

from evalkit.config.suite import DEFAULT_SUITE, load_suite
from evalkit.pipeline.candidate import Candidate


def test_the_default_suite_scores_a_candidate_against_its_reference(capsys: pytest.CaptureFixture[str]) -> None:
    suite = Candidate("my/model", reference="my/base").into(load_suite(DEFAULT_SUITE))
    assert [(m.name, m.path) for m in suite.models] == [("reference", "my/base"), ("candidate", "my/model")]
    assert suite.reference == "reference" and suite.train == []
    assert str(suite.output_dir) == "reports/default-candidate" and suite.world is not None
    assert suite.gate is not None
    # Rules about the trained model and the reference now speak of the candidate and the reference.
    assert [(r.model, r.baseline) for r in suite.gate.rules] == [
        ("candidate", None),
        ("candidate", "reference"),
        ("candidate", None),
        ("candidate", None),
        ("candidate", "reference"),  # keeps the reference's facts: paired on the same documents
        ("candidate", None),  # against the baseline run's candidate, matched by role when the gate runs
    ]


def test_an_adapter_is_scored_against_its_base(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    suite = Candidate(str(tmp_path)).into(load_suite(DEFAULT_SUITE))
    assert [(m.name, m.path) for m in suite.models] == [("reference", "org/base"), ("candidate", str(tmp_path))]


def test_own_data_replaces_the_datasets_and_feeds_the_panel() -> None:
    suite = Candidate("my/model", data="data/heldout.jsonl").into(load_suite(DEFAULT_SUITE))
    assert [(d.name, d.path) for d in suite.datasets] == [("heldout", "data/heldout.jsonl")]
    assert suite.world is None
    assert suite.generation is not None and suite.generation.from_dataset is not None
    # The tiny world's capability tasks go with the world, and so does the rule about them.
    assert suite.capabilities is None
    assert suite.gate is not None and "capability_non_inferiority" not in [r.kind for r in suite.gate.rules]
    assert suite.generation.from_dataset.dataset == "heldout"
    # Without a reference, rules that need one (rewards, comparisons, drift) are left out, with a notice.
    assert suite.gate is not None and [r.kind for r in suite.gate.rules] == ["length_budget", "non_inferiority"]


def test_data_that_is_one_of_the_suite_s_datasets_keeps_its_name_ids_and_subsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a candidate scored on the release's own held-out file pairs with the baseline pair by pair."""
    monkeypatch.chdir(tmp_path)  # the suite's relative paths name files under the working directory
    suite = Candidate("my/model", data=".evalkit/world/pairs/eval.jsonl").into(load_suite(DEFAULT_SUITE))
    (dataset,) = suite.datasets
    assert (dataset.name, dataset.id_column, dataset.subset_column) == ("tinyworld", "id", "subset")
    assert suite.world is not None  # the world still builds that file
    assert suite.generation is not None and suite.generation.from_dataset is not None
    assert suite.generation.from_dataset.dataset == "tinyworld"
