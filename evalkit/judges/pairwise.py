"""Pairwise LLM judges: which of two answers is better, asked in both orders.

A judge model reads an instruction and two answers and names the better one, `A` or `B`. Judges prefer
the answer in one position (usually the first), so every prompt is judged twice: the candidate shown as A
and the reference as B, then swapped. The two readings are combined per prompt (`combine`): orders that
agree give the candidate's preference (1 win, 0 loss, or the mean of the two probabilities), orders that
disagree (the judge followed the position, not the answer) count as a tie.

A verdict comes from the judge's probabilities of the two labels wherever the backend gives them: an
endpoint's `top_logprobs` of the first generated token, or a local model's next-token distribution.
Otherwise the reply is parsed, strictly: a reply that is not one label is counted as unparsed, never
guessed, and a prompt with an unparsed order is left out of the win rate and counted.

The judging prompt ships as `templates/pairwise.txt` (AlpacaEval / MT-Bench style, with the swap and the
length caveat stated to the judge); a suite may point to its own file with the same three fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeGuard

import numpy as np

from evalkit.data.pairs import Message
from evalkit.data.rendering import PLAIN, Rendering
from evalkit.errors import EvalkitError
from evalkit.generate.endpoint import ChatRequest, EndpointClient
from evalkit.judges.length_controlled import LengthControlled, length_controlled_win_rate
from evalkit.judges.prompt import JudgeTemplate
from evalkit.metrics import stats
from evalkit.results.generation import LengthControlledWinRate, PairwiseWinRate

LABELS = ("A", "B")
_VERDICT = re.compile(r"^\W*(?:answer\s*)?\(?\s*([AB])\s*\)?\W*$", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """One reading of one order."""

    p_first: float | None
    """The judge's probability that the answer shown first (A) is better; 1 or 0 for a parsed reply;
    None when the reply named neither label."""
    source: Literal["logprobs", "parsed", "unparsed"]
    reply: str
    """What the judge wrote (a local judge: the more likely label)."""


class PairwiseJudge(Protocol):
    """Anything that reads judging prompts and returns one verdict per prompt, in order."""

    name: str

    def verdicts(self, prompts: Sequence[list[Message]]) -> list[Verdict]: ...


def parse_verdict(reply: str) -> Verdict:
    """`A`, `B`, `(a)`, `Answer B.`: a reply that is one label and nothing else; anything else is unparsed."""
    found = _VERDICT.match(reply.strip())
    if found is None:
        return Verdict(None, "unparsed", reply)
    return Verdict(1.0 if found.group(1).upper() == "A" else 0.0, "parsed", reply)


def label_probability(top_logprobs: dict[str, float]) -> float | None:
    """P(A) / (P(A) + P(B)) from one position's top log-probs (`A`, ` A`, `a` all count for A); None when
    neither label is among them. A label outside the list has less mass than any listed: taken as 0."""
    mass = dict.fromkeys(LABELS, 0.0)
    for token, logprob in top_logprobs.items():
        label = token.strip().upper()
        if label in mass:
            mass[label] += math.exp(logprob)
    total = mass["A"] + mass["B"]
    return mass["A"] / total if total > 0 else None


class EndpointJudge:
    """A judge model behind an OpenAI-compatible endpoint: greedy, with top log-probs asked for."""

    def __init__(self, name: str, client: EndpointClient, top_logprobs: int = 5, max_tokens: int = 8) -> None:
        self.name = name
        self.client = client
        self.top_logprobs = top_logprobs
        self.max_tokens = max_tokens

    def verdicts(self, prompts: Sequence[list[Message]]) -> list[Verdict]:
        requests = [ChatRequest(p, self.max_tokens, top_logprobs=self.top_logprobs) for p in prompts]
        verdicts = []
        for response in self.client.complete(requests):
            # the first position that names a label: servers differ on whether a leading space is its own token
            probabilities = [label_probability(position) for position in response.top_logprobs or []]
            found = next((p for p in probabilities if p is not None), None)
            verdicts.append(
                Verdict(found, "logprobs", response.content) if found is not None else parse_verdict(response.content)
            )
        return verdicts


class LocalJudge:
    """A judge model in this process: the labels' probabilities from its next-token distribution after the
    judging prompt (rendered with its chat template and the suite's rendering), one prompt at a time."""

    def __init__(self, name: str, model: Any, tokenizer: Any, rendering: Rendering = PLAIN) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.rendering = rendering
        self.label_ids = {label: _label_token_ids(tokenizer, label) for label in LABELS}

    def verdicts(self, prompts: Sequence[list[Message]]) -> list[Verdict]:
        import torch

        from evalkit.data.rendering import chat_token_ids

        verdicts = []
        with torch.inference_mode():
            for messages in prompts:
                ids = chat_token_ids(self.tokenizer, messages, self.rendering, add_generation_prompt=True)
                input_ids = torch.tensor([ids], device=self.model.device)  # (1, T)
                logits = self.model(input_ids=input_ids).logits[0, -1].float()  # (V,)
                probs = torch.softmax(logits, dim=-1)  # (V,)
                mass = {label: float(probs[list(ids)].sum()) for label, ids in self.label_ids.items()}
                p_first = mass["A"] / (mass["A"] + mass["B"])
                verdicts.append(Verdict(p_first, "logprobs", "A" if p_first >= 0.5 else "B"))
        return verdicts


def _label_token_ids(tokenizer: Any, label: str) -> set[int]:
    """The single tokens that spell the label, with and without a leading space."""
    found = set()
    for spelling in (label, f" {label}"):
        ids = tokenizer(spelling, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            found.add(int(ids[0]))
    if not found:
        raise EvalkitError(f"judge tokenizer: {label!r} is not a single token; a local judge reads label tokens")
    return found


@dataclass(frozen=True)
class PairToJudge:
    """One prompt, the candidate model's answer and the reference model's."""

    prompt_id: str
    instruction: str
    candidate: str
    reference: str


@dataclass(frozen=True)
class PairwiseJudgment:
    """Both readings of one prompt and what they add up to, for the candidate."""

    prompt_id: str
    candidate_first: Verdict
    """The order with the candidate shown as A."""
    reference_first: Verdict
    """The order with the reference shown as A."""
    preference: float | None
    """The candidate's: 1 win, 0 loss, ½ tie (orders disagree), the mean probability where probabilities
    agree; None when an order is unparsed."""
    orders_agree: bool | None
    """Both orders favour the same answer."""
    same_position: bool | None
    """Both orders favour the same position: the judge followed the slot, not the answer."""
    candidate_length: int
    reference_length: int
    """Characters, the length AlpacaEval controls for."""


def combine(prompt: PairToJudge, candidate_first: Verdict, reference_first: Verdict) -> PairwiseJudgment:
    """The two readings of one prompt as one judgment (see the module doc)."""
    preference = agree = same = None
    if _probability(candidate_first.p_first) and _probability(reference_first.p_first):
        p_one, p_two = candidate_first.p_first, 1.0 - reference_first.p_first  # the candidate's, in each order
        agree = (p_one > 0.5 and p_two > 0.5) or (p_one < 0.5 and p_two < 0.5)
        same = (p_one > 0.5 and p_two < 0.5) or (p_one < 0.5 and p_two > 0.5)
        preference = (p_one + p_two) / 2.0 if agree else 0.5
    return PairwiseJudgment(
        prompt.prompt_id,
        candidate_first,
        reference_first,
        preference,
        agree,
        same,
        len(prompt.candidate),
        len(prompt.reference),
    )


def _probability(p: float | None) -> TypeGuard[float]:
    """Whether `p` is a probability: a NaN (or anything outside [0, 1]) from a judge is no reading, so its prompt is
    counted as unparsed and left out, never a tie."""
    return p is not None and 0.0 <= p <= 1.0


def judge_pairs(judge: PairwiseJudge, template: JudgeTemplate, pairs: Sequence[PairToJudge]) -> list[PairwiseJudgment]:
    """Every pair judged in both orders, in one batch of 2·n prompts (an endpoint judge sends them together)."""
    prompts = [template.messages(p.instruction, p.candidate, p.reference) for p in pairs] + [
        template.messages(p.instruction, p.reference, p.candidate) for p in pairs
    ]
    verdicts = judge.verdicts(prompts)
    n = len(pairs)
    return [combine(pair, verdicts[i], verdicts[n + i]) for i, pair in enumerate(pairs)]


def summarise_pairwise(
    judge: str, model: str, baseline: str, judgments: Sequence[PairwiseJudgment], confidence: float
) -> PairwiseWinRate:
    """`model` against `baseline` on one judge, both orders of every prompt combined, as results.json records it: the
    raw win rate (Wilson on the effective n, ties and probabilities as fractional wins), the length-controlled one,
    and the judge's position bias and agreement between the two orders; unparsed prompts counted and left out."""
    read = [j for j in judgments if j.preference is not None]
    unparsed = len(judgments) - len(read)
    if not read:
        return PairwiseWinRate(
            judge=judge,
            model=model,
            baseline=baseline,
            win_rate=None,
            ci_low=None,
            ci_high=None,
            method="wilson",
            n_effective=None,
            wins=0,
            ties=0,
            losses=0,
            n=0,
            unparsed=unparsed,
            length_controlled=None,
            position_bias_rate=None,
            agreement_rate=None,
            first_position_rate=None,
        )
    preferences = np.array([j.preference for j in read], dtype=np.float64)
    raw = stats.proportion(preferences, confidence)
    controlled = length_controlled_win_rate(
        preferences,
        np.array([j.candidate_length for j in read]),
        np.array([j.reference_length for j in read]),
        confidence,
    )
    firsts = [v.p_first for j in read for v in (j.candidate_first, j.reference_first) if v.p_first is not None]
    return PairwiseWinRate(
        judge=judge,
        model=model,
        baseline=baseline,
        win_rate=raw.value,
        method=raw.method,
        wins=int((preferences > 0.5).sum()),
        ties=int((preferences == 0.5).sum()),
        losses=int((preferences < 0.5).sum()),
        n=len(read),
        unparsed=unparsed,
        length_controlled=length_controlled_record(controlled),
        position_bias_rate=float(np.mean([bool(j.same_position) for j in read])),
        agreement_rate=float(np.mean([bool(j.orders_agree) for j in read])),
        first_position_rate=float(np.mean([p > 0.5 for p in firsts])),
        n_effective=raw.sampling.n_effective,
        **raw.bounds,
    )


def length_controlled_record(controlled: LengthControlled | None) -> LengthControlledWinRate | None:
    """The length-controlled win rate as results.json records it (None with no prompt read)."""
    if controlled is None:
        return None
    return LengthControlledWinRate(
        win_rate=controlled.win_rate,
        ci_low=controlled.ci_low,
        ci_high=controlled.ci_high,
        intercept=controlled.model.intercept,
        length_coefficient=controlled.model.length_coefficient,
        se=controlled.se,
        n=controlled.n,
        method=controlled.method,
    )
