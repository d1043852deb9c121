"""`EvalkitCallback` inside a real `DPOTrainer.train()`, LoRA on a tiny Llama, evaluating every 2 steps.

What it logs at a step is what `evalkit score` computes afterwards on the checkpoint saved at that step
(the reference: the base, as TRL's adapter-disabled reference is); it does not move with the eval batch
size while TRL's own `eval_logps/*` do; TensorBoard's event files, written through `report_to`, hold it;
and the results it writes per step are read by `evalkit compare` and `evalkit report`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

import evalkit
from evalkit.cli import main
from evalkit.metrics.compute import compute_metrics
from evalkit.results.pairs import read_pair_scores
from evalkit.train import trl_rows
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs

BETA = 0.1
STEPS = (2, 4)
HELD_OUT = 5


@dataclass(frozen=True)
class Trained:
    root: Path
    trainer: Any
    callback: evalkit.EvalkitCallback
    history: list[dict[str, Any]]
    """`trainer.state.log_history` as it was when training ended."""
    heldout: Path
    best_metric: float | None


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast) -> Trained:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    root = tmp_path_factory.mktemp("callback")
    torch.manual_seed(0)
    build_model(tiny_tokenizer, hidden_size=32, num_layers=2).save_pretrained(root / "base")
    tiny_tokenizer.save_pretrained(root / "base")
    pairs = generate_pairs(8, seed=3)
    train, held_out = pairs[:16], pairs[16 : 16 + HELD_OUT]
    rows = [{"id": p.id, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in held_out]
    heldout = root / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = DPOConfig(
        output_dir=str(root / "trl"),
        beta=BETA,
        learning_rate=1e-2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=2,
        max_steps=STEPS[-1],
        eval_strategy="steps",
        eval_steps=STEPS[0],
        save_strategy="steps",
        save_steps=STEPS[0],
        logging_steps=1,
        report_to=["tensorboard"],
        metric_for_best_model="evalkit/rewards/margins",  # read from the metrics evaluate() returns
        bf16=False,
        fp16=False,
        disable_tqdm=True,
        dataloader_pin_memory=False,
        seed=0,
    )
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(root / "base"),
        args=args,
        train_dataset=Dataset.from_list(trl_rows(train, tiny_tokenizer, None)),
        eval_dataset=Dataset.from_list(trl_rows(held_out, tiny_tokenizer, None)),
        processing_class=tiny_tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    held_out_frame = pd.DataFrame(rows)  # the held-out pairs as a notebook holds them
    callback = evalkit.EvalkitCallback(
        trainer, held_out_frame, layout=evalkit.Layout(id_column="id"), output_dir=root / "evalkit"
    )
    trainer.add_callback(callback)
    trainer.train()
    history = [dict(e) for e in trainer.state.log_history]
    return Trained(root, trainer, callback, history, heldout, trainer.state.best_metric)


def logged(history: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {int(e["step"]): float(e[key]) for e in history if key in e}


def test_logged_values_equal_evalkit_scoring_of_the_checkpoint_at_that_step(trained: Trained, tmp_path: Path) -> None:
    accuracy = logged(trained.history, "eval_evalkit/rewards/accuracies")
    assert sorted(accuracy) == list(STEPS)
    for step in STEPS:
        checkpoint = trained.root / "trl" / f"checkpoint-{step}"
        assert (checkpoint / "adapter_config.json").is_file()
        out = tmp_path / f"step-{step}.jsonl"
        code = main(
            [
                *("score", "--model", str(checkpoint), "--ref", str(trained.root / "base")),
                *("--data", str(trained.heldout), "--beta", str(BETA), "--out", str(out), "--no-reference-cache"),
            ]
        )
        assert code == 0
        rows = read_pair_scores(out)
        assert len(rows) == HELD_OUT
        metrics = {m.metric: m for m in compute_metrics("heldout", rows, BETA) if m.subset == "all"}
        for name in ("rewards/accuracies", "rewards/margins", "loss", "logps/chosen", "logps/rejected"):
            value = logged(trained.history, f"eval_evalkit/{name}")[step]
            assert value == pytest.approx(metrics[name].value, rel=1e-5, abs=1e-6), (step, name)
            low = logged(trained.history, f"eval_evalkit/{name}/ci_low")[step]
            high = logged(trained.history, f"eval_evalkit/{name}/ci_high")[step]
            assert (low, high) == pytest.approx((metrics[name].ci_low, metrics[name].ci_high), rel=1e-5, abs=1e-6)
        assert logged(trained.history, "eval_evalkit/n")[step] == HELD_OUT
    # DPO moved the policy between the two evaluations: the values are the checkpoints', not one number twice.
    margins = logged(trained.history, "eval_evalkit/rewards/margins")
    assert margins[STEPS[0]] != margins[STEPS[1]]
    assert trained.best_metric == pytest.approx(max(margins.values()))  # metric_for_best_model saw them


def precomputed_trainer(model: Any, tokenizer: PreTrainedTokenizerFast, pairs: list, out: Path, steps: int) -> Any:
    """Full fine-tuning with TRL's `precompute_ref_log_probs`: no reference model is kept."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
        output_dir=str(out),
        beta=BETA,
        learning_rate=1e-2,
        per_device_train_batch_size=4,
        max_steps=steps,
        eval_strategy="steps",
        eval_steps=2,
        precompute_ref_log_probs=True,
        report_to=[],
        save_strategy="steps",
        save_steps=2,
        bf16=False,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(trl_rows(pairs[HELD_OUT:], tokenizer, None)),
        eval_dataset=Dataset.from_list(trl_rows(pairs[:HELD_OUT], tokenizer, None)),
        processing_class=tokenizer,
    )
    assert trainer.ref_model is None
    return trainer


