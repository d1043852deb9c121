"""The gate's verdict in markdown (`summary.md`, a PR comment, `$GITHUB_STEP_SUMMARY`), and `publish`, which
writes it with `junit.xml` after every judged run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from evalkit.gate.junit import write_junit
from evalkit.report import markdown
from evalkit.report import verdicts as verdict_words
from evalkit.report.links import report_url
from evalkit.report.statements import verdict_view
from evalkit.results.files import atomic_write_text
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
    """Write `junit.xml` and `summary.md`; append the summary to `$GITHUB_STEP_SUMMARY` when set.

    `$EVALKIT_REPORT_URL`, when set (e.g. by a CI job, to the uploaded artifact), is linked as the full report."""
    junit, summary = out_dir / "junit.xml", out_dir / "summary.md"
    write_junit(verdicts, junit, result)
    text = summary_markdown(verdicts, result.suite.name, report_url())
    atomic_write_text(summary, text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return [junit, summary]
