import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.config.suite import DEFAULT_SUITE
from evalkit.report.document import render_markdown, summary_table, write_reports
from evalkit.report.tables import as_typed
from evalkit.report.views import MAX_IDS, read_pairs
from evalkit.results.estimates import Flips
from evalkit.results.files import read_results
from evalkit.results.schema import GateVerdict, RunResult

GOLDEN = Path(__file__).parents[1] / "golden"


def golden() -> RunResult:
    return read_results(GOLDEN / "results.json")


def test_markdown_report_matches_the_golden_file() -> None:
    rendered = render_markdown(golden())
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "report.md").write_text(rendered)
    assert rendered == (GOLDEN / "report.md").read_text(), "rerun with UPDATE_GOLDEN=1 and review the diff"


def test_report_shows_numbers_with_intervals_and_marks_missing_ones() -> None:
    text = as_typed(render_markdown(golden()))
    assert "| aligned | 0.916 [0.87, 0.95] | 0.902 [0.86, 0.93] |" in text
    assert "| base | 0.471 [0.41, 0.54] | — |" in text  # the reference: no reward columns
    assert "### tinyworld: by subset" in text
    assert "In brackets: 95% intervals: Wilson for shares, Student t for means, Tango's score interval" in text
    assert "| helpfulness | aligned | 1.000 [0.95, 1.00] |" in text
    assert "| 0.013 [0.010, 0.015] |" in text  # more decimals where two would not tell the ends apart


def test_report_shows_aligned_vs_base_with_p_values_and_flips() -> None:
    text = as_typed(render_markdown(golden()))
    assert "### tinyworld: aligned vs base (225 pairs both scored)" in text
    header = (
        "| metric | Δ [95% CI] | p | verdict | base | aligned | p (BH) | Wilcoxon p | wrong→right | right→wrong | MDE |"
    )
    assert header in text
    row = (
        "| pref. acc ↑ | +0.444 [+0.37, +0.52] | 6.9e-20 | ▲ better | 0.471 | 0.916 | 2.1e-19 | — | 110 | 10 | 0.136 |"
    )
    assert row in text
    assert "<details><summary>Flipped pairs, aligned vs base</summary>" in text
    assert "pref. acc, right→wrong (10): format-0014, format-0052, format-0072, format-0088, format-0157" in text
    assert "… and 60 more (all in results.json)" in text  # 110 wrong→right, 50 listed
    for section in ("length", "calibration", "rewards and likelihood displacement"):
        assert f"### tinyworld: {section}" in text


def test_strings_from_results_are_escaped() -> None:
    result = golden()
    metrics = [m.model_copy(update={"model": "a|b<script>"}) if m.model == "aligned" else m for m in result.metrics]
    comparisons = [
        c.model_copy(
            update={
                "model": "a|b<script>",
                "subset": "s|<b>" if c.subset != "all" else "all",
                "flips": Flips(
                    wrong_to_right=1, right_to_wrong=0, wrong_to_right_ids=["id|<img>"], right_to_wrong_ids=[]
                ),
            }
        )
        for c in result.comparisons
    ]
    text = render_markdown(result.model_copy(update={"metrics": metrics, "comparisons": comparisons}))
    assert "a\\|b&lt;script&gt;" in text and "<script>" not in text
    assert "s\\|&lt;b&gt;" in text and "<b>" not in text
    assert "id\\|&lt;img&gt;" in text and "<img>" not in text


def test_long_flip_lists_are_truncated() -> None:
    result = golden()
    ids = [f"p{i}" for i in range(MAX_IDS + 3)]
    flips = Flips(wrong_to_right=len(ids), right_to_wrong=0, wrong_to_right_ids=ids, right_to_wrong_ids=[])
    comparisons = [c.model_copy(update={"flips": flips}) if c.flips else c for c in result.comparisons]
    text = render_markdown(result.model_copy(update={"comparisons": comparisons}))
    assert f"p{MAX_IDS - 1} … and 3 more (all in results.json)" in text and f"p{MAX_IDS}," not in text


def test_results_of_schema_1_0_render_without_intervals() -> None:
    result = golden()
    old = result.model_copy(
        update={
            "schema_version": "1.0",
            "statistics": None,
            "comparisons": [],
            "reliability": [],
            "generation": None,
            "metrics": [m.model_copy(update={"ci_low": None, "ci_high": None}) for m in result.metrics],
        }
    )
    text = render_markdown(old)
    assert "No intervals: these results predate them (results schema 1.0)." in text
    assert "| aligned | 0.916 | 0.902 | 0.000 | 1.849 | 0.371 | 225 |" in text
    assert " vs " not in text and "<details>" not in text


