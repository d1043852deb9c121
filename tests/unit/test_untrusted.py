"""Results files from someone else (a fork's CI artifact): read, never trusted, never modified."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.cli import main
from evalkit.config.suite import parse_suite
from evalkit.errors import EvalkitError
from evalkit.report.views import read_pairs
from evalkit.results.files import read_results, write_results

GOLDEN = Path(__file__).parents[1] / "golden"


def artifact(tmp_path: Path, pairs_file: str) -> Path:
    directory = tmp_path / "artifact"
    directory.mkdir(exist_ok=True)
    raw = json.loads((GOLDEN / "results.json").read_text())
    raw["datasets"][0]["pairs_file"] = pairs_file
    (directory / "results.json").write_text(json.dumps(raw))
    return directory / "results.json"


@pytest.mark.parametrize("where", ["../outside.jsonl", "/etc/hostname", "pairs/zero.jsonl", "pairs/out.jsonl"])
def test_a_per_pair_file_outside_the_artifact_or_not_a_file_is_never_read(tmp_path: Path, where: str) -> None:
    (tmp_path / "outside.jsonl").write_text((GOLDEN / "pairs" / "tinyworld.jsonl").read_text())
    path = artifact(tmp_path, where)
    (path.parent / "pairs").mkdir()
    os.symlink("/dev/zero", path.parent / "pairs" / "zero.jsonl")
    os.symlink(tmp_path / "outside.jsonl", path.parent / "pairs" / "out.jsonl")
    assert read_pairs(read_results(path), path.parent) == {}
    assert main(["report", str(path), "--out", str(tmp_path / "rendered")]) == 0  # the charts say the file is missing


def test_nan_and_infinity_survive_a_round_trip(tmp_path: Path) -> None:
    result = read_results(GOLDEN / "results.json")
    metrics = [
        m.model_copy(update={"value": math.nan if i == 0 else math.inf}) if i < 2 else m
        for i, m in enumerate(result.metrics)
    ]
    write_results(result.model_copy(update={"metrics": metrics}), tmp_path / "results.json")
    text = (tmp_path / "results.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    again = read_results(tmp_path / "results.json")
    assert math.isnan(again.metrics[0].value) and again.metrics[1].value == math.inf


def test_deep_nesting_and_bad_bytes_are_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(EvalkitError, match=r"deep\.json: nested too deeply"):
        read_results(deep)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{")
    with pytest.raises(EvalkitError, match=r"binary\.json: not UTF-8 text"):
        read_results(binary)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_infinite_settings_are_typos(value: str) -> None:
    import yaml

    raw = {
        "name": "x",
        "output_dir": "o",
        "datasets": [{"name": "d", "path": "d"}],
        "models": [{"name": "m", "path": "m"}],
    }
    raw["scoring"] = {"beta": yaml.safe_load(value)}
    with pytest.raises(EvalkitError, match=r"scoring\.beta: .*finite"):
        parse_suite(raw, "s.yaml")


names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=names, dataset=names, rule=names, description=st.text(max_size=80))
def test_any_names_in_a_results_file_render_and_gate_without_a_traceback_or_a_write_outside_out(
    tmp_path_factory: pytest.TempPathFactory, model: str, dataset: str, rule: str, description: str
) -> None:
    root = tmp_path_factory.mktemp("run")
    raw = json.loads((GOLDEN / "results.json").read_text())
    renamed = {"aligned": model, "base": "base" if model != "base" else "base-model"}
    for m in raw["models"]:
        m["name"] = renamed[m["name"]]
    raw["reference"] = renamed["base"]
    for m in raw["metrics"]:
        m["model"], m["dataset"] = renamed[m["model"]], dataset
    raw["comparisons"] = []
    raw["datasets"][0]["name"] = dataset
    raw["suite"]["description"] = description
    raw["suite"]["gate"] = {
        "rules": [{"name": rule, "kind": "absolute", "model": model, "metric": "preference/accuracy", "at_least": 0.5}]
    }
    source = root / "in"
    source.mkdir()
    (source / "results.json").write_text(json.dumps(raw))
    before = sorted(p.name for p in root.rglob("*"))
    out = root / "out"
    code = main(["gate", str(source / "results.json"), "--out", str(out)])
    assert code in (0, 1, 2)
    assert sorted(p.name for p in source.iterdir()) == ["results.json"]  # nothing written beside the input
    assert set(before) <= {p.name for p in root.rglob("*")}
    written = {p for p in root.rglob("*") if p.name not in before}
    assert all(p.is_relative_to(out) for p in written), sorted(map(str, written))  # nothing outside --out
    if code != 2:
        from xml.etree import ElementTree

        ElementTree.parse(out / "junit.xml")  # well-formed whatever the names hold
        assert main(["report", str(out / "results.json"), "--out", str(root / "report")]) == 0
        golden = str(GOLDEN / "results.json")
        assert main(["compare", golden, str(out / "results.json"), "--out", str(root / "compared")]) == 0


def test_names_reach_the_terminal_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.console import plain, stdout
    from evalkit.gate.terminal import verdict_lines
    from evalkit.results.schema import GateVerdict

    hostile = "ok [/] rule [bold red]x\x1b[2J\x1b]0;owned\x07"
    assert plain(hostile) == "ok \\[/] rule \\[bold red]x\ufffd[2J\ufffd]0;owned\ufffd"
    verdict = GateVerdict(rule=hostile, kind="absolute", passed=True, status="passed", reason=hostile)
    stdout.print(verdict_lines([verdict]), soft_wrap=True)  # markup in a name used to end in a MarkupError traceback
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "[/]" in printed and "[bold" in printed  # shown as typed, not applied


@pytest.mark.parametrize("key", ["name", "description"])
def test_suite_text_is_printable(key: str) -> None:
    raw = {
        "name": "x",
        "output_dir": "o",
        "datasets": [{"name": "d", "path": "d"}],
        "models": [{"name": "m", "path": "m"}],
    }
    raw[key] = "title\x1b[31m red \ud800"
    with pytest.raises(EvalkitError, match=rf"s\.yaml: {key}: holds control characters or lone surrogates"):
        parse_suite(raw, "s.yaml")


def test_scores_are_never_written_over_the_data_they_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert main(["score", "--model", str(model), "--data", str(data), "--out", str(data)]) == 2
    assert "--out: " in capsys.readouterr().err
    assert data.read_text() == '{"prompt": "a", "chosen": "b", "rejected": "c"}\n'


def test_a_per_pair_row_that_is_not_an_object_is_bad_input(tmp_path: Path) -> None:
    from evalkit.results.pairs import read_pair_scores

    rows = tmp_path / "pairs.jsonl"
    rows.write_text("[1]\n")
    with pytest.raises(EvalkitError, match=r"pairs\.jsonl:1: not a per-pair score row: expected a JSON object"):
        read_pair_scores(rows)
