"""A user's pairwise judging template, checked when the suite loads: it reads, and has exactly the fields a judge
fills in."""

from __future__ import annotations

import string
from pathlib import Path

FIELDS = frozenset({"instruction", "answer_a", "answer_b"})


def template_problem(source: Path) -> str | None:
    """What is wrong with a judging template file, in one line; None when it reads and has exactly the fields."""
    try:
        text = source.read_text()
    except OSError as exc:
        return f"cannot read the judging template ({exc.strerror})"
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        return f"{exc}; write a literal brace as {{{{ or }}}}"
    if fields != FIELDS:
        return f"the judging template has fields {sorted(fields)}; expected exactly {sorted(FIELDS)}"
    return None
