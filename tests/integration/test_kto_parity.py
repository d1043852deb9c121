"""Parity with TRL 1.16's KTOTrainer: evalkit's per-completion log-probs, rewards, KL point and loss equal its own.

TRL is run in evaluation twice on the same labelled completions (KL groups of 4 rows, its
`per_device_train_batch_size`):
- with a batch of one completion, each entry it appends to `rewards/*` and `logps/*` is one
  completion's value, so their means are evalkit's pooled means; its `kl` entries are then
  max(0, ℓ' − ℓ'_ref) of each row's KL partner, which evalkit's per-row numbers must reproduce;
- with one batch holding every row, its `kl` is the pooled KL point and its `eval_loss` the mean
  KTO loss at that point: evalkit's `trl/kl` and `objective/loss`.
Standard (string) and conversational rows, desirable and undesirable, 10 rows so the last KL group is
smaller than the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.config.objectives import KtoObjective
from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair
from evalkit.data.rendering import PLAIN
from evalkit.data.unpaired import UnpairedExample, unpair
from evalkit.metrics.compute import compute_metrics
from evalkit.metrics.unpaired import compute_unpaired_metrics
from evalkit.scoring.score import pair_scores, score_pairs, tokenize_pair
from evalkit.scoring.unpaired import completion_logps, completion_scores, tokenize_completions
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs

BETA = 0.1
GROUP = 4


def conversational_examples() -> list[UnpairedExample]:
    pairs = generate_pairs(2, seed=5)[:5]
    return unpair(pairs)


def standard_examples() -> list[UnpairedExample]:
    pairs = [
        PreferencePair(p.id, p.prompt[0]["content"], " " + p.chosen[0]["content"], " " + p.rejected[0]["content"])  # type: ignore[index]
        for p in generate_pairs(2, seed=5)[:5]
    ]
    return unpair(pairs)


def trl_evaluate(
    policy: Any, reference: Any, tokenizer: PreTrainedTokenizerFast, examples: list[UnpairedExample], tmp_path: Path
) -> dict[int, tuple[dict[str, list[float]], dict[str, float]]]:
    """TRL's per-batch metric lists and its logged metrics, at an eval batch of 1 and of every row."""
    from datasets import Dataset

    dataset = Dataset.from_list([{"prompt": e.prompt, "completion": e.completion, "label": e.label} for e in examples])
    out = {}
    for batch in (1, len(examples)):
        out[batch] = evaluate_capturing(kto_trainer(policy, reference, tokenizer, dataset, batch, tmp_path))
    return out


