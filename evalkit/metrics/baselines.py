"""Content-blind baselines: what a rule that never reads the answers scores on the same pairs as the models.

A benchmark on which "always pick the longer answer" scores 90% cannot tell a model's skill from its data's
artefact, so every pair dataset states, per subset:

  longer_tokens, shorter_tokens   pick the answer with more (fewer) completion tokens, as scoring counted them
                                  (`PairScore.n_tokens_*` of the first model that scored the dataset; recorded
                                  as `tokens_of`, since tokenizers count differently)
  longer_chars, shorter_chars     the same by characters of the answer's text (a message list as its
                                  `role: content` paragraphs; a prompt both answers carry changes no comparison)
  chance                          a uniform pick: ½ for a pair, exactly, with no interval

Ties, by RewardBench 2's rule: an item scores 1/k when a correct answer holds the top and k answers share it, so a
pair of equal lengths scores ½ (the baseline picks at random between them), and its share is Wilson's interval on
the effective sample size of 0/½/1 scores (`evalkit.metrics.stats.proportion`), clustered where pairs share prompts.

Each model's accuracies (`preference/accuracy`, and `rewards/accuracies` where it has rewards) are compared with
each length baseline on the pairs both have, as a paired difference Δ = model − baseline: Tango's score test where
the baseline's scores are 0/1 and pairs are independent, a paired t (cluster-robust where prompts are shared) where a
length tie made some of its scores ½. Chance is a constant, not a sample: a model beats it when its own accuracy is
above ½, the one-sided test of its accuracy record (exact binomial for 0/1 outcomes of independent pairs), which stays
defined for a model right on every pair (a paired t of constant differences is not). A length baseline where every
pair of a cell ties is chance there, and is not compared again.

`baseline_tests` gathers, for one model and accuracy in one cell, the one-sided tests of H₀: model ≤ baseline that a
gate's `beats_baseline` rule and the reports' † both read; `weakest_win` is the one that decides "beats every
baseline" (the intersection-union test: the largest p).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evalkit.metrics import hypotheses, stats
from evalkit.metrics.cells import Cell, cells_of, per_pair_values, rows_by_id
from evalkit.metrics.compute import DEFAULT_STATISTICS
from evalkit.metrics.names import ALL_SUBSETS, BASELINE_ACCURACIES, BEST_OF_N_SCORE
from evalkit.metrics.paired import Where, paired_comparison, paired_values_test
from evalkit.metrics.stats import sampling_fields
from evalkit.results.estimates import BaselineName, BaselineScore, Comparison, Metric, Statistics
from evalkit.results.pairs import PairScore
from evalkit.results.schema import RunResult

BASELINE_TITLES: dict[BaselineName, str] = {
    "longer_tokens": "longer (tokens)",
    "shorter_tokens": "shorter (tokens)",
    "longer_chars": "longer (characters)",
    "shorter_chars": "shorter (characters)",
    "chance": "chance",
}
"""Every baseline, in the order results.json lists them, with the title reports print."""


@dataclass(frozen=True)
class AnswerLengths:
    """The lengths of one pair's two answers."""

    chosen: int
    rejected: int


def pick_scores(chosen: np.ndarray, rejected: np.ndarray, *, longer: bool) -> np.ndarray:
    """Per pair, the score of picking the longer (or shorter) answer: 1 when it is the chosen one, 0 when it is the
    rejected one, ½ when both are as long (1/k for k answers tied at the top, k = 2). Shapes (n,) → (n,)."""
    difference = (chosen - rejected) if longer else (rejected - chosen)
    return np.where(difference > 0, 1.0, np.where(difference < 0, 0.0, 0.5))


@dataclass(frozen=True)
class BaselineInputs:
    """What the baselines of one dataset are computed from, by pair id."""

    tokens: dict[str, AnswerLengths]
    tokens_of: str
    characters: dict[str, AnswerLengths]
    """Empty where the pairs' texts are not at hand (then there are no character baselines)."""
    subsets: dict[str, str]
    prompts: dict[str, str]
    """The prompt each pair belongs to (`PairScore.prompt_key`); empty when not recorded."""


