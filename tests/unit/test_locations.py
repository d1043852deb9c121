"""Paths and hub ids resolved before anything loads: a typo is one line with the nearest names, never Hub retries."""

import time
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.data.locations import check_data_location, check_model_location, is_local_only
from evalkit.errors import EvalkitError


@pytest.fixture()
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`models/aligned` and `models/base` in the working directory; the Hub cache empty."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))  # read once, at import
    for name in ("aligned", "base"):
        (tmp_path / "models" / name).mkdir(parents=True)
    return tmp_path / "models"


def test_a_typo_under_a_directory_here_is_a_missing_directory_with_the_nearest_names(models: Path) -> None:
    # `models/aligend` is shaped like a hub id, but `models` is a directory here: a local typo
    assert is_local_only("models/aligend") and not is_local_only("my-org/aligned")
    with pytest.raises(EvalkitError) as raised:
        check_model_location("models/aligend", None, "models.aligned.path")
    assert str(raised.value) == "models.aligned.path: directory not found: models/aligend; did you mean models/aligned?"
    with pytest.raises(EvalkitError, match=r"^m: directory not found: \./models/xyz$"):
        check_model_location("./models/xyz", None, "m")  # nothing close: no suggestion


def test_offline_a_hub_id_not_in_the_cache_fails_at_once(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(EvalkitError) as raised:
        check_model_location("my-org/my-model", None, "models.candidate.path")
    assert time.monotonic() - started < 1
    assert str(raised.value) == (
        "models.candidate.path: my-org/my-model is no directory here, and not in the Hugging Face cache while "
        "HF_HUB_OFFLINE is set"
    )
    # in the cache (a snapshot with its config), it passes
    snapshot = Path(str(models.parent / "hub")) / "models--my-org--my-model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    check_model_location("my-org/my-model", None, "models.candidate.path")


def test_online_a_hub_id_is_left_to_the_hub(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    check_model_location("my-org/my-model", None, "m")  # no network call here: loading fetches it


def test_a_file_is_not_a_model_and_a_data_typo_gets_the_nearest_file(models: Path) -> None:
    (models.parent / "pairs.jsonl").write_text("{}\n")
    with pytest.raises(EvalkitError, match=r"is a file; expected a model or adapter directory"):
        check_model_location("pairs.jsonl", None, "m")
    with pytest.raises(EvalkitError) as raised:
        check_data_location("./pairs.jsnol", None, "datasets.d.path")
    assert str(raised.value) == "datasets.d.path: file not found: ./pairs.jsnol; did you mean pairs.jsonl?"
    with pytest.raises(EvalkitError) as raised:  # shaped like a hub id, and offline (as every test runs)
        check_data_location("pairs.jsnol", None, "datasets.d.path")
    assert str(raised.value) == (
        "datasets.d.path: pairs.jsnol is no file here, and not in the Hugging Face cache while HF_HUB_OFFLINE is set; "
        "did you mean pairs.jsonl?"
    )


def test_score_with_a_mistyped_model_path_exits_2_before_loading_anything(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (models.parent / "pairs.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    argv = ["score", "--model", "models/basee", "--data", "pairs.jsonl", "--out", "s.jsonl"]
    started = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - started < 10
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line == "evalkit: error: models.policy.path: directory not found: models/basee; did you mean models/base?"
