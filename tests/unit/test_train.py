import datetime
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from evalkit.config.objectives import KtoObjective, OrpoObjective
from evalkit.config.training import TrainSpec
from evalkit.data.pairs import PreferencePair
from evalkit.data.rendering import chat_token_ids, rendering_for
from evalkit.errors import EvalkitError
from evalkit.results.schema import CurvePoint
from evalkit.train import training_curve, trl_rows, truncate_prompt
from evalkit.trainers import trainer_config


def spec(**kwargs: object) -> TrainSpec:
    return TrainSpec.model_validate({"base": "b", "output": "o", "data": "d.jsonl", **kwargs})


def test_bf16_stays_off_without_device_support(tmp_path: Path) -> None:
    # On this CPU-only machine TRL alone would switch bf16 on whenever fp16 is off.
    for args in ({}, {"fp16": False}, {"bf16": "auto"}):
        config = trainer_config(spec(args=args), tmp_path, has_eval=False)
        assert config.bf16 is False and config.fp16 is False


def test_evalkit_defaults_and_user_args(tmp_path: Path) -> None:
    args = {"beta": 0.3, "save_strategy": "steps", "save_steps": 5}
    config = trainer_config(spec(args=args), tmp_path, has_eval=True)
    assert config.beta == 0.3 and config.save_strategy == "steps" and config.save_steps == 5
    assert config.report_to == [] and config.logging_steps == 1
    assert config.eval_strategy == "steps" and config.eval_steps == 0.1
    assert config.output_dir == str(tmp_path)


def test_bad_option_values_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"^train\.args: "):
        trainer_config(spec(args={"lr_scheduler_type": "sideways"}), tmp_path, has_eval=False)


