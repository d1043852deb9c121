"""Untrusted text in every markdown output stays text: no image, link, mention, HTML or forged row."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from evalkit.gate.summary import summary_markdown
from evalkit.report.compare import compare_runs, render_comparison_markdown
from evalkit.report.document import render_markdown
from evalkit.report.jinja import _finalize
from evalkit.report.markdown import ZERO_WIDTH, code, escape
from evalkit.results.files import read_results
from evalkit.results.schema import GateVerdict, RunResult

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"
HOSTILE = (
    "x ![pixel](https://evil.example/p.png) [click](https://evil.example) <img src=x onerror=alert(1)> "
    "@acme/security ping www.evil.example `code` | forged |\r| row | two |\n[ref]: https://evil.example "
    "https://evil.example/plain mail@evil.example \x1b[31m see #123, acme/repo#9 and GH-77 or gh-78 \u202egnp.exe"
)


BIDI = r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def live_markdown(text: str) -> list[str]:
    """What GitHub would turn into something live: images, links, autolinks, mentions, HTML tags, raw control bytes.
    Code spans are inert: nothing inside one is rendered."""
    found = ["bidi control"] if re.search(BIDI, text) else []  # reorders what a reader sees, code spans included
    text = re.sub(r"(?<!\\)(`+)(?!`).+?(?<!`)\1(?!`)", "", text)
    patterns = {
        "image or link": r"(?<!\\)\]\(",
        "reference definition": r"(?<!\\)\]:",
        "html": r"<[a-zA-Z/!]",
        "autolink": r"(?i)(https?|ftp)://|www\.",  # anywhere: GitHub links `_https://…` too
        "mention": r"@[\w.+-]",
        "issue reference": r"(?i)#\d|\bgh-\d",  # `#123`, `owner/repo#9`, `GH-77`: linked, and back-referenced
        "control": r"[\x00-\x08\x0b-\x1f\x7f]",
    }
    for name, pattern in patterns.items():
        if re.search(pattern, text):
            found.append(name)
    return found


def hostile_run() -> RunResult:
    result = read_results(GOLDEN)
    models = [m.model_copy(update={"name": HOSTILE + m.name, "path": f"/models/`{m.name}`"}) for m in result.models]
    names = {m.name: HOSTILE + m.name for m in result.models}
    metrics = [m.model_copy(update={"model": names[m.model], "dataset": HOSTILE}) for m in result.metrics]
    suite = result.suite.model_copy(update={"name": HOSTILE, "description": HOSTILE})
    environment = result.environment.model_copy(update={"device": HOSTILE, "git_sha": HOSTILE})
    verdict = GateVerdict(rule=HOSTILE, kind="absolute", passed=False, status="failed", reason=HOSTILE, model=HOSTILE)
    return result.model_copy(
        update={
            "models": models,
            "metrics": metrics,
            "suite": suite,
            "environment": environment,
            "created_at": HOSTILE,
            "gate": [verdict],
            "reference": names[result.reference or "base"],
        }
    )


def test_the_report_summary_and_comparison_carry_no_live_markdown_from_the_data() -> None:
    run = hostile_run()
    for name, text in {
        "report.md": render_markdown(run),
        "summary.md": summary_markdown(run.gate or [], run.suite.name),
        "compare.md": render_comparison_markdown(compare_runs(read_results(GOLDEN), run)),
    }.items():
        # evalkit's own markup (details blocks, the report.html link) is left aside; everything else is data.
        own = re.sub(r"</?(details|summary)>|\[report\.html\]\(report\.html\)", "", text)
        assert live_markdown(own) == [], name
        assert "| row | two |" not in text, name  # no row forged by a carriage return
        assert "pixel" in text and "acme/security" in text and "gnp.exe" in text, name  # shown, not dropped


def test_escaping_by_hand() -> None:
    assert escape("a|b") == "a\\|b" and escape("x\r\ny\rz") == "x y z"
    assert escape("[t](u)") == "[t]\\(u)" and escape("![i](s)") == "![i]\\(s)" and escape("[r]: u") == "[r]\\: u"
    assert escape("@team") == f"@{ZERO_WIDTH}team" and escape("see https://x") == f"see https{ZERO_WIDTH}://x"
    assert escape("<b>&") == "&lt;b&gt;&amp;" and escape("`x`") == "\\`x\\`" and escape("\x1b") == "\ufffd"
    assert escape("0.916 [0.87, 0.95]") == "0.916 [0.87, 0.95]"  # evalkit's own intervals read as they are
    assert escape("_https://x") == f"_https{ZERO_WIDTH}://x" and escape("x_www.e") == f"x_www{ZERO_WIDTH}.e"
    assert escape("a@-evil.com") == f"a@{ZERO_WIDTH}-evil.com" and escape("data.jsonl") == "data.jsonl"
    assert escape("#12 o/r#3 GH-4") == f"#{ZERO_WIDTH}12 o/r#{ZERO_WIDTH}3 GH-{ZERO_WIDTH}4" and escape("#x") == "#x"
    assert escape("a\u202eb\u2066c") == "abc" and code("a\u202eb") == "`ab`"
    assert code("a`b") == "``a`b``" and code("`") == "`` ` ``" and code("p|q") == "`p\\|q`"


@given(st.text(max_size=80))
def test_no_text_escapes_into_live_markdown(text: str) -> None:
    escaped = escape(text)
    assert live_markdown(escaped) == [] and "\n" not in escaped and "\r" not in escaped
    # The templates' finalize escapes plain text once and passes evalkit's own markdown through untouched.
    assert _finalize(text) == escaped and _finalize(escaped) == escaped


def test_summary_and_report_stay_under_githubs_limits_with_the_full_text_in_the_html() -> None:
    from evalkit.report.html import render_html

    name = "n" * 200_000 + "-tail"
    run = hostile_run()
    verdicts = [
        GateVerdict(rule=f"{name}{i}", kind="absolute", passed=False, status="failed", reason=name, model=name)
        for i in range(300)
    ]
    run = run.model_copy(update={"suite": run.suite.model_copy(update={"name": name}), "gate": verdicts})
    summary = summary_markdown(verdicts, name)
    assert len(summary) < 65_536 and len(summary.encode()) < 2**20
    assert "full text in report.html" in summary and "300 rules" in summary
    assert len(render_markdown(run)) < 65_536
    assert name in render_html(run)


def test_rows_within_counts_the_leading_rows_that_fit_a_budget_newlines_included() -> None:
    from evalkit.report.statements import rows_within

    rows = ["aaa", "bb", "c"]  # 4, 3 and 2 characters with their newlines
    assert [rows_within(rows, room) for room in (0, 3, 4, 6, 7, 8, 9, 100)] == [0, 0, 1, 1, 2, 2, 3, 3]
