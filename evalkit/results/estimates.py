"""The numbers of a run: metrics with their intervals, paired comparisons between models, reliability curves, and the
statistics settings that made them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evalkit.results.record import Record

PairedTestName = Literal["tango_score", "paired_t", "cluster_t", "bootstrap", "stratified_z", "mover_auc"]
"""The paired tests evalkit runs (`evalkit.metrics.paired`); files before 1.4 may name `mcnemar_exact`. Best-of-N
composites add `bootstrap` (the Ties score, prompts resampled) and `stratified_z` (the mean over subsets); two models'
AUCs on the same labelled completions `mover_auc` (`evalkit.metrics.auc.auc_difference`)."""


class Metric(Record):
    """One number of one (dataset, subset, model) cell, with its interval."""

    dataset: str
    subset: str
    model: str
    metric: str
    value: float
    ci_low: float | None = None
    """Lower end of the interval (see `Statistics`); None where undefined: one pair, or no spread."""
    ci_high: float | None = None
    n: int
    """Pairs the number was computed on (for a length bin: the pairs in that bin)."""
    higher_is_better: bool | None
    """None where neither direction is good in itself (log-probs, correlations)."""
    method: str | None = None
    """How the interval was made (`evalkit.metrics.stats`: wilson, wilson_clustered, student_t, cluster_t, fisher_z,
    order_statistics, none); None in files older than schema 1.4."""
    se: float | None = None
    """Standard error, for t methods (and of atanh ρ for fisher_z): what a gate's one-sided test reads."""
    df: float | None = None
    """Degrees of freedom of a t method: n − 1, or prompts − 1 when clustered."""
    n_effective: float | None = None
    """For shares: the sample size Wilson's interval and the gate's test run on (n for 0/1 outcomes of
    independent pairs; less where pairs share prompts, more where ties count half)."""
    skewness: float | None = None
    """For student_t: the sample skewness G₁, which a gate's one-sided test corrects for (Hall 1992)."""
    n_positive: int | None = None
    """For newcombe_auc (an AUC of unpaired data): the desirable completions, the first of the two groups its
    score test reads."""
    n_negative: int | None = None
    """For newcombe_auc: the undesirable completions."""


class Flips(Record):
    """Pairs an accuracy comparison turned around, from the baseline's verdict to the model's."""

    wrong_to_right: int
    right_to_wrong: int
    wrong_to_right_ids: list[str]
    right_to_wrong_ids: list[str]

    def reversed(self) -> Flips:
        """The same pairs seen from the other side: what went wrong→right for one went right→wrong for the other."""
        return Flips(
            wrong_to_right=self.right_to_wrong,
            right_to_wrong=self.wrong_to_right,
            wrong_to_right_ids=self.right_to_wrong_ids,
            right_to_wrong_ids=self.wrong_to_right_ids,
        )


class Comparison(Record):
    """`model` against `baseline` on one metric, on the pairs both scored: a paired difference."""

    dataset: str
    subset: str
    model: str
    baseline: str
    metric: str
    model_value: float
    baseline_value: float
    value: float
    """The difference model − baseline (the mean of the per-pair differences; for mover_auc, of the two AUCs)."""
    ci_low: float | None
    """Paired interval of the difference (see `method`); None where undefined (one pair, or no spread)."""
    ci_high: float | None
    n: int
    """Pairs both models scored (for mover_auc: labelled completions, both labels)."""
    higher_is_better: bool | None
    test: Literal[PairedTestName, "mcnemar_exact"]
    """Tango's score test for accuracies (McNemar's z at Δ = 0); a paired t-test of the mean difference for
    per-pair values; a cluster-robust t where pairs share prompts. `mcnemar_exact` only in files before 1.4."""
    p_value: float
    """Two-sided, from the same method as the interval; 1.0 when the models agree on every pair."""
    p_adjusted: float | None = None
    """Benjamini–Hochberg adjusted over every comparison of the run: what the reports' significance marks read."""
    method: str | None = None
    """How the interval was made: tango, student_t, cluster_t, or mover_auc (a difference of two AUCs); None in files
    older than schema 1.4."""
    se: float | None = None
    df: float | None = None
    skewness: float | None = None
    wilcoxon_p_value: float | None = None
    """For per-pair values: Wilcoxon's signed-rank test (do most pairs move one way?), beside the t-test."""
    mde: float | None
    """Minimum detectable effect: the smallest true difference this test finds with the stated power."""
    flips: Flips | None = None
    """For accuracies: the pairs that went wrong→right and right→wrong."""
    n_positive: int | None = None
    """For mover_auc (two AUCs on the same labelled completions): the desirable completions; `n` is both labels."""
    n_negative: int | None = None
    """For mover_auc: the undesirable completions."""
    correlation: float | None = None
    """For mover_auc: the correlation of the two AUCs (DeLong's structural components), which MOVER's test reads
    with each AUC (`model_value`, `baseline_value`) and the group sizes."""

    @model_validator(mode="after")
    def _tango_counts_flips(self) -> Comparison:
        # Tango's test is computed from the flips alone: without them there is nothing to replay or show.
        if self.method == "tango" and self.flips is None:
            raise ValueError(f"flips: the {self.metric} comparison by Tango's test must record its flips")
        return self

    def reversed(self) -> Comparison:
        """`baseline` against `model`: values swapped; Δ, its interval and skewness negated; flips reversed.
        The test's p-values and its standard error read the same either way round."""
        return self.model_copy(
            update={
                "model": self.baseline,
                "baseline": self.model,
                "model_value": self.baseline_value,
                "baseline_value": self.model_value,
                "value": -self.value,
                "ci_low": None if self.ci_high is None else -self.ci_high,
                "ci_high": None if self.ci_low is None else -self.ci_low,
                "skewness": None if self.skewness is None else -self.skewness,
                "flips": None if self.flips is None else self.flips.reversed(),
            }
        )


