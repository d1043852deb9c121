"""A full disk or a read-only directory: one line naming the file evalkit meant to write (never its temporary
file), and `report`, `gate` and `compare` refuse an output directory they cannot fill before rendering anything."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evalkit.cli import main

GOLDEN = Path(__file__).parents[1] / "golden"
LONG = "an-output-directory-whose-name-is-long-enough-to-wrap-a-terminal-line-" * 2


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def golden_run(tmp_path: Path) -> Path:
    shutil.copytree(GOLDEN, tmp_path / "run", ignore=shutil.ignore_patterns("*.md", "*.html"))
    return tmp_path / "run" / "results.json"


def test_a_full_disk_names_the_destination_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results, out = golden_run(tmp_path), tmp_path / LONG

    def full(source: str, destination: str) -> None:  # the rename of a written temporary file, as the kernel fails it
        raise OSError(28, "No space left on device", source)

    monkeypatch.setattr(os, "replace", full)
    assert main(["report", str(results), "--out", str(out)]) == 2
    (line,) = error_lines(capsys)
    assert line == f"evalkit: error: cannot use {out / '.evalkit-output'}: No space left on device"


@pytest.mark.parametrize("command", ["report", "gate", "compare"])
def test_a_full_or_read_only_output_directory_is_refused_before_rendering(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results, out = golden_run(tmp_path), tmp_path / "out"
    argv = {"report": [str(results)], "gate": [str(results)], "compare": [str(results), str(results)]}[command]

    def rendered(*_: object) -> None:
        raise AssertionError("rendered before the output directory was checked")

    # The importer before the imported: patched first, `evalkit.report.compare` would hand its stand-in to a
    # `evalkit.pipeline.compare` imported by the second patch, which would then keep it after the test.
    for module, name in [
        ("evalkit.pipeline.compare", "read_comparison"),
        ("evalkit.report.compare", "read_comparison"),
        ("evalkit.report.document", "render_reports"),
        ("evalkit.gate.judge", "evaluate_gate"),
    ]:
        monkeypatch.setattr(f"{module}.{name}", rendered)
    with monkeypatch.context() as patch:  # simulated: this machine runs as root, which writes in a 0o555 directory
        patch.setattr("shutil.disk_usage", lambda _: shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30, 5 * 2**20))
        assert main([command, *argv, "--out", str(out)]) == 2
    (line,) = error_lines(capsys)
    assert line == f"evalkit: error: --out: {out} has 5 MB free; writing reports needs at least 64 MB"

    def read_only(self: Path, data: bytes) -> int:
        raise OSError(30, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_bytes", read_only)
    assert main([command, *argv, "--out", str(out)]) == 2
    (line,) = error_lines(capsys)
    assert line == f"evalkit: error: --out: cannot write in {out}: Read-only file system"
    assert not out.exists()
