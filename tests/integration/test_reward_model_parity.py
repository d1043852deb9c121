"""Parity of evalkit's classifier scorer with TRL 1.16's RewardTrainer and with RewardBench's way of scoring.

A tiny `LlamaForSequenceClassification` (2 layers, width 32) is trained for a few steps on the tiny world through
evalkit's train wrapper (TRL's RewardTrainer with a LoRA SEQ_CLS adapter), then loaded the way a suite loads a
`kind: reward_model` model. On the same rows:
- `RewardTrainer.evaluate()` at batch size 1: each entry it appends to its `accuracy` and `margin` lists is one
  pair's value, so their means are the pooled numbers evalkit reports as `rewards/accuracies` and
  `rewards/margins`;
- transformers' `text-classification` pipeline with `function_to_apply="none"` on the rendered text of each
  answer (RewardBench's way): its score of each answer is evalkit's `score_chosen` / `score_rejected` (the
  template's own BOS left out of the text, since the pipeline's tokenizer adds one: otherwise the pipeline would
  score a doubled BOS the model never trained on).
Covered: conversational rows (the chat template) and explicit text rows (EOS appended, as RewardTrainer does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import PreTrainedTokenizerFast, pipeline

from evalkit.checkpoints import LoadedModel, load_model
from evalkit.config.specs import DatasetSpec, ModelSpec, ScoringSpec
from evalkit.config.training import TrainSpec
from evalkit.data.pairs import PreferencePair, load_pairs
from evalkit.metrics.compute import compute_metrics
from evalkit.scoring.classifier import reward_model_dataset, score_completions
from evalkit.scoring.dataset import tokenize_set
from evalkit.train import train_model
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs


def write_rows(rows: list[dict[str, Any]], path: Path) -> list[PreferencePair]:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_pairs(DatasetSpec(name="p", path=str(path), id_column="id", subset_column="subset"))


def conversational(seed: int, n: int) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "subset": p.subset, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        for p in generate_pairs(n, seed=seed)
    ]


def explicit(seed: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "subset": r["subset"],
            "prompt": r["prompt"][0]["content"],
            "chosen": " " + r["chosen"][0]["content"],
            "rejected": " " + r["rejected"][0]["content"],
        }
        for r in conversational(seed, n)
    ]


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast) -> LoadedModel:
    """A tiny classifier reward model trained for a few steps by evalkit's wrapper, loaded as a suite loads one."""
    root = tmp_path_factory.mktemp("rm")
    torch.manual_seed(0)
    base = build_model(tiny_tokenizer, hidden_size=32, num_layers=2)
    base.save_pretrained(root / "base")
    tiny_tokenizer.save_pretrained(root / "base")
    pairs = write_rows(conversational(seed=3, n=8), root / "train.jsonl")
    spec = TrainSpec.model_validate(
        {
            "base": "base",
            "output": "rm",
            "data": str(root / "train.jsonl"),
            "lora": {"r": 4, "alpha": 8},
            "args": {"learning_rate": 5e-3, "max_steps": 6, "per_device_train_batch_size": 4, "seed": 0},
        }
    )
    base_spec = ModelSpec(name="base", path=str(root / "base"))
    run = train_model(spec, base_spec, root / "rm", pairs, reward_model=True)
    assert run.steps == 6
    assert json.loads((root / "rm" / "evalkit_train.json").read_text())["trainer"] == "RewardTrainer"
    return load_model(ModelSpec(name="rm", path=str(root / "rm"), kind="reward_model"))


