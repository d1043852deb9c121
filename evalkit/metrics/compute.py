"""Preference metrics with intervals, and paired comparisons between models, pooled over pairs.

Every metric is a pure function of per-pair arrays of a (dataset, subset, model) cell: never a
mean of per-batch means, so no number can depend on the batch size, the padding side or the
number of processes. Names follow TRL's log keys where TRL has one.

For each pair, with ℓ the summed log-prob of an answer under the model, ℓ_ref under the
reference, T its number of completion tokens and Δlength = T(chosen) − T(rejected):
  reward_chosen   = β·(ℓ(chosen) − ℓ_ref(chosen))
  reward_rejected = β·(ℓ(rejected) − ℓ_ref(rejected))
  margin m        = reward_chosen − reward_rejected
  DPO loss        = −log σ(m) = log(1 + e^(−m))

Metrics of every model (policy only; no reference needed):
  preference/accuracy             share of pairs with ℓ(chosen) > ℓ(rejected) (strict: a tie is not right)
  preference/ties                 share of pairs with ℓ(chosen) = ℓ(rejected), beside the accuracy
  preference/accuracy_per_token   the same on ℓ/T, the mean log-prob per completion token
  preference/ties_per_token       its ties
  logps/chosen, logps/rejected    mean ℓ
  logps/margins                   mean ℓ(chosen) − ℓ(rejected): the policy's own margin, in nats
  length/preference_accuracy/BIN  preference/accuracy within a bin of Δlength
  length/longer_accuracy          accuracy of "always prefer the longer answer", on the pairs whose
                                  answers differ in length (its n counts those)
Metrics of models with a reference (not the reference itself: its rewards are 0 by definition), and of classifier
reward models, whose rewards are their own scores (`PairScore.score_*`; no log-probs, so none of the metrics above,
and no displacement):
  rewards/chosen, rewards/rejected          mean rewards
  rewards/margins, rewards/margins_median   mean and median margin
  rewards/accuracies, rewards/ties          share with m > 0 (strict, as TRL and RewardBench), with m = 0
  loss                                      mean DPO loss
  length/rewards_accuracy/BIN               rewards/accuracies within a bin of Δlength
  length/margin_spearman                    Spearman's ρ of m and Δlength (left out when either is constant)
  calibration/brier                         mean (1 − σ(m))²: σ(m) read as P(chosen is preferred)
  calibration/ece                           binned expected calibration error of that reading (see `_calibration`);
                                            descriptive, with no interval: it is biased upward at any n
  displacement/chosen                       share of pairs where ℓ(chosen) fell below ℓ_ref(chosen)

The bins of Δlength are its sign: chosen_shorter, same_length, chosen_longer. Fixed names keep
metrics comparable across runs and nameable in gate rules, and the sign is what a length bias
hinges on; a bin with no pairs is left out. A cell with no pairs has no metrics.

Intervals (`evalkit.metrics.stats`, each named in the record): Wilson for shares, Student t for means, the
interpolated order-statistic interval for the median, Fisher z for Spearman's ρ. Where pairs share
a prompt (several pairs per prompt, as in some preference sets) they are not independent: shares
and means then use the cluster-robust variance over prompts. Comparisons of two models on the
same pairs: Tango's score interval and test for accuracies (cluster-robust t where prompts are
shared), a paired t interval and test for margins and losses, so every interval excludes 0
exactly when its test rejects. `with_false_discovery_rate` adjusts the p-values of a run's
comparisons together (Benjamini–Hochberg) for the reports' significance marks.

Ties: one policy everywhere. A tie is never counted as right (TRL's and RewardBench's strict
`>`), and its share is reported beside every accuracy; an accuracy's chance level is therefore
(1 − ties)/2. In a comparison a pair goes wrong→right when the baseline did not get it right
(wrong or tied) and the model does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from evalkit.metrics import stats
from evalkit.metrics.cells import Cell, cells_of, per_token_margin
from evalkit.metrics.names import LENGTH_BINS, REGISTRY
from evalkit.metrics.stats import sampling_fields
from evalkit.results.estimates import Metric, ReliabilityBin, Statistics
from evalkit.results.pairs import PairScore

DEFAULT_STATISTICS = Statistics()


def compute_metrics(
    dataset: str, scores: Sequence[PairScore], beta: float, *, statistics: Statistics = DEFAULT_STATISTICS
) -> list[Metric]:
    """Metrics of every model in `scores`, over all pairs and per subset, with intervals.

    Raises `EvalkitError` when a model has a non-finite log-prob or an empty completion.
    """
    out: list[Metric] = []
    for model, subset, rows in cells_of(dataset, scores):
        for metric, estimate in _cell_estimates(Cell.from_rows(rows), beta, statistics=statistics).items():
            interval = estimate.interval
            out.append(
                Metric(
                    dataset=dataset,
                    subset=subset,
                    model=model,
                    metric=metric,
                    value=estimate.value,
                    ci_low=interval.low if interval else None,
                    ci_high=interval.high if interval else None,
                    n=estimate.n,
                    higher_is_better=REGISTRY[metric].higher_is_better,
                    **sampling_fields(estimate.sampling),
                )
            )
    return out


def _cell_estimates(
    cell: Cell, beta: float, *, statistics: Statistics = DEFAULT_STATISTICS
) -> dict[str, stats.Estimate]:
    """Metric name → estimate over the pairs of `cell` (checked by `check_scores`); {} for no pairs."""
    if cell.n == 0:
        return {}
    confidence, clusters = statistics.confidence_level, cell.prompts

    def share(outcomes: np.ndarray) -> stats.Estimate:
        return stats.proportion(outcomes, confidence, clusters)

    def mean(values: np.ndarray) -> stats.Estimate:
        return stats.mean(values, confidence, clusters)

    out: dict[str, stats.Estimate] = {} if cell.is_reward_model else _policy_estimates(cell, statistics)
    rewards = cell.rewards(beta)
    if rewards is None:
        return out
    margin = rewards.margin
    out |= {
        "rewards/accuracies": share(margin > 0),  # strict, as TRL and RewardBench
        "rewards/ties": share(margin == 0),
        "rewards/margins": mean(margin),
        "rewards/margins_median": stats.median(margin, confidence),
        "rewards/chosen": mean(rewards.chosen),
        "rewards/rejected": mean(rewards.rejected),
        "loss": mean(np.logaddexp(0.0, -margin)),
    }
    out |= _by_length("length/rewards_accuracy", margin > 0, cell, confidence)
    spearman = stats.spearman(margin, cell.delta_length.astype(np.float64), confidence)
    if spearman is not None:
        out["length/margin_spearman"] = spearman
    calibration = _calibration(margin, statistics.calibration_bins)
    out["calibration/brier"] = mean(expit(-margin) ** 2)
    out["calibration/ece"] = stats.descriptive(
        _expected_calibration_error(calibration, statistics.calibration_bins), cell.n
    )
    if cell.ref_logp_chosen is not None:  # a policy against its reference (a reward model has neither)
        out["displacement/chosen"] = share(cell.logp_chosen < cell.ref_logp_chosen)
    return out


def _policy_estimates(cell: Cell, statistics: Statistics) -> dict[str, stats.Estimate]:
    """The metrics of a policy's own log-probs, which need no reference."""
    confidence, clusters = statistics.confidence_level, cell.prompts

    def share(outcomes: np.ndarray) -> stats.Estimate:
        return stats.proportion(outcomes, confidence, clusters)

    def mean(values: np.ndarray) -> stats.Estimate:
        return stats.mean(values, confidence, clusters)

    log_margin = cell.logp_chosen - cell.logp_rejected
    per_token = per_token_margin(cell)
    out = {
        "preference/accuracy": share(log_margin > 0),
        "preference/ties": share(log_margin == 0),
        "preference/accuracy_per_token": share(per_token > 0),
        "preference/ties_per_token": share(per_token == 0),
        "logps/chosen": mean(cell.logp_chosen),
        "logps/rejected": mean(cell.logp_rejected),
        "logps/margins": mean(log_margin),
    }
    out |= _by_length("length/preference_accuracy", log_margin > 0, cell, confidence)
    unequal = cell.delta_length != 0
    if unequal.any():
        longer = cell.delta_length[unequal] > 0
        out["length/longer_accuracy"] = stats.proportion(
            longer, confidence, clusters[unequal] if clusters is not None else None
        )
    return out


