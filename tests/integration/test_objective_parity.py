"""Parity with TRL 1.16's trainers: evalkit's objective metrics, pooled over pairs, equal each trainer's eval logs.

Every trainer evaluates with a batch of one pair, so each of its eval logs (`eval_rewards/chosen`, ...,
`eval_loss`) is the mean over pairs of that pair's value: the number evalkit pools. DPO: evalkit scores the pairs
itself (its log-probs equal DPOTrainer's, tests/integration/test_trl_parity.py), and one trainer is evaluated under
each loss type in turn (the trainer reads its loss settings at every step, so only they change between runs).
CPO/SimPO/AlphaPO and ORPO tokenize in their own (legacy) way: the loss-type cases feed evalkit's formulas the
trainers' own per-pair log-probs and completion lengths, caught as each batch goes through `concatenated_forward`;
the legacy-tokenization cases have evalkit tokenize the pairs as those trainers do (`evalkit.scoring.legacy`) and
score them itself, on tokenizers where DPOTrainer's tokens differ.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.config.objectives import (
    AlphapoObjective,
    CpoObjective,
    DpoObjective,
    Objective,
    OrpoObjective,
    SimpoObjective,
    reads_prompt,
    tokenization_of,
)
from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair
from evalkit.data.rendering import PLAIN
from evalkit.metrics.compute import compute_metrics
from evalkit.results.estimates import Metric
from evalkit.results.pairs import PairScore
from evalkit.scoring.dataset import tokenize_set
from evalkit.scoring.score import pair_scores, score_pairs, tokenize_pair
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs

N_PER_SUBSET = 2


def rows() -> list[dict[str, Any]]:
    return [
        {
            "prompt": p.prompt[0]["content"],  # type: ignore[index]
            "chosen": " " + p.chosen[0]["content"],  # type: ignore[index]
            "rejected": " " + p.rejected[0]["content"],  # type: ignore[index]
        }
        for p in generate_pairs(N_PER_SUBSET, seed=11)
    ]


@pytest.fixture(scope="module")
def models(tiny_tokenizer: PreTrainedTokenizerFast) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    torch.manual_seed(1)
    policy = build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()
    torch.manual_seed(2)
    return policy, build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()


def pooled(metrics: list[Metric]) -> dict[str, float]:
    return {m.metric: m.value for m in metrics if m.subset == "all" and m.model == "policy"}


def assert_logged_equal(ours: dict[str, float], trl: dict[str, float], keys: list[str]) -> None:
    for key in keys:
        assert ours[f"trl/{key}"] == pytest.approx(trl[f"eval_{key}"], rel=1e-4, abs=1e-5), key


# ---- DPOTrainer, every loss type --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dpo(
    models: tuple[LlamaForCausalLM, LlamaForCausalLM], tiny_tokenizer: PreTrainedTokenizerFast, tmp_path_factory: Any
) -> tuple[Any, list[PairScore]]:
    """One DPOTrainer on the pairs, and evalkit's own per-pair rows of them (policy and reference)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy, reference = models
    data = rows()
    trainer = DPOTrainer(
        model=policy,
        ref_model=reference,
        args=_dpo_args(DPOConfig, tmp_path_factory.mktemp("dpo"), {}),
        train_dataset=Dataset.from_list(data),
        eval_dataset=Dataset.from_list(data),
        processing_class=tiny_tokenizer,
    )
    pairs = [PreferencePair(f"p{i}", r["prompt"], r["chosen"], r["rejected"]) for i, r in enumerate(data)]
    tokenized = [tokenize_pair(p, tiny_tokenizer) for p in pairs]
    spec, pad = ScoringSpec(batch_size=4), int(tiny_tokenizer.pad_token_id)
    ours = score_pairs(policy, tokenized, spec, pad, "policy")
    ref = score_pairs(reference, tokenized, spec, pad, "reference")
    return trainer, pair_scores("policy", tokenized, ours, ref)


def _dpo_args(config_class: Any, directory: Path, options: dict[str, Any]) -> Any:
    return config_class(
        output_dir=str(directory),
        per_device_eval_batch_size=1,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
        bf16=False,
        fp16=False,
        **options,
    )


