"""The example notebook runs end to end, offline, in a fresh kernel, and shows what docs/how-to/python.md says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[2] / "examples" / "python-api.ipynb"


def test_example_notebook_runs_offline_and_shows_frames_and_the_inline_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it clean"
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    html = [
        output["data"]["text/html"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "data" in output and "text/html" in output["data"]
    ]
    frames = [h for h in html if 'class="dataframe' in h]
    assert any("eval_evalkit/rewards/accuracies" in h for h in frames)  # the callback's values, logged by TRL
    assert any("rewards/accuracies" in h and "ci_low" in h for h in frames)
    inline = [h for h in html if 'class="evalkit-inline"' in h]
    assert len(inline) == 1 and "aligned" in inline[0] and "<script" not in inline[0]
    assert any(h.startswith('<iframe sandbox=""') for h in html)  # the full report
    assert (tmp_path / "reports" / "notebook" / "report.html").is_file()
    assert (tmp_path / "dpo" / "evalkit" / "results.json").is_file()
