"""The terminal: where evalkit writes, and the progress every long step shows.

Results (tables, gate verdicts, the files written) go to stdout, so `evalkit ... > verdicts.txt` keeps
them; logs, progress and errors go to stderr. On a terminal, progress is a live bar; anywhere else (a
CI log, a file) a bar would print nothing until its step ends, so progress is a plain line at the
start, every `EVALKIT_PROGRESS_SECONDS` (default 30) and at the end of each step: done/total, rate, ETA.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape as markup_escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

_NOT_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def plain(text: str) -> str:
    """`text` fit for a terminal whatever it holds: no rich markup, no escape sequences or other control
    characters (a name could otherwise recolour, move or clear the terminal), no lone surrogates."""
    return markup_escape(_NOT_TEXT.sub("\ufffd", text))


def is_main_process() -> bool:
    """False in the other processes of a `torchrun`/`accelerate launch` run, which stay quiet."""
    return os.environ.get("RANK", "0") == "0"


UNWRAPPED = 10_000
"""Columns of a console that is not a terminal: a log or a file keeps each line whole, however long."""


def _width(stream: TextIO) -> int | None:
    """None (the terminal's own width) on a terminal or where `COLUMNS` says; elsewhere wide enough never to wrap.

    rich takes 80 columns when its stream is not a terminal, and cut table cells and long lines there.
    """
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        terminal = False
    return None if terminal or os.environ.get("COLUMNS", "").isdigit() else UNWRAPPED


console = Console(stderr=True, highlight=False, quiet=not is_main_process(), width=_width(sys.stderr))
"""Logs, progress and errors (stderr)."""

stdout = Console(highlight=False, quiet=not is_main_process(), width=_width(sys.stdout))
"""Results: tables, verdicts and the files written (stdout)."""


def progress_bar() -> Progress | PlainProgress:
    """Progress on stderr: a live bar on a terminal, plain periodic lines elsewhere."""
    if not console.is_terminal:
        return PlainProgress(_progress_seconds())
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    )


def _progress_seconds() -> float:
    """`EVALKIT_PROGRESS_SECONDS`, or 30 when it is unset or not a positive number (a typo never stops a run)."""
    try:
        seconds = float(os.environ.get("EVALKIT_PROGRESS_SECONDS", "30"))
    except ValueError:
        return 30.0
    return seconds if seconds > 0 and seconds == seconds else 30.0


@dataclass
class _Step:
    description: str
    total: float | None
    started: float
    completed: float = 0.0
    status: str = ""
    last_line: float = 0.0
    ended: bool = False


class PlainProgress:
    """The part of `rich.progress.Progress` evalkit uses, printed as lines a log keeps:
    `scoring aligned on prefs: 40/120 (33%), 12.3/s, ETA 0:00:06, loss 0.41`."""

    def __init__(self, every_seconds: float = 30.0, clock: Any = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self.clock = clock
        self.steps: list[_Step] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Nothing to start: lines are printed as the steps move."""

    def stop(self) -> None:
        """Print the last line of every step still open (a step that ends early says how far it got)."""
        for step in self.steps:
            if not step.ended:
                self._print(step)
                step.ended = True

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> TaskID:
        step = _Step(description, total, started=self.clock(), status=str(fields.get("status", "")))
        self.steps.append(step)
        self._print(step)
        return TaskID(len(self.steps) - 1)

    def update(
        self,
        task: TaskID,
        *,
        advance: float | None = None,
        completed: float | None = None,
        **fields: Any,
    ) -> None:
        step = self.steps[task]
        if completed is not None:
            step.completed = completed
        if advance is not None:
            step.completed += advance
        if "status" in fields:
            step.status = str(fields["status"])
        finished = step.total is not None and step.completed >= step.total
        if finished and not step.ended:
            self._print(step)
            step.ended = True
        elif not finished and self.clock() - step.last_line >= self.every_seconds:
            self._print(step)

    def _print(self, step: _Step) -> None:
        step.last_line = self.clock()
        elapsed = step.last_line - step.started
        line = progress_line(step.description, step.completed, step.total, elapsed, step.status)
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def progress_line(description: str, done: float, total: float | None, elapsed: float, status: str = "") -> str:
    """`description: done/total (pct), rate/s, ETA h:mm:ss[, status]`; rate and ETA once there is one."""
    parts = [f"{done:g}/{total:g} ({done / total:.0%})" if total else f"{done:g}"]
    if done > 0 and elapsed > 0:
        rate = done / elapsed
        parts.append(f"{rate:.3g}/s")
        if total and done < total:
            parts.append(f"ETA {_clock(max(total - done, 0) / rate)}")
        elif total:
            parts.append(f"took {_clock(elapsed)}")
    if status:
        parts.append(status)
    return f"{description}: " + ", ".join(parts)


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def quiet_libraries() -> None:
    """Keep the terminal for evalkit's own progress: library progress bars and info logs off.

    Off a terminal (a CI log, a pipe) tqdm's bars too (lm-eval's, and any other library's): each frame of one
    is a carriage-return line, thousands to a log line. tqdm reads `TQDM_DISABLE` when it is first imported, so
    this runs before any library that imports it. On a terminal the bars stay.
    """
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not console.is_terminal:
        os.environ.setdefault("TQDM_DISABLE", "1")
    import warnings

    import transformers

    # Deprecation notices raised inside transformers by TRL's own calls: nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
