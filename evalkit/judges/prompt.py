"""The pairwise judging prompt: the shipped template or the user's file, its fields checked when the suite loads.

Kept apart from the judges themselves so that loading a suite checks a template without importing numpy or an
HTTP client.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from evalkit.data.pairs import Message
from evalkit.errors import EvalkitError

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "pairwise.txt"
FIELDS = frozenset({"instruction", "answer_a", "answer_b"})


@dataclass(frozen=True)
class JudgeTemplate:
    """The judging prompt: one user message with `{instruction}`, `{answer_a}` and `{answer_b}`."""

    text: str
    source: str
    """The file it was read from."""

    def messages(self, instruction: str, answer_a: str, answer_b: str) -> list[Message]:
        content = self.text.format(instruction=instruction, answer_a=answer_a, answer_b=answer_b)
        return [{"role": "user", "content": content}]


def load_template(path: Path | None = None) -> JudgeTemplate:
    """The shipped prompt, or the user's file; its fields are checked now, before any judge runs."""
    source = path if path is not None else DEFAULT_TEMPLATE
    problem = template_problem(source)
    if problem is not None:
        raise EvalkitError(f"{source}: {problem}")
    return JudgeTemplate(source.read_text(), str(source))


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
