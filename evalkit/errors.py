"""The one error type users see.

Anything raised as `EvalkitError` is the user's to fix (a bad suite, a missing file, a malformed
row). The CLI prints its message on one line and exits 2, without a traceback. Everything else is
a bug in evalkit and keeps its traceback.
"""

from __future__ import annotations


class EvalkitError(Exception):
    """A problem with the user's input, stated as `where: what is wrong; what is expected`."""


def first_line(error: BaseException | None) -> str:
    """What a library's exception says, on one line for an `EvalkitError`; its type where it says nothing."""
    text = str(error).strip() if error is not None else ""
    return text.splitlines()[0] if text else type(error).__name__
