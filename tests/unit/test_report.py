import os
import subprocess
import sys
from pathlib import Path

from evalkit.report import render_markdown, summary_table
from evalkit.results import read_results

GOLDEN = Path(__file__).parents[1] / "golden"


def test_markdown_report_matches_the_golden_file() -> None:
    rendered = render_markdown(read_results(GOLDEN / "results.json"))
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "report.md").write_text(rendered)
    assert rendered == (GOLDEN / "report.md").read_text(), "rerun with UPDATE_GOLDEN=1 and review the diff"


def test_report_shows_numbers_and_marks_missing_ones() -> None:
    text = render_markdown(read_results(GOLDEN / "results.json"))
    assert "| aligned | 0.947 | 0.947 |" in text
    assert "| base | 0.471 | — |" in text  # the reference: no reward columns
    assert "### tinyworld: by subset" in text


def test_names_from_results_are_escaped_in_tables() -> None:
    result = read_results(GOLDEN / "results.json")
    metrics = [m.model_copy(update={"model": "a|b<script>"}) if m.model == "aligned" else m for m in result.metrics]
    text = render_markdown(result.model_copy(update={"metrics": metrics}))
    assert "a\\|b&lt;script>" in text and "<script>" not in text


def test_terminal_table_has_a_row_per_model() -> None:
    table = summary_table(read_results(GOLDEN / "results.json"))
    assert table.row_count == 2


def test_reporting_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from evalkit.cli import main; "
        f"code = main(['report', {str(GOLDEN / 'results.json')!r}, '--out', {str(tmp_path)!r}]); "
        "assert code == 0, code; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "report.md").is_file()