def kto_trainer(policy: Any, reference: Any, tokenizer: Any, dataset: Any, batch: int, tmp_path: Path) -> Any:
    """KTOTrainer at β = `BETA` with KL groups of `GROUP` rows, evaluating `batch` rows at a time."""
    from trl import KTOConfig, KTOTrainer

    args = KTOConfig(
        output_dir=str(tmp_path / "trl"),
        beta=BETA,
        per_device_train_batch_size=GROUP,
        per_device_eval_batch_size=batch,
        bf16=False,
        fp16=False,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    return KTOTrainer(
        model=policy,
        ref_model=reference,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
    )


def evaluate_capturing(trainer: Any) -> tuple[dict[str, list[float]], dict[str, float]]:
    """The trainer's per-batch eval metric lists (before `log` averages them) and its logged metrics."""
    captured: dict[str, list[float]] = {}
    log = trainer.log

    def capture(logs: dict[str, float], start_time: float | None = None) -> None:
        captured.update({key: list(values) for key, values in trainer._metrics["eval"].items()})
        log(logs, start_time)

    trainer.log = capture
    return captured, trainer.evaluate()


@pytest.fixture()
def policy_and_reference(
    tiny_tokenizer: PreTrainedTokenizerFast, test_device: torch.device
) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    torch.manual_seed(3)
    policy = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval().to(test_device)
    torch.manual_seed(4)
    reference = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval().to(test_device)
    return policy, reference


@pytest.mark.parametrize("examples", [standard_examples, conversational_examples], ids=["standard", "conversational"])
def test_parity_with_kto_trainer(
    examples: Any,
    policy_and_reference: tuple[LlamaForCausalLM, LlamaForCausalLM],
    tiny_tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    policy, reference = policy_and_reference
    rows = examples()
    trl = trl_evaluate(policy, reference, tiny_tokenizer, rows, tmp_path)

    settings = ScoringSpec(max_length=1024, batch_size=3)
    tokens = tokenize_completions(rows, tiny_tokenizer, PLAIN, settings.max_length, GROUP)
    pad = tiny_tokenizer.pad_token_id if tiny_tokenizer.pad_token_id is not None else tiny_tokenizer.eos_token_id
    ours = completion_logps(policy.eval(), tokens, pad, settings, "policy")
    ref = completion_logps(reference.eval(), tokens, pad, settings, "reference")
    scores = completion_scores("policy", tokens, ours, ref)
    objective = KtoObjective(name="kto", beta=BETA)
    metrics = {m.metric: m.value for m in compute_unpaired_metrics("u", scores, objective) if m.subset == "all"}

    one, _ = trl[1]
    for key in ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"):
        assert metrics["trl/" + key] == pytest.approx(float(np.mean(one[key])), abs=1e-5), key
    desirable = [s for s in scores if s.label]
    assert [s.logp for s in desirable] == pytest.approx(one["logps/chosen"], abs=1e-4)  # row by row, in TRL's order
    shifts = [max(0.0, s.kl_logp - s.ref_kl_logp) for s in scores if s.ref_kl_logp is not None]
    assert shifts == pytest.approx(one["kl"], abs=1e-4)
    assert len({round(v, 3) for v in one["rewards/chosen"]}) > 1  # the rewards differ row to row

    whole, logged = trl[len(rows)]
    assert metrics["trl/kl"] == pytest.approx(whole["kl"][0], abs=1e-5)
    assert metrics["trl/kl"] > 0  # the clamp did not hide the comparison
    assert metrics["objective/loss"] == pytest.approx(logged["eval_loss"], abs=1e-6)
    assert metrics["trl/rewards/margins"] == pytest.approx(whole["rewards/margins"][0], abs=1e-5)


def test_kto_on_pairs_equals_kto_trainer_on_the_paired_dataset(
    policy_and_reference: tuple[LlamaForCausalLM, LlamaForCausalLM],
    tiny_tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    """Given pairs, KTOTrainer unpairs them itself; at a batch of one answer its rewards and log-probs per label are
    evalkit's KTO metrics of the pairs (`trl/*`), and its margin is the difference of the two reward means."""
    from datasets import Dataset

    policy, reference = policy_and_reference
    pairs = [
        PreferencePair(p.id, p.prompt[0]["content"], " " + p.chosen[0]["content"], " " + p.rejected[0]["content"])  # type: ignore[index]
        for p in generate_pairs(2, seed=5)[:5]
    ]
    data = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    one, _ = evaluate_capturing(kto_trainer(policy, reference, tiny_tokenizer, data, 1, tmp_path))

    tokens = [tokenize_pair(p, tiny_tokenizer) for p in pairs]
    settings, pad = ScoringSpec(batch_size=2), int(tiny_tokenizer.pad_token_id)
    own = score_pairs(policy, tokens, settings, pad, "policy")
    ref = score_pairs(reference, tokens, settings, pad, "reference")
    objective = KtoObjective(name="kto", beta=BETA)
    metrics = {
        m.metric: m.value
        for m in compute_metrics("p", pair_scores("policy", tokens, own, ref), 0.5, objectives={"policy": objective})
        if m.subset == "all"
    }
    for key in ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"):
        assert metrics["trl/" + key] == pytest.approx(float(np.mean(one[key])), abs=1e-5), key
    assert metrics["trl/rewards/margins"] == pytest.approx(
        np.mean(one["rewards/chosen"]) - np.mean(one["rewards/rejected"]), abs=1e-5
    )
    # No reward accuracy (TRL logs none) and no loss (it needs the KL point of unpaired scoring); the objective's own
    # accuracy is the sign of the reward margin.
    assert "trl/rewards/accuracies" not in metrics and "objective/loss" not in metrics
    assert 0.0 <= metrics["objective/accuracy"] <= 1.0 and "objective/margins" in metrics


def test_the_callback_logs_ktos_own_numbers_as_kto_trainer_computes_them(
    tiny_tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    """Inside `KTOTrainer.train()` with LoRA: at each evaluation the callback's pooled `trl/kl` and `objective/loss`
    equal the trainer's own `eval_kl` and `eval_loss`, which TRL computes on the same held-out pairs (unpaired by
    TRL) in one eval batch holding every row."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import KTOConfig, KTOTrainer

    import evalkit

    torch.manual_seed(0)
    base = build_model(tiny_tokenizer, hidden_size=32, num_layers=2)
    pairs = generate_pairs(4, seed=6)
    train, held_out = pairs[:8], pairs[8:]
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    args = KTOConfig(
        output_dir=str(tmp_path / "kto"),
        beta=BETA,
        learning_rate=1e-2,
        max_steps=2,
        per_device_train_batch_size=GROUP,
        per_device_eval_batch_size=2 * len(held_out),
        eval_strategy="steps",
        eval_steps=2,
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        bf16=False,
        dataloader_pin_memory=False,
    )
    trainer = KTOTrainer(
        model=base,
        args=args,
        train_dataset=Dataset.from_list(rows[:8]),
        eval_dataset=Dataset.from_list(rows[8:]),
        processing_class=tiny_tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    assert len(train) == 8
    trainer.add_callback(evalkit.EvalkitCallback(trainer, [p.__dict__ for p in held_out]))
    trainer.train()
    (trl,) = [e for e in trainer.state.log_history if "eval_kl" in e]
    (ours,) = [e for e in trainer.state.log_history if "eval_evalkit/trl/kl" in e]
    assert ours["eval_evalkit/trl/kl"] == pytest.approx(trl["eval_kl"], abs=1e-5)
    assert ours["eval_evalkit/trl/kl"] > 0  # the clamp did not hide the comparison
    assert ours["eval_evalkit/objective/loss"] == pytest.approx(trl["eval_loss"], abs=1e-6)
    assert 0 <= ours["eval_evalkit/objective/auc"] <= 1 and "eval_evalkit/objective/auc/ci_low" in ours
