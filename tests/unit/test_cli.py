import shutil
from pathlib import Path

import pytest

from evalkit import __version__
from evalkit.cli import main


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_bad_suite_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: x\noutput_dir: o\ndatasets: [{name: d, path: d.jsonl}]\nmodels: [{name: m, path: m}]\nbogus: 1\n"
    )
    assert main(["bench", str(suite)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("evalkit: error: ") and str(suite) in line


def test_every_problem_of_a_suite_is_reported_at_once_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: x\noutput_dir: o\ndatasets: []\nmodels: []\nbogus: 1\n")
    assert main(["bench", str(suite)]) == 2
    first, *others = error_lines(capsys)
    assert all(line.startswith("evalkit: error: ") for line in [first, *others])
    keys = [line.removeprefix("evalkit: error: ").removeprefix(f"{suite}: ").split(":")[0] for line in [first, *others]]
    assert sorted(keys) == ["bogus", "datasets", "models"] and all(str(suite) in line for line in [first, *others])
    names = tmp_path / "names.yaml"
    names.write_text(
        "name: x\noutput_dir: o\ndatasets: [{name: d, path: d.jsonl}]\nmodels: [{name: m, path: m}]\n"
        "reference: bsae\n"
        "gate: {rules: [{kind: absolute, model: algined, metric: preference/accuracy, at_least: 0.5}]}\n"
    )
    assert main(["bench", str(names)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 2 and "reference: no model named 'bsae'" in lines[0]
    assert "gate.rules.0.model: no model named 'algined'" in lines[1]


def test_usage_hints_name_the_right_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "(see `evalkit --help`)" in error_lines(capsys)[0]
    assert main(["gate"]) == 2
    assert "(see `evalkit gate --help`)" in error_lines(capsys)[0]


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


def test_exit_codes_tell_a_crash_from_bad_input_and_a_refusal_of_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 passed, 1 a rule failed, 2 bad input or the machine's refusal, 3 a bug (traceback kept, not printed)."""
    import evalkit.cli as cli

    monkeypatch.chdir(tmp_path)

    def crash(*_: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "_report", crash)
    assert main(["report", "results.json"]) == 3
    (line,) = error_lines(capsys)
    assert line.startswith("evalkit: internal error: ZeroDivisionError: division by zero (traceback in ")
    (log,) = (tmp_path / ".evalkit" / "logs").iterdir()
    assert "Traceback (most recent call last)" in log.read_text() and "ZeroDivisionError" in log.read_text()

    def full(*_: object) -> int:
        raise OSError(28, "No space left on device", "reports/default/report.html")

    monkeypatch.setattr(cli, "_report", full)
    assert main(["report", "results.json"]) == 2
    assert error_lines(capsys) == ["evalkit: error: cannot use reports/default/report.html: No space left on device"]


def test_score_columns_are_key_column_pairs_with_the_suite_keys(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", "--model", "m", "--data", "d.jsonl", "--out", "o.jsonl", "--columns"]
    assert main([*argv, "promt"]) == 2
    assert "argument --columns: expected KEY=COLUMN pairs separated by commas" in error_lines(capsys)[0]
    assert main([*argv, "promt=question"]) == 2
    assert error_lines(capsys) == ["evalkit: error: --columns promt: unknown key (did you mean 'prompt'?)"]


def test_score_names_a_bad_value_by_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """The suite keys `evalkit score` builds from its flags are said as the flags the user typed."""
    argv = ["score", "--model", "m", "--data", "d.jsonl", "--out", "o.jsonl"]
    assert main([*argv, "--batch-size", "0", "--max-length", "1"]) == 2
    assert error_lines(capsys) == [
        "evalkit: error: --max-length: Input should be greater than or equal to 2 (got 1)",
        "evalkit: error: --batch-size: Input should be greater than or equal to 1 (got 0)",
    ]
    assert main([*argv, "--method", "simpx"]) == 2
    assert error_lines(capsys) == [
        "evalkit: error: --method name: unknown name 'simpx' (did you mean 'simpo'?); names are "
        "['dpo', 'cpo', 'simpo', 'alphapo', 'orpo', 'kto']"
    ]
    assert main([*argv, "--method", '{"name": "simpo", "gamma": "high"}']) == 2
    assert error_lines(capsys) == [
        "evalkit: error: --method gamma: Input should be a valid number, unable to parse string as a number "
        "(got 'high')"
    ]
    assert main([*argv, "--method", '{"name": "simpo"']) == 2
    assert "argument --method: not JSON" in error_lines(capsys)[0]
    assert main([*argv, "--endpoint", "ftp://x"]) == 2
    assert error_lines(capsys)[0].startswith("evalkit: error: --endpoint: expected an http:// or https:// address")
    assert main([*argv, "--reward-model", "--method", "simpo"]) == 2
    assert error_lines(capsys) == [
        "evalkit: error: --method: a reward model (--reward-model) is scored by its logit, not by an objective"
    ]


class PanicException(BaseException):
    """What a Rust library raises through pyo3 when it panics (the tokenizer on a 100 MB text): not an Exception."""


def test_a_native_library_panic_is_a_crash_and_ctrl_c_is_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A panic is exit 3 (never 1, which CI reads as a failed gate); Ctrl-C is 130; --help still exits 0."""
    import evalkit.cli as cli

    monkeypatch.chdir(tmp_path)

    def panic(*_: object) -> int:
        raise PanicException("called `Result::unwrap()` on an `Err` value")

    monkeypatch.setattr(cli, "_report", panic)
    assert main(["report", "results.json"]) == 3
    (line,) = error_lines(capsys)
    assert line.startswith("evalkit: internal error: PanicException: called `Result::unwrap()`")

    def interrupt(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_report", interrupt)
    assert main(["report", "results.json"]) == 130
    with pytest.raises(SystemExit) as leaving:
        main(["--help"])
    assert leaving.value.code == 0


def test_a_step_summary_that_cannot_be_written_leaves_the_verdict_and_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI's step summary is a courtesy: a directory where the file should be (or a full disk) once turned a pass
    into exit 2 and hid the verdict lines."""
    from evalkit.config.suite import DEFAULT_SUITE

    golden = Path(__file__).parents[1] / "golden"
    shutil.copytree(golden / "pairs", tmp_path / "judged" / "pairs")
    (tmp_path / "summary-is-a-directory").mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary-is-a-directory"))
    argv = ["gate", str(golden / "results.json"), "--suite", str(DEFAULT_SUITE), "--out", str(tmp_path / "judged")]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "pass         aligned beats base" in out and (tmp_path / "judged" / "summary.md").is_file()
    assert err.startswith("evalkit: warning: could not append to the step summary: ")


def test_score_names_its_dataset_after_a_file_name_with_spaces_as_a_plain_name() -> None:
    from evalkit.config.specs import plain_name

    assert plain_name("my pairs", "data", "_") == "my_pairs"
    assert plain_name("données v2", "data", "_") == "donn_es_v2"
    assert plain_name("...", "data", "_") == "data" and plain_name("a" * 80, "data", "_") == "a" * 64
