"""`Table`: the one shape every report table takes before a renderer formats it."""

from __future__ import annotations

from dataclasses import dataclass, field

from evalkit.report.markdown import Markdown, escape


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells: escaped when written as markdown, autoescaped in HTML.

    `marks` and `tips` are for renderers that can show them (HTML): a class per cell (`good`, `bad`,
    `flat` for a significant change for the better, the worse, or none) and a tooltip per cell.
    Markdown carries what matters of them in the cells' text.
    """

    header: list[str]
    rows: list[list[str]]
    align: str = ""
    """'l' or 'r' per column; by default the first column left, the others (numbers) right."""
    marks: dict[tuple[int, int], str] = field(default_factory=dict)
    """(row, column) → `good`, `bad` or `flat`."""
    tips: dict[tuple[int, int], str] = field(default_factory=dict)
    """(row, column) → a tooltip."""
    key_columns: int = 0
    """Columns a phone shows; the rest fold behind a toggle. 0: every column is key."""

    @property
    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.header) - 1)

    @property
    def markdown(self) -> Markdown:
        """GitHub-flavoured markdown; numbers (right-aligned cells) never wrap (`unbreakable`)."""
        rule = "|" + "|".join("---" if a == "l" else "---:" for a in self.alignment) + "|"
        lines = ["| " + " | ".join(map(escape, self.header)) + " |", rule]
        for row in self.rows:
            cells = [escape(unbreakable(c) if self.alignment[i : i + 1] != "l" else c) for i, c in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
        return Markdown("\n".join(lines))


NO_BREAK_SPACE = "\u00a0"
MINUS = "\u2212"


def unbreakable(text: str) -> str:
    """`text` with no place a browser may break a line: spaces no-break, hyphens the minus sign.

    GitHub wraps a narrow table cell at any space and after any hyphen, so '+0.44 [+0.37, +0.52]' became
    two lines and '9.9e-21' read '9.9e-' / '21'. U+2212 (the minus sign proper) joins what follows it.
    """
    return text.replace(" ", NO_BREAK_SPACE).replace("-", MINUS)


def as_typed(text: str) -> str:
    """`unbreakable` undone: the text as a reader types it (plain spaces, hyphens), for a terminal and for search."""
    return text.replace(NO_BREAK_SPACE, " ").replace(MINUS, "-")
