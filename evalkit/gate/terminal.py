"""The gate's verdicts on the terminal: the headline, then one line per rule with the reports' statement (rich
markup shown as text), in plain spaces and hyphens, which a terminal wraps itself and a reader copies as typed."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from evalkit.report import verdicts as verdict_words
from evalkit.report.statements import verdict_view
from evalkit.report.tables import as_typed
from evalkit.results.schema import GateStatus, GateVerdict

COLOURS: dict[GateStatus, str] = {"passed": "green", "failed": "red", "undecidable": "yellow", "skipped": "dim"}
LABEL_WIDTH = max(len(label) for label in verdict_words.LABELS.values())


def verdict_lines(verdicts: Sequence[GateVerdict]) -> Text:
    """`gate: FAILED: 1 of 4 rules failed`, then `  FAIL         <rule>: <statement>` per rule, the worst first.

    Print it with `soft_wrap=True`: a rule is one line in a log, however long its statement.
    """
    text = Text(f"gate: {verdict_words.headline(verdicts)}", style="bold")
    view = verdict_view(verdicts)
    for line in view.rules if view is not None else []:
        text.append("\n  ")
        text.append(line.label.ljust(LABEL_WIDTH), style=COLOURS[line.status])
        text.append(f"  {_printable(line.rule)}: {_printable(as_typed(line.statement))}")
    return text


def _printable(text: str) -> str:
    """Control characters and escape sequences a name could carry, shown as a replacement mark."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)
