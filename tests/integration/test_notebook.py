"""The example notebook is committed executed, with small outputs that use only the public API, and it still runs
end to end, offline, in a fresh kernel, showing what the docs say it shows."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import evalkit

EXAMPLES = Path(__file__).parents[2] / "examples"
NOTEBOOK = EXAMPLES / "python-api.ipynb"


def executor() -> ModuleType:
    """`examples/execute_notebook.py`, the script that writes the committed outputs."""
    spec = importlib.util.spec_from_file_location("execute_notebook", EXAMPLES / "execute_notebook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def evalkit_names(source: str) -> tuple[set[str], list[str]]:
    """The `evalkit.<name>`s a cell's code uses, and every import that reaches past them into a submodule."""
    tree = ast.parse(source)
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "evalkit"
    }
    private = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evalkit"))
        or (isinstance(node, ast.Import) and any(alias.name.startswith("evalkit.") for alias in node.names))
    ]
    return used, private


def test_evalkit_names_finds_attributes_and_private_imports() -> None:
    code = "import evalkit\nfrom evalkit.world import build_world\nimport evalkit.api.functions\n"
    used, private = evalkit_names(code + "evalkit.score(evalkit.Layout())\nevalkit.api.functions.as_pairs([])")
    assert used == {"score", "Layout", "api"}
    assert private == ["from evalkit.world import build_world", "import evalkit.api.functions"]


def test_the_committed_notebook_holds_its_outputs_uses_only_public_names_and_stays_small() -> None:
    import nbformat

    text = NOTEBOOK.read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=4)
    cells = code_cells(notebook)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), "run top to bottom, once"
    assert all(cell.outputs for cell in cells), "every code cell ends in a value: each shows it"
    used: set[str] = set()
    for cell in cells:
        names, private = evalkit_names(cell.source)
        assert not private, f"the notebook imports evalkit's internals: {private}"
        used |= names
    assert used <= set(evalkit.__all__), sorted(used - set(evalkit.__all__))
    assert {"score", "EvalkitCallback", "build_world", "WorldSpec", "Layout"} <= used
    # Small and the same on every machine: no logs (rates, times, site-packages paths), no paths of the machine
    # that ran it, no timestamps.
    assert len(text) < 60_000
    logs = [out for cell in cells for out in cell.outputs if executor().is_log(out)]
    assert not logs
    assert not re.search(r"(?<![\w.])/(tmp|home|root|Users|work|var|private)/", text)
    assert not any("execution" in cell.metadata for cell in notebook.cells)
    assert set(notebook.metadata) == {"kernelspec"}
    assert not re.search(r"\d+(\.\d+)?/s\b|\bETA\b|took \d|eval_runtime", text)
    inline = [out for out in cells[-2].outputs if "text/html" in out.get("data", {})]
    assert len(inline) == 1 and 'class="evalkit-inline"' in inline[0].data["text/html"]


@pytest.mark.slow  # a tiny world built, DPO trained for 40 steps, three runs scored: about two CPU minutes
def test_example_notebook_runs_offline_and_shows_frames_and_the_inline_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    committed = nbformat.read(NOTEBOOK, as_version=4)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in code_cells(notebook):
        cell.outputs, cell.execution_count = [], None
    run = executor()
    run.scrubbed(run.execute(notebook, tmp_path), tmp_path)

    def shapes(book: Any) -> list[list[tuple[str, list[str]]]]:
        return [[(out.output_type, sorted(out.get("data", {}))) for out in cell.outputs] for cell in code_cells(book)]

    # What a run gives is what is committed, output for output (the numbers may differ from one CPU to another).
    assert shapes(notebook) == shapes(committed)
    html = [
        output["data"]["text/html"]
        for cell in code_cells(notebook)
        for output in cell.outputs
        if "data" in output and "text/html" in output["data"]
    ]
    frames = [h for h in html if 'class="dataframe' in h]
    assert any("eval_evalkit/rewards/accuracies" in h for h in frames)  # the callback's values, logged by TRL
    assert any("rewards/accuracies" in h and "ci_low" in h for h in frames)
    inline = [h for h in html if 'class="evalkit-inline"' in h]
    assert len(inline) == 1 and "aligned" in inline[0] and "<script" not in inline[0]
    metric = json.dumps([out.data for out in code_cells(notebook)[4].outputs])
    assert "rewards/accuracies" in metric and "aligned" in metric and "ci_low" in metric
    assert (tmp_path / "reports" / "notebook" / "report.html").is_file()
    assert (tmp_path / "dpo" / "evalkit" / "results.json").is_file()
