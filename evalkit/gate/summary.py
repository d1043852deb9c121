"""The gate's verdict in markdown (`summary.md`, a PR comment, `$GITHUB_STEP_SUMMARY`), and `publish`, which
writes it with `junit.xml` after every judged run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from evalkit.console import console
from evalkit.gate.junit import junit_xml
from evalkit.report import markdown
from evalkit.report import verdicts as verdict_words
from evalkit.report.links import report_url
from evalkit.report.statements import rows_within, verdict_view
from evalkit.results.files import write_texts
from evalkit.results.schema import GateVerdict, RunResult

SUMMARY_BUDGET = 60_000
"""Characters of `summary.md` at most: GitHub takes 65,536 in a PR comment (and 1 MiB in a step summary)."""


def summary_markdown(verdicts: Sequence[GateVerdict], title: str, report_link: str | None = None) -> str:
    """A markdown verdict fit for `$GITHUB_STEP_SUMMARY` or a PR comment: the reports' own statement per rule
    (`evalkit.report.statements`); `report_link` (an absolute URL, e.g. of the uploaded artifact) is where the full
    report is, since a relative file means nothing there. Rules that would take it past `SUMMARY_BUDGET` characters
    (the worst come first) are left to the full report."""
    head = [f"## evalkit gate: {markdown.escape(title)}: {verdict_words.headline(verdicts)}", ""]
    tail = ["", f"Full report: {report_link}"] if report_link else []
    view = verdict_view(verdicts)
    table = view.table.markdown.split("\n") if view is not None and view.table is not None else []
    room = SUMMARY_BUDGET - sum(len(line) + 1 for line in head + tail + table[:2]) - 200  # 200: the note below
    rows = table[2 : 2 + rows_within(table[2:], room)]
    lines = head + table[:2] + rows
    if len(rows) < len(table) - 2:
        lines += ["", f"Only the first {len(rows)} of {len(verdicts)} rules are shown here: full text in report.html."]
    return "\n".join(lines + tail) + "\n"


def publish(verdicts: Sequence[GateVerdict], out_dir: Path, result: RunResult) -> list[Path]:
    """Write `junit.xml` and `summary.md` (`gate_outputs`); append the summary to `$GITHUB_STEP_SUMMARY` when set."""
    outputs = gate_outputs(verdicts, result)
    written = write_texts(out_dir, outputs)
    append_step_summary(outputs["summary.md"])
    return written


def gate_outputs(verdicts: Sequence[GateVerdict], result: RunResult) -> dict[str, str]:
    """`junit.xml` and `summary.md`, rendered: every output is rendered before any is written, so a run that fails
    to render one leaves none of them.

    `$EVALKIT_REPORT_URL`, when set (e.g. by a CI job, to the uploaded artifact), is linked as the full report."""
    return {
        "junit.xml": junit_xml(verdicts, result),
        "summary.md": summary_markdown(verdicts, result.suite.name, report_url()),
    }


def append_step_summary(text: str) -> None:
    """Add the summary to `$GITHUB_STEP_SUMMARY`, the job's page on GitHub, when the job sets it."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not step_summary:
        return
    try:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as error:  # a courtesy: the verdict and its exit code stand without it
        console.print(f"evalkit: warning: could not append to the step summary: {error.strerror or error}")
