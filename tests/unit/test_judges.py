"""Pairwise judges in both orders, their parsing, and the length-controlled win rate on hand-worked cases."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.data.pairs import Message
from evalkit.data.rendering import chat_token_ids
from evalkit.errors import EvalkitError
from evalkit.judges.length_controlled import RIDGE, fit_length_models, length_controlled_win_rate, length_feature
from evalkit.judges.pairwise import (
    LocalJudge,
    PairToJudge,
    Verdict,
    combine,
    judge_pairs,
    label_probability,
    parse_verdict,
    summarise_pairwise,
)
from evalkit.judges.prompt import DEFAULT_TEMPLATE, load_template


class FixedJudge:
    """A judge that answers every prompt with the same reply, parsed as a real endpoint reply is."""

    def __init__(self, reply: str) -> None:
        self.name = f"always {reply}"
        self.reply = reply
        self.seen: list[list[Message]] = []

    def verdicts(self, prompts: Sequence[list[Message]]) -> list[Verdict]:
        self.seen += list(prompts)
        return [parse_verdict(self.reply) for _ in prompts]


class KnowingJudge:
    """A judge that recognises the better answer wherever it is shown: it contains the word 'right'."""

    name = "knowing"

    def verdicts(self, prompts: Sequence[list[Message]]) -> list[Verdict]:
        out = []
        for messages in prompts:
            text = messages[-1]["content"]
            first = text.split("## Answer A")[1].split("## Answer B")[0]
            out.append(Verdict(1.0 if "right" in first else 0.0, "parsed", "A" if "right" in first else "B"))
        return out


def pairs(n: int, candidate: str = "right answer", reference: str = "wrong") -> list[PairToJudge]:
    return [PairToJudge(f"p{i}", f"question {i}", candidate, reference) for i in range(n)]


@pytest.mark.parametrize(
    ("reply", "p_first"),
    [("A", 1.0), ("B", 0.0), (" b. ", 0.0), ("(A)", 1.0), ("Answer B", 0.0), ("**A**", 1.0)],
)
def test_a_reply_that_is_one_label_is_read(reply: str, p_first: float) -> None:
    assert parse_verdict(reply) == Verdict(p_first, "parsed", reply)


@pytest.mark.parametrize("reply", ["", "A and B are both fine", "Both", "I prefer A", "C", "AB"])
def test_anything_else_is_unparsed_not_guessed(reply: str) -> None:
    assert parse_verdict(reply) == Verdict(None, "unparsed", reply)


def test_label_probability_renormalises_over_the_two_labels() -> None:
    """P(A) = 0.5 + 0.1 (' A') = 0.6, P(B) = 0.2: 0.6 / 0.8 = 0.75; other tokens do not count."""
    top = {"A": math.log(0.5), " A": math.log(0.1), "B": math.log(0.2), "The": math.log(0.15)}
    assert label_probability(top) == pytest.approx(0.75)
    assert label_probability({"B": math.log(0.3), "x": math.log(0.6)}) == 0.0
    assert label_probability({"x": 0.0}) is None


def test_a_judge_that_always_says_a_ties_everything_and_is_fully_position_biased() -> None:
    """Shown (candidate, reference) it picks the candidate; swapped it picks the reference: the orders
    disagree on every prompt, each is a tie (½), and the position decided every verdict."""
    judge = FixedJudge("A")
    judgments = judge_pairs(judge, load_template(), pairs(4))
    assert [j.preference for j in judgments] == [0.5] * 4
    summary = summarise_pairwise(judge.name, "policy", "base", judgments, 0.95)
    assert (summary.win_rate, summary.wins, summary.ties, summary.losses, summary.n) == (0.5, 0, 4, 0, 4)
    assert (summary.position_bias_rate, summary.agreement_rate, summary.first_position_rate) == (1.0, 0.0, 1.0)
    assert summary.length_controlled is not None and summary.length_controlled.win_rate == pytest.approx(0.5)
    # both orders were asked: the candidate first in the first half, second in the other
    assert "right answer" in judge.seen[0][0]["content"].split("## Answer B")[0]
    assert "right answer" in judge.seen[4][0]["content"].split("## Answer B")[1]


def test_a_judge_that_sees_quality_wins_in_both_orders() -> None:
    judgments = judge_pairs(KnowingJudge(), load_template(), pairs(3) + pairs(2, "wrong", "right answer"))
    assert [j.preference for j in judgments] == [1.0, 1.0, 1.0, 0.0, 0.0]
    summary = summarise_pairwise("knowing", "policy", "base", judgments, 0.95)
    assert (summary.wins, summary.ties, summary.losses, summary.win_rate) == (3, 0, 2, 0.6)
    assert (summary.position_bias_rate, summary.agreement_rate, summary.first_position_rate) == (0.0, 1.0, 0.5)
    assert summary.ci_low is not None and summary.ci_high is not None and summary.ci_low < 0.6 < summary.ci_high


def test_probabilities_that_agree_are_averaged_and_an_unread_order_leaves_the_prompt_out() -> None:
    """Candidate first: P(A) = 0.8; reference first: P(A) = 0.4, so the candidate's is 0.6 there: both
    favour the candidate, preference (0.8 + 0.6) / 2 = 0.7."""
    pair = pairs(1)[0]
    agreed = combine(pair, Verdict(0.8, "logprobs", "A"), Verdict(0.4, "logprobs", "B"))
    assert agreed.preference == pytest.approx(0.7) and agreed.orders_agree and not agreed.same_position
    unread = combine(pair, Verdict(0.8, "logprobs", "A"), parse_verdict("no idea"))
    assert unread.preference is None and unread.orders_agree is None
    summary = summarise_pairwise("j", "policy", "base", [agreed, unread], 0.95)
    assert (summary.n, summary.unparsed, summary.win_rate) == (1, 1, pytest.approx(0.7))


def test_nothing_read_is_no_win_rate() -> None:
    judgments = judge_pairs(FixedJudge("maybe"), load_template(), pairs(3))
    summary = summarise_pairwise("j", "policy", "base", judgments, 0.95)
    assert (summary.win_rate, summary.n, summary.unparsed, summary.length_controlled) == (None, 0, 3, None)


def test_the_shipped_template_has_the_three_fields_and_a_users_is_checked(tmp_path: Path) -> None:
    template = load_template()
    assert template.source == str(DEFAULT_TEMPLATE)
    content = template.messages("Add 2 and 3.", "5 {x}", "6")[0]["content"]
    assert "Add 2 and 3." in content and "5 {x}" in content  # answers may hold braces
    own = tmp_path / "judge.txt"
    own.write_text("Q: {instruction}\n1: {answer_a}\n2: {answer_b}\nSay A or B. {{literal}}")
    assert load_template(own).messages("q", "a", "b")[0]["content"] == "Q: q\n1: a\n2: b\nSay A or B. {literal}"
    own.write_text("Q: {instruction}\n1: {answer_a}\n2: {answer_two}")
    with pytest.raises(EvalkitError, match=r"judge.txt: the judging template has fields .*answer_two.*expected"):
        load_template(own)
    own.write_text("{instruction} {answer_a} {answer_b} {")
    with pytest.raises(EvalkitError, match="write a literal brace as"):
        load_template(own)
    with pytest.raises(EvalkitError, match="cannot read the judging template"):
        load_template(tmp_path / "absent.txt")


def test_a_local_judge_reads_the_label_probabilities(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    """P(first) is the model's next-token mass on the A spellings over that on A and B, after the prompt."""
    judge = LocalJudge("local", tiny_model, tiny_tokenizer)
    messages: list[Message] = [{"role": "user", "content": "Which? A or B"}]
    [verdict] = judge.verdicts([messages])
    ids = torch.tensor([chat_token_ids(tiny_tokenizer, messages, add_generation_prompt=True)])
    with torch.inference_mode():
        probs = torch.softmax(tiny_model(input_ids=ids).logits[0, -1].float(), dim=-1)
    a = sum(float(probs[i]) for i in judge.label_ids["A"])
    b = sum(float(probs[i]) for i in judge.label_ids["B"])
    assert verdict.source == "logprobs"
    assert verdict.p_first == pytest.approx(a / (a + b), rel=1e-6)


