"""The pairwise judging prompt: the shipped template or the user's file (its fields are checked when the suite loads,
by `evalkit.config.judge_template`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalkit.config.judge_template import template_problem
from evalkit.data.pairs import Message
from evalkit.errors import EvalkitError

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "pairwise.txt"


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
