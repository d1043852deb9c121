"""The one error type users see.

Anything raised as `EvalkitError` is the user's to fix (a bad suite, a missing file, a malformed
row). The CLI prints its message on one line and exits 2, without a traceback. Everything else is
a bug in evalkit and keeps its traceback.
"""

from __future__ import annotations


class EvalkitError(Exception):
    """A problem with the user's input, stated as `where: what is wrong; what is expected`."""
