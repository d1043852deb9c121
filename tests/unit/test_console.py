"""Progress in a CI log: plain lines at the start, every so often and at the end, never a silent bar."""

from __future__ import annotations

import pytest

from evalkit import console
from evalkit.console import PlainProgress, progress_bar, progress_line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_the_start_every_interval_and_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    with PlainProgress(every_seconds=30, clock=clock) as bar:
        task = bar.add_task("scoring aligned on prefs", total=120, status="")
        for _ in range(12):  # 10 pairs every 5 s: 12/s would be wrong, 2/s is right
            clock.now += 5
            bar.update(task, advance=10)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "scoring aligned on prefs: 0/120 (0%)",
        "scoring aligned on prefs: 60/120 (50%), 2/s, ETA 0:00:30",
        "scoring aligned on prefs: 120/120 (100%), 2/s, took 0:01:00",
    ]


def test_a_step_stopped_early_says_how_far_it_got(capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    bar = PlainProgress(every_seconds=1000, clock=clock)
    task = bar.add_task("DPO training", total=10, status="")
    clock.now += 4
    bar.update(task, completed=2, status="loss 0.693 [x]")
    bar.stop()
    assert capsys.readouterr().err.splitlines()[-1] == "DPO training: 2/10 (20%), 0.5/s, ETA 0:00:16, loss 0.693 [x]"


def test_lines_off_a_terminal_a_bar_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console.console, "_force_terminal", False)
    assert isinstance(progress_bar(), PlainProgress)
    monkeypatch.setattr(console.console, "_force_terminal", True)
    assert not isinstance(progress_bar(), PlainProgress)


def test_a_line_without_a_total_or_a_rate() -> None:
    assert progress_line("pretraining", 0, None, 0.0) == "pretraining: 0"
    assert progress_line("judging", 3, None, 2.0, "ok") == "judging: 3, 1.5/s, ok"


@pytest.mark.parametrize(("value", "seconds"), [("5", 5.0), ("abc", 30.0), ("-1", 30.0), ("nan", 30.0)])
def test_a_bad_progress_interval_never_stops_a_run(monkeypatch: pytest.MonkeyPatch, value: str, seconds: float) -> None:
    monkeypatch.setenv("EVALKIT_PROGRESS_SECONDS", value)
    monkeypatch.setattr(console.console, "_force_terminal", False)
    bar = progress_bar()
    assert isinstance(bar, PlainProgress) and bar.every_seconds == seconds
