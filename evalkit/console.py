"""The terminal: one rich console and the progress bar every long step uses."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def is_main_process() -> bool:
    """False in the other processes of a `torchrun`/`accelerate launch` run, which stay quiet."""
    return os.environ.get("RANK", "0") == "0"


console = Console(stderr=True, highlight=False, quiet=not is_main_process())


def progress_bar() -> Progress:
    """A progress bar on stderr; it hides itself when stderr is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    )