def reliability_curves(
    dataset: str, scores: Sequence[PairScore], beta: float, *, statistics: Statistics = DEFAULT_STATISTICS
) -> list[ReliabilityBin]:
    """Reliability-curve points (non-empty bins of confidence) of every model with rewards, per subset."""
    out: list[ReliabilityBin] = []
    bins = statistics.calibration_bins
    for model, subset, rows in cells_of(dataset, scores):
        rewards = Cell.from_rows(rows).rewards(beta)
        if rewards is None:
            continue
        calibration = _calibration(rewards.margin, bins)
        for b in range(bins):
            members = calibration.bins == b
            if not members.any():
                continue
            accuracy = stats.proportion(calibration.correct[members], statistics.confidence_level)
            out.append(
                ReliabilityBin(
                    dataset=dataset,
                    subset=subset,
                    model=model,
                    low=(bins + b) / (2 * bins),  # the edges of [0.5, 1] cut in `bins` equal parts
                    high=(bins + b + 1) / (2 * bins),
                    n=accuracy.n,
                    confidence=float(calibration.confidence[members].mean()),
                    accuracy=accuracy.value,
                    ci_low=accuracy.interval.low if accuracy.interval else None,
                    ci_high=accuracy.interval.high if accuracy.interval else None,
                )
            )
    return out


