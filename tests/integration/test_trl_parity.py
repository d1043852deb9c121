"""Parity with TRL 1.16: evalkit's per-pair log-probs and DPO loss equal DPOTrainer's own.

TRL is run in evaluation with a batch of one pair, so each entry it appends to its `logps/*`
and `rewards/*` metric lists is one pair's value (the reference log-prob is recovered as
logp − reward/β). Its `eval_loss` is then the mean of per-pair losses, the number evalkit
reports as `loss`. Covered: explicit, conversational and implicit-prompt (hh-rlhf) data, with a
separate reference model and with a PEFT adapter whose reference is the base, adapter disabled.

For implicit-prompt data both sides get evalkit's split (prompt through the last
`\\n\\nAssistant:`): TRL's own `extract_prompt` takes the character-level common prefix instead,
which evalkit deliberately does not (see evalkit/data.py), and evalkit's trainer passes TRL the
explicit split too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.config import DatasetSpec
from evalkit.data import PreferencePair, load_pairs
from evalkit.metrics import compute_metrics
from evalkit.scoring import pair_scores, score_pairs, tokenize_pair
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs

BETA = 0.1
N_PER_SUBSET = 3


def world_rows() -> list[PreferencePair]:
    return generate_pairs(N_PER_SUBSET, seed=11)


def conversational_rows() -> list[dict[str, Any]]:
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in world_rows()]


def explicit_rows() -> list[dict[str, Any]]:
    return [
        {
            "prompt": p.prompt[0]["content"],
            "chosen": " " + p.chosen[0]["content"],
            "rejected": " " + p.rejected[0]["content"],
        }  # type: ignore[index]
        for p in world_rows()
    ]


def hh_rows() -> list[dict[str, Any]]:
    rows = []
    for p in world_rows():
        dialogue = f"\n\nHuman: Hello\n\nAssistant: Hi!\n\nHuman: {p.prompt[0]['content']}\n\nAssistant:"  # type: ignore[index]
        rows.append(
            {"chosen": dialogue + " " + p.chosen[0]["content"], "rejected": dialogue + " " + p.rejected[0]["content"]}
        )  # type: ignore[index]
    return rows


def evalkit_pairs(rows: list[dict[str, Any]], tmp_path: Path) -> list[PreferencePair]:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_pairs(DatasetSpec(name="p", path=str(path)))


def trl_evaluate(
    model: Any,
    ref_model: Any,
    peft_config: Any,
    tokenizer: PreTrainedTokenizerFast,
    pairs: list[PreferencePair],
    tmp_path: Path,
) -> tuple[dict[str, list[float]], float, Any]:
    """Per-pair metric values TRL computes in evaluation, its eval_loss, and the policy it evaluated."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        beta=BETA,
        per_device_eval_batch_size=1,
        bf16=False,
        fp16=False,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    captured: dict[str, list[float]] = {}
    log = trainer.log

    def capture(logs: dict[str, float], start_time: float | None = None) -> None:
        captured.update({key: list(values) for key, values in trainer._metrics["eval"].items()})
        log(logs, start_time)

    trainer.log = capture  # type: ignore[method-assign]
    metrics = trainer.evaluate()
    return captured, metrics["eval_loss"], trainer.model


def assert_parity(
    tokenizer: PreTrainedTokenizerFast,
    pairs: list[PreferencePair],
    trl: dict[str, list[float]],
    trl_loss: float,
    policy: Any,
    reference: Any,
) -> None:
    """evalkit's scores of `pairs` under `policy` and `reference` equal what TRL computed."""
    tokenized = [tokenize_pair(p, tokenizer) for p in pairs]
    pad = tokenizer.pad_token_id
    ours = score_pairs(policy.eval(), tokenized, 1024, 4, pad, "policy")
    if reference is None:  # a PEFT policy: the reference is the same model with the adapter disabled
        with policy.disable_adapter():
            ref = score_pairs(policy, tokenized, 1024, 4, pad, "reference")
    else:
        ref = score_pairs(reference, tokenized, 1024, 4, pad, "reference")
    assert len(trl["logps/chosen"]) == len(pairs)
    for i in range(len(pairs)):
        assert ours[i].chosen == pytest.approx(trl["logps/chosen"][i], abs=1e-4)
        assert ours[i].rejected == pytest.approx(trl["logps/rejected"][i], abs=1e-4)
        assert ref[i].chosen == pytest.approx(trl["logps/chosen"][i] - trl["rewards/chosen"][i] / BETA, abs=1e-4)
        assert ref[i].rejected == pytest.approx(trl["logps/rejected"][i] - trl["rewards/rejected"][i] / BETA, abs=1e-4)
    rows = pair_scores("policy", tokenized, ours, ref)
    (loss,) = [m.value for m in compute_metrics("p", rows, BETA) if m.metric == "loss" and m.subset == "all"]
    assert loss == pytest.approx(trl_loss, abs=1e-5)
    # The rewards differ pair to pair, so equal losses are not an accident of a zero margin.
    assert len({round(m, 3) for m in trl["rewards/margins"]}) > 1


@pytest.fixture()
def policy_and_reference(tiny_tokenizer: PreTrainedTokenizerFast) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    torch.manual_seed(1)
    policy = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()
    torch.manual_seed(2)
    reference = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()
    return policy, reference


SHAPES = pytest.mark.parametrize(
    "rows", [explicit_rows, conversational_rows, hh_rows], ids=["explicit", "conversational", "implicit"]
)


@SHAPES
def test_parity_with_a_separate_reference_model(
    rows: Any,
    policy_and_reference: tuple[LlamaForCausalLM, LlamaForCausalLM],
    tiny_tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    policy, reference = policy_and_reference
    pairs = evalkit_pairs(rows(), tmp_path)
    trl, trl_loss, _ = trl_evaluate(policy, reference, None, tiny_tokenizer, pairs, tmp_path)
    assert_parity(tiny_tokenizer, pairs, trl, trl_loss, policy, reference)


@SHAPES
def test_parity_with_peft_and_no_reference_model(
    rows: Any,
    policy_and_reference: tuple[LlamaForCausalLM, LlamaForCausalLM],
    tiny_tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    """TRL with `peft_config` and no `ref_model`: the reference is the base with the adapter disabled."""
    from peft import LoraConfig

    base, _ = policy_and_reference
    # init_lora_weights=False: random A and B, so the adapter really moves the log-probs.
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    pairs = evalkit_pairs(rows(), tmp_path)
    trl, trl_loss, adapted = trl_evaluate(base, None, lora, tiny_tokenizer, pairs, tmp_path)
    assert_parity(tiny_tokenizer, pairs, trl, trl_loss, adapted, None)
