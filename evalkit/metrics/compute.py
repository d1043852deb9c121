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
Metrics of models with a reference (not the reference itself: its rewards are 0 by definition):
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

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit

from evalkit.errors import EvalkitError
from evalkit.metrics import stats
from evalkit.metrics.names import ALL_SUBSETS, COMPARED, LENGTH_BINS, REGISTRY
from evalkit.metrics.stats import sampling_fields
from evalkit.results.estimates import Comparison, Flips, Metric, ReliabilityBin, Statistics
from evalkit.results.pairs import PairScore, implicit_reward

DEFAULT_STATISTICS = Statistics()


@dataclass(frozen=True)
class Cell:
    """Per-pair arrays of one (dataset, subset, model) cell, sorted by pair id; each of shape (n,)."""

    ids: list[str]
    logp_chosen: np.ndarray
    logp_rejected: np.ndarray
    n_tokens_chosen: np.ndarray
    n_tokens_rejected: np.ndarray
    ref_logp_chosen: np.ndarray | None
    """None when any pair lacks reference log-probs (the reference model's own rows)."""
    ref_logp_rejected: np.ndarray | None
    prompts: np.ndarray | None = None
    """The prompt each pair belongs to (`PairScore.prompt_key`); None when not recorded. Pairs sharing a
    prompt are clustered in every interval and test."""

    @classmethod
    def from_rows(cls, rows: Sequence[PairScore]) -> Cell:
        """The arrays of `rows`, sorted by pair id.

        Sorting makes every array the same whatever order the pairs were scored in (batch size,
        processes), so no number can move with it either.
        """
        rows = sorted(rows, key=lambda r: (r.id, repr(r)))  # repr breaks ties between repeated ids
        reference = all(r.ref_logp_chosen is not None and r.ref_logp_rejected is not None for r in rows)

        def column(field: str, dtype: type = np.float64) -> np.ndarray:
            return np.array([getattr(r, field) for r in rows], dtype=dtype)

        return cls(
            ids=[r.id for r in rows],
            logp_chosen=column("logp_chosen"),
            logp_rejected=column("logp_rejected"),
            n_tokens_chosen=column("n_tokens_chosen", np.int64),
            n_tokens_rejected=column("n_tokens_rejected", np.int64),
            ref_logp_chosen=column("ref_logp_chosen") if reference else None,
            ref_logp_rejected=column("ref_logp_rejected") if reference else None,
            prompts=np.array([r.prompt_key for r in rows]) if all(r.prompt_key for r in rows) else None,
        )

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def delta_length(self) -> np.ndarray:
        return self.n_tokens_chosen - self.n_tokens_rejected

    def rewards(self, beta: float) -> Rewards | None:
        if self.ref_logp_chosen is None or self.ref_logp_rejected is None:
            return None
        chosen = implicit_reward(self.logp_chosen, self.ref_logp_chosen, beta)
        rejected = implicit_reward(self.logp_rejected, self.ref_logp_rejected, beta)
        return Rewards(chosen, rejected, chosen - rejected)


@dataclass(frozen=True)
class Rewards:
    """Implicit rewards of a cell's pairs; each of shape (n,)."""

    chosen: np.ndarray
    rejected: np.ndarray
    margin: np.ndarray


@dataclass(frozen=True)
class Where:
    """The cell a comparison is about."""

    dataset: str
    subset: str
    model: str
    baseline: str


def compute_metrics(
    dataset: str, scores: Sequence[PairScore], beta: float, *, statistics: Statistics = DEFAULT_STATISTICS
) -> list[Metric]:
    """Metrics of every model in `scores`, over all pairs and per subset, with intervals.

    Raises `EvalkitError` when a model has a non-finite log-prob or an empty completion.
    """
    out: list[Metric] = []
    for model, subset, rows in _cells(dataset, scores):
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

    log_margin = cell.logp_chosen - cell.logp_rejected
    per_token = _per_token_margin(cell)
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
    assert cell.ref_logp_chosen is not None
    out["displacement/chosen"] = share(cell.logp_chosen < cell.ref_logp_chosen)
    return out


def reliability_curves(
    dataset: str, scores: Sequence[PairScore], beta: float, *, statistics: Statistics = DEFAULT_STATISTICS
) -> list[ReliabilityBin]:
    """Reliability-curve points (non-empty bins of confidence) of every model with rewards, per subset."""
    out: list[ReliabilityBin] = []
    bins = statistics.calibration_bins
    for model, subset, rows in _cells(dataset, scores):
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


