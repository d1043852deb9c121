"""`evalkit bench` checks every path and every dataset before a model loads or trains."""

import json
from pathlib import Path

import pytest
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.cli import main
from evalkit.world.pairs import generate_pairs


def test_a_dataset_without_its_columns_stops_the_run_before_training(
    tmp_path: Path,
    tiny_model: LlamaForCausalLM,
    tiny_tokenizer: PreTrainedTokenizerFast,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = tmp_path / "base"
    tiny_model.save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    pairs = generate_pairs(2, seed=0)
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n" for p in pairs)
    )
    renamed = tmp_path / "eval.jsonl"
    renamed.write_text(
        "".join(json.dumps({"prompt": p.prompt, "good": p.chosen, "bad": p.rejected}) + "\n" for p in pairs)
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"""name: x
output_dir: {tmp_path / "out"}
train:
  base: base
  output: tuned
  data: {{path: {train}}}
  lora: {{r: 4, alpha: 8}}
  args: {{max_steps: 2, per_device_train_batch_size: 2}}
datasets: [{{name: eval, path: {renamed}}}]
models:
  - {{name: base, path: {base}}}
  - {{name: tuned, path: {tmp_path / "tuned"}}}
reference: base
"""
    )
    assert main(["bench", str(suite)]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("evalkit: error")]
    assert line == (
        f"evalkit: error: {renamed}: no column 'chosen' (columns.chosen); found 'prompt', 'good', 'bad'; "
        "set columns.chosen to one of them"
    )
    assert not (tmp_path / "tuned").exists()  # nothing trained


def test_a_mistyped_candidate_stops_the_run_before_the_world_is_built(
    default_suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "models" / "aligned").mkdir(parents=True)  # the run starts in tmp_path
    assert main(["bench", str(default_suite), "--model", "models/aligend"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("evalkit: error")]
    assert (
        line
        == "evalkit: error: models.candidate.path: directory not found: models/aligend; did you mean models/aligned?"
    )
    assert not (tmp_path / "world").exists()  # minutes of building the tiny world spared
