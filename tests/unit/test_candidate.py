"""`evalkit bench --model`: a suite's datasets, panel and gate, applied to your own checkpoint."""

import json
from pathlib import Path

import pytest

from evalkit.bench import Candidate
from evalkit.config import load_suite

DEFAULT = Path(__file__).parents[2] / "suites" / "default.yaml"


def test_the_default_suite_scores_a_candidate_against_its_reference(capsys: pytest.CaptureFixture[str]) -> None:
    suite = Candidate("my/model", reference="my/base").into(load_suite(DEFAULT))
    assert [(m.name, m.path) for m in suite.models] == [("reference", "my/base"), ("candidate", "my/model")]
    assert suite.reference == "reference" and suite.train is None
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
    suite = Candidate(str(tmp_path)).into(load_suite(DEFAULT))
    assert [(m.name, m.path) for m in suite.models] == [("reference", "org/base"), ("candidate", str(tmp_path))]


def test_own_data_replaces_the_datasets_and_feeds_the_panel() -> None:
    suite = Candidate("my/model", data="data/heldout.jsonl").into(load_suite(DEFAULT))
    assert [(d.name, d.path) for d in suite.datasets] == [("heldout", "data/heldout.jsonl")]
    assert suite.world is None
    assert suite.generation is not None and suite.generation.from_dataset is not None
    # The tiny world's capability tasks go with the world, and so does the rule about them.
    assert suite.capabilities is None
    assert suite.gate is not None and "capability_non_inferiority" not in [r.kind for r in suite.gate.rules]
    assert suite.generation.from_dataset.dataset == "heldout"
    # Without a reference, rules that need one (rewards, comparisons, drift) are left out, with a notice.
    assert suite.gate is not None and [r.kind for r in suite.gate.rules] == ["length_budget", "non_inferiority"]


def test_a_run_never_writes_over_its_own_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.bench import check_outputs
    from evalkit.config import parse_suite
    from evalkit.errors import EvalkitError

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "out" / "pairs" / "d.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text("{}\n")
    (tmp_path / "out" / ".evalkit-output").write_text("")  # an earlier evalkit output directory holds the data
    suite = parse_suite(
        {
            "name": "x",
            "output_dir": "out",
            "datasets": [{"name": "d", "path": str(data)}],
            "models": [{"name": "m", "path": "m"}],
        }
    )
    with pytest.raises(EvalkitError, match=r"output_dir: writing .*d\.jsonl would replace datasets\.d\.path"):
        check_outputs(suite, tmp_path / "out")
    with pytest.raises(EvalkitError, match=r"output_dir: \. is the current directory"):
        check_outputs(suite, Path("."))
    baseline = tmp_path / "release" / "results.json"
    baseline.parent.mkdir()
    baseline.write_text("{}")
    with pytest.raises(EvalkitError, match=r"would replace .*release/results\.json"):
        check_outputs(suite, tmp_path / "release", [baseline])
    check_outputs(suite, tmp_path / "elsewhere", [baseline])  # nothing in the way
    train = {"base": "m", "output": "t", "data": {"path": str(data)}, "heldout": str(data), "eval_fraction": 0.2}
    with pytest.raises(EvalkitError, match=r"train\.heldout: .* is also train\.data\.path"):
        check_outputs(
            parse_suite(
                {
                    **suite.model_dump(mode="json"),
                    "models": [{"name": "m", "path": "m"}, {"name": "t", "path": "t"}],
                    "train": train,
                },
                train_options=False,
            ),
            tmp_path / "elsewhere",
        )


def test_one_run_at_a_time_per_output_directory(tmp_path: Path) -> None:
    from evalkit.bench import output_lock
    from evalkit.errors import EvalkitError

    with output_lock(tmp_path / "out"):
        with (
            pytest.raises(EvalkitError, match=r"another evalkit run is writing to .*out; wait for it"),
            output_lock(tmp_path / "out"),
        ):
            pass
        with output_lock(tmp_path / "other"):  # another directory is free
            pass
    with output_lock(tmp_path / "out"):  # released when the run ends
        pass


def test_a_directory_of_someone_elses_files_is_never_an_output_directory(tmp_path: Path) -> None:
    from evalkit.bench import check_outputs
    from evalkit.config import parse_suite
    from evalkit.errors import EvalkitError

    suite = parse_suite(
        {
            "name": "x",
            "output_dir": "o",
            "datasets": [{"name": "d", "path": "d"}],
            "models": [{"name": "m", "path": "m"}],
        }
    )
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("my own notes")
    with pytest.raises(EvalkitError, match=r"output_dir: .*theirs holds files evalkit did not write"):
        check_outputs(suite, theirs)
    ours = tmp_path / "ours"
    check_outputs(suite, ours)  # new: fine
    ours.mkdir()
    (ours / ".evalkit-output").write_text("")  # as every run leaves it
    (ours / "report.md").write_text("an evalkit report")
    check_outputs(suite, ours)  # carries the marker evalkit left: its files may be replaced


def test_an_output_directory_of_an_older_interrupted_run_is_still_evalkits(tmp_path: Path) -> None:
    from evalkit.bench import check_outputs
    from evalkit.config import parse_suite

    suite = parse_suite(
        {
            "name": "x",
            "output_dir": "o",
            "datasets": [{"name": "d", "path": "d"}],
            "models": [{"name": "m", "path": "m"}],
        }
    )
    older = tmp_path / "older"
    (older / ".scores").mkdir(parents=True)  # scores kept, stopped before results.json
    check_outputs(suite, older)


def test_data_that_is_one_of_the_suite_s_datasets_keeps_its_name_ids_and_subsets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a candidate scored on the release's own held-out file pairs with the baseline pair by pair."""
    monkeypatch.chdir(DEFAULT.parents[1])
    suite = Candidate("my/model", data=".evalkit/world/pairs/eval.jsonl").into(load_suite(DEFAULT))
    (dataset,) = suite.datasets
    assert (dataset.name, dataset.id_column, dataset.subset_column) == ("tinyworld", "id", "subset")
    assert suite.world is not None  # the world still builds that file
    assert suite.generation is not None and suite.generation.from_dataset is not None
    assert suite.generation.from_dataset.dataset == "tinyworld"
