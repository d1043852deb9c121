"""Paths and hub ids resolved before anything loads: a typo is one line with the nearest names, never Hub retries."""

import time
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.data.locations import check_data_location, check_model_location, is_local_only, looks_like_hub_id
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
    with pytest.raises(EvalkitError) as raised:  # a near miss of a data suffix is a file, never a hub id
        check_data_location("pairs.jsnol", None, "datasets.d.path")
    assert str(raised.value) == "datasets.d.path: file not found: pairs.jsnol; did you mean pairs.jsonl?"
    with pytest.raises(EvalkitError) as raised:  # shaped like a hub id, and offline (as every test runs)
        check_data_location("pairs-v2", None, "datasets.d.path")
    assert str(raised.value) == (
        "datasets.d.path: pairs-v2 is no file here, and not in the Hugging Face cache while HF_HUB_OFFLINE is set"
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
    assert line == "evalkit: error: --model: directory not found: models/basee; did you mean models/base?"


def test_a_data_file_with_a_misspelt_or_capitalised_suffix_is_a_file_never_a_hub_id(models: Path) -> None:
    """`pairs.jsnl` is a typo of a file: sent to the Hub it would cost the retries this module exists to spare."""
    Path("pairs.jsonl").write_text("{}\n")
    for typo in ("pairs.jsnl", "pairs.JSONL", "pairs.parqet", "pairs.cvs"):
        assert not looks_like_hub_id(typo) and is_local_only(typo)
    assert looks_like_hub_id("my-org/my-model") and looks_like_hub_id("org/Llama-3.2-1B")
    with pytest.raises(
        EvalkitError, match=r"^datasets\.0\.path: file not found: pairs\.jsnl; did you mean pairs\.jsonl\?$"
    ):
        check_data_location("pairs.jsnl", None, "datasets.0.path")


def test_an_unknown_users_home_is_one_line_not_a_crash(models: Path) -> None:
    with pytest.raises(EvalkitError, match=r"^models\.m\.path: ~no-such-user-x9/ckpt: no such user's home directory$"):
        check_model_location("~no-such-user-x9/ckpt", None, "models.m.path")
    with pytest.raises(EvalkitError, match=r"no such user's home directory$"):
        check_data_location("~no-such-user-x9/pairs.jsonl", None, "datasets.0.path")