def _by_length(prefix: str, correct: np.ndarray, cell: Cell, confidence: float) -> dict[str, stats.Estimate]:
    delta_length, prompts = cell.delta_length, cell.prompts
    masks = dict(zip(LENGTH_BINS, (delta_length < 0, delta_length == 0, delta_length > 0), strict=True))
    return {
        f"{prefix}/{name}": stats.proportion(correct[m], confidence, prompts[m] if prompts is not None else None)
        for name, m in masks.items()
        if m.any()
    }


@dataclass(frozen=True)
class Calibration:
    """σ(margin) read as a prediction; each of shape (n,)."""

    confidence: np.ndarray
    """σ(|m|): the probability the model gives the answer it prefers, in [0.5, 1]."""
    correct: np.ndarray
    """1 when that answer is the chosen one, 0 when it is the rejected one, ½ for a tie."""
    bins: np.ndarray
    """Index of the equal-width bin of [0.5, 1] the confidence falls in."""


def _calibration(margin: np.ndarray, n_bins: int) -> Calibration:
    """Top-label calibration of σ(m) as P(chosen is preferred).

    Every pair's label says the chosen answer is preferred, so read literally the outcome is
    always 1 and the ECE would only measure how far σ(m) is from 1. Instead, as for any
    classifier, the model's prediction is the answer it favours, with confidence σ(|m|), and it
    is right when that is the chosen answer. Brier is the same under either reading.
    """
    confidence = expit(np.abs(margin))
    correct = np.where(margin > 0, 1.0, np.where(margin < 0, 0.0, 0.5))
    bins = np.minimum(np.floor((confidence - 0.5) * 2 * n_bins), n_bins - 1).astype(np.int64)
    return Calibration(confidence, correct, bins)


def _expected_calibration_error(calibration: Calibration, n_bins: int) -> float:
    """Σ_bins (n_b/n)·|accuracy_b − confidence_b| = Σ_bins |Σ_{i∈b} (correct_i − confidence_i)| / n.

    Binned ECE is biased upward: on perfectly calibrated pairs each bin's |gap| is the absolute value
    of noise, so it is positive at any n and falls only like 1/√(n/bins). Its bootstrap is centred on
    the biased value and misses the truth; evalkit states the number without an interval.
    """
    gap = calibration.correct - calibration.confidence
    sums = np.bincount(calibration.bins, weights=gap, minlength=n_bins)
    return float(np.abs(sums).sum() / gap.size)
