"""`evalkit demo`: the packaged default suite, run from any directory into one output directory of its own.

The suite is the one `make bench` runs (`config.suite.DEFAULT_SUITE`), read from the package, never copied: the
demo only moves what it writes. Its relative paths are resolved against the current directory, so the tiny
world is built (once, then reused) in `./.evalkit/world`, and the results, the reports and the trained model all
go under `--out` (default `./evalkit-demo`) instead of the suite's `reports/default`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.markup import escape

from evalkit.capabilities.harness import INSTALL_HINT, lm_eval_version
from evalkit.config.suite import DEFAULT_SUITE
from evalkit.console import console, stdout
from evalkit.errors import EvalkitError
from evalkit.pipeline.bench import run_bench
from evalkit.results.schema import RunResult

DEMO_OUT = Path("evalkit-demo")
"""Where the demo writes when no --out is given, relative to the current directory."""


def demo_overrides(out: Path, capabilities: bool) -> list[str]:
    """`--set` overrides that move the default suite's outputs under `out`: its output_dir and the trained
    model's directory. Without lm-eval (`capabilities=False`) they also drop the capability tasks and the gate
    rules that read them, so an install without the capabilities extra runs the rest of the demo."""
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_SUITE.read_text(encoding="utf-8"))
    overrides = [f"output_dir={_yaml_string(out)}"]
    trained = raw.get("train", {}).get("output")
    if trained is not None:
        overrides.append(f"models.{trained}.path={_yaml_string(out / 'models' / trained)}")
    if not capabilities and raw.get("capabilities") is not None:
        overrides.append("capabilities=null")
        if raw.get("gate") is not None:
            rules = [rule for rule in raw["gate"]["rules"] if not str(rule.get("kind", "")).startswith("capability")]
            overrides.append(f"gate.rules={json.dumps(rules)}")
    return overrides


def run_demo(out: Path, overrides: Sequence[str] = (), command: str | None = None) -> RunResult | None:
    """Run the default suite into `out`, as `evalkit bench` would (same outputs, same gate); `overrides` are the
    user's `--set`s, applied after the demo's own."""
    try:
        lm_eval_version()
        capabilities = True
    except EvalkitError:
        hint = escape(INSTALL_HINT)  # its `[capabilities]` is not a style
        console.print(f"[yellow]lm-eval is not installed: the demo skips its capability tasks; {hint}[/yellow]")
        capabilities = False
    result = run_bench(DEFAULT_SUITE, out, [*demo_overrides(out, capabilities), *overrides], command=command)
    if result is not None:
        stdout.print(
            f"demo finished: open {out / 'report.html'} in a browser ({out / 'report.md'} in a terminal). "
            "Next, for your own models: evalkit init --data YOUR_PAIRS.jsonl --model YOUR_CHECKPOINT --ref YOUR_SFT",
            markup=False,
        )
    return result


def _yaml_string(path: Path) -> str:
    """A path as a YAML scalar that reads back as that string (JSON strings are YAML), whatever it holds."""
    return json.dumps(str(path))
