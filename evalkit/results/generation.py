"""Generation samples in `results.json`: the panel, each model's completions, their statistics, judges and drift."""

from __future__ import annotations

from typing import Literal

from evalkit.results.record import Record


class GenerationPrompt(Record):
    id: str
    text: str
    """The prompt as plain text (a message prompt: its last message)."""


class GenerationSample(Record):
    """One completion of one panel prompt by one model."""

    prompt_id: str
    model: str
    index: int
    """0 for the greedy (or first sampled) completion; further samples count up."""
    completion: str
    n_tokens: int
    ended: bool
    """True when the model stopped with EOS rather than at `max_new_tokens`."""
    scores: dict[str, float] = {}
    """Judge name → score."""


class GenerationStats(Record):
    """Shape of one model's completions (over token ids, EOS excluded)."""

    model: str
    mean_tokens: float
    eos_rate: float
    distinct_1: float
    distinct_2: float
    repetition_rate: float
    """Share of tokens repeating a 4-gram seen earlier in the same completion."""


class JudgeSummary(Record):
    """A judge's mean score for one model over the panel (per-prompt means; over prompts, Wilson's interval on
    the effective n for scores in [0, 1], Student t for any other scale)."""

    judge: str
    model: str
    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int


class WinRate(Record):
    """One model against the reference on a judge, prompt by prompt, on the prompts both answered.

    The win rate counts a tie as half a win (a judged comparison of two answers has three outcomes, and
    half is what a coin flip between them scores), with a Wilson interval; the sign test beside it asks
    whether wins outnumber losses, ties aside.
    """

    judge: str
    model: str
    baseline: str
    win_rate: float
    ci_low: float | None
    ci_high: float | None
    sign_test_p: float | None = None
    """Two-sided exact sign test of wins against losses; None in files older than schema 1.4."""
    wins: int
    ties: int
    losses: int
    score_delta: float
    """Mean of the per-prompt score differences, model − baseline."""
    delta_ci_low: float | None
    delta_ci_high: float | None
    n: int


class Drift(Record):
    """KL(π‖π_ref) of the first `max_new_tokens` tokens, in nats per completion.

    For each completion y sampled from π (its own distribution: temperature 1, every sampling filter of
    the checkpoint's generation config off), the sum over its positions of the full next-token
    KL(π(·|x, y<t) ‖ π_ref(·|x, y<t)): an unbiased, never negative estimate with less variance than the
    log-ratio log π(y|x) − log π_ref(y|x). Mean per prompt, then over prompts with a Student t
    interval (its lower end clipped at 0, where the KL cannot go). Completions are cut at
    `max_new_tokens`, so this is the KL of the first that many tokens: a lower bound on the KL of
    whole answers when `truncated` > 0.
    """

    model: str
    reference: str
    kl: float
    ci_low: float | None
    ci_high: float | None
    n: int
    samples_per_prompt: int
    estimator: str | None = None
    """`per_token` (as above); None in files older than schema 1.4, which used the sampled log-ratio."""
    se: float | None = None
    df: float | None = None
    skewness: float | None = None
    max_new_tokens: int | None = None
    truncated: float | None = None
    """Share of the sampled completions cut at `max_new_tokens` rather than ended with EOS."""


class Backend(Record):
    """Who decoded (or judged) and whether a fresh run would repeat it: the determinism statement of a backend.
    The API key is never recorded, only the variable it was read from."""

    used_by: str
    """`generation`, or `judge <name>`."""
    backend: Literal["hf", "openai"]
    base_url: str | None = None
    served_models: dict[str, str] = {}
    """Suite model (or judge) name → the served model name asked for."""
    api_key_env: str | None = None
    concurrency: int | None = None
    deterministic: bool
    reason: str
    """Why it can or cannot promise the same answers with an empty cache (`evalkit.generate.endpoint.determinism`)."""
    requests_sent: int | None = None
    """HTTP requests this run sent (retries included); 0 when every answer came from the cache."""
    answers_redacted: int | None = None
    """Answers (cached ones included) in which the server echoed the API key, as it is or encoded, and the key was
    masked (`***`) before the answer was kept; None in process, and in files older than this field."""


class JudgeReading(Record):
    """One pairwise verdict: the judge's reading of one order."""

    p_first: float | None
    """Probability that the answer shown first (A) is better; 1 or 0 for a parsed reply; None: unparsed."""
    source: Literal["logprobs", "parsed", "unparsed"]
    reply: str


class PairwiseJudgmentRecord(Record):
    """Both orders of one prompt, for one model against the baseline, as one pairwise judge read them."""

    judge: str
    model: str
    baseline: str
    prompt_id: str
    candidate_first: JudgeReading
    reference_first: JudgeReading
    preference: float | None
    """The model's: 1 win, 0 loss, ½ when the orders disagree, the mean probability where they agree; None when
    an order is unparsed (left out of the win rate, counted)."""
    orders_agree: bool | None
    same_position: bool | None
    model_length: int
    baseline_length: int
    """Characters, the length the length-controlled win rate controls for."""


class LengthControlledWinRate(Record):
    """The win rate a logistic model of the judge's preference predicts at zero length difference (AlpacaEval 2)."""

    win_rate: float
    ci_low: float | None
    ci_high: float | None
    intercept: float
    """θ of logit P = θ + φ·tanh(Δ/sd(Δ)); the win rate is σ(θ)."""
    length_coefficient: float
    """φ: how much the judge's preference follows the length difference (0: not at all)."""
    se: float | None
    """Standard error of θ (sandwich, HC1); None with fewer than three prompts."""
    n: int
    method: str


class PairwiseWinRate(Record):
    """One model against the baseline on one pairwise judge, both orders of every prompt combined."""

    judge: str
    model: str
    baseline: str
    win_rate: float | None
    """Mean preference over the prompts with both orders read (a tie ½); None when none was read."""
    ci_low: float | None
    ci_high: float | None
    method: str
    n_effective: float | None
    """The effective n of the Wilson interval and of its test."""
    wins: int
    ties: int
    losses: int
    n: int
    """Prompts with both orders read."""
    unparsed: int
    """Prompts left out because a reply named neither label."""
    length_controlled: LengthControlledWinRate | None
    position_bias_rate: float | None
    agreement_rate: float | None
    first_position_rate: float | None


class GenerationResult(Record):
    decoding: str
    """`greedy`, or `sampling (k=..., temperature=..., top_p=..., seed=...)`."""
    max_new_tokens: int
    prompts: list[GenerationPrompt]
    samples: list[GenerationSample]
    stats: list[GenerationStats]
    judges: list[JudgeSummary] = []
    win_rates: list[WinRate] = []
    drift: list[Drift] = []
    backends: list[Backend] = []
    """How the panel was decoded and the pairwise judges asked, each with its determinism statement (schema 1.7;
    empty in older files)."""
    pairwise: list[PairwiseWinRate] = []
    """Per (pairwise judge, model, baseline): raw and length-controlled win rates and the judge's biases."""
    pairwise_judgments: list[PairwiseJudgmentRecord] = []
    """Every pairwise judgment, both orders, as the judge gave them."""