DPO_CASES: list[dict[str, Any]] = [
    *[
        {"loss_type": kind}
        for kind in ["sigmoid", "hinge", "ipo", "nca_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down"]
    ],
    {"loss_type": "discopop", "discopop_tau": 0.5},
    {"loss_type": "sigmoid_norm", "beta": 2.0},
    {"loss_type": "robust", "label_smoothing": 0.2},
    {"loss_type": "exo_pair", "label_smoothing": 0.01},
    {"loss_type": ["sigmoid", "bco_pair"], "loss_weights": [0.8, 0.2]},
    {"loss_type": "sigmoid", "f_divergence_type": "forward_kl"},
    {"loss_type": "ipo", "f_divergence_type": "js_divergence"},
    {"loss_type": "hinge", "f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.3},
    {"loss_type": "sigmoid", "ld_alpha": 0.5},  # LD-DPO: the tokens past the shorter answer count half
    {"loss_type": "ipo", "ld_alpha": 0.2},
]


@pytest.mark.parametrize(
    "case",
    DPO_CASES,
    ids=lambda c: (
        "+".join(c["loss_type"])
        if isinstance(c["loss_type"], list)
        else c.get("f_divergence_type", c["loss_type"]) + ("-ld" if "ld_alpha" in c else "")
    ),
)
def test_dpo_trainer_evaluate_equals_evalkit_for_every_loss_type(
    case: dict[str, Any], dpo: tuple[Any, list[PairScore]]
) -> None:
    trainer, scores = dpo
    objective = DpoObjective(name="dpo", **{"beta": 0.5, **case})
    # The loss settings DPOTrainer copies from its config at init, set as it would (a second config would reset
    # accelerate's state under the trainer).
    trainer.beta, trainer.loss_types, trainer.loss_weights = objective.beta, objective.loss_types, objective.weights
    trainer.label_smoothing, trainer.f_divergence_type = objective.label_smoothing, objective.f_divergence_type
    trainer.f_alpha_divergence_coef, trainer.args.discopop_tau = (
        objective.f_alpha_divergence_coef,
        objective.discopop_tau,
    )
    trainer.ld_alpha = objective.ld_alpha
    trl = trainer.evaluate()
    ours = pooled(compute_metrics("p", scores, 0.1, objectives={"policy": objective}))
    if objective.ld_alpha is not None:  # the pairs' answers differ in length, so the weighting shows
        summed = objective.model_copy(update={"ld_alpha": None})
        plain = pooled(compute_metrics("p", scores, 0.1, objectives={"policy": summed}))
        assert (
            abs(
                plain["trl/logps/chosen"]
                + plain["trl/logps/rejected"]
                - ours["trl/logps/chosen"]
                - ours["trl/logps/rejected"]
            )
            > 1.0
        )
    assert_logged_equal(ours, trl, ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"])
    assert_logged_equal(ours, trl, ["logps/chosen", "logps/rejected"])
    assert ours["objective/loss"] == pytest.approx(trl["eval_loss"], rel=1e-4, abs=1e-5)


# ---- CPOTrainer (SimPO, AlphaPO, CPO) and ORPOTrainer: evalkit's formulas on TRL's own per-pair log-probs ---------


def legacy_evaluate(trainer: Any) -> tuple[dict[str, float], list[PairScore]]:
    """The trainer's eval logs, and its per-pair log-probs as evalkit's rows: summed log-probs (TRL's mean times the
    completion length where it averages) and the completion lengths, from the labels of each one-pair batch."""
    lengths: list[tuple[int, int]] = []
    forward = trainer.concatenated_forward

    def counting(model: Any, batch: dict[str, Any]) -> Any:
        lengths.append(
            (int((batch["chosen_labels"][:, 1:] != -100).sum()), int((batch["rejected_labels"][:, 1:] != -100).sum()))
        )
        return forward(model, batch)

    stored: dict[str, list[float]] = {}
    log = trainer.log

    def capture(logs: dict[str, float], start_time: float | None = None) -> None:
        stored.update({key: list(values) for key, values in trainer._stored_metrics["eval"].items()})
        log(logs, start_time)

    trainer.concatenated_forward, trainer.log = counting, capture
    trl = trainer.evaluate()
    averaged = trainer.__class__.__name__ == "ORPOTrainer" or trainer.loss_type in ("ipo", "simpo")
    scores = []
    for i, (t_c, t_r) in enumerate(lengths):
        scale_c, scale_r = (t_c, t_r) if averaged else (1, 1)
        logp_c, logp_r = stored["eval_logps/chosen"][i] * scale_c, stored["eval_logps/rejected"][i] * scale_r
        scores.append(PairScore(f"p{i}", "all", "policy", logp_c, logp_r, t_c, t_r, False))
    return trl, scores


def legacy_trainer(
    name: str,
    objective: Objective,
    model: Any,
    tokenizer: Any,
    directory: Path,
    data: list[dict[str, Any]] | None = None,
) -> Any:
    from datasets import Dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "orpo":
            from trl.experimental.orpo import ORPOConfig as Config
            from trl.experimental.orpo import ORPOTrainer as Trainer
        else:
            from trl.experimental.cpo import CPOConfig as Config  # type: ignore[assignment]
            from trl.experimental.cpo import CPOTrainer as Trainer  # type: ignore[assignment]
    dataset = Dataset.from_list(data if data is not None else rows())
    args = _dpo_args(Config, directory, objective.trainer_options())
    return Trainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset, processing_class=tokenizer)


CPO_CASES: list[Objective] = [
    SimpoObjective(name="simpo", beta=2.0, gamma=0.5),
    SimpoObjective(name="simpo", beta=2.0, gamma=0.8, cpo_alpha=0.5, label_smoothing=0.1),
    AlphapoObjective(name="alphapo", alpha=0.25, beta=2.5, gamma=0.3),
    CpoObjective(name="cpo", beta=0.1),
    CpoObjective(name="cpo", loss_type="ipo", beta=0.5, cpo_alpha=0.0),
    # AlphaPO's shape on CPO's summed log-probs: TRL computes p = e^ℓ in float32, which underflows to 0 (reward −inf)
    # past ℓ ≈ −104; evalkit computes (1 − e^(−αℓ))/α and stays finite. So α is tested on mean log-probs (AlphaPO).
    CpoObjective(name="cpo", loss_type="hinge", beta=0.2),
]


@pytest.mark.parametrize(
    "objective", CPO_CASES, ids=lambda o: o.name + "-" + "-".join(str(v) for v in o.trainer_options().values())
)
def test_cpo_trainer_evaluate_equals_evalkit(
    objective: Objective,
    models: tuple[LlamaForCausalLM, LlamaForCausalLM],
    tiny_tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    trainer = legacy_trainer("cpo", objective, models[0], tiny_tokenizer, tmp_path)
    trl, scores = legacy_evaluate(trainer)
    ours = pooled(compute_metrics("p", scores, 0.1, objectives={"policy": objective}))
    logged = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen"]
    assert_logged_equal(ours, trl, [*logged, "logps/rejected"])
    if trl["eval_nll_loss"] != 0.0:  # TRL logs 0 when cpo_alpha is 0; evalkit leaves the metric out
        assert_logged_equal(ours, trl, ["nll_loss"])
    else:
        assert "trl/nll_loss" not in ours
    assert ours["objective/loss"] == pytest.approx(trl["eval_loss"], rel=1e-4, abs=1e-5)


def test_orpo_trainer_evaluate_equals_evalkit(
    models: tuple[LlamaForCausalLM, LlamaForCausalLM], tiny_tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    """evalkit scoring the pairs itself, the prompt's log-prob summed as for every ORPO model: ORPOTrainer's eval
    logs all equal, its NLL over the prompt's and the chosen answer's tokens (`nll_loss`) and `eval_loss` with them.
    (ORPO tokenizes its own way; on this tokenizer its tokens are evalkit's, which the log-probs check.)"""
    objective = OrpoObjective(name="orpo", beta=0.25)
    policy = models[0]
    trainer = legacy_trainer("orpo", objective, policy, tiny_tokenizer, tmp_path)
    trl = trainer.evaluate()
    pairs = [PreferencePair(f"p{i}", r["prompt"], r["chosen"], r["rejected"]) for i, r in enumerate(rows())]
    tokenized = [tokenize_pair(p, tiny_tokenizer) for p in pairs]
    spec, pad = ScoringSpec(batch_size=4), int(tiny_tokenizer.pad_token_id)
    scored = score_pairs(policy, tokenized, spec, pad, "policy", with_prompt=True)
    own = pair_scores("policy", tokenized, scored, None)
    ours = pooled(compute_metrics("p", own, 0.1, objectives={"policy": objective}))
    logged = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen"]
    assert_logged_equal(ours, trl, [*logged, "logps/rejected", "log_odds_ratio", "log_odds_chosen", "nll_loss"])
    assert ours["objective/loss"] == pytest.approx(trl["eval_loss"], rel=1e-4, abs=1e-5)


def test_orpo_formulas_on_trls_own_logps_without_the_prompt(
    models: tuple[LlamaForCausalLM, LlamaForCausalLM], tiny_tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    """Fed ORPOTrainer's own per-pair log-probs, which hold no prompt (a per-pair file written before evalkit summed
    it reads the same): every logged value but `nll_loss` is TRL's, `nll_loss` is not reported, and the loss takes
    the chosen answer's NLL alone, so it differs from TRL's by the two NLLs; its odds-ratio term is TRL's."""
    objective = OrpoObjective(name="orpo", beta=0.25)
    trainer = legacy_trainer("orpo", objective, models[0], tiny_tokenizer, tmp_path)
    trl, scores = legacy_evaluate(trainer)
    ours = pooled(compute_metrics("p", scores, 0.1, objectives={"policy": objective}))
    logged = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen"]
    assert_logged_equal(ours, trl, [*logged, "logps/rejected", "log_odds_ratio", "log_odds_chosen"])
    assert "trl/nll_loss" not in ours
    odds_term = trl["eval_loss"] - trl["eval_nll_loss"]  # −λ·log σ(log-odds), as TRL adds it
    assert ours["objective/loss"] - (-ours["trl/logps/chosen"]) == pytest.approx(odds_term, rel=1e-4)
    assert ours["objective/loss"] != pytest.approx(trl["eval_loss"], rel=1e-4)


# ---- CPOTrainer (SimPO) and ORPOTrainer: evalkit scoring the pairs itself, tokenized the trainers' (legacy) way ------


def gpt2_style(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """The tiny tokenizer as GPT-2's behaves: a BOS token it has, but never adds (no post-processor)."""
    variant = copy.deepcopy(tokenizer)
    variant.backend_tokenizer.post_processor = None
    assert variant("Hi")["input_ids"][0] != variant.bos_token_id
    return variant


NEWLINE_TURNS = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""Turns that end in a newline after the end-of-turn token, as ChatML templates' do: the last token is not EOS."""


def newline_turns(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    variant = copy.deepcopy(tokenizer)
    variant.chat_template = NEWLINE_TURNS
    return variant


LEGACY_CASES = {
    "gpt2-style-text": (gpt2_style, False),
    "chat-turns-ending-in-newline": (newline_turns, True),
}


@pytest.mark.parametrize("trainer_name", ["simpo", "orpo"])
@pytest.mark.parametrize("case", list(LEGACY_CASES))
def test_legacy_trainer_evaluate_equals_evalkit_scoring_its_own_tokens(
    case: str,
    trainer_name: str,
    models: tuple[LlamaForCausalLM, LlamaForCausalLM],
    tiny_tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    """evalkit tokenizes the pairs as CPOTrainer and ORPOTrainer do (`tokenization_of` says `legacy` for both) and
    scores them itself: every value the trainer logs equals evalkit's, where DPOTrainer's tokens differ (a BOS
    GPT-2-style tokenizers never add; an EOS after a turn that ends in a newline)."""
    make, chat = LEGACY_CASES[case]
    tokenizer = make(tiny_tokenizer)
    objective: Objective = (
        OrpoObjective(name="orpo", beta=0.25) if trainer_name == "orpo" else SimpoObjective(name="simpo", beta=2.0)
    )
    assert tokenization_of(objective) == "legacy"
    chats = [
        {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in generate_pairs(N_PER_SUBSET, seed=11)
    ]
    data = chats if chat else rows()
    pairs = [PreferencePair(f"p{i}", r["prompt"], r["chosen"], r["rejected"]) for i, r in enumerate(data)]
    tokens = tokenize_set(pairs, tokenizer, PLAIN, 1024, tokenization_of(objective))
    assert tokens.tokenization == "legacy" and len(tokens.scorable) == len(pairs)
    for ours, dpo in zip(tokens.scorable, (tokenize_pair(p, tokenizer) for p in pairs), strict=True):
        if chat:  # DPO's chosen answer ends at the turn's newline; the trainers append EOS after it
            assert ours.chosen_ids == [*dpo.chosen_ids, tokenizer.eos_token_id]
        else:  # DPO's prompt has no BOS: the tokenizer adds none
            assert ours.prompt_ids == [tokenizer.bos_token_id, *dpo.prompt_ids]
    policy = models[0]
    trainer = legacy_trainer("orpo" if trainer_name == "orpo" else "cpo", objective, policy, tokenizer, tmp_path, data)
    trl = trainer.evaluate()
    spec, pad = ScoringSpec(batch_size=4), int(tokenizer.pad_token_id)
    scored = score_pairs(policy, tokens.scorable, spec, pad, "policy", with_prompt=reads_prompt(objective))
    own = pair_scores("policy", tokens.scorable, scored, None)
    ours = pooled(compute_metrics("p", own, 0.1, objectives={"policy": objective}))
    logged = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen"]
    odds = ["log_odds_ratio", "log_odds_chosen", "nll_loss"] if trainer_name == "orpo" else []
    assert_logged_equal(ours, trl, [*logged, "logps/rejected", *odds])
    assert ours["objective/loss"] == pytest.approx(trl["eval_loss"], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("trainer_name", ["simpo", "orpo"])
def test_python_score_with_a_method_equals_the_trainers_evaluate(
    trainer_name: str,
    models: tuple[LlamaForCausalLM, LlamaForCausalLM],
    tiny_tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
) -> None:
    """`evalkit.score(..., method=...)` from a notebook: the trainer's tokens (here a GPT-2-style tokenizer, where
    DPO's differ), ORPO's prompt log-prob, and the objective's metrics, all as CPOTrainer's and ORPOTrainer's logs;
    results.json records the objective. Without the method, the same call has none of them."""
    import evalkit

    tokenizer = gpt2_style(tiny_tokenizer)
    method = {"name": "orpo", "beta": 0.25} if trainer_name == "orpo" else {"name": "simpo", "beta": 2.0}
    objective: Objective = OrpoObjective(**method) if trainer_name == "orpo" else SimpoObjective(**method)
    trl = legacy_trainer(
        "orpo" if trainer_name == "orpo" else "cpo", objective, models[0], tokenizer, tmp_path
    ).evaluate()
    run = evalkit.score(models[0], rows(), tokenizer=tokenizer, name="policy", method=method)
    ours = pooled(run.result.metrics)
    logged = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen"]
    odds = ["log_odds_ratio", "log_odds_chosen", "nll_loss"] if trainer_name == "orpo" else []
    assert_logged_equal(ours, trl, [*logged, "logps/rejected", *odds])
    assert ours["objective/loss"] == pytest.approx(trl["eval_loss"], rel=1e-4, abs=1e-5)
    (model,) = run.result.models
    assert model.objective is not None and model.objective.settings == objective.model_dump(mode="json")
    assert run.result.audit[0].tokenization == "legacy"
    plain = evalkit.score(models[0], rows(), tokenizer=tokenizer, name="policy")
    assert not any(m.metric.startswith(("trl/", "objective/")) for m in plain.result.metrics)
    assert plain.result.models[0].objective is None and plain.result.audit[0].tokenization == "dpo"
