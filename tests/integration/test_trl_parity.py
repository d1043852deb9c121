"""Parity with TRL 1.16: evalkit's per-pair log-probs and DPO loss equal DPOTrainer's own.

TRL is run in evaluation with a batch of one pair, so each entry it appends to its `logps/*`
and `rewards/*` metric lists is one pair's value (the reference log-prob is recovered as
logp − reward/β). Its `eval_loss` is then the mean of per-pair losses, the number evalkit
reports as `loss`. Covered: explicit, conversational and implicit-prompt (hh-rlhf) data, with a
separate reference model and with a PEFT adapter whose reference is the base, adapter disabled.

For implicit-prompt data both sides get evalkit's split (prompt through the last
`\\n\\nAssistant:`): TRL's own `extract_prompt` takes the character-level common prefix instead,
which evalkit deliberately does not (see evalkit/data/pairs.py), and evalkit's trainer passes TRL the
explicit split too.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.config.specs import DatasetSpec, ScoringSpec
from evalkit.data.pairs import PreferencePair, load_pairs
from evalkit.data.rendering import DEFAULT_DATE, PLAIN, Rendering, rendering_for
from evalkit.errors import EvalkitError
from evalkit.metrics.compute import compute_metrics
from evalkit.scoring.score import TokenizedPair, pair_scores, score_pairs, tokenize_pair
from evalkit.train import trl_rows
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
    rendering: Rendering = PLAIN,
) -> tuple[dict[str, list[float]], float, Any]:
    """Per-pair metric values TRL computes in evaluation, its eval_loss, and the policy it evaluated, on the
    rows evalkit's trainer hands TRL (`trl_rows`: plain text for a tokenizer without a chat template, the
    template options and pinned date in TRL's `chat_template_kwargs` column)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    dataset = Dataset.from_list(trl_rows(pairs, tokenizer, None, rendering))
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
    rendering: Rendering = PLAIN,
) -> list[TokenizedPair]:
    """evalkit's scores of `pairs` under `policy` and `reference` equal what TRL computed; returns the tokens."""
    tokenized = [tokenize_pair(p, tokenizer, rendering) for p in pairs]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ours = score_pairs(policy.eval(), tokenized, ScoringSpec(max_length=1024, batch_size=4), pad, "policy")
    if reference is None:  # a PEFT policy: the reference is the same model with the adapter disabled
        with policy.disable_adapter():
            ref = score_pairs(policy, tokenized, ScoringSpec(max_length=1024, batch_size=4), pad, "reference")
    else:
        ref = score_pairs(reference, tokenized, ScoringSpec(max_length=1024, batch_size=4), pad, "reference")
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
    return tokenized


@pytest.fixture()
def policy_and_reference(
    tiny_tokenizer: PreTrainedTokenizerFast, test_device: torch.device
) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    torch.manual_seed(1)
    policy = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval().to(test_device)
    torch.manual_seed(2)
    reference = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval().to(test_device)
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


# The tokenizer-family matrix: stand-ins shaped like each family's public tokenizer (see FAMILIES in conftest.py),
# with its chat template verbatim, each at TRL parity on every data shape, with a separate reference and with LoRA.
FAMILY_NAMES = ["gpt2", "llama3", "qwen2.5", "smollm3", "gemma2", "mistral"]
OPTIONS: dict[str, dict[str, Any]] = {"smollm3": {"enable_thinking": False}}
"""Template options each family is scored with (SmolLM3's reasoning mode off: `/no_think`, an empty think block)."""


def family_models(tokenizer: PreTrainedTokenizerFast) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    torch.manual_seed(1)
    policy = build_model(tokenizer, hidden_size=32, num_layers=2).eval()
    torch.manual_seed(2)
    return policy, build_model(tokenizer, hidden_size=32, num_layers=2).eval()