def compare_models(
    dataset: str, scores: Sequence[PairScore], beta: float, *, statistics: Statistics = DEFAULT_STATISTICS
) -> list[Comparison]:
    """Every later-listed model in `scores` against every earlier-listed one, on the pairs both scored.

    Models are taken in the order they first appear in `scores` (the suite's order), so with
    [base, aligned] this compares aligned against base. Pairs are matched by id, over all pairs
    and per subset. Policy-only metrics are compared for every two models: the accuracies and
    `logps/margins`, whose per-pair difference against the reference is the model's implicit
    reward margin over β (so its tests ask whether DPO moved the margins); reward metrics
    (`rewards/accuracies`, `rewards/margins`, `loss`) only when both models have rewards, since
    the reference's rewards are 0 by definition and a difference against them says nothing
    `rewards/*` of the other model does not already say. Accuracies carry their flipped pairs;
    every comparison's interval and test come from one method (`paired_test`), and Wilcoxon's
    signed-rank test sits beside the t-test for margins and losses.
    For two models with the same reference, Δ logps/margins = Δ rewards/margins / β.
    Raises `EvalkitError` for non-finite log-probs and for pair ids that repeat within a model.
    """
    models = list(dict.fromkeys(s.model for s in scores))
    by_id = {model: _rows_by_id(dataset, model, [s for s in scores if s.model == model]) for model in models}
    out: list[Comparison] = []
    for position, model in enumerate(models):
        for baseline in models[:position]:
            shared = sorted(by_id[model].keys() & by_id[baseline].keys())
            ours = [by_id[model][pair_id] for pair_id in shared]
            theirs = [by_id[baseline][pair_id] for pair_id in shared]
            groups = {ALL_SUBSETS: list(range(len(shared)))}
            for subset in sorted({r.subset for r in ours} - {ALL_SUBSETS}):
                groups[subset] = [i for i, r in enumerate(ours) if r.subset == subset]
            for subset, index in groups.items():
                if not index:
                    continue
                cell = Cell.from_rows([ours[i] for i in index])
                other = Cell.from_rows([theirs[i] for i in index])
                where = Where(dataset, subset, model, baseline)
                out.extend(_compare_cells(where, cell, other, beta, statistics))
    return out


def _compare_cells(where: Where, cell: Cell, other: Cell, beta: float, statistics: Statistics) -> Iterator[Comparison]:
    ours, theirs = _per_pair(cell, beta), _per_pair(other, beta)
    for metric in COMPARED:
        if metric not in ours or metric not in theirs:
            continue
        test = paired_test(metric, ours[metric], theirs[metric], cell.prompts, statistics)
        flips = None
        if REGISTRY[metric].accuracy:
            to_right, to_wrong = test.differences > 0, test.differences < 0
            flips = Flips(
                wrong_to_right=int(to_right.sum()),
                right_to_wrong=int(to_wrong.sum()),
                wrong_to_right_ids=[i for i, flipped in zip(cell.ids, to_right, strict=True) if flipped],
                right_to_wrong_ids=[i for i, flipped in zip(cell.ids, to_wrong, strict=True) if flipped],
            )
        delta = test.delta
        yield Comparison(
            dataset=where.dataset,
            subset=where.subset,
            model=where.model,
            baseline=where.baseline,
            metric=metric,
            model_value=float(ours[metric].mean()),
            baseline_value=float(theirs[metric].mean()),
            value=delta.value,
            ci_low=delta.interval.low if delta.interval else None,
            ci_high=delta.interval.high if delta.interval else None,
            n=cell.n,
            higher_is_better=REGISTRY[metric].higher_is_better,
            test=test.name,
            p_value=test.p_value,
            wilcoxon_p_value=test.wilcoxon_p_value,
            mde=test.mde,
            flips=flips,
            method=delta.method,
            se=delta.sampling.se,
            df=delta.sampling.df,
            skewness=delta.sampling.skewness,
        )


@dataclass(frozen=True)
class PairedTest:
    """One metric of two models on the same pairs: Δ with its interval, and the test that matches it."""

    differences: np.ndarray
    """Per-pair model − baseline, shape (n,)."""
    delta: stats.Estimate
    name: Literal["tango_score", "paired_t", "cluster_t"]
    p_value: float
    """Two-sided, from the same method as the interval: it rejects at α exactly when the 1 − α interval excludes 0."""
    wilcoxon_p_value: float | None
    mde: float | None


def paired_test(
    metric: str, ours: np.ndarray, theirs: np.ndarray, prompts: np.ndarray | None, statistics: Statistics
) -> PairedTest:
    """Δ of `metric` between two models' per-pair values (accuracies as 0/1), tested and sized.

    Accuracies of independent pairs: Tango's score interval and its test (McNemar's z at Δ = 0);
    the MDE from McNemar's power (Connor 1987). Everything else, and accuracies where pairs share a
    prompt: a mean of the paired differences with a t (or cluster-robust t) interval and test, the
    MDE from the noncentral t, and Wilcoxon's signed-rank test beside it for non-accuracies.
    """
    confidence, alpha, power = statistics.confidence_level, 1 - statistics.confidence_level, statistics.power
    differences = ours - theirs  # (n,)
    shared_prompts = prompts is not None and len(np.unique(prompts)) < prompts.size
    if REGISTRY[metric].accuracy and not shared_prompts:
        gained, lost = int((differences > 0).sum()), int((differences < 0).sum())
        delta = stats.paired_shares(gained, lost, differences.size, confidence)
        mde = stats.mde_paired_shares(gained + lost, differences.size, alpha, power)
        return PairedTest(differences, delta, "tango_score", stats.two_sided_p(delta.sampling), None, mde)
    delta = stats.mean(differences, confidence, prompts if shared_prompts else None)
    name: Literal["paired_t", "cluster_t"] = "cluster_t" if delta.method == "cluster_t" else "paired_t"
    # The t-test asks what Δ (a mean) and its interval answer; Wilcoxon, whether most pairs moved one way.
    # With heavy-tailed margins the two can disagree, so both are reported.
    wilcoxon = None if REGISTRY[metric].accuracy else stats.wilcoxon_p(differences)
    mde = stats.mde_mean(delta.sampling.se, delta.sampling.df, alpha, power)
    return PairedTest(differences, delta, name, stats.two_sided_p(delta.sampling), wilcoxon, mde)


