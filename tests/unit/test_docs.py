"""The docs that are generated from the code stay in step with it, and the README stays a landing page.

The strict site build (`make docs`, part of `make lint`) catches broken links and missing pages; these
checks are the ones a plain `pytest` run can make in a second, without mkdocs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_published_suite_schema_is_the_models_schema() -> None:
    reference = _tool("docs_reference")
    published = json.loads((ROOT / "docs" / "reference" / "suite.schema.json").read_text())
    assert published == reference.suite_schema(), "run `make schema` after changing evalkit/config/"


def test_the_suite_schema_describes_keys_and_forbids_unknown_ones() -> None:
    schema = json.loads((ROOT / "docs" / "reference" / "suite.schema.json").read_text())
    scoring = schema["$defs"]["ScoringSpec"]
    assert scoring["additionalProperties"] is False
    assert scoring["properties"]["beta"]["description"].startswith("β of the implicit reward")
    # `train.data: file.jsonl` is accepted as short for `{path: ...}`, so the schema accepts it too.
    assert {"type": "string"} in schema["$defs"]["TrainSpec"]["properties"]["data"]["anyOf"]


def test_the_cli_reference_lists_every_command_and_option() -> None:
    from evalkit.cli import build_parser

    page = _tool("docs_reference").cli_markdown()
    (subcommands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"bench", "demo", "init", "gate", "train", "score", "report", "compare"} <= set(subcommands.choices)
    for command, parser in subcommands.choices.items():  # the page follows the parser: a new option is listed
        assert f"## evalkit {command}" in page
        for action in parser._actions:
            long = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            assert all(f"`{option}" in page for option in long), (command, long)
    assert "`--no-reference-cache`" in page
    assert "`--set KEY.PATH=VALUE`" in page


def test_the_suite_reference_has_a_section_per_key_path_and_each_rule_kind() -> None:
    page = _tool("docs_reference").suite_markdown()
    for section in ("`train.lora`", "`generation.endpoint`", "`gate.rules: capability_non_inferiority`"):
        assert f"## {section}" in page
    assert "| `max_kl` |" in page


def test_the_readme_is_a_landing_page_whose_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 12 * 1024
    assert "make bench" in readme and "make test" in readme
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