def baseline_inputs(
    dataset: str, scores: Sequence[PairScore], characters: Mapping[str, AnswerLengths]
) -> BaselineInputs | None:
    """Token lengths from the first model that scored `dataset`; None when no model did."""
    if not scores:
        return None
    first = scores[0].model
    rows = rows_by_id(dataset, first, [s for s in scores if s.model == first])
    tokens = {i: AnswerLengths(r.n_tokens_chosen, r.n_tokens_rejected) for i, r in rows.items()}
    subsets = {i: r.subset for i, r in rows.items()}
    prompts = {i: r.prompt_key for i, r in rows.items() if r.prompt_key}
    return BaselineInputs(tokens, first, dict(characters), subsets, prompts if len(prompts) == len(rows) else {})


def baseline_outcomes(inputs: BaselineInputs, ids: Sequence[str]) -> dict[BaselineName, np.ndarray]:
    """Each baseline's per-pair scores on `ids` (in that order), for the baselines every one of `ids` has."""
    out: dict[BaselineName, np.ndarray] = {}
    for unit, lengths in (("tokens", inputs.tokens), ("chars", inputs.characters)):
        if not ids or any(i not in lengths for i in ids):
            continue
        chosen = np.array([lengths[i].chosen for i in ids], dtype=np.int64)
        rejected = np.array([lengths[i].rejected for i in ids], dtype=np.int64)
        out[f"longer_{unit}"] = pick_scores(chosen, rejected, longer=True)  # type: ignore[index]
        out[f"shorter_{unit}"] = pick_scores(chosen, rejected, longer=False)  # type: ignore[index]
    if ids:
        out["chance"] = np.full(len(ids), 0.5)
    return out


def compute_baselines(
    dataset: str, inputs: BaselineInputs, statistics: Statistics = DEFAULT_STATISTICS
) -> list[BaselineScore]:
    """Every baseline's accuracy over the pairs the first model scored, and per subset; pairs that share a prompt
    are clustered, as in the metrics."""
    out = []
    ids = sorted(inputs.tokens)
    subsets = inputs.subsets
    groups = {ALL_SUBSETS: ids} | {
        s: [i for i in ids if subsets[i] == s] for s in sorted({subsets[i] for i in ids} - {ALL_SUBSETS})
    }
    for subset, members in groups.items():
        for name, scores in baseline_outcomes(inputs, members).items():
            out.append(_baseline_score(dataset, subset, name, scores, members, inputs, statistics))
    return out


def _baseline_score(
    dataset: str,
    subset: str,
    name: BaselineName,
    scores: np.ndarray,
    ids: Sequence[str],
    inputs: BaselineInputs,
    statistics: Statistics,
) -> BaselineScore:
    if name == "chance":  # the expected score of a uniform pick: exact
        estimate = stats.descriptive(0.5, scores.size)
    else:
        prompts = np.array([inputs.prompts[i] for i in ids]) if inputs.prompts else None
        estimate = stats.proportion(scores, statistics.confidence_level, prompts)
    return BaselineScore(
        dataset=dataset,
        subset=subset,
        baseline=name,
        value=estimate.value,
        n=scores.size,
        ties=0 if name == "chance" else int((scores == 0.5).sum()),
        tokens_of=inputs.tokens_of if name.endswith("_tokens") else None,
        **estimate.bounds,
        **sampling_fields(estimate.sampling),  # a share, never an AUC: no group sizes
    )


def compare_with_baselines(
    dataset: str,
    scores: Sequence[PairScore],
    inputs: BaselineInputs,
    beta: float,
    statistics: Statistics = DEFAULT_STATISTICS,
) -> list[Comparison]:
    """Each model's accuracies against each baseline on the pairs the model scored, over all pairs and per subset."""
    out: list[Comparison] = []
    for model, subset, rows in cells_of(dataset, scores):
        cell = Cell.from_rows(rows)
        values = per_pair_values(cell, beta)
        for name, theirs in baseline_outcomes(inputs, cell.ids).items():
            # Chance is a constant, tested on the model's own accuracy (`baseline_tests`); a length baseline where
            # every pair ties is chance too.
            if name == "chance" or np.all(theirs == 0.5):
                continue
            for metric in BASELINE_ACCURACIES:
                if metric not in values:
                    continue
                ours = values[metric].astype(np.float64)
                # Tango's test counts discordant pairs: it needs 0/1 scores on both sides.
                whole = bool(np.all((theirs == 0) | (theirs == 1)))
                test = paired_values_test(ours, theirs, cell.prompts, statistics, accuracy=whole)
                where = Where(dataset, subset, model, name)
                out.append(
                    paired_comparison(
                        where, metric, cell.ids, ours, theirs, test, accuracy=whole, higher_is_better=True
                    )
                )
    return out