def with_false_discovery_rate(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons with `p_adjusted`: Benjamini–Hochberg over all of them together.

    A report of 4 models × 3 subsets holds ~100 tests; at α = 0.05 a few would be "significant" by
    chance alone. The reports mark significance on the adjusted p, so the expected share of false
    marks among all marks stays at α; the raw p stays beside it.
    """
    adjusted = stats.benjamini_hochberg([c.p_value for c in comparisons])
    return [c.model_copy(update={"p_adjusted": p}) for c, p in zip(comparisons, adjusted, strict=True)]


def _per_pair(cell: Cell, beta: float) -> dict[str, np.ndarray]:
    """Per-pair values whose means are the compared metrics (accuracies as 0/1)."""
    values = {
        "preference/accuracy": (cell.logp_chosen > cell.logp_rejected).astype(np.float64),
        "preference/accuracy_per_token": (_per_token_margin(cell) > 0).astype(np.float64),
        "logps/margins": cell.logp_chosen - cell.logp_rejected,
    }
    rewards = cell.rewards(beta)
    if rewards is not None:
        values["rewards/accuracies"] = (rewards.margin > 0).astype(np.float64)
        values["rewards/margins"] = rewards.margin
        values["loss"] = np.logaddexp(0.0, -rewards.margin)
    return values


def _per_token_margin(cell: Cell) -> np.ndarray:
    return cell.logp_chosen / cell.n_tokens_chosen - cell.logp_rejected / cell.n_tokens_rejected


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


def _cells(dataset: str, scores: Sequence[PairScore]) -> Iterator[tuple[str, str, list[PairScore]]]:
    """(model, subset, rows) for every model (in order of appearance), over all pairs, then per subset."""
    for model in dict.fromkeys(s.model for s in scores):
        rows = [s for s in scores if s.model == model]
        check_scores(dataset, model, rows)
        yield model, ALL_SUBSETS, rows
        for subset in sorted({s.subset for s in rows} - {ALL_SUBSETS}):
            yield model, subset, [s for s in rows if s.subset == subset]


def check_scores(dataset: str, model: str, rows: Sequence[PairScore]) -> None:
    """Refuse rows no metric can be honest about: non-finite log-probs and empty completions.

    A NaN or infinite log-prob (a float16 overflow, a broken checkpoint) would turn every mean
    it enters into NaN or ±inf, and dropping it would silently change the pairs; so evalkit
    stops and names the pairs. An empty completion has no per-token log-prob.
    """
    bad = [
        r.id
        for r in rows
        if not all(
            np.isfinite(v)
            for v in (r.logp_chosen, r.logp_rejected, r.ref_logp_chosen, r.ref_logp_rejected)
            if v is not None
        )
    ]
    if bad:
        raise EvalkitError(
            f"dataset {dataset!r}, model {model!r}: non-finite log-probs (NaN or ±inf) for {len(bad)} of "
            f"{len(rows)} pairs: {_some(bad)}; evalkit refuses to average them. Check the model and its "
            "dtype (float16 overflows to inf; try float32 or bfloat16) and the tokens of these pairs"
        )
    empty = [r.id for r in rows if r.n_tokens_chosen < 1 or r.n_tokens_rejected < 1]
    if empty:
        raise EvalkitError(
            f"dataset {dataset!r}, model {model!r}: {len(empty)} pairs have an answer with no completion "
            f"tokens: {_some(empty)}; expected every chosen and rejected answer to add at least one token"
        )


def _rows_by_id(dataset: str, model: str, rows: Sequence[PairScore]) -> dict[str, PairScore]:
    check_scores(dataset, model, rows)
    by_id = {r.id: r for r in rows}
    if len(by_id) < len(rows):
        repeated = sorted(pair_id for pair_id, count in Counter(r.id for r in rows).items() if count > 1)
        raise EvalkitError(
            f"dataset {dataset!r}, model {model!r}: pair ids repeat ({_some(repeated)}); paired comparisons "
            "match pairs by id, so expected unique ids (check the dataset's id_column)"
        )
    return by_id


def _some(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"
