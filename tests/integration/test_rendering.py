"""Template options and pinned dates through a whole run: results.json and both reports say how each model's
pairs were rendered and scored; the options change the fingerprint; evalkit's training date is reused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from evalkit.checkpoints import load_model
from evalkit.config.recorded import TRAIN_RECORD
from evalkit.config.specs import ModelSpec
from evalkit.config.suite import load_suite
from evalkit.pipeline.bench import run_bench
from evalkit.pipeline.training import run_training


@pytest.fixture()
def smollm3_run(tmp_path: Path, family_checkpoints: Callable[[str, list[str]], Path]) -> Path:
    """A SmolLM3-style base and a second model on it, 6 conversational pairs, and a suite scoring both."""
    family_checkpoints("smollm3", ["base", "tuned"])
    suite = {
        "name": "smol",
        "output_dir": str(tmp_path / "out"),
        "datasets": [{"name": "chat", "path": str(tmp_path / "pairs.jsonl")}],
        "models": [
            {"name": "base", "path": str(tmp_path / "base")},
            {"name": "tuned", "path": str(tmp_path / "tuned"), "chat_template_kwargs": {"enable_thinking": True}},
        ],
        "reference": "base",
        "rendering": {"chat_template_kwargs": {"enable_thinking": False}, "date": "2025-06-30"},
        "scoring": {"reference_cache": None},
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path


def test_results_and_both_reports_show_options_pinned_date_and_scoring_mode(smollm3_run: Path) -> None:
    result = run_bench(smollm3_run / "suite.yaml")
    assert result is not None
    base, tuned = result.models
    assert base.chat_template_kwargs == {"enable_thinking": False}  # the suite's default
    assert tuned.chat_template_kwargs == {"enable_thinking": True}  # the model's own wins
    assert base.template_date == tuned.template_date == "2025-06-30"
    assert [(m.dataset, m.mode) for m in tuned.scoring_modes] == [("chat", "prompt-shared")]
    raw = json.loads((smollm3_run / "out" / "results.json").read_text())
    assert raw["models"][1]["scoring_modes"][0]["reason"].startswith("the probes found packed rows")
    markdown = (smollm3_run / "out" / "report.md").read_text()
    html = (smollm3_run / "out" / "report.html").read_text()
    for text in (markdown, html):
        assert "enable_thinking=true" in text and "enable_thinking=false" in text and "2025-06-30" in text
        assert "chat: prompt-shared (the probes found packed rows" in text


def test_template_options_change_the_fingerprint_and_evalkit_training_dates_are_reused(smollm3_run: Path) -> None:
    spec = ModelSpec(name="m", path=str(smollm3_run / "tuned"))
    plain = load_model(spec).info
    thinking = load_model(spec, template_options={"enable_thinking": False}).info
    assert plain.template_date == "2025-01-01"  # evalkit's default: the model was not trained by evalkit
    assert plain.fingerprint != thinking.fingerprint
    record = {"rendering": {"chat_template_kwargs": {}, "date": "2024-05-06"}}
    (smollm3_run / "tuned" / TRAIN_RECORD).write_text(json.dumps(record))
    assert load_model(spec).info.template_date == "2024-05-06"


def test_training_renders_with_the_options_and_date_evalkit_scores_with(
    smollm3_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRL tokenizes the chat rows with the pinned template and the options, and the trained model is later
    rendered with the date it was trained with (the suite here names none for scoring)."""
    from trl import DPOTrainer

    seen: list[list[int]] = []
    train = DPOTrainer.train

    def capture(self: DPOTrainer, *args: object, **kwargs: object) -> object:
        seen.extend(row["prompt_ids"] for row in self.train_dataset)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(DPOTrainer, "train", capture)
    suite = yaml.safe_load((smollm3_run / "suite.yaml").read_text())
    suite["models"][1] = {"name": "tuned", "path": str(smollm3_run / "trained")}
    suite["train"] = {
        "base": "base",
        "output": "tuned",
        "data": str(smollm3_run / "pairs.jsonl"),
        "lora": {"r": 4, "alpha": 8},
        "args": {"max_steps": 1, "per_device_train_batch_size": 2},
    }
    (smollm3_run / "train.yaml").write_text(yaml.safe_dump(suite))
    run_training(load_suite(smollm3_run / "train.yaml"))
    tokenizer = load_model(ModelSpec(name="b", path=str(smollm3_run / "base"))).tokenizer
    assert seen and all("Today Date: 30 June 2025\nReasoning Mode: /no_think" in tokenizer.decode(ids) for ids in seen)
    record = json.loads((smollm3_run / "trained" / TRAIN_RECORD).read_text())
    assert record["rendering"] == {"chat_template_kwargs": {"enable_thinking": False}, "date": "2025-06-30"}
    assert load_model(ModelSpec(name="t", path=str(smollm3_run / "trained"))).info.template_date == "2025-06-30"
