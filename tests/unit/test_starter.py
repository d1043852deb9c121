"""`evalkit init` (a starter suite with the data's columns detected) and `evalkit demo`'s view of the default suite."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evalkit.cli import main
from evalkit.config.suite import DEFAULT_SUITE, load_suite, parse_suite
from evalkit.data.columns import detect_columns
from evalkit.pipeline.demo import demo_overrides
from evalkit.pipeline.starter import StarterOptions, write_starter_suite


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _renamed_rows() -> list[dict[str, object]]:
    """Seven explicit pairs under other names than evalkit's: ids u0..u6, subsets math, chat, code in turn."""
    subsets = ["math", "chat", "code"]
    return [
        {
            "uid": f"u{i}",
            "question": f"q{i}?",
            "preferred": f"yes {i}",
            "dispreferred": "no",
            "category": subsets[i % 3],
        }
        for i in range(7)
    ]


def test_init_writes_the_detected_columns_and_the_suite_loads_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _write_jsonl(tmp_path / "prefs.jsonl", _renamed_rows())
    assert main(["init", "--data", "prefs.jsonl", "--model", "ck/dpo", "--ref", "ck/sft"]) == 0
    assert capsys.readouterr().out.strip() == "wrote suites/mine.yaml; run it with: evalkit bench suites/mine.yaml"
    text = (tmp_path / "suites" / "mine.yaml").read_text()
    assert "    # read 7 rows; columns found: uid, question, preferred, dispreferred, category\n" in text
    assert "    # layout found: explicit (prompt, chosen and rejected are strings)\n" in text
    assert "subset_column: category   # 3 subsets in the rows read (chat, code, math)" in text

    suite = load_suite(tmp_path / "suites" / "mine.yaml")
    (dataset,) = suite.datasets
    assert (dataset.name, dataset.path) == ("prefs", "prefs.jsonl")
    assert dataset.columns.model_dump() == {"prompt": "question", "chosen": "preferred", "rejected": "dispreferred"}
    assert (dataset.id_column, dataset.subset_column) == ("uid", "category")
    assert [(m.name, m.path) for m in suite.models] == [("reference", "ck/sft"), ("candidate", "ck/dpo")]
    assert suite.reference == "reference" and suite.candidate_model == "candidate"
    assert suite.gate is not None and [r.kind for r in suite.gate.rules] == ["superiority"]
    assert suite.output_dir == Path("reports/mine")


def test_init_never_replaces_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine.yaml"
    out.write_text("mine\n")
    assert main(["init", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"evalkit: error: {out}: already exists; evalkit init never replaces a file (choose another --out)"
    ]
    assert out.read_text() == "mine\n"


def test_without_data_or_reference_the_placeholders_load_and_the_rule_is_only_shown(tmp_path: Path) -> None:
    path = write_starter_suite(StarterOptions(out=tmp_path / "starter.yaml"))
    suite = load_suite(path)
    assert suite.name == "starter" and suite.reference is None and suite.gate is None
    assert [(m.name, m.path) for m in suite.models] == [("candidate", "checkpoints/my-dpo-model")]
    # Uncommenting the reference and the rule gives a suite that loads too.
    text = path.read_text().replace("  # - name: reference", "  - name: reference").replace("  #   path:", "    path:")
    text = text.replace("# reference: reference", "reference: reference")
    text = "\n".join(
        line.removeprefix("# ") if line.startswith(("# gate", "#   ", "#     ")) else line for line in text.splitlines()
    )
    assert parse_suite(yaml.safe_load(text)).gate is not None


def test_detects_conversational_rows_without_ids_from_parquet(tmp_path: Path) -> None:
    """ultrafeedback-binarized's layout: message lists, a prompt string, a `prompt_id`, no subset."""
    rows = [
        {
            "prompt": f"q{i}",
            "prompt_id": f"h{i}",
            "chosen": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "good"}],
            "rejected": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "bad"}],
            "score_chosen": 8.0,
        }
        for i in range(4)
    ]
    path = tmp_path / "uf.parquet"
    pd.DataFrame(rows).to_parquet(path)
    found = detect_columns(str(path))
    assert (found.layout, found.rows_read, found.id_column, found.subset_column) == (
        "conversational",
        4,
        "prompt_id",
        None,
    )
    assert found.found == ["prompt", "prompt_id", "chosen", "rejected", "score_chosen"]


def test_an_id_column_with_repeats_is_not_taken_and_implicit_rows_have_no_prompt(tmp_path: Path) -> None:
    rows = [
        {
            "id": i % 2,
            "chosen": f"\n\nHuman: hi {i}\n\nAssistant: yes",
            "rejected": f"\n\nHuman: hi {i}\n\nAssistant: no",
        }
        for i in range(3)
    ]
    found = detect_columns(str(_write_jsonl(tmp_path / "hh.jsonl", rows)))
    assert (found.layout, found.has_prompt, found.id_column) == ("implicit", False, None)
    path = write_starter_suite(StarterOptions(out=tmp_path / "hh.yaml", data=str(tmp_path / "hh.jsonl")))
    text = path.read_text()
    assert "    columns: {chosen: chosen, rejected: rejected}\n" in text
    assert "# id_column: id   # no id column found: pairs are numbered hh-0, hh-1, ..." in text
    assert load_suite(path).datasets[0].id_column is None


def test_data_with_no_answer_columns_is_refused_with_the_columns_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_jsonl(tmp_path / "odd.jsonl", [{"text": "a", "label": 1}])
    assert main(["init", "--data", str(data), "--out", str(tmp_path / "odd.yaml")]) == 2
    error = capsys.readouterr().err
    assert f"{data}: no column holds the chosen answer; found columns ['text', 'label']" in error
    assert not (tmp_path / "odd.yaml").exists()


def test_the_demo_moves_outputs_and_the_trained_model_under_out() -> None:
    suite = load_suite(DEFAULT_SUITE, demo_overrides(Path("my demo"), capabilities=True))
    assert suite.output_dir == Path("my demo")
    assert suite.train and suite.model(suite.train[0].output).path == "my demo/models/aligned"
    assert suite.world is not None and suite.world.dir == Path(
        ".evalkit/world"
    )  # relative: under the working directory
    assert suite.capabilities is not None


def test_without_lm_eval_the_demo_drops_the_capability_tasks_and_their_rule() -> None:
    full = load_suite(DEFAULT_SUITE)
    suite = load_suite(DEFAULT_SUITE, demo_overrides(Path("out"), capabilities=False))
    assert suite.capabilities is None
    assert full.gate is not None and suite.gate is not None
    kept = [r.name for r in full.gate.rules if r.kind != "capability_non_inferiority"]
    assert [r.name for r in suite.gate.rules] == kept and len(kept) == len(full.gate.rules) - 1
