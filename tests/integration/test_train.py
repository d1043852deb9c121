"""`evalkit train` and the two tutorial suites, end to end on local stand-ins.

The stand-ins have the shapes of the real things (a GPT-2 model and tokenizer without a chat
template or pad token; a SmolLM3 model and a ChatML tokenizer; ultrafeedback-binarized rows with
all their columns; an hh-rlhf folder of parquet shards), at a size that trains in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, SmolLM3Config, SmolLM3ForCausalLM

from evalkit.cli import main
from evalkit.config.recorded import TRAIN_RECORD
from evalkit.config.specs import ScoringSpec, WorldSpec
from evalkit.results.files import read_results
from evalkit.world import build_world
from evalkit.world.pairs import generate_pairs

SUITES = Path(__file__).parents[2] / "suites"
FACTS = [(p.prompt[0]["content"], p.chosen[0]["content"], p.rejected[0]["content"]) for p in generate_pairs(60, seed=4)]  # type: ignore[index]


def byte_level_tokenizer(special: list[str], **named: Any) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text for fact in FACTS for text in fact], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=1024, **named)


@pytest.fixture(scope="module")
def gpt2_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GPT-2's shape: `<|endoftext|>` as BOS/EOS/UNK, no pad token, no chat template, Conv1D layers."""
    path = tmp_path_factory.mktemp("gpt2")
    tokenizer = byte_level_tokenizer(
        ["<|endoftext|>"], bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=32, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def smollm3_standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM3's shape: its architecture (no-RoPE layers, GQA) and a ChatML template."""
    path = tmp_path_factory.mktemp("smollm3")
    tokenizer = byte_level_tokenizer(
        ["<|im_start|>", "<|im_end|>", "<|end_of_text|>"],
        eos_token="<|im_end|>",
        pad_token="<|end_of_text|>",
        chat_template=(
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        ),
    )
    torch.manual_seed(0)
    config = SmolLM3Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        no_rope_layers=[1, 0],
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    SmolLM3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def ultrafeedback_standin(path: Path) -> Path:
    """Rows shaped like argilla/ultrafeedback-binarized-preferences-cleaned."""
    rows = []
    for prompt, good, bad in FACTS:
        rows.append(
            {
                "source": "tinyworld",
                "prompt": prompt,
                "chosen": [{"role": "user", "content": prompt}, {"role": "assistant", "content": " " + good}],
                "chosen-rating": 5.0,
                "chosen-model": "a",
                "rejected": [{"role": "user", "content": prompt}, {"role": "assistant", "content": " " + bad}],
                "rejected-rating": 1.0,
                "rejected-model": "b",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def hh_rlhf_standin(folder: Path) -> Path:
    """A folder shaped like Anthropic/hh-rlhf on the hub: data/{train,test}-*.parquet, two string columns."""
    (folder / "data").mkdir(parents=True)
    rows = [
        {"chosen": f"\n\nHuman: {p}\n\nAssistant: {good}", "rejected": f"\n\nHuman: {p}\n\nAssistant: {bad}"}
        for p, good, bad in FACTS
    ]
    pd.DataFrame(rows[:50]).to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    pd.DataFrame(rows[50:]).to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    return folder


def test_gpt2_ultrafeedback_tutorial_suite_trains_reloads_and_evaluates(gpt2_standin: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    overrides = {
        "output_dir": out,
        "models.gpt2.path": gpt2_standin,
        "models.gpt2-dpo.path": out / "models" / "gpt2-dpo",
        "train.data.path": ultrafeedback_standin(tmp_path / "uf.jsonl"),
        "train.heldout": out / "data" / "heldout.jsonl",
        "datasets.ultrafeedback-heldout.path": out / "data" / "heldout.jsonl",
    }
    argv = ["bench", str(SUITES / "gpt2-ultrafeedback-lora.yaml")]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0

    result = read_results(out / "results.json")
    assert result.training is not None and result.training.steps == 45  # 50 rows, 10% held out, batch 1
    dpo = next(m for m in result.models if m.name == "gpt2-dpo")
    assert dpo.kind == "adapter" and Path(dpo.base or "").resolve() == gpt2_standin.resolve()
    assert result.datasets[0].n_pairs == 5
    assert result.value("ultrafeedback-heldout", "gpt2-dpo", "rewards/accuracies") is not None
    config = json.loads((out / "models" / "gpt2-dpo" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (4, 8, 0.1)
    assert sorted(config["target_modules"]) == ["c_attn", "c_proj"] and config["fan_in_fan_out"] is True
    saved = json.loads((out / "models" / "gpt2-dpo" / "evalkit_train.json").read_text())
    assert saved["trainer_config"]["bf16"] is False and saved["trainer_config"]["learning_rate"] == 1e-4
    assert saved["environment"]["packages"]["trl"]


def test_smollm3_hh_rlhf_tutorial_suite_trains_full_and_sweeps_checkpoints(
    smollm3_standin: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    overrides = {
        "output_dir": out,
        "models.smollm3.path": smollm3_standin,
        "models.smollm3.dtype": "float32",
        "models.smollm3-dpo.path": out / "models" / "smollm3-dpo",
        "models.smollm3-dpo.dtype": "float32",
        "train.data.path": hh_rlhf_standin(tmp_path / "hh-rlhf"),
        "train.heldout": out / "data" / "heldout.jsonl",
        "train.args.max_steps": 4,
        "train.args.save_steps": 2,
        "train.args.warmup_steps": 1,
        "train.args.gradient_accumulation_steps": 1,
        "datasets.hh-rlhf-heldout.path": out / "data" / "heldout.jsonl",
    }
    argv = ["bench", str(SUITES / "smollm3-hh-rlhf.yaml")]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    assert main(argv) == 0

    result = read_results(out / "results.json")
    assert [m.name for m in result.models] == ["smollm3", "smollm3-dpo@2", "smollm3-dpo@4", "smollm3-dpo"]
    assert all(m.kind == "model" for m in result.models)  # full fine-tuning
    assert result.training is not None and result.training.steps == 4
    heldout = [json.loads(line) for line in (out / "data" / "heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == 5 and all(str(r["prompt"]).endswith("\n\nAssistant:") for r in heldout)
    final = result.value("hh-rlhf-heldout", "smollm3-dpo", "logps/chosen")
    assert final == result.value(
        "hh-rlhf-heldout", "smollm3-dpo@4", "logps/chosen"
    )  # the last checkpoint is the final model
    # Training evaluated the held-out pairs the evalkit way (EvalkitCallback, against TRL's frozen reference):
    # what it logged at a step is what scoring that step's checkpoint gives afterwards.
    history = json.loads((out / "models" / "smollm3-dpo" / "log_history.json").read_text())
    for metric in ("rewards/margins", "rewards/accuracies", "loss"):
        logged = {e["step"]: e[f"eval_evalkit/{metric}"] for e in history if f"eval_evalkit/{metric}" in e}
        for step in (2, 4):
            scored = result.value("hh-rlhf-heldout", f"smollm3-dpo@{step}", metric)
            assert logged[step] == pytest.approx(scored, rel=1e-5, abs=1e-6), (metric, step)
    assert result.training.curve[-1].eval_margin == pytest.approx(
        result.value("hh-rlhf-heldout", "smollm3-dpo", "rewards/margins"), rel=1e-5, abs=1e-6
    )  # the report's training curve shows evalkit's pooled eval values
    assert (out / "models" / "smollm3-dpo" / "evalkit" / "results.json").is_file()


def test_evalkit_train_matches_calling_dpotrainer_directly(tmp_path: Path) -> None:
    """Same settings and seed: the loss curve of `evalkit train` equals TRL's own, step by step."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    world = build_world(WorldSpec(dir=tmp_path / "world", pairs_per_subset=12, pretrain_steps=40))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"""
name: parity
output_dir: {tmp_path / "out"}
train:
  base: base
  output: tuned
  data: {world.train_pairs}
  lora: {{r: 8, alpha: 16, dropout: 0.0, target_modules: all-linear}}
  args: {{beta: 0.1, learning_rate: 1.0e-3, num_train_epochs: 1, per_device_train_batch_size: 4, seed: 3}}
datasets: [{{name: eval, path: {world.eval_pairs}}}]
models:
  - {{name: base, path: {world.base_model}}}
  - {{name: tuned, path: {tmp_path / "tuned"}}}
reference: base
"""
    )
    assert main(["train", str(suite)]) == 0
    ours = [e["loss"] for e in json.loads((tmp_path / "tuned" / "log_history.json").read_text()) if "loss" in e]

    rows = [json.loads(line) for line in world.train_pairs.read_text().splitlines()]
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(world.base_model),
        args=DPOConfig(
            output_dir=str(tmp_path / "direct"),
            beta=0.1,
            learning_rate=1e-3,
            num_train_epochs=1,
            per_device_train_batch_size=4,
            seed=3,
            bf16=False,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
        ),
        train_dataset=Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]),
        processing_class=AutoTokenizer.from_pretrained(world.base_model),
        peft_config=LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    trainer.train()
    direct = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(ours) == len(direct) == 7  # 27 pairs, batches of 4
    assert ours == pytest.approx(direct, abs=1e-6)
    assert len(set(ours)) > 1


def test_training_runs_unchanged_in_two_processes(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m evalkit train`: two gloo processes on CPU, one set of outputs."""
    import os
    import subprocess
    import sys

    world = build_world(WorldSpec(dir=tmp_path / "world", pairs_per_subset=12, pretrain_steps=20))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"""
name: ddp
output_dir: {tmp_path / "out"}
train:
  base: base
  output: tuned
  data: {world.train_pairs}
  lora: {{r: 4, alpha: 8}}
  args: {{max_steps: 3, per_device_train_batch_size: 2, learning_rate: 1.0e-3}}
datasets: [{{name: eval, path: {world.eval_pairs}}}]
models:
  - {{name: base, path: {world.base_model}}}
  - {{name: tuned, path: {tmp_path / "tuned"}}}
"""
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    root = str(Path(__file__).parents[2])
    done = subprocess.run(
        [*torchrun, "-m", "evalkit", "train", str(suite)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # an internal error's traceback goes to .evalkit/logs here, shown below if a rank fails
        env={
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        },
    )
    # Each rank's own one-line error can sit anywhere in torchrun's stderr: show every line that names evalkit too,
    # and the tracebacks an internal error (exit 3) left.
    named = [line for line in done.stderr.splitlines() if "evalkit" in line.lower() and "Traceback" not in line]
    tracebacks = [log.read_text()[-3000:] for log in sorted((tmp_path / ".evalkit" / "logs").glob("*.log"))]
    assert done.returncode == 0, "\n".join([*named[-20:], *tracebacks]) + "\n" + done.stderr[-2000:]
    assert done.stdout.count("trained 'tuned'") == 1  # only the main process speaks
    history = json.loads((tmp_path / "tuned" / "log_history.json").read_text())
    assert [e["step"] for e in history if "loss" in e] == [1, 2, 3]
    record = json.loads((tmp_path / "tuned" / TRAIN_RECORD).read_text())
    assert record["processes"] == 2  # one training over two processes, not two trainings into one directory
    # Two processes of batch 2 train as one process of batch 4: the same pairs each step, gradients averaged.
    batch_of_four = ["--set", "train.args.per_device_train_batch_size=4"]
    alone = subprocess.run(
        [sys.executable, "-m", "evalkit", "train", str(suite), "--out", str(tmp_path / "alone"), *batch_of_four],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root},
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    single = json.loads((tmp_path / "alone" / "log_history.json").read_text())
    assert json.loads((tmp_path / "alone" / TRAIN_RECORD).read_text())["processes"] == 1
    losses = [e["loss"] for e in history if "loss" in e]
    assert losses == pytest.approx([e["loss"] for e in single if "loss" in e], abs=1e-5)
    assert len(set(losses)) == 3
    assert (tmp_path / "tuned" / "adapter_model.safetensors").is_file()


def test_merged_model_on_request_scores_like_the_adapter(tmp_path: Path) -> None:
    """`merge: true` also saves the adapter merged into its base: a plain model with the same log-probs."""
    from evalkit.checkpoints import load_model
    from evalkit.config.specs import ModelSpec
    from evalkit.scoring.score import score_pairs, tokenize_pair

    world = build_world(WorldSpec(dir=tmp_path / "world", pairs_per_subset=12, pretrain_steps=20))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"""
name: merge
output_dir: {tmp_path / "out"}
train:
  base: base
  output: tuned
  data: {world.train_pairs}
  merge: true
  lora: {{r: 4, alpha: 8}}
  args: {{max_steps: 3, per_device_train_batch_size: 4, learning_rate: 1.0e-2}}
datasets: [{{name: eval, path: {world.eval_pairs}}}]
models:
  - {{name: base, path: {world.base_model}}}
  - {{name: tuned, path: {tmp_path / "tuned"}}}
"""
    )
    assert main(["train", str(suite)]) == 0
    adapter = load_model(ModelSpec(name="a", path=str(tmp_path / "tuned")))
    merged = load_model(ModelSpec(name="m", path=str(tmp_path / "tuned" / "merged")))
    assert (adapter.info.kind, merged.info.kind) == ("adapter", "model")
    pairs = [tokenize_pair(p, adapter.tokenizer) for p in generate_pairs(2, seed=1)]
    pad = adapter.tokenizer.pad_token_id
    via_adapter = score_pairs(adapter.model, pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "adapter")
    via_merged = score_pairs(merged.model, pairs, ScoringSpec(max_length=1024, batch_size=8), pad, "merged")
    for a, b in zip(via_adapter, via_merged, strict=True):
        assert a.chosen == pytest.approx(b.chosen, abs=1e-4) and a.rejected == pytest.approx(b.rejected, abs=1e-4)
