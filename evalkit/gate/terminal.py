"""The gate's verdicts as a table on the terminal (rich markup in names and reasons shown as text)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from evalkit.console import plain
from evalkit.report import verdicts as verdict_words
from evalkit.results.schema import GateStatus, GateVerdict


def verdict_table(verdicts: Sequence[GateVerdict]) -> Table:
    table = Table(title=f"evalkit gate: {plain(verdict_words.headline(verdicts))}", title_justify="left")
    for column in ("", "rule", "why"):
        table.add_column(column)
    colours: dict[GateStatus, str] = {"passed": "green", "failed": "red", "undecidable": "yellow", "skipped": "dim"}
    for v in verdict_words.worst_first(verdicts):
        label = f"[{colours[v.status]}]{verdict_words.LABELS[v.status]}[/{colours[v.status]}]"
        table.add_row(label, plain(v.rule), plain(v.reason))
    return table