@dataclass(frozen=True)
class BaselineTest:
    """One model's accuracy against one baseline in one cell: the record tested, and its one-sided test."""

    baseline: BaselineName
    record: Comparison | Metric
    """The paired comparison (a length baseline), or the model's accuracy itself (chance)."""
    null: float
    """0 for a difference; chance itself on the accuracy's own scale (½ for pairs, a best-of-N dataset's mean share
    of correct answers for its score)."""

    @property
    def sampling(self) -> stats.Sampling | None:
        return hypotheses.recorded_sampling(self.record)

    @property
    def p_value(self) -> float | None:
        """One-sided p of H₀: the model is no better than the baseline; None where the test is undefined."""
        sampling = self.sampling
        p = hypotheses.p_greater(sampling, self.null) if sampling is not None else None
        return None if p is None or np.isnan(p) else p

    @property
    def model_value(self) -> float:
        return self.record.model_value if isinstance(self.record, Comparison) else self.record.value

    @property
    def baseline_value(self) -> float:
        return self.record.baseline_value if isinstance(self.record, Comparison) else self.null


def baseline_tests(
    result: RunResult, dataset: str, subset: str, model: str, metric: str, baseline: str = "best"
) -> list[BaselineTest]:
    """The tests of `model`'s `metric` against `baseline` (`best`: every baseline) in one cell; [] where the results
    have none (written before baselines existed, or the model lacks that accuracy). `best_of_n/score` reads the
    best-of-N records, and tests chance at the items' own chance (`best_of_n_baselines`; none for a Ties
    composite)."""
    if metric == BEST_OF_N_SCORE:
        return _best_of_n_tests(result, dataset, subset, model, baseline)
    found: list[BaselineTest] = [
        BaselineTest(c.baseline, c, 0.0)  # type: ignore[arg-type]  # baseline comparisons name a BaselineName
        for c in result.baseline_comparisons
        if (c.dataset, c.subset, c.model, c.metric) == (dataset, subset, model, metric)
        and baseline in ("best", c.baseline)
    ]
    chance = any(b.baseline == "chance" for b in result.baselines if (b.dataset, b.subset) == (dataset, subset))
    accuracy = result.metric(dataset, model, metric, subset)
    if chance and accuracy is not None and baseline in ("best", "chance"):
        found.append(BaselineTest("chance", accuracy, 0.5))
    return found


def _best_of_n_tests(result: RunResult, dataset: str, subset: str, model: str, baseline: str) -> list[BaselineTest]:
    lengths = [
        BaselineTest(c.baseline, c, 0.0)
        for c in result.best_of_n_comparisons
        if (c.dataset, c.subset, c.model) == (dataset, subset, model)
        and c.baseline in BASELINE_TITLES
        and baseline in ("best", c.baseline)
    ]
    chance = [b for b in result.baselines if (b.dataset, b.subset, b.baseline) == (dataset, subset, "chance")]
    score = [m for m in result.best_of_n if (m.dataset, m.subset, m.model) == (dataset, subset, model)]
    if chance and score and baseline in ("best", "chance"):
        lengths.append(BaselineTest("chance", score[0], chance[0].value))
    return lengths


def weakest_win(tests: Sequence[BaselineTest]) -> BaselineTest:
    """The test that decides "beats every baseline": the largest one-sided p, or the first undefined one (a rule on
    it is undecidable, never a pass). `tests` is not empty."""
    undefined = [t for t in tests if t.p_value is None]
    return undefined[0] if undefined else max(tests, key=lambda t: t.p_value or 0.0)
