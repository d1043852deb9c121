"""What `evalkit bench` leaves on the terminal: headline values with intervals, one line per rule, the decision last."""

import io
from pathlib import Path

import pytest

from evalkit.console import UNWRAPPED, _width, stdout
from evalkit.gate.terminal import verdict_lines
from evalkit.pipeline.bench import _write_outputs
from evalkit.results.files import read_results
from evalkit.results.schema import GateVerdict

GOLDEN = Path(__file__).parents[1] / "golden"

PASSED = GateVerdict(
    rule="aligned learns the preference",
    kind="absolute",
    passed=True,
    status="passed",
    reason="",
    dataset="tinyworld",
    model="aligned",
    metric="rewards/accuracies",
    value=0.902,
    ci_low=0.856,
    ci_high=0.935,
    threshold=0.6,
    n=225,
)
FAILED = GateVerdict(
    rule="no worse than the last release",
    kind="absolute",
    passed=False,
    status="failed",
    reason="",
    model="aligned",
    metric="loss",
    value=0.371,
    ci_low=0.32,
    ci_high=0.42,
    threshold=0.3,
    n=225,
)


def test_verdict_lines_give_the_headline_then_one_line_per_rule_the_worst_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stdout.print(verdict_lines([PASSED, FAILED]), soft_wrap=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "gate: FAILED: 1 of 2 rules failed",
        "  FAIL         no worse than the last release: DPO loss 0.371 [0.32, 0.42], must be at most 0.300; n = 225 "
        "pairs",
        "  pass         aligned learns the preference: reward acc 0.902 [0.86, 0.94], must be at least 0.600; n = 225 "
        "pairs",
    ]


def test_bench_prints_values_with_intervals_the_rules_and_ends_with_the_verdict_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = read_results(GOLDEN / "results.json").model_copy(update={"gate": [PASSED]})
    _write_outputs(result, tmp_path)
    lines = capsys.readouterr().out.splitlines()
    aligned = next(line for line in lines if "│ aligned" in line)
    # the golden run's aligned model: value, then its interval (two decimals), as the reports write them
    assert "0.916 [0.87, 0.95]" in aligned and "0.902 [0.86, 0.93]" in aligned and "225" in aligned
    assert "gate: PASSED: all 1 rules" in lines
    assert lines[-1] == (
        "aligned beats base on tinyworld: preference accuracy +0.44 [+0.37, +0.52], 110 pairs flipped to right, "
        "10 to wrong; the one judged release rule passes."
    )


def test_off_a_terminal_long_lines_are_not_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe or a file gets a width no log line reaches, so rich never wraps; `COLUMNS` still wins."""
    monkeypatch.delenv("COLUMNS", raising=False)
    assert _width(io.StringIO()) == UNWRAPPED
    monkeypatch.setenv("COLUMNS", "100")
    assert _width(io.StringIO()) is None  # rich reads COLUMNS itself


def test_lm_eval_runs_without_bars_or_git_noise_off_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """lm-eval passes `disable=False` to its bars and runs `git describe` with the terminal as stderr: outside a
    git checkout that printed 'fatal: not a git repository' once per model."""
    pytest.importorskip("lm_eval")
    import lm_eval.evaluator
    from tqdm import tqdm

    from evalkit.capabilities.harness import _quiet

    monkeypatch.chdir(tmp_path)  # no git checkout here
    with _quiet():
        assert lm_eval.evaluator.get_git_commit_hash() is None
        for _ in tqdm(range(3), disable=False, desc="Running loglikelihood requests"):
            pass
    assert capfd.readouterr().err == ""