BaselineName = Literal["longer_tokens", "shorter_tokens", "longer_chars", "shorter_chars", "chance"]
"""The content-blind baselines (`evalkit.metrics.baselines`): pick the answer with more (fewer) completion tokens or
characters, or pick at random. None of them reads what an answer says."""


class BaselineScore(Record):
    """A content-blind baseline's accuracy on one (dataset, subset): what a rule that never reads the answers scores.

    A length tie at the top scores 1/k, k the answers sharing the top length (RewardBench 2's rule): ½ for a pair of
    equal lengths. Chance is the expected score of a uniform pick (½ for a pair, correct/N for best-of-N), exact,
    with no interval. The other intervals are Wilson's on the effective sample size of 0/½/1 scores (`wilson`, or
    `wilson_clustered` where pairs share prompts), as for every share."""

    dataset: str
    subset: str
    baseline: BaselineName
    value: float
    ci_low: float | None = None
    """None where undefined: chance (exact), or too few items."""
    ci_high: float | None = None
    n: int
    """Items (pairs, or best-of-N prompts) scored."""
    ties: int = 0
    """Items where the baseline's top length was shared by several answers (scored 1/k); 0 for chance."""
    method: str | None = None
    """How the interval was made (wilson, wilson_clustered, none), as in `Metric`."""
    se: float | None = None
    df: float | None = None
    n_effective: float | None = None
    """Wilson's sample size: n for 0/1 scores of independent items, more where ties score ½, less where prompts are
    shared."""
    skewness: float | None = None
    """As in `Metric`; None for shares."""
    tokens_of: str | None = None
    """For token baselines: the model whose tokenizer counted the tokens (token counts differ between tokenizers);
    None for characters and chance."""


class TiesScore(Record):
    """RewardBench 2's composite score of a Ties subset for one model, with its parts (`evalkit.metrics.best_of_n`).

    value = 0.3·accuracy_tied + 0.3·accuracy_ref + 0.2·correctness_preferred + 0.2·correctness_preferred_hard
    + 0.01·correctness_margin_score, the weights of reward-bench's `process_single_model`."""

    dataset: str
    subset: str
    model: str
    value: float
    accuracy_ref: float
    """Share of `ref:<k>` items whose worst correct answer outscores their best incorrect one."""
    accuracy_tied: float
    """The same share over the `tied:<k>` items (several correct answers)."""
    correctness_preferred: float
    """Share of prompts where the tied item's correct–incorrect margin exceeds the spread among its correct answers."""
    correctness_preferred_hard: float
    """The same with the smaller of the ref and tied items' correct–incorrect margins."""
    correctness_margin_score: float
    """Mean of tanh(margin ratio − 1) over those prompts."""
    n_prompts: int


class ReliabilityBin(Record):
    """One point of a reliability curve: the pairs whose confidence falls in [low, high).

    The confidence of a pair is σ(|margin|), the probability the model gives the answer it
    prefers; the pair counts as right when that answer is the chosen one (a tie, margin 0, is
    half right: the model predicts a coin flip).
    """

    dataset: str
    subset: str
    model: str
    low: float
    high: float
    n: int
    confidence: float
    """Mean confidence of the pairs in the bin."""
    accuracy: float
    ci_low: float | None
    """Wilson interval of the accuracy."""
    ci_high: float | None


class Statistics(Record):
    """How intervals, tests and power were computed; recorded so that a result can be reproduced."""

    confidence_level: float = Field(0.95, gt=0, lt=1)
    """Of every two-sided interval; the reports' tests use α = 1 − confidence_level (gate rules use `gate.alpha`)."""
    power: float = Field(0.8, gt=0, lt=1)
    """Of the minimum detectable effect."""
    calibration_bins: int = Field(10, ge=1)
    """Equal-width bins of confidence over [0.5, 1], for ECE and the reliability curve."""