@pytest.mark.parametrize("family", FAMILY_NAMES)
@SHAPES
@pytest.mark.parametrize("lora", [False, True], ids=["reference-model", "lora"])
def test_every_family_scores_as_trl_trains(
    family: str, rows: Any, lora: bool, family_tokenizers: Callable[[str], PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    """SmolLM3's template writes today's date: evalkit renders it with a pinned date, so TRL is handed the same
    pinned template through its `chat_template_kwargs` column, exactly as evalkit's trainer hands it. Left to
    itself TRL would render today's date (see the test below), and the two would differ by that line."""
    from peft import LoraConfig

    tokenizer = family_tokenizers(family)
    rendering = rendering_for(tokenizer, OPTIONS.get(family, {}), DEFAULT_DATE)
    policy, reference = family_models(tokenizer)
    pairs = evalkit_pairs(rows(), tmp_path)
    if lora:
        config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
        trl, loss, adapted = trl_evaluate(policy, None, config, tokenizer, pairs, tmp_path, rendering)
        assert_parity(tokenizer, pairs, trl, loss, adapted, None, rendering)
    else:
        trl, loss, _ = trl_evaluate(policy, reference, None, tokenizer, pairs, tmp_path, rendering)
        assert_parity(tokenizer, pairs, trl, loss, policy, reference, rendering)


def first_pair(family: str, tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> TokenizedPair:
    (pair,) = evalkit_pairs(conversational_rows()[:1], tmp_path)
    return tokenize_pair(pair, tokenizer, rendering_for(tokenizer, OPTIONS.get(family, {}), DEFAULT_DATE))


def test_gpt2_has_no_bos_no_pad_and_no_template(family_tokenizers: Callable[[str], PreTrainedTokenizerFast]) -> None:
    tokenizer = family_tokenizers("gpt2")
    assert tokenizer.pad_token is None and tokenizer.chat_template is None
    assert tokenizer("Compute 3 + 1.")["input_ids"][0] != tokenizer.bos_token_id


def test_llama3_template_bos_is_the_only_one_and_a_prerendered_prompt_doubles_it(
    family_tokenizers: Callable[[str], PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    """Llama-3's tokenizer adds BOS to text and its template writes BOS too. transformers encodes a rendered chat
    without special tokens, so chats get the template's BOS alone; a prompt rendered to text beforehand and then
    encoded as text gets two. The audit counts those pairs, and TRL scores the same doubled sequence."""
    tokenizer = family_tokenizers("llama3")
    bos = tokenizer.bos_token_id
    chat = first_pair("llama3", tokenizer, tmp_path)
    assert chat.prompt_ids[:2] == [bos, tokenizer.convert_tokens_to_ids("<|start_header_id|>")]
    assert not chat.doubled_bos
    prerendered = [
        {
            "prompt": tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True),
            "chosen": row["chosen"][0]["content"] + "<|eot_id|>",
            "rejected": row["rejected"][0]["content"] + "<|eot_id|>",
        }
        for row in conversational_rows()
    ]
    pairs = evalkit_pairs(prerendered, tmp_path)
    policy, reference = family_models(tokenizer)
    trl, loss, _ = trl_evaluate(policy, reference, None, tokenizer, pairs, tmp_path)
    tokenized = assert_parity(tokenizer, pairs, trl, loss, policy, reference)
    assert all(t.doubled_bos and t.prompt_ids[:3] == [bos, bos, chat.prompt_ids[1]] for t in tokenized)


def test_qwen_injects_its_default_system_prompt(
    family_tokenizers: Callable[[str], PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    tokenizer = family_tokenizers("qwen2.5")
    prompt = tokenizer.decode(first_pair("qwen2.5", tokenizer, tmp_path).prompt_ids)
    assert prompt.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    assert prompt.endswith("<|im_start|>assistant\n")


def test_smollm3_renders_the_pinned_date_and_its_thinking_flags(
    family_tokenizers: Callable[[str], PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    tokenizer = family_tokenizers("smollm3")
    pair = first_pair("smollm3", tokenizer, tmp_path)
    prompt = tokenizer.decode(pair.prompt_ids)
    assert "Today Date: 01 January 2025\n" in prompt and "Reasoning Mode: /no_think\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n")
    assert tokenizer.bos_token is None and pair.prompt_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    (row,) = evalkit_pairs(conversational_rows()[:1], tmp_path)
    thinking = tokenize_pair(row, tokenizer, rendering_for(tokenizer, {"enable_thinking": True}, DEFAULT_DATE))
    assert "Reasoning Mode: /think\n" in tokenizer.decode(thinking.prompt_ids)
    assert tokenizer.decode(thinking.prompt_ids).endswith("<|im_start|>assistant\n")


def test_trl_alone_renders_today_where_evalkit_pins_the_date(
    family_tokenizers: Callable[[str], PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    """Why TRL is handed the pinned template above: given the bare tokenizer, it writes today's date."""
    tokenizer = family_tokenizers("smollm3")
    (pair,) = evalkit_pairs(conversational_rows()[:1], tmp_path)
    today = datetime.date.today()
    pinned = rendering_for(tokenizer, {}, today.replace(year=today.year - 1))
    bare = tokenizer.decode(tokenize_pair(pair, tokenizer).prompt_ids)
    assert f"Today Date: {today.strftime('%d %B %Y')}" in bare  # (a run across midnight could see two days)
    assert bare != tokenizer.decode(tokenize_pair(pair, tokenizer, pinned).prompt_ids)


def test_gemma_writes_bos_in_its_template_and_refuses_a_system_role(
    family_tokenizers: Callable[[str], PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    tokenizer = family_tokenizers("gemma2")
    pair = first_pair("gemma2", tokenizer, tmp_path)
    assert pair.prompt_ids[0] == tokenizer.bos_token_id and pair.prompt_ids[1] != tokenizer.bos_token_id
    (row,) = evalkit_pairs(conversational_rows()[:1], tmp_path)
    system = PreferencePair(row.id, [{"role": "system", "content": "Be brief."}, *row.prompt], row.chosen, row.rejected)
    with pytest.raises(EvalkitError, match="System role not supported"):
        tokenize_pair(system, tokenizer)


def test_mistral_keeps_inst_tokens_whole_and_the_space_after_eos(
    family_tokenizers: Callable[[str], PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    """Mistral's template writes `[INST] ... [/INST]` with spaces around the control tokens and a space after each
    answer's EOS: that space is part of the completion TRL trains on, so it is scored too."""
    tokenizer = family_tokenizers("mistral")
    pair = first_pair("mistral", tokenizer, tmp_path)
    inst, end = tokenizer.convert_tokens_to_ids(["[INST]", "[/INST]"])
    assert pair.prompt_ids[:2] == [tokenizer.bos_token_id, inst] and pair.prompt_ids[-1] == end
    eos = pair.chosen_ids.index(tokenizer.eos_token_id)
    assert tokenizer.decode(pair.chosen_ids[eos + 1 :]).strip() == "" and len(pair.chosen_ids) > eos + 1
