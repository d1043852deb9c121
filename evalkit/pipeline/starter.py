"""`evalkit init`: a commented starter suite for the user's own models and data.

With `--data`, the file's columns are detected (`data.columns`) and written as the dataset's `columns:`,
`id_column` and `subset_column`, each with a comment saying what was found. Paths not given are placeholders
that say so. The text is checked with the suite loader before it is written, and an existing file is never
replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from evalkit.config.specs import plain_name
from evalkit.config.suite import parse_suite
from evalkit.data.columns import DetectedColumns, detect_columns
from evalkit.errors import EvalkitError

DEFAULT_OUT = Path("suites/mine.yaml")
PLACEHOLDER_DATA = "data/heldout.jsonl"
PLACEHOLDER_MODEL = "checkpoints/my-dpo-model"
PLACEHOLDER_REF = "checkpoints/my-sft-model"

LAYOUTS = {
    "explicit": "explicit (prompt, chosen and rejected are strings)",
    "conversational": "conversational (chosen and rejected are message lists, rendered with the chat template)",
    "implicit": "implicit (whole dialogues; the prompt runs through the last Assistant: turn)",
}


@dataclass(frozen=True)
class StarterOptions:
    """What `evalkit init` was given: any of data, model and reference, and where the suite goes."""

    out: Path = DEFAULT_OUT
    data: str | None = None
    model: str | None = None
    ref: str | None = None


def write_starter_suite(options: StarterOptions) -> Path:
    """Write the starter suite to `options.out` (never over an existing file) and return its path."""
    if options.out.exists():
        raise EvalkitError(f"{options.out}: already exists; evalkit init never replaces a file (choose another --out)")
    detected = detect_columns(options.data) if options.data is not None else None
    text = starter_text(options, detected)
    parse_suite(yaml.safe_load(text), source=str(options.out), train_options=False)  # it loads as written
    options.out.parent.mkdir(parents=True, exist_ok=True)
    with open(options.out, "x", encoding="utf-8") as handle:  # "x": a file created meanwhile is not replaced
        handle.write(text)
    return options.out


def starter_text(options: StarterOptions, detected: DetectedColumns | None) -> str:
    """The suite's YAML, comments included."""
    name = plain_name(options.out.stem, "mine")
    lines = [
        f"# A starter suite written by `evalkit init`. Run it with: evalkit bench {options.out}",
        "# Every key is checked when the suite loads (a typo is an error naming the key). Relative paths are",
        "# relative to the directory evalkit runs in.",
        "version: 1",
        f"name: {_scalar(name)}",
        f"output_dir: {_scalar(f'reports/{name}')}    # results.json, per-pair scores, report.md, report.html",
        "",
        "datasets:",
        *_dataset_lines(options.data, detected),
        "",
        "models:",
        *_model_lines(options),
        "",
        "scoring:",
        "  beta: 0.1                # the β the DPO model was trained with (implicit rewards use it)",
        "  max_length: 1024         # tokens kept per sequence, as TRL's DPOConfig.max_length",
        "  batch_size: 8",
        "",
        *_gate_lines(options),
    ]
    return "\n".join(lines) + "\n"


def _dataset_lines(data: str | None, detected: DetectedColumns | None) -> list[str]:
    name = plain_name(Path(data).stem, "data") if data is not None else "heldout"
    lines = [f"  - name: {_scalar(name)}"]
    if data is None or detected is None:
        return [
            *lines,
            f"    path: {PLACEHOLDER_DATA}   # placeholder: your JSONL/JSON/Parquet/CSV file, a folder or a hub id",
            "    # columns: {prompt: prompt, chosen: chosen, rejected: rejected}   # when named otherwise",
            "    # id_column: id          # stable pair ids in the per-pair scores",
            "    # subset_column: category  # metrics per subset as well as overall",
        ]
    lines += [
        f"    path: {_scalar(data)}",
        f"    # read {detected.rows_read} rows; columns found: {', '.join(detected.found)}",
        f"    # layout found: {LAYOUTS[detected.layout]}",
    ]
    # The pair columns only: `completion` and `label` name the columns of labelled (unpaired) data.
    mapping = detected.columns.model_dump(include={"prompt", "chosen", "rejected"})
    if not detected.has_prompt:
        del mapping["prompt"]
    lines.append(f"    columns: {{{', '.join(f'{key}: {_scalar(value)}' for key, value in mapping.items())}}}")
    if detected.id_column is not None:
        id_column = _scalar(detected.id_column)
        lines.append(f"    id_column: {id_column}   # unique in the rows read: the pair ids in the outputs")
    else:
        lines.append(f"    # id_column: id   # no id column found: pairs are numbered {name}-0, {name}-1, ...")
    if detected.subset_column is not None:
        seen = ", ".join(detected.subsets[:5]) + (", ..." if len(detected.subsets) > 5 else "")
        lines.append(
            f"    subset_column: {_scalar(detected.subset_column)}   # {len(detected.subsets)} subsets in the rows "
            f"read ({seen}): metrics per subset as well as overall"
        )
    else:
        lines.append("    # subset_column: category   # no subset column found: metrics are reported overall only")
    return [*lines, "    # limit: 200   # score only the first rows while trying the suite out"]


def _model_lines(options: StarterOptions) -> list[str]:
    model = options.model or PLACEHOLDER_MODEL
    note = "" if options.model else "   # placeholder: your checkpoint directory, PEFT adapter directory or hub id"
    lines = [f"  - name: candidate\n    path: {_scalar(model)}{note}"]
    if options.ref is None:
        return [
            *lines,
            "  # - name: reference   # the model implicit rewards are measured against (e.g. the SFT checkpoint)",
            f"  #   path: {PLACEHOLDER_REF}",
            "# reference: reference   # without a reference, only log-prob metrics are reported",
        ]
    return [
        "  - name: reference   # the model implicit rewards r = β·(log π − log π_ref) are measured against",
        f"    path: {_scalar(options.ref)}",
        *lines,
        "reference: reference",
    ]


def _gate_lines(options: StarterOptions) -> list[str]:
    rule = [
        "gate:                      # release rules: `evalkit bench` exits 1 when one fails",
        "  rules:",
        "    - name: candidate beats the reference",
        "      kind: superiority     # one-sided paired test on the same pairs, at gate.alpha (default 0.05)",
        "      model: candidate",
        "      baseline: reference",
        "      metric: preference/accuracy   # share of pairs where log π(chosen) > log π(rejected)",
    ]
    if options.ref is not None:
        return rule
    return ["# With a reference model, a release rule:", *(f"# {line}" for line in rule)]


def _scalar(value: str) -> str:
    """`value` as a YAML scalar: bare when it reads back as the same string, else quoted (a JSON string)."""
    try:
        plain = yaml.safe_load(value) == value and "#" not in value and ": " not in value
    except yaml.YAMLError:
        plain = False
    return value if plain else json.dumps(value)