def trl_evaluate(model: Any, tokenizer: PreTrainedTokenizerFast, pairs: list[PreferencePair], tmp_path: Path) -> Any:
    """RewardTrainer's per-pair `accuracy` and `margin` in evaluation at batch size 1 (one entry per pair)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    args = RewardConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_eval_batch_size=1,
        report_to=[],
        disable_tqdm=True,
        bf16=False,
        dataloader_pin_memory=False,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    captured: dict[str, list[float]] = {}
    log = trainer.log

    def capture(logs: dict[str, float], start_time: float | None = None) -> None:
        captured.update({key: list(values) for key, values in trainer._metrics["eval"].items()})
        log(logs, start_time)

    trainer.log = capture  # type: ignore[method-assign]
    metrics = trainer.evaluate(eval_dataset=Dataset.from_list(rows))
    return captured, metrics


@pytest.mark.parametrize("rows", [conversational, explicit], ids=["conversational", "explicit"])
def test_scores_equal_reward_trainer_evaluate(rows: Any, reward_model: LoadedModel, tmp_path: Path) -> None:
    pairs = write_rows(rows(seed=9, n=4), tmp_path / "eval.jsonl")
    settings = ScoringSpec(max_length=1024, batch_size=3)
    tokens = tokenize_set(pairs, reward_model.tokenizer, reward_model.rendering, settings.max_length)
    scored = reward_model_dataset("p", "rm", reward_model.model, reward_model.tokenizer, tokens, settings, "rm")
    assert scored.audit.n_scored == len(pairs) and scored.audit.truncated == 0
    trl, trl_metrics = trl_evaluate(reward_model.model, reward_model.tokenizer, pairs, tmp_path)
    assert len(trl["margin"]) == len(pairs)  # one entry per pair: batch size 1
    by_id = {r.id: r for r in scored.rows}
    for pair, margin, accuracy in zip(pairs, trl["margin"], trl["accuracy"], strict=True):
        row = by_id[pair.id]
        assert row.own_margin == pytest.approx(margin, abs=1e-5)
        assert float(row.own_margin > 0) == accuracy
    assert len({round(m, 4) for m in trl["margin"]}) > 1  # the model tells pairs apart: not a constant head
    metrics = {m.metric: m.value for m in compute_metrics("p", scored.rows, beta=0.1) if m.subset == "all"}
    assert metrics["rewards/margins"] == pytest.approx(trl_metrics["eval_margin"], abs=1e-5)
    assert metrics["rewards/accuracies"] == pytest.approx(trl_metrics["eval_accuracy"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(trl_metrics["eval_loss"], abs=1e-5)
    assert "preference/accuracy" not in metrics  # a classifier has no log-probs


@pytest.mark.parametrize("rows", [conversational, explicit], ids=["conversational", "explicit"])
def test_scores_equal_the_text_classification_pipeline(rows: Any, reward_model: LoadedModel, tmp_path: Path) -> None:
    """RewardBench renders each exchange to text (`apply_chat_template(..., tokenize=False)`) and runs the
    `text-classification` pipeline on it with `function_to_apply="none"`: the raw logit."""
    pairs = write_rows(rows(seed=10, n=4), tmp_path / "eval.jsonl")
    tokenizer = reward_model.tokenizer
    model = load_model(reward_model.spec).model.merge_and_unload()  # a copy: the pipeline takes a plain model
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    texts, items = [], []
    for pair in pairs:
        for answer in (pair.chosen, pair.rejected):
            if isinstance(answer, list):
                assert isinstance(pair.prompt, list)
                text = tokenizer.apply_chat_template(pair.prompt + answer, tokenize=False)
                # The template writes BOS and the pipeline's tokenizer adds one more: the doubled BOS RewardBench's
                # text path gives such tokenizers. Scored on the ids the model trained on, the template's BOS goes.
                texts.append(text.removeprefix(tokenizer.bos_token))
            else:
                texts.append(f"{pair.prompt}{answer}{tokenizer.eos_token}")
            items.append((pair.prompt, answer))
    theirs = [out["score"] for out in classify(texts, function_to_apply="none", batch_size=1)]
    ours = score_completions(model, tokenizer, items, rendering=reward_model.rendering, batch_size=5)
    assert ours.n_truncated == ours.prompt_not_prefix == ours.doubled_bos == 0
    assert ours.scores == pytest.approx(theirs, abs=1e-5)


def test_max_length_cuts_the_end_and_is_counted(reward_model: LoadedModel, tmp_path: Path) -> None:
    """A sequence longer than `max_length` is scored on its first tokens (the logit at the last one kept) and
    counted as truncated: RewardTrainer would drop it, so the count says how many pairs it would not have seen."""
    pairs = write_rows(conversational(seed=12, n=1), tmp_path / "eval.jsonl")
    whole = tokenize_set(pairs, reward_model.tokenizer, reward_model.rendering, 1024)
    cut = max(len(p.prompt_ids) for p in whole.scorable) + 1  # every prompt fits, no answer does
    settings = ScoringSpec(max_length=cut, batch_size=2)
    tokens = tokenize_set(pairs, reward_model.tokenizer, reward_model.rendering, settings.max_length)
    scored = reward_model_dataset("p", "rm", reward_model.model, reward_model.tokenizer, tokens, settings, "rm")
    longer = [len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) > cut for p in tokens.scorable]
    assert scored.audit.truncated == sum(longer) > 0
    assert [r.truncated for r in scored.rows] == longer
    first = next(p for p in tokens.scorable if len(p.prompt_ids) + len(p.chosen_ids) > cut)  # its chosen is cut
    ids = torch.tensor([(first.prompt_ids + first.chosen_ids)[:cut]])  # (1, cut)
    with torch.inference_mode():
        alone = float(reward_model.model(input_ids=ids).logits[0, 0])
    assert scored.rows[[r.id for r in scored.rows].index(first.id)].score_chosen == pytest.approx(alone, abs=1e-5)


def test_python_score_of_a_reward_model_equals_reward_trainer_evaluate(
    reward_model: LoadedModel, tmp_path: Path
) -> None:
    """`evalkit.score` on a classifier in memory (a PEFT adapter on one, told by its class) and on its directory
    (`reward_model=True`): RewardTrainer's accuracy, margin and loss, no log-prob metric, no reference; a `ref` or
    a `method` beside a reward model is a one-line error."""
    import evalkit

    pairs = write_rows(conversational(seed=9, n=4), tmp_path / "eval.jsonl")
    rows = [{"id": p.id, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    _, trl = trl_evaluate(reward_model.model, reward_model.tokenizer, pairs, tmp_path)
    in_memory = evalkit.score(reward_model.model, rows, tokenizer=reward_model.tokenizer, name="rm")
    from_disk = evalkit.score(reward_model.spec.path, rows, name="rm", reward_model=True)
    for run in (in_memory, from_disk):
        (info,) = run.result.models
        assert info.reward_model and run.result.reference is None
        assert run.value("rewards/margins") == pytest.approx(trl["eval_margin"], abs=1e-5)
        assert run.value("rewards/accuracies") == pytest.approx(trl["eval_accuracy"], abs=1e-9)
        assert run.value("loss") == pytest.approx(trl["eval_loss"], abs=1e-5)
        assert not any(m.metric == "preference/accuracy" for m in run.result.metrics)
    with pytest.raises(evalkit.EvalkitError, match="ref: a reward model is scored by its own logit"):
        evalkit.score(reward_model.model, rows, tokenizer=reward_model.tokenizer, ref=reward_model.spec.path)
    with pytest.raises(evalkit.EvalkitError, match="method: a reward model is scored by its own logit"):
        evalkit.score(reward_model.model, rows, tokenizer=reward_model.tokenizer, method={"name": "simpo"})
