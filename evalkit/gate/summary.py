"""The gate's verdict in markdown (`summary.md`, a PR comment, `$GITHUB_STEP_SUMMARY`), and `publish`, which
writes it with `junit.xml` after every judged run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from evalkit.gate.junit import junit_xml
from evalkit.report import markdown
from evalkit.report import verdicts as verdict_words
from evalkit.report.links import report_url
from evalkit.report.statements import verdict_view
from evalkit.results.files import write_texts
from evalkit.results.schema import GateVerdict, RunResult


def summary_markdown(verdicts: Sequence[GateVerdict], title: str, report_link: str | None = None) -> str:
    """A markdown verdict fit for `$GITHUB_STEP_SUMMARY` or a PR comment: the reports' own statement per rule
    (`evalkit.report.statements`); `report_link` (an absolute URL, e.g. of the uploaded artifact) is where the full
    report is, since a relative file means nothing there."""
    lines = [f"## evalkit gate: {markdown.escape(title)}: {verdict_words.headline(verdicts)}", ""]
    view = verdict_view(verdicts)
    if view is not None and view.table is not None:
        lines.append(view.table.markdown)
    if report_link:
        lines += ["", f"Full report: {report_link}"]
    return "\n".join(lines) + "\n"


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
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
