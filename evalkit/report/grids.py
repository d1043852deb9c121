"""`Table`s (`evalkit.report.views`) as HTML grids: numbers split into value and interval, marks and tips kept."""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.report.tables import Table


@dataclass(frozen=True)
class Cell:
    text: str
    note: str = ""
    """Shown smaller after the text: an interval."""
    css: str = ""
    """`good`, `bad` (a significant change for the better or the worse), `flat`, `l` (left-aligned), `detail`."""
    title: str = ""
    """Tooltip."""


@dataclass(frozen=True)
class Grid:
    """An HTML table; its first `labels` columns are names, the rest numbers. Columns from `key_columns` on
    are details: a phone shows them behind a toggle (0: every column is key)."""

    header: list[str]
    rows: list[list[Cell]]
    labels: int = 1
    key_columns: int = 0


def grid_of(table: Table) -> Grid:
    """`table` as an HTML grid: numeric cells split into value and interval, its marks as classes."""
    labels = len(table.alignment) - len(table.alignment.lstrip("l"))
    rows = []
    for r, row in enumerate(table.rows):
        cells = []
        for i, text in enumerate(row):
            tip = table.tips.get((r, i), "")
            detail = " detail" if table.key_columns and i >= table.key_columns else ""
            if i < labels or table.alignment[i] == "l":
                cells.append(Cell(text, css=("l wrap" if len(text) > 40 else "l") + detail, title=tip))
            else:
                value, _, interval = text.partition(" [")
                css = (table.marks.get((r, i), "") + detail).strip()
                cells.append(Cell(value, f"[{interval}" if interval else "", css=css, title=tip))
        rows.append(cells)
    return Grid(table.header, rows, labels, table.key_columns)