def test_a_precomputed_reference_is_the_initial_policy_scored_when_training_begins(
    tiny_tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    """Full fine-tuning with `precompute_ref_log_probs`: TRL keeps no reference model, evalkit scores the policy
    before the first step, which is then the reference every evaluation's rewards are measured against."""

    torch.manual_seed(0)
    model = build_model(tiny_tokenizer, hidden_size=32, num_layers=2)
    pairs = generate_pairs(4, seed=5)
    rows = [{"id": p.id, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs[:HELD_OUT]]
    before = evalkit.score(model, rows, tokenizer=tiny_tokenizer, name="initial", layout=evalkit.Layout(id_column="id"))
    trainer = precomputed_trainer(model, tiny_tokenizer, pairs, tmp_path / "trl", steps=2)
    with pytest.raises(
        evalkit.EvalkitError, match=r"metric 'rewards/margin': no such metric \(did you mean 'rewards/margins'"
    ):
        evalkit.EvalkitCallback(trainer, rows, logged=["loss", "rewards/margin"])  # it would log nothing, silently
    callback = evalkit.EvalkitCallback(trainer, rows, layout=evalkit.Layout(id_column="id"))
    trainer.add_callback(callback)
    trainer.train()
    run = callback.evaluations[2].pairs_frame().set_index(["model", "id"])
    initial = before.pairs_frame().set_index("id").loc[run.loc["policy"].index]
    np.testing.assert_allclose(run.loc["policy"].ref_logp_chosen, initial.logp_chosen, rtol=1e-6)
    np.testing.assert_allclose(run.loc["reference"].logp_rejected, initial.logp_rejected, rtol=1e-6)
    assert not np.allclose(run.loc["policy"].logp_chosen, initial.logp_chosen, rtol=1e-3)  # it trained

    # Resumed from its checkpoint, the initial policy is gone: the policy's own metrics only, never a wrong reward.
    torch.manual_seed(0)
    fresh = build_model(tiny_tokenizer, hidden_size=32, num_layers=2)
    resumed = precomputed_trainer(fresh, tiny_tokenizer, pairs, tmp_path / "trl", steps=4)
    again = evalkit.EvalkitCallback(resumed, rows, layout=evalkit.Layout(id_column="id"))
    resumed.add_callback(again)
    resumed.train(resume_from_checkpoint=str(tmp_path / "trl" / "checkpoint-2"))
    assert sorted(again.evaluations) == [4] and again.evaluations[4].models == ["policy"]
    last = [e for e in resumed.state.log_history if e["step"] > 2]  # the checkpoint brought the earlier history
    assert any("eval_evalkit/preference/accuracy" in e for e in last)
    assert not any("eval_evalkit/rewards/accuracies" in e for e in last)


def test_evalkit_values_do_not_move_with_the_eval_batch_size_while_trls_do(trained: Trained) -> None:
    trainer, by_batch = trained.trainer, {}
    for batch in (1, 2, 4):
        trainer.args.per_device_eval_batch_size = batch
        by_batch[batch] = trainer.evaluate()
    trainer.args.per_device_eval_batch_size = 2
    print(
        "\neval_logps/chosen by eval batch (TRL):",
        {b: round(m["eval_logps/chosen"], 4) for b, m in by_batch.items()},
        "\nevalkit/logps/chosen by eval batch:",
        {b: round(m["eval_evalkit/logps/chosen"], 4) for b, m in by_batch.items()},
    )
    trl = [m["eval_logps/chosen"] for m in by_batch.values()]
    assert max(trl) - min(trl) > 1e-3  # 5 pairs: batches of 1×5, 2+2+1 and 4+1 weigh the pairs differently
    for key in ("logps/chosen", "logps/rejected", "rewards/margins", "rewards/accuracies", "loss"):
        ours = [m[f"eval_evalkit/{key}"] for m in by_batch.values()]
        assert max(ours) - min(ours) <= 1e-6 * max(1.0, abs(ours[0])), key
    # The pooled mean is the mean over pairs: TRL's batch-1 run averages one pair per batch, so it agrees.
    assert by_batch[1]["eval_evalkit/logps/chosen"] == pytest.approx(by_batch[1]["eval_logps/chosen"], abs=1e-3)


def test_tensorboard_event_files_hold_the_logged_values(trained: Trained) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((trained.root / "trl" / "runs").rglob("events.out.tfevents.*"))
    assert events
    found: dict[str, list[tuple[int, float]]] = {}
    for file in events:
        accumulator = EventAccumulator(str(file), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    for name in ("rewards/accuracies", "rewards/margins", "rewards/margins/ci_low", "loss/ci_high"):
        expected = logged(trained.history, f"eval_evalkit/{name}")
        written = found[f"eval/evalkit/{name}"]
        for step, value in expected.items():
            assert any(s == step and v == pytest.approx(value, rel=1e-6, abs=1e-7) for s, v in written), (name, step)


def test_results_per_step_feed_evalkit_compare_and_the_curve_in_evalkit_report(
    trained: Trained, tmp_path: Path
) -> None:
    out = trained.root / "evalkit"
    curve = evalkit.read_results(out)
    assert curve.models == ["reference", *(f"policy@{s}" for s in STEPS)]
    against = curve.comparisons_frame()
    assert set(against.baseline) == {"reference"} and set(against.model) == {f"policy@{s}" for s in STEPS}
    for step in STEPS:
        run = evalkit.read_results(out / f"step-{step}" / "results.json")
        assert run.models == ["reference", "policy"]
        value = logged(trained.history, "eval_evalkit/rewards/margins")[step]
        assert run.value("rewards/margins", "policy") == pytest.approx(value, rel=1e-9)
        assert curve.value("rewards/margins", f"policy@{step}") == pytest.approx(value, rel=1e-9)
    compared = tmp_path / "compare"
    assert (
        main(
            [
                "compare",
                str(out / "step-2" / "results.json"),
                str(out / "step-4" / "results.json"),
                "--out",
                str(compared),
            ]
        )
        == 0
    )
    text = (compared / "compare.md").read_text()
    assert "policy" in text and "tango" in text.lower()  # the same pairs in both: a paired comparison
    report = tmp_path / "report"
    shutil.copytree(out, report)
    assert main(["report", str(report / "results.json")]) == 0
    assert "of each checkpoint" in (report / "report.html").read_text()  # the sweep chart of policy@2, policy@4
