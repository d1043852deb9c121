from pathlib import Path

import pytest

from evalkit import __version__
from evalkit.cli import main


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_bad_suite_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: x\noutput_dir: o\ndatasets: []\nmodels: []\nbogus: 1\n")
    assert main(["bench", str(suite)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("evalkit: error: ") and str(suite) in line


def test_missing_model_directory_is_reported_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    suite = tmp_path / "s.yaml"
    suite.write_text(
        f"name: x\noutput_dir: {tmp_path}/o\ndatasets: [{{name: d, path: {data}}}]\n"
        f"models: [{{name: m, path: {tmp_path}/nowhere}}]\n"
    )
    assert main(["bench", str(suite)]) == 2
    (line,) = error_lines(capsys)
    assert "models.m.path: directory not found" in line
    assert not (tmp_path / "o").exists()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "usage:" in error_lines(capsys)[0]
    assert main(["report"]) == 2


def test_report_of_a_missing_results_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "results.json")]) == 2
    assert "results file not found" in error_lines(capsys)[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and __version__ in capsys.readouterr().out
