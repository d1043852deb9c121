"""Paired comparisons of two models on the same pairs: Tango's score interval and test for accuracies (a
cluster-robust t where prompts are shared), a paired t interval and test for per-pair values, with Wilcoxon's
signed-rank test beside it, the minimum detectable effect, the flipped pairs, and the Benjamini–Hochberg adjustment
over a run's comparisons. The gate and `evalkit compare` judge two runs with the same `paired_test`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evalkit.config.objectives import Objective
from evalkit.metrics import hypotheses, stats
from evalkit.metrics.cells import Cell, per_pair_values, rows_by_id
from evalkit.metrics.compute import DEFAULT_STATISTICS
from evalkit.metrics.names import ALL_SUBSETS, COMPARED, REGISTRY
from evalkit.metrics.objectives import objective_values
from evalkit.results.estimates import Comparison, Flips, PairedTestName, Statistics
from evalkit.results.pairs import PairScore


@dataclass(frozen=True)
class Where:
    """The cell a comparison is about."""

    dataset: str
    subset: str
    model: str
    baseline: str


def compare_models(
    dataset: str,
    scores: Sequence[PairScore],
    beta: float,
    *,
    statistics: Statistics = DEFAULT_STATISTICS,
    against: str | None = None,
    objectives: Mapping[str, Objective] | None = None,
) -> list[Comparison]:
    """Every later-listed model in `scores` against every earlier-listed one, on the pairs both scored; with
    `against`, every other model against that one only (a training curve: each step against the reference).

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
    Models named in `objectives` are also compared on their objectives' metrics (`trl/*`, `objective/*`): on the
    scale-free ones (accuracies) whatever the two objectives, on margins and losses only when they share one, since
    rewards on different scales are not comparable.
    Raises `EvalkitError` for non-finite log-probs and for pair ids that repeat within a model.
    """
    models = list(dict.fromkeys(s.model for s in scores))
    by_id = {model: rows_by_id(dataset, model, [s for s in scores if s.model == model]) for model in models}
    out: list[Comparison] = []
    for position, model in enumerate(models):
        if against is not None and (model == against or against not in models):
            continue
        for baseline in [against] if against is not None else models[:position]:
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
                pair = _Objectives((objectives or {}).get(model), (objectives or {}).get(baseline))
                out.extend(_compare_cells(where, cell, other, beta, statistics, pair))
    return out


@dataclass(frozen=True)
class _Objectives:
    """The objectives of the two models of a comparison (None: not named)."""

    model: Objective | None
    baseline: Objective | None

    def values(self, cell: Cell, other: Cell) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if self.model is None or self.baseline is None:
            return {}, {}
        return objective_values(cell, self.model), objective_values(other, self.baseline)

    def comparable(self, metric: str) -> bool:
        """A metric of the objectives is compared across objectives only when it is scale-free."""
        known = REGISTRY[metric]
        return known.quantity is None or known.scale_free or self.model == self.baseline


def _compare_cells(
    where: Where, cell: Cell, other: Cell, beta: float, statistics: Statistics, objectives: _Objectives
) -> Iterator[Comparison]:
    ours, theirs = per_pair_values(cell, beta), per_pair_values(other, beta)
    own, their_own = objectives.values(cell, other)
    ours, theirs = ours | own, theirs | their_own
    for metric in COMPARED:
        if metric not in ours or metric not in theirs or not objectives.comparable(metric):
            continue
        test = paired_test(metric, ours[metric], theirs[metric], cell.prompts, statistics)
        known = REGISTRY[metric]
        yield paired_comparison(
            where,
            metric,
            cell.ids,
            ours[metric],
            theirs[metric],
            test,
            accuracy=known.accuracy,
            higher_is_better=known.higher_is_better,
        )


@dataclass(frozen=True)
class PairedTest:
    """One metric of two models on the same pairs: Δ with its interval, and the test that matches it."""

    differences: np.ndarray
    """Per-pair model − baseline, shape (n,)."""
    delta: stats.Estimate
    name: PairedTestName
    p_value: float
    """Two-sided, from the same method as the interval: it rejects at α exactly when the 1 − α interval excludes 0."""
    wilcoxon_p_value: float | None
    mde: float | None


def paired_test(
    metric: str, ours: np.ndarray, theirs: np.ndarray, prompts: np.ndarray | None, statistics: Statistics
) -> PairedTest:
    """Δ of `metric` between two models' per-pair values (accuracies as 0/1), tested and sized."""
    return paired_values_test(ours, theirs, prompts, statistics, accuracy=REGISTRY[metric].accuracy)