def test_generation_section_shows_judges_drift_and_samples_side_by_side() -> None:
    text = as_typed(render_markdown(golden()))
    assert "## Generation" in text and "Greedy decoding of up to 24 new tokens on 32 prompts" in text
    assert (
        "| correct | aligned | 0.969 [0.84, 0.99] | 0.719 [0.63, 0.80] | 14 / 18 / 0 | +0.438 [+0.26, +0.62] |" in text
    )
    assert "| aligned | base | 2.836 [1.86, 3.81] | 4 | 32 | 23% |" in text
    assert "this is a lower bound on the KL of whole answers" in text
    assert "**arithmetic-0046**: What is 0 plus 7?" in text
    assert "| base | 0 + 7 = 6. | 0.000 |" in text and "| aligned | 0 + 7 = 7. | 1.000 |" in text
    assert "<details><summary>27 more prompts</summary>" in text


def test_terminal_table_has_a_row_per_model() -> None:
    table = summary_table(golden())
    assert table.row_count == 2


def test_reporting_and_comparing_never_import_torch(tmp_path: Path) -> None:
    results = str(GOLDEN / "results.json")
    code = (
        "import sys; from evalkit.cli import main; "
        f"assert main(['report', {results!r}, '--out', {str(tmp_path)!r}]) == 0; "
        f"assert main(['compare', {results!r}, {results!r}, '--out', {str(tmp_path)!r}]) == 0; "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    for name in ("report.md", "report.html", "compare.md", "compare.html"):
        assert (tmp_path / name).is_file()


def test_gating_with_a_suite_never_imports_torch_trl_or_peft(tmp_path: Path) -> None:
    """`gate --suite` reads the suite for its rules only: the training options' check against TRL and PEFT
    (and their seconds of imports) is for commands that train."""
    results = tmp_path / "results.json"
    results.write_text((GOLDEN / "results.json").read_text())
    suite = DEFAULT_SUITE
    code = (
        "import sys; from evalkit.cli import main; "
        f"main(['gate', {str(results)!r}, '--suite', {str(suite)!r}]); "
        "imported = [m for m in ('torch', 'trl', 'peft') if m in sys.modules]; assert not imported, imported"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "junit.xml").is_file()


def verdicts() -> list[GateVerdict]:
    return [
        GateVerdict(rule="beats base", kind="superiority", passed=True, status="passed", reason="Δ +0.44, p = 2e-22"),
        GateVerdict(
            rule="format|<b>",
            kind="absolute",
            passed=False,
            status="failed",
            reason="pref. acc 0.7467 < 0.8 <img>",
            dataset="tinyworld",
            subset="format",
            model="aligned",
            metric="preference/accuracy",
            value=0.747,
            ci_low=0.64,
            ci_high=0.83,
            threshold=0.8,
            n=75,
        ),
    ]


def test_markdown_leads_with_the_gate_verdict_failed_rules_first() -> None:
    text = render_markdown(golden().model_copy(update={"gate": verdicts()}))
    head = text.split("## tinyworld")[0]
    assert "**Gate: FAILED: 1 of 2 rules failed**." in head
    failed, passed = head.index("❌ FAIL"), head.index("✅ pass")
    assert failed < passed
    # one statement per rule: value, what it had to be, n (the rule's reason only where it was not judged)
    statement = "pref. acc 0.747 [0.64, 0.83], must be at least 0.800; n = 75 pairs"
    assert f"| ❌ FAIL | format\\|&lt;b&gt; | tinyworld · format · aligned | {statement} |" in as_typed(head)
    assert "0.7467" not in head  # the reason's own figures are not stated a second time
    sentence = (
        "**Verdict:** aligned beats base on tinyworld: preference accuracy +0.44 [+0.37, +0.52], 110 pairs flipped "
        "to right, 10 to wrong; 1 of 2 release rules fail (format\\|&lt;b&gt;)."
    )
    assert sentence in head and head.index(sentence) < head.index("**Gate:")
    assert "[report.html](report.html)" in head


def test_markdown_says_when_the_gate_passed_and_nothing_when_no_gate_ran() -> None:
    passed = [v.model_copy(update={"passed": True, "status": "passed"}) for v in verdicts()]
    assert "**Gate: PASSED: all 2 rules**." in render_markdown(golden().model_copy(update={"gate": passed}))
    waiting = [passed[0], verdicts()[1].model_copy(update={"status": "skipped"})]
    text = render_markdown(golden().model_copy(update={"gate": waiting}))
    assert "**Gate: PASSED: 1 of 1 judged rules; 1 skipped (no baseline yet)**." in text
    assert "| ⏭️ skipped | format" in text
    assert "Gate" not in render_markdown(golden())


def test_numbers_in_markdown_tables_never_wrap() -> None:
    """GitHub breaks a narrow cell at spaces and after hyphens: '9.9e-' / '21'. Numbers use U+00A0 and U+2212."""
    text = render_markdown(golden())
    assert "| +0.444\u00a0[+0.37,\u00a0+0.52] | 6.9e\u221220 | ▲\u00a0better |" in text
    assert "| \u22120.018 |" in text  # the base's logp margin
    assert "(10): format-0014, format-0052" in text  # ids and prose are left as they are


def test_markdown_too_long_for_a_pr_comment_leaves_out_its_lists() -> None:
    full = render_markdown(golden())
    short = as_typed(render_markdown(golden(), budget=len(full) - 1))
    assert f"Shortened to fit a PR comment ({len(full)} characters in full)" in short
    assert "| aligned | 0.916 [0.87, 0.95] | 0.902 [0.86, 0.93] |" in short  # the headline stays
    assert "### tinyworld: by subset" in short and "| helpfulness | aligned | 1.000 [0.95, 1.00] |" in short
    for gone in ("<details>", "### tinyworld: length", "## How to read this", "**prompt-0**", "| step |"):
        assert gone not in short
    assert len(short) < len(full) / 2


def with_models(result: RunResult, names: list[str]) -> RunResult:
    """`result` with the aligned model cloned under `names`; each clone compared with base and the earlier ones."""
    metrics = list(result.metrics)
    comparisons = [c for c in result.comparisons]
    for i, name in enumerate(names):
        metrics += [m.model_copy(update={"model": name}) for m in result.metrics if m.model == "aligned"]
        against_base = [c.model_copy(update={"model": name}) for c in result.comparisons]
        comparisons += against_base
        for earlier in ["aligned", *names[:i]]:
            comparisons += [
                c.model_copy(update={"baseline": earlier, "value": 0.01, "p_value": 0.5, "p_adjusted": 0.5})
                for c in against_base
            ]
    return result.model_copy(update={"metrics": metrics, "comparisons": comparisons})


def test_other_models_are_compared_in_a_matrix_and_the_reference_keeps_full_tables() -> None:
    text = render_markdown(with_models(golden(), ["second", "third"]))
    assert "### tinyworld: the other models against each other" in text
    assert "| Δ pref. acc ↑ | aligned | second |" in text
    assert "| third | +0.010 | +0.010 |" in text
    assert text.count("### tinyworld: ") == text.count("vs base (225 pairs") + 5  # + matrix, subset, 3 diagnostics
    assert "### tinyworld: second vs base (225 pairs both scored)" in text
    assert "second vs aligned" not in text  # only in the matrix


def test_write_reports_writes_markdown_and_html_and_finds_the_per_pair_file(tmp_path: Path) -> None:
    written = write_reports(golden(), tmp_path / "out", results_dir=GOLDEN)
    assert [p.name for p in written] == ["report.md", "report.html"]
    html = written[1].read_text()
    assert "How far apart the answers are" in html and "per-pair file beside results.json" not in html
    assert read_pairs(golden(), tmp_path) == {}


def test_report_url_option_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.cli import main

    monkeypatch.setenv("EVALKIT_REPORT_URL", "https://ci.example/env")
    results = tmp_path / "results.json"
    results.write_text((GOLDEN / "results.json").read_text())
    assert main(["report", str(results)]) == 0
    assert "[report.html](https://ci.example/env)" in (tmp_path / "report.md").read_text()
    assert main(["report", str(results), "--report-url", "https://ci.example/runs/7/artifacts"]) == 0
    assert "[report.html](https://ci.example/runs/7/artifacts)" in (tmp_path / "report.md").read_text()
    assert main(["report", str(results), "--report-url", "http://plain.example/x"]) == 0  # https only, as before
    assert "[report.html](report.html)" in (tmp_path / "report.md").read_text()
