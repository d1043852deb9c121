"""The gate's verdicts as a table on the terminal: the reports' statement per rule (rich markup shown as text), in
plain spaces and hyphens, which a terminal wraps itself and a reader copies as typed."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from evalkit.console import plain
from evalkit.report import verdicts as verdict_words
from evalkit.report.statements import verdict_view
from evalkit.report.tables import as_typed
from evalkit.results.schema import GateStatus, GateVerdict


def verdict_table(verdicts: Sequence[GateVerdict]) -> Table:
    table = Table(title=f"evalkit gate: {plain(verdict_words.headline(verdicts))}", title_justify="left")
    for column in ("", "rule", "statement"):
        table.add_column(column)
    colours: dict[GateStatus, str] = {"passed": "green", "failed": "red", "undecidable": "yellow", "skipped": "dim"}
    view = verdict_view(verdicts)
    for line in view.rules if view is not None else []:
        label = f"[{colours[line.status]}]{line.label}[/{colours[line.status]}]"
        table.add_row(label, plain(line.rule), plain(as_typed(line.statement)))
    return table
