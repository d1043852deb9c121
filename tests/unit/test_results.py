import json
from collections.abc import Callable
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.results.files import atomic_write_text, read_results, write_results
from evalkit.results.schema import SCHEMA_FILE, SCHEMA_VERSION, json_schema

GOLDEN = Path(__file__).parents[1] / "golden"


def test_results_round_trip(tmp_path: Path) -> None:
    result = read_results(GOLDEN / "results.json")
    write_results(result, tmp_path / "results.json")
    assert read_results(tmp_path / "results.json") == result
    assert result.value("tinyworld", "aligned", "rewards/accuracies") is not None
    assert result.value("tinyworld", "base", "rewards/accuracies") is None  # the reference has no rewards


def test_shipped_json_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "run `make schema` after changing results.py"


def test_real_output_validates_against_the_shipped_schema(schema_errors: Callable[..., list[str]]) -> None:
    """results-1.9.json was written by a real run of suites/objectives.yaml at the current schema (five trainers,
    their objectives' metrics, labelled completions with two models' reward AUCs compared, content-blind baselines);
    the golden results.json (1.7, the fixture the reports are rendered from), a default-suite run at 1.8 and the
    file kept from 1.5 show that files of earlier minors validate against the current schema too."""
    schema = json.loads(SCHEMA_FILE.read_text())
    for name, version in (("results-1.5.json", "1.5"), ("results.json", "1.7"), ("results-1.8.json", "1.8")):
        older = json.loads((GOLDEN / name).read_text())
        assert older["schema_version"] == version and schema_errors(older, schema, schema) == []
    raw = json.loads((GOLDEN / "results-1.9.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["comparisons"] and raw["reliability"] and raw["statistics"] and raw["baselines"]
    assert [t["trainer"] for t in raw["trainings"]] == [
        "DPOTrainer",
        "DPOTrainer",
        "CPOTrainer",
        "ORPOTrainer",
        "KTOTrainer",
    ]
    assert {c["test"] for c in raw["comparisons"]} == {"tango_score", "paired_t", "mover_auc"}
    assert any(m["metric"] == "trl/nll_loss" and m["model"] == "orpo" for m in raw["metrics"])
    assert schema_errors(raw, schema, schema) == []
    # The check has teeth: each of these breaks the schema.
    metric, comparison = raw["metrics"][0], raw["comparisons"][0]
    for key, broken, expected in [
        ("metrics", [{**metric, "ci_low": "0.1"}], "$.metrics[0].ci_low: matches no option of anyOf"),
        ("metrics", [{**metric, "extra": 1}], "$.metrics[0]: unexpected key 'extra'"),
        ("metrics", [{k: v for k, v in metric.items() if k != "n"}], "$.metrics[0]: missing 'n'"),
        ("comparisons", [{**comparison, "test": "t-test"}], "$.comparisons[0].test: 't-test' not in"),
        ("statistics", raw["statistics"] | {"confidence_level": 1.5}, "$.statistics: matches no option of anyOf"),
    ]:
        errors = schema_errors(raw | {key: broken}, schema, schema)
        assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_every_metric_states_its_interval_and_direction() -> None:
    raw = json.loads((GOLDEN / "results.json").read_text())
    for metric in raw["metrics"]:
        assert set(metric) == {
            "dataset",
            "subset",
            "model",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "n",
            "higher_is_better",
            "method",
            "se",
            "df",
            "n_effective",
            "skewness",
        }
        assert metric["method"] is not None, metric["metric"]
    for comparison in raw["comparisons"]:
        assert {"value", "ci_low", "ci_high", "n", "p_value", "mde", "higher_is_better"} <= set(comparison)
        assert comparison["method"] in ("tango", "student_t", "cluster_t") and comparison["p_adjusted"] is not None


def test_files_before_1_4_are_migrated_where_they_are_read(tmp_path: Path) -> None:
    """1.3 recorded the bootstrap's settings: dropped on reading; its intervals read with no method."""
    raw = json.loads((GOLDEN / "results.json").read_text())
    raw["schema_version"] = "1.3"
    raw["statistics"] |= {"bootstrap_resamples": 2000, "bootstrap_seed": 0}
    for metric in raw["metrics"]:
        for key in ("method", "se", "df", "n_effective", "skewness"):
            del metric[key]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    result = read_results(path)
    assert result.statistics is not None and result.statistics.confidence_level == 0.95
    assert {m.method for m in result.metrics} == {None}


def test_a_1_7_file_reads_as_1_8_with_what_it_did_not_record(tmp_path: Path) -> None:
    """1.7 knew one trainer (DPOTrainer) and one objective (sigmoid DPO): its training reads as a DPOTrainer run, its
    models with no objective, served block or reward-model flag, and it has no baselines or best-of-N items."""
    raw = json.loads((GOLDEN / "results.json").read_text())  # a real default-suite run at schema 1.7
    assert raw["schema_version"] == "1.7" and "trainer" not in raw["training"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    result = read_results(path)
    assert result.training is not None and result.training.trainer == "DPOTrainer"
    assert {(m.objective, m.served, m.reward_model) for m in result.models} == {(None, None, False)}
    assert result.baselines == [] and result.best_of_n == []
    newer = raw | {"schema_version": "1.8", "training": {**raw["training"], "trainer": "KTOTrainer"}}
    path.write_text(json.dumps(newer))
    training = read_results(path).training
    assert training is not None and training.trainer == "KTOTrainer"


def test_results_of_schema_1_0_still_read(tmp_path: Path) -> None:
    """A 1.0 file has no intervals, comparisons, reliability or statistics: they read as absent."""
    raw = json.loads((GOLDEN / "results.json").read_text())
    for key in ("comparisons", "reliability", "statistics"):
        del raw[key]
    raw["metrics"] = [{k: v for k, v in m.items() if k not in ("ci_low", "ci_high")} for m in raw["metrics"]]
    old = tmp_path / "results.json"
    old.write_text(json.dumps(raw | {"schema_version": "1.0"}))
    result = read_results(old)
    assert result.comparisons == [] and result.reliability == [] and result.statistics is None
    accuracy = result.metric("tinyworld", "aligned", "rewards/accuracies")
    assert accuracy is not None and (accuracy.ci_low, accuracy.ci_high) == (None, None)


def test_lookups() -> None:
    result = read_results(GOLDEN / "results.json")
    accuracy = result.metric("tinyworld", "aligned", "preference/accuracy")
    assert accuracy is not None and accuracy.ci_low is not None and accuracy.ci_low < accuracy.value
    comparison = result.comparison("tinyworld", "aligned", "base", "preference/accuracy")
    assert comparison is not None and comparison.flips is not None
    assert comparison.value == pytest.approx(comparison.model_value - comparison.baseline_value)
    assert result.comparison("tinyworld", "base", "aligned", "preference/accuracy") is None
    assert result.comparison("tinyworld", "aligned", "base", "rewards/margins") is None  # the base has no rewards


def test_unreadable_results_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match="results file not found"):
        read_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops")
    with pytest.raises(EvalkitError, match=r"bad.json:2: invalid JSON"):
        read_results(bad)
    bad.write_text('{"metrics": []}')
    with pytest.raises(EvalkitError, match="not an evalkit results file"):
        read_results(bad)
    raw = json.loads((GOLDEN / "results.json").read_text())
    bad.write_text(json.dumps(raw | {"schema_version": "2.0"}))
    with pytest.raises(EvalkitError, match=r"schema_version '2.0' is not readable .*expected 1.x"):
        read_results(bad)
    del raw["metrics"]
    bad.write_text(json.dumps(raw))
    with pytest.raises(EvalkitError, match=r"bad.json: metrics: Field required"):
        read_results(bad)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("interrupted")

    with pytest.raises(TypeError):
        atomic_write_text(target, Boom())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