def paired_values_test(
    ours: np.ndarray, theirs: np.ndarray, prompts: np.ndarray | None, statistics: Statistics, *, accuracy: bool
) -> PairedTest:
    """Δ between two models' values on the same items (pairs, or a task's documents), tested and sized.

    Accuracies (0/1 per item) of independent items: Tango's score interval and its test (McNemar's z at Δ = 0);
    the MDE from McNemar's power (Connor 1987). Everything else, and accuracies where pairs share a prompt: a
    mean of the paired differences with a t (or cluster-robust t) interval and test, the MDE from the
    noncentral t, and Wilcoxon's signed-rank test beside it for non-accuracies.
    """
    confidence, alpha, power = statistics.confidence_level, 1 - statistics.confidence_level, statistics.power
    differences = ours - theirs  # (n,)
    shared_prompts = prompts is not None and len(np.unique(prompts)) < prompts.size
    if accuracy and not shared_prompts:
        gained, lost = int((differences > 0).sum()), int((differences < 0).sum())
        delta = stats.paired_shares(gained, lost, differences.size, confidence)
        mde = hypotheses.mde_paired_shares(gained + lost, differences.size, alpha, power)
        return PairedTest(differences, delta, "tango_score", hypotheses.two_sided_p(delta.sampling), None, mde)
    delta = stats.mean(differences, confidence, prompts if shared_prompts else None)
    name: Literal["paired_t", "cluster_t"] = "cluster_t" if delta.method == "cluster_t" else "paired_t"
    # The t-test asks what Δ (a mean) and its interval answer; Wilcoxon, whether most pairs moved one way.
    # With heavy-tailed margins the two can disagree, so both are reported.
    wilcoxon = None if accuracy else hypotheses.wilcoxon_p(differences)
    mde = hypotheses.mde_mean(delta.sampling.se, delta.sampling.df, alpha, power)
    return PairedTest(differences, delta, name, hypotheses.two_sided_p(delta.sampling), wilcoxon, mde)


def paired_comparison(
    where: Where,
    metric: str,
    ids: Sequence[str],
    ours: np.ndarray,
    theirs: np.ndarray,
    test: PairedTest,
    *,
    accuracy: bool,
    higher_is_better: bool | None,
) -> Comparison:
    """The record of `test` on the items `ids` (in the order of `ours` and `theirs`), with the flipped items of an
    accuracy."""
    flips = None
    if accuracy:
        to_right, to_wrong = test.differences > 0, test.differences < 0
        flips = Flips(
            wrong_to_right=int(to_right.sum()),
            right_to_wrong=int(to_wrong.sum()),
            wrong_to_right_ids=[i for i, flipped in zip(ids, to_right, strict=True) if flipped],
            right_to_wrong_ids=[i for i, flipped in zip(ids, to_wrong, strict=True) if flipped],
        )
    delta = test.delta
    return Comparison(
        dataset=where.dataset,
        subset=where.subset,
        model=where.model,
        baseline=where.baseline,
        metric=metric,
        model_value=float(ours.mean()),
        baseline_value=float(theirs.mean()),
        value=delta.value,
        n=len(ids),
        higher_is_better=higher_is_better,
        test=test.name,
        p_value=test.p_value,
        wilcoxon_p_value=test.wilcoxon_p_value,
        mde=test.mde,
        flips=flips,
        method=delta.method,
        se=delta.sampling.se,
        df=delta.sampling.df,
        skewness=delta.sampling.skewness,
        **delta.bounds,
    )


def with_false_discovery_rate(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons with `p_adjusted`: Benjamini–Hochberg over all of them together.

    A report of 4 models × 3 subsets holds ~100 tests; at α = 0.05 a few would be "significant" by
    chance alone. The reports mark significance on the adjusted p, so the expected share of false
    marks among all marks stays at α; the raw p stays beside it.
    """
    adjusted = hypotheses.benjamini_hochberg([c.p_value for c in comparisons])
    return [c.model_copy(update={"p_adjusted": p}) for c, p in zip(comparisons, adjusted, strict=True)]
