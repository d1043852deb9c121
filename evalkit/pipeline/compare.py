"""`evalkit compare`: two runs compared, written as compare.md and compare.html, and stated on the terminal."""

from __future__ import annotations

from pathlib import Path

from evalkit.console import stdout
from evalkit.report.compare import comparison_table, conclusion, read_comparison, write_comparison_files
from evalkit.results.files import check_writable


def run_compare(baseline: Path, candidate: Path, out: Path | None = None) -> list[Path]:
    """Compare the two runs, write the comparison (by default beside the candidate's results) and print its
    headline table, the files written and, last, the one-line conclusion; returns the files written."""
    out_dir = out or candidate.parent
    check_writable(out_dir, "--out", "writing reports")  # before reading both runs' per-pair files
    comparison = read_comparison(baseline, candidate)
    written = write_comparison_files(comparison, out_dir)
    stdout.print(comparison_table(comparison))
    stdout.print("wrote " + ", ".join(str(path) for path in written), markup=False)
    stdout.print(conclusion(comparison), markup=False, soft_wrap=True)
    return written
