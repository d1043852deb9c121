"""Where the full report can be opened from a PR comment or a CI step summary, when CI says so."""

from __future__ import annotations

import os
import re

REPORT_URL = "EVALKIT_REPORT_URL"
"""Set by `--report-url`, or by a CI job to the uploaded artifact's address."""


def report_url() -> str | None:
    """The full report's address: an https URL with nothing that could break out of a markdown link, else None
    (a relative `report.html` means nothing in a comment, and an untrusted value must stay inert)."""
    target = os.environ.get(REPORT_URL, "").strip()
    if target.startswith("https://") and not re.search(r"[\s()<>\[\]`|\\]", target):
        return target
    return None