# --- length-controlled win rate -------------------------------------------------------------------------


def test_without_length_differences_the_controlled_rate_is_the_raw_rate() -> None:
    """Equal lengths: the feature is 0, the model is the intercept alone, σ(θ) = mean preference (up to the
    ridge: 0.625 here, within 1e-4)."""
    result = length_controlled_win_rate(np.array([1.0, 1.0, 0.0, 0.5]), np.full(4, 10), np.full(4, 10), 0.95)
    assert result.win_rate == pytest.approx(0.625, abs=1e-4)
    assert result.model.length_coefficient == 0.0
    assert result.ci_low is not None and result.ci_high is not None and result.ci_low < 0.625 < result.ci_high


def test_all_ties_are_exactly_even() -> None:
    result = length_controlled_win_rate(np.full(5, 0.5), np.arange(5) * 10, np.zeros(5), 0.95)
    assert (result.win_rate, result.model.intercept, result.model.length_coefficient) == (0.5, 0.0, 0.0)


def test_the_length_feature_is_tanh_of_the_standardised_difference() -> None:
    """Δ = (−1, 0, 1): sd (ddof 1) = 1, so the feature is tanh(Δ) = (−0.7616, 0, 0.7616)."""
    assert length_feature(np.array([-1.0, 0.0, 1.0])) == pytest.approx([-math.tanh(1), 0.0, math.tanh(1)])
    assert length_feature(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]


def test_the_fit_solves_the_score_equations() -> None:
    """At the optimum Σ(p − y) = −λθ and Σ(p − y)x = −λφ: the penalised likelihood's gradient is zero."""
    x = np.array([[-0.9, -0.3, 0.2, 0.5, 0.8, 0.1]])
    y = np.array([[0.0, 0.5, 1.0, 1.0, 1.0, 0.0]])
    theta, phi = fit_length_models(y, x)
    p = 1 / (1 + np.exp(-(theta[0] + phi[0] * x[0])))
    assert float((p - y[0]).sum() + RIDGE * theta[0]) == pytest.approx(0.0, abs=1e-9)
    assert float(((p - y[0]) * x[0]).sum() + RIDGE * phi[0]) == pytest.approx(0.0, abs=1e-9)
    assert phi[0] > 0  # longer answers won here


def test_a_clean_sweep_stays_finite() -> None:
    result = length_controlled_win_rate(np.ones(20), np.arange(20), np.zeros(20), 0.95)
    assert 0.99 < result.win_rate < 1.0 and math.isfinite(result.model.intercept)
