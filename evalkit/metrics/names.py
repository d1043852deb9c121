"""The metric registry: every metric evalkit computes, with what a reader and a rule need to know of it.

One entry per metric name: the title reports print, the good direction, whether two models are
compared on it pair by pair, whether it needs a reference model (the implicit reward
β·(ℓ − ℓ_ref) and everything built on it), and why a gate rule cannot judge it where it cannot.
Every module that used to keep its own list of metric strings asks here, so a typo in a report
column or a rule is a `KeyError` at the place it is made, not a silent "—" in a table.

This module imports nothing of evalkit's: the suite's checks, the metrics, the reports and the
gate all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Quantity = Literal["trl_logged", "objective"]
"""Which of a model's objective numbers a metric is: what TRL's trainer logs at eval for the objective
(`trl/...`, pooled over pairs), or the quantity the objective's loss optimises (`objective/...`)."""

ALL_SUBSETS = "all"
"""The subset every pair belongs to; other subsets come from the dataset's `subset` column."""

LENGTH_BINS: dict[str, str] = {
    "chosen_shorter": "chosen shorter",
    "same_length": "same length",
    "chosen_longer": "chosen longer",
}
"""Bins of Δlength = T(chosen) − T(rejected) by sign (< 0, = 0, > 0), with their titles."""


@dataclass(frozen=True)
class MetricName:
    """What is known of one metric before any number is computed."""

    name: str
    title: str
    higher_is_better: bool | None
    """None where neither direction is good in itself."""
    compared: bool = False
    """Two models differ on it by a paired difference on the same items: the mean of a per-pair value, or (for
    `objective/auc`) two AUCs on the same completions."""
    needs_reference: bool = False
    """Computed from the implicit reward: the reference model itself has none."""
    accuracy: bool = False
    """A share of pairs (0 or 1 per pair): intervals and tests for proportions."""
    untestable: str | None = None
    """Why a gate rule cannot judge its interval, where it cannot."""
    quantity: Quantity | None = None
    """For the metrics of a model's objective (`method`): which set it belongs to; None for the others."""
    objectives: tuple[str, ...] | None = None
    """The objectives that have it (`orpo` for the log-odds); None: every objective."""
    scale_free: bool = True
    """Comparable between models trained with different objectives (a share of pairs); a reward, margin or loss is
    on its own objective's scale, so two models are compared on it only when they share the objective."""
    unpaired: bool = False
    """Computed on labelled completions (KTO style) only, for every model with rewards that its `objectives` allow
    (`evalkit.metrics.unpaired.suite_unpaired_metrics`), never on pairs."""

    @property
    def heading(self) -> str:
        """The title with the arrow of the good direction, as table headers print it."""
        return heading(self.name, self.higher_is_better)


def _length_bins(prefix: str, title: str, *, needs_reference: bool) -> list[MetricName]:
    return [
        MetricName(f"{prefix}/{key}", f"{title}, {label}", True, needs_reference=needs_reference, accuracy=True)
        for key, label in LENGTH_BINS.items()
    ]


def _objective_metrics() -> list[MetricName]:
    """The metrics of a model's objective: TRL's eval logs (`trl/`) and the objective's own (`objective/`)."""
    logged: Quantity = "trl_logged"
    own: Quantity = "objective"
    orpo, nll, kto = ("orpo",), ("cpo", "simpo", "orpo"), ("kto",)
    return [
        MetricName("trl/rewards/accuracies", "TRL reward acc", True, compared=True, accuracy=True, quantity=logged),
        MetricName("trl/rewards/margins", "TRL margin", True, compared=True, quantity=logged, scale_free=False),
        MetricName("trl/rewards/chosen", "TRL reward chosen", None, quantity=logged, scale_free=False),
        MetricName("trl/rewards/rejected", "TRL reward rejected", None, quantity=logged, scale_free=False),
        MetricName("trl/logps/chosen", "TRL logp chosen", None, quantity=logged, scale_free=False),
        MetricName("trl/logps/rejected", "TRL logp rejected", None, quantity=logged, scale_free=False),
        MetricName("trl/nll_loss", "TRL NLL", False, quantity=logged, objectives=nll, scale_free=False),
        MetricName(
            "trl/log_odds_ratio", "TRL log σ(log-odds)", True, quantity=logged, objectives=orpo, scale_free=False
        ),
        MetricName("trl/log_odds_chosen", "TRL log-odds", True, quantity=logged, objectives=orpo, scale_free=False),
        MetricName("objective/accuracy", "objective acc", True, compared=True, accuracy=True, quantity=own),
        MetricName("objective/ties", "objective ties", None, quantity=own),
        MetricName("objective/margins", "objective margin", True, compared=True, quantity=own, scale_free=False),
        MetricName("objective/loss", "objective loss", False, compared=True, quantity=own, scale_free=False),
        # Unpaired data (KTO style, `evalkit.metrics.unpaired`): trl/rewards/chosen and trl/logps/chosen are then the
        # means over desirable completions, .../rejected over undesirable ones; objective/loss is KTO's loss.
        MetricName("trl/kl", "TRL KL point", None, quantity=logged, objectives=kto, scale_free=False, unpaired=True),
        # Gated by Newcombe's score test on the two group sizes results.json records (`n_positive`, `n_negative`);
        # compared between two models on the same completions by MOVER (`evalkit.metrics.unpaired.compare_unpaired`).
        MetricName("objective/auc", "reward AUC", True, compared=True, quantity=own, unpaired=True),
    ]