def test_text_prompts_lose_their_beginning(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    pair = PreferencePair("p", "Ada asks: What is 3 plus 4?", " 7", " 8")
    ids = tiny_tokenizer(pair.prompt, add_special_tokens=False)["input_ids"]
    cut = truncate_prompt(pair, tiny_tokenizer, max_tokens=3)
    assert cut.prompt == tiny_tokenizer.decode(ids[-3:]) and str(cut.prompt).endswith("?")
    assert (cut.chosen, cut.rejected) == (" 7", " 8")
    assert truncate_prompt(pair, tiny_tokenizer, max_tokens=len(ids)) is pair


def test_message_prompts_drop_their_oldest_turns_first(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    prompt = [
        {"role": "user", "content": "What is 2 plus 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
        {"role": "user", "content": "Add 3 and 4."},
    ]
    pair = PreferencePair("p", prompt, [{"role": "assistant", "content": "7"}], [{"role": "assistant", "content": "8"}])
    last_alone = len(chat_token_ids(tiny_tokenizer, prompt[-1:], add_generation_prompt=True))
    cut = truncate_prompt(pair, tiny_tokenizer, max_tokens=last_alone)
    assert cut.prompt == prompt[-1:]
    tighter = truncate_prompt(pair, tiny_tokenizer, max_tokens=last_alone - 2)
    rendered = chat_token_ids(tiny_tokenizer, tighter.prompt, add_generation_prompt=True)  # type: ignore[arg-type]
    assert len(rendered) <= last_alone - 2 and tighter.prompt[0]["content"].endswith("4.")  # type: ignore[index]


def test_messages_become_plain_text_for_a_tokenizer_without_template(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    plain = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|end|>")
    pair = PreferencePair(
        "p",
        [{"role": "user", "content": "Name a fruit."}],
        [{"role": "assistant", "content": " Apple."}],
        [{"role": "assistant", "content": " Car."}],
        prompt_text="Name a fruit.",
    )
    assert trl_rows([pair], plain, None) == [{"prompt": "Name a fruit.", "chosen": " Apple.", "rejected": " Car."}]
    assert trl_rows([pair], tiny_tokenizer, None)[0]["prompt"] == pair.prompt


def test_chat_rows_carry_the_template_options_and_pinned_template_to_trl(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    """TRL renders each chat row with its `chat_template_kwargs`, so training sees the context evalkit scores."""
    clock = tiny_tokenizer.__class__(
        tokenizer_object=tiny_tokenizer.backend_tokenizer,
        eos_token="<|end|>",
        chat_template="{{ strftime_now('%Y-%m-%d') }}{% for m in messages %}{{ m['content'] }}{% endfor %}",
    )
    pair = PreferencePair(
        "p",
        [{"role": "user", "content": "Hi"}],
        [{"role": "assistant", "content": "A"}],
        [{"role": "assistant", "content": "B"}],
    )
    rendering = rendering_for(clock, {"enable_thinking": False}, datetime.date(2024, 2, 29))
    (row,) = trl_rows([pair], clock, None, rendering)
    assert row["chat_template_kwargs"] == rendering.template_kwargs()
    kwargs = row["chat_template_kwargs"]
    assert kwargs["enable_thinking"] is False
    assert clock.apply_chat_template(pair.prompt, tokenize=False, **kwargs) == "2024-02-29Hi"
    text = PreferencePair("t", "Say", " A", " B")
    assert "chat_template_kwargs" not in trl_rows([text], clock, None, rendering)[0]  # text rows use no template


def test_training_curve_merges_train_and_eval_logs_by_step() -> None:
    history = [
        {"step": 1, "loss": 0.69, "rewards/accuracies": 0.5, "epoch": 0.1},
        {"step": 2, "loss": 0.6, "rewards/margins": 0.2},
        {"step": 2, "eval_loss": 0.65, "eval_rewards/accuracies": 0.7},
        {"step": 2, "train_runtime": 3.0},
    ]
    assert training_curve(history) == [
        CurvePoint(step=1, loss=0.69, reward_accuracy=0.5),
        CurvePoint(step=2, loss=0.6, margin=0.2, eval_loss=0.65, eval_reward_accuracy=0.7),
    ]


def _trainer(kind: str, config: object) -> object:
    """An object of a class named like TRL's trainer, holding `config` as its args (all `objective_of_trainer`
    reads)."""
    return type(kind, (), {"args": config})()


def test_the_objective_is_read_from_each_trainers_config(tmp_path: Path) -> None:
    import warnings

    from trl import DPOConfig, KTOConfig

    from evalkit.trainers import objective_of_trainer

    path, off = str(tmp_path), {"bf16": False}  # TRL's configs turn bf16 on by default, which a CPU refuses
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.cpo import CPOConfig
        from trl.experimental.orpo import ORPOConfig

        cpo = CPOConfig(output_dir=path, loss_type="simpo", simpo_gamma=0.7, cpo_alpha=0.0, beta=2.0, **off)
        alphapo = CPOConfig(output_dir=path, loss_type="alphapo", alpha=0.25, **off)
        orpo = ORPOConfig(output_dir=path, beta=0.3, **off)
    dpo = objective_of_trainer(_trainer("DPOTrainer", DPOConfig(output_dir=path, loss_type="ipo", beta=0.2, **off)))
    assert dpo is not None and dpo.name == "dpo" and dpo.loss_types == ["ipo"] and dpo.beta == 0.2  # type: ignore[union-attr]
    simpo = objective_of_trainer(_trainer("CPOTrainer", cpo))
    assert simpo is not None and simpo.model_dump() == {
        "name": "simpo",
        "beta": 2.0,
        "gamma": 0.7,
        "label_smoothing": 0.0,
        "cpo_alpha": 0.0,
    }
    shaped = objective_of_trainer(_trainer("CPOTrainer", alphapo))
    assert shaped is not None and shaped.name == "alphapo" and shaped.alpha == 0.25  # type: ignore[union-attr]
    assert objective_of_trainer(_trainer("ORPOTrainer", orpo)) == OrpoObjective(name="orpo", beta=0.3)
    kto = KTOConfig(output_dir=path, desirable_weight=1.3, **off)
    assert objective_of_trainer(_trainer("KTOTrainer", kto)) == KtoObjective(name="kto", desirable_weight=1.3)
    assert objective_of_trainer(_trainer("SFTTrainer", kto)) is None
