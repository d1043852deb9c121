"""The reference pages generated from the code, and the suite's JSON Schema for editors.

Used two ways:
- as a mkdocs hook (`hooks:` in mkdocs.yml): a reference page holding `<!-- generated: cli -->` or
  `<!-- generated: suite-keys -->` gets the CLI (from `evalkit.cli.build_parser`) or the suite keys (from the
  pydantic models of `evalkit.config`, each field's docstring its description) at build time, so these pages
  cannot go stale; the build fails when `docs/reference/suite.schema.json` differs from the models; and the
  shipped `results.schema.json` is published beside the results page;
- as a script: `python tools/docs_reference.py` rewrites `docs/reference/suite.schema.json` (`make schema`).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SUITE_SCHEMA = ROOT / "docs" / "reference" / "suite.schema.json"
if str(ROOT) not in sys.path:  # the checkout's evalkit, whatever the virtualenv has installed
    sys.path.insert(0, str(ROOT))


# ---- the suite's JSON Schema ------------------------------------------------------------------------------------


def suite_schema() -> dict[str, Any]:
    """`Suite`'s JSON Schema (validation mode), with what the models accept beyond their own shape."""
    from evalkit.config.suite import Suite

    schema = Suite.model_json_schema()
    data = schema["$defs"]["TrainSpec"]["properties"]["data"]
    # `train.data: file.jsonl` is short for `{path: file.jsonl}` (TrainSpec turns it into one before validating).
    schema["$defs"]["TrainSpec"]["properties"]["data"] = {"anyOf": [data, {"type": "string"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "evalkit suite",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    return json.dumps(suite_schema(), indent=2, ensure_ascii=False) + "\n"


# ---- the CLI page -----------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | what |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.option_strings:
            flags = ", ".join(action.option_strings)
            if action.nargs != 0:
                flags += f" {action.metavar or action.dest.upper()}"
        else:
            flags = action.metavar or action.dest
        repeat = (
            " (repeatable)"
            if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or "")
            else ""
        )
        default = action.default
        shown = "" if default in (None, False, [], {}, argparse.SUPPRESS) else f"`{default}`"
        if action.default is argparse.SUPPRESS or isinstance(action, argparse._VersionAction):
            shown = ""
        rows.append(f"| `{_cell(flags)}` | {shown} | {_cell(action.help or '')}{repeat} |")
    return rows


def cli_markdown() -> str:
    from evalkit.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in subparsers._choices_actions}
    lines = [
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
        *_argument_rows(parser),
        "",
    ]
    for name, sub in subparsers.choices.items():
        lines += [
            f"## evalkit {name}",
            "",
            f"{helps.get(name, '')[:1].upper()}{helps.get(name, '')[1:]}.",
            "",
            "```text",
            sub.format_usage().strip(),
            "```",
            "",
            *_argument_rows(sub),
            "",
        ]
    return "\n".join(lines)


# ---- the suite keys page ----------------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type]:
    """The pydantic models an annotation holds (`X`, `X | None`, `list[X]`, a discriminated union)."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _type_name(annotation: Any) -> str:
    from pydantic import BaseModel

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(dict.fromkeys(named)) + (" \\| null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def _default(field: Any) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "required"
    value = field.default if field.default is not PydanticUndefined else field.default_factory()
    if isinstance(value, BaseModel):
        return ""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ({}, [], ""):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def _anchor(path: str) -> str:
    return path.replace(".", "-").replace("[", "").replace("]", "").replace(":", "").replace(" ", "-").lower()


def _section(model: type, path: str, out: list[str], seen: set[tuple[type, str]]) -> None:
    if (model, path) in seen:
        return
    seen.add((model, path))
    fields = model.model_fields  # type: ignore[attr-defined]
    nested: list[tuple[type, str]] = []
    kinds: list[tuple[str, list[type]]] = []
    rows = ["| key | type | default | what |", "|---|---|---|---|"]
    for name, field in fields.items():
        key = f"{path}.{name}" if path else name
        children = _models_in(field.annotation)
        kind = _type_name(field.annotation)
        if len(children) == 1:
            kind = kind.replace("section", f"[section](#{_anchor(key)})")
            nested.append((children[0], key))
        elif children:  # a union told apart by a tag: the gate's rules by `kind`, an objective by `name`
            listed = "list of [rules]" if _tag(children) == "kind" else "one of the [objectives]"
            kind = f"{listed}(#{_anchor(key)})"
            kinds.append((key, children))
        what = field.description or (children[0].__doc__ or "" if len(children) == 1 else "")
        rows.append(f"| `{name}` | {kind} | {_default(field)} | {_cell(what)} |")
    title = f"`{path}`" if path else "Top level"
    doc = " ".join((model.__doc__ or "").split())
    out += [f"## {title} {{#{_anchor(path) or 'top-level'}}}", "", doc, "", *rows, ""]
    for child, key in nested:
        _section(child, key, out, seen)
    for key, children in kinds:
        tag = _tag(children)
        named = [(child, f"{key}: {child.model_fields[tag].annotation.__args__[0]}") for child in children]  # type: ignore[attr-defined]
        listed = [f"- [`{k.split(': ')[1]}`](#{_anchor(k)}): {' '.join((c.__doc__ or '').split())}" for c, k in named]
        what = "Each rule has a `kind`" if tag == "kind" else "Each objective has a `name`"
        out += [f"## `{key}` {{#{_anchor(key)}}}", "", f"{what}; the keys it takes depend on it.", ""]
        out += [*listed, ""]
        for child, name in named:
            _section(child, name, out, seen)


def _tag(children: list[type]) -> str:
    """The key that tells a union's members apart: `kind` (gate rules) or `name` (objectives)."""
    return "kind" if all("kind" in child.model_fields for child in children) else "name"  # type: ignore[attr-defined]


def suite_markdown() -> str:
    from evalkit.config.suite import Suite

    out: list[str] = []
    _section(Suite, "", out, set())
    return "\n".join(out)


# ---- the mkdocs hook --------------------------------------------------------------------------------------------

GENERATED = {"<!-- generated: cli -->": cli_markdown, "<!-- generated: suite-keys -->": suite_markdown}


def on_pre_build(config: Any) -> None:
    from mkdocs.exceptions import PluginError

    if not SUITE_SCHEMA.exists() or SUITE_SCHEMA.read_text() != schema_text():
        raise PluginError(f"{SUITE_SCHEMA.relative_to(ROOT)} is stale: run `make schema`")


def on_files(files: Any, config: Any) -> Any:
    """Publish the shipped results schema beside its reference page (it lives in the package, not in docs/)."""
    from mkdocs.structure.files import File

    shipped = ROOT / "evalkit" / "results" / "schemas" / "results.schema.json"
    files.append(File.generated(config, "reference/results.schema.json", abs_src_path=str(shipped)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, render in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return markdown


if __name__ == "__main__":
    SUITE_SCHEMA.write_text(schema_text())
    print(f"wrote {SUITE_SCHEMA.relative_to(ROOT)}")
