"""Execute `python-api.ipynb` offline in a scratch directory and write it back with its outputs.

    HF_HUB_OFFLINE=1 python examples/execute_notebook.py

The notebook builds its own tiny world, so this needs no network and no GPU (a few minutes on a
CPU). What is committed is each cell's result, small and the same from one machine to the next
apart from the numbers a CPU's arithmetic moves: the logs are left out (evalkit's progress lines and
TRL's printed log dicts carry rates and times; warnings name files of the machine's site-packages),
so are the scratch directory's path and the execution timestamps.
`tests/integration/test_notebook.py` executes the notebook the same way and checks what is committed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).with_name("python-api.ipynb")
TIMEOUT_S = 900
"""Per cell; the training cell takes the longest (under a minute on a quiet machine)."""


def execute(notebook: Any, workdir: Path) -> Any:
    """Run every cell of `notebook` (an nbformat node, changed in place) in a fresh kernel in `workdir`, offline."""
    from nbclient import NotebookClient

    client = NotebookClient(
        notebook, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute(env={**os.environ, "HF_HUB_OFFLINE": "1"})  # the kernel's environment: no hub look-ups, ever
    return notebook


def scrubbed(notebook: Any, workdir: Path) -> Any:
    """`notebook` as it is committed: each cell's results without its logs, the scratch directory's path replaced
    by `.`, no execution metadata (timestamps) and no interpreter version."""
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = [out for out in cell.outputs if not is_log(out)]
        for out in cell.outputs:
            for kind, value in out.get("data", {}).items():
                if isinstance(value, str):
                    out.data[kind] = _relative(value, workdir)
    notebook.metadata.pop("language_info", None)
    notebook.metadata.pop("widgets", None)
    return notebook


def is_log(output: Any) -> bool:
    """Printed text (stdout, stderr) and what a rich console shows in a notebook (evalkit's progress and notices,
    which go to stderr on a terminal): the log of a run, not its result."""
    if output.output_type == "stream":
        return True
    html = output.get("data", {}).get("text/html", "")
    return output.output_type == "display_data" and html.startswith(RICH_CONSOLE)


RICH_CONSOLE = '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
"""How a rich console's lines start in a notebook (rich's `jupyter` rendering)."""


def _relative(text: str, workdir: Path) -> str:
    for form in {str(workdir), str(workdir.resolve())}:
        text = text.replace(form + os.sep, "").replace(form, ".")
    return text


def main() -> int:
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with tempfile.TemporaryDirectory(prefix="evalkit-notebook-") as scratch:
        workdir = Path(scratch)
        scrubbed(execute(notebook, workdir), workdir)
    nbformat.write(notebook, NOTEBOOK)
    print(f"wrote {NOTEBOOK.name} with its outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
