import os
import subprocess
import sys
from pathlib import Path

from evalkit.report import MAX_IDS, render_markdown, summary_table
from evalkit.results import Flips, RunResult, read_results

GOLDEN = Path(__file__).parents[1] / "golden"


def golden() -> RunResult:
    return read_results(GOLDEN / "results.json")


def test_markdown_report_matches_the_golden_file() -> None:
    rendered = render_markdown(golden())
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "report.md").write_text(rendered)
    assert rendered == (GOLDEN / "report.md").read_text(), "rerun with UPDATE_GOLDEN=1 and review the diff"


def test_report_shows_numbers_with_intervals_and_marks_missing_ones() -> None:
    text = render_markdown(golden())
    assert "| aligned | 0.947 [0.91, 0.97] | 0.947 [0.91, 0.97] |" in text
    assert "| base | 0.471 [0.41, 0.54] | — |" in text  # the reference: no reward columns
    assert "### tinyworld: by subset" in text
    assert "In brackets: 95% intervals, Wilson for shares, percentile bootstrap" in text
    assert "| helpfulness | aligned | 1.000 [0.95, 1.00] |" in text
    assert "| 0.003 [0.002, 0.003] |" in text  # more decimals where two would not tell the ends apart


def test_report_shows_aligned_vs_base_with_p_values_and_flips() -> None:
    text = render_markdown(golden())
    assert "### tinyworld: aligned vs base (225 pairs both scored)" in text
    assert "| metric | base | aligned | Δ [95% CI] | p | wrong→right | right→wrong | MDE |" in text
    assert "| pref. acc ↑ | 0.471 | 0.947 | +0.476 [+0.41, +0.55] | 2.1e-27 | 112 | 5 | 0.101 |" in text
    assert "<details><summary>Flipped pairs, aligned vs base</summary>" in text
    assert "pref. acc, right→wrong (5): format-0157, format-0178, format-0232, format-0237, format-0241" in text
    assert "… and 62 more (all in results.json)" in text  # 112 wrong→right, 50 listed
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
    assert "a\\|b&lt;script>" in text and "<script>" not in text
    assert "s\\|&lt;b>" in text and "<b>" not in text
    assert "id\\|&lt;img>" in text and "<img>" not in text


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
            "metrics": [m.model_copy(update={"ci_low": None, "ci_high": None}) for m in result.metrics],
        }
    )
    text = render_markdown(old)
    assert "No intervals: these results predate them (results schema 1.0)." in text
    assert "| aligned | 0.947 | 0.947 | 0.000 | 3.970 | 0.244 | 225 |" in text
    assert " vs " not in text and "<details>" not in text


def test_terminal_table_has_a_row_per_model() -> None:
    table = summary_table(golden())
    assert table.row_count == 2


def test_reporting_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from evalkit.cli import main; "
        f"code = main(['report', {str(GOLDEN / 'results.json')!r}, '--out', {str(tmp_path)!r}]); "
        "assert code == 0, code; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "report.md").is_file()
