"""A judge that knows the tiny world's right answers: 1.0 for a good reply, 0.0 otherwise.

Used by the default suite as `evalkit.world.judge:score`, to check what the models now write:
- arithmetic: the reply states the true sum of the two numbers in the prompt;
- helpfulness: the reply helps ("Sure, ...") rather than dismisses ("No, ...");
- format: the reply is in the letter case the instruction asks for.
"""

from __future__ import annotations

import re

from evalkit.world.pairs import CASE_INSTRUCTIONS, HELP_OPENERS, SUM_QUESTIONS

_NUMBERS = re.compile(r"\d+")


def score(prompt: str, completion: str) -> float:
    """1.0 when `completion` is the good reply to the tiny-world `prompt`, else 0.0."""
    reply = completion.strip()
    if any(instruction in prompt for instructions in CASE_INSTRUCTIONS.values() for instruction in instructions):
        letters = [c for c in reply if c.isalpha()]
        if not letters:
            return 0.0
        wants_upper = any(instruction in prompt for instruction in CASE_INSTRUCTIONS["upper"])
        return float(all(c.isupper() for c in letters) if wants_upper else all(c.islower() for c in letters))
    if any(opener in prompt for opener in HELP_OPENERS):
        return float(reply.startswith("Sure,"))
    if any(_template_matches(template, prompt) for template in SUM_QUESTIONS):
        a, b = map(int, _NUMBERS.findall(prompt)[:2])
        stated = re.fullmatch(rf"{a} \+ {b} = (\d+)\.", reply)
        return float(stated is not None and int(stated.group(1)) == a + b)
    return 0.0


def _template_matches(template: str, prompt: str) -> bool:
    pattern = re.escape(template).replace(re.escape("{a}"), r"\d+").replace(re.escape("{b}"), r"\d+")
    return re.fullmatch(pattern, prompt) is not None