REGISTRY: dict[str, MetricName] = {
    m.name: m
    for m in [
        MetricName("preference/accuracy", "pref. acc", True, compared=True, accuracy=True),
        MetricName("preference/ties", "pref. ties", None),
        MetricName("preference/accuracy_per_token", "pref. acc/token", True, compared=True, accuracy=True),
        MetricName("preference/ties_per_token", "pref. ties/token", None),
        MetricName("logps/chosen", "logp chosen", None),
        MetricName("logps/rejected", "logp rejected", None),
        MetricName("logps/margins", "logp margin", True, compared=True),
        *_length_bins("length/preference_accuracy", "pref. acc", needs_reference=False),
        # A property of the data and the tokenizer, not of the model: the `longer_tokens` content-blind baseline
        # (`evalkit.metrics.baselines`) with ties counted apart (on pairs of unequal length), where the baseline
        # scores a tie ½ over every pair.
        MetricName("length/longer_accuracy", "longer answer preferred", None),
        MetricName("rewards/accuracies", "reward acc", True, compared=True, needs_reference=True, accuracy=True),
        MetricName("rewards/ties", "ties", False, needs_reference=True),
        MetricName("rewards/margins", "margin", True, compared=True, needs_reference=True),
        MetricName(
            "rewards/margins_median",
            "median margin",
            True,
            needs_reference=True,
            untestable="its interval (order statistics of a median) has no test results.json can replay",
        ),
        MetricName("rewards/chosen", "reward chosen", None, needs_reference=True),
        MetricName("rewards/rejected", "reward rejected", None, needs_reference=True),
        MetricName("loss", "DPO loss", False, compared=True, needs_reference=True),
        *_length_bins("length/rewards_accuracy", "reward acc", needs_reference=True),
        # Near 0 is what one hopes for: neither direction.
        MetricName("length/margin_spearman", "ρ(margin, Δlength)", None, needs_reference=True),
        MetricName("calibration/brier", "Brier score", False, needs_reference=True),
        MetricName(
            "calibration/ece",
            "ECE",
            False,
            needs_reference=True,
            untestable="it is descriptive, with no interval (binned ECE is biased upward at any n)",
        ),
        MetricName("displacement/chosen", "chosen fell below ref", False, needs_reference=True),
        *_objective_metrics(),
    ]
}
"""Every metric `compute_metrics` writes, in the order results.json lists them."""

BASELINE_ACCURACIES: tuple[str, ...] = ("preference/accuracy", "rewards/accuracies")
"""The accuracies compared with the content-blind baselines (`evalkit.metrics.baselines`), and that a
`beats_baseline` gate rule tests."""

BEST_OF_N_SCORE = "best_of_n/score"
"""RewardBench 2's score of best-of-N items (`evalkit.metrics.best_of_n`): compared with the content-blind
baselines on the same items, and so a `beats_baseline` gate rule can test it too."""

COMPARED: tuple[str, ...] = tuple(name for name, m in REGISTRY.items() if m.compared)
"""Metrics compared between models, in the order comparisons are written."""


def metric(name: str) -> MetricName:
    """The registry entry of `name`; a `KeyError` naming the known metrics for anything else."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no metric named {name!r}; metrics are {list(REGISTRY)}") from None


def title(name: str) -> str:
    """The title a report prints for `name`; a name outside the registry (a capability task's metric) as is."""
    return REGISTRY[name].title if name in REGISTRY else name


ARROWS: dict[bool | None, str] = {True: " ↑", False: " ↓", None: ""}


def heading(name: str, higher_is_better: bool | None) -> str:
    """A table header: the title and the arrow of the direction the record states (a capability task's metric,
    outside the registry, states its own)."""
    return title(name) + ARROWS[higher_is_better]
