"""Gate rules: one model per kind, told apart by `kind`, each holding only the keys its kind uses.

Every rule is a one-sided hypothesis test whose null hypothesis is "the release is bad", passed only
when it is rejected at `gate.alpha` (after the gate's correction). Kinds:
- `absolute`: `metric` of `model` is `at_least` (or `at_most`) a value. H₀: θ < at_least; judged on
  the one-sided bound (`judge_on: value` judges the point estimate alone: not a test);
- `superiority`: `model` beats `baseline` (another model of the run) on `metric`. H₀: Δ ≤ 0
  (Δ ≥ 0 where lower is better), one-sided at α;
- `non_inferiority`: against the baseline run (`--baseline`), the paired difference on the same
  pairs is no worse than `margin`. H₀: Δ ≤ −margin (Δ ≥ +margin where lower is better); `baseline`
  names the model there (default: the model's counterpart, by role, fingerprint, then name); with no
  baseline recorded yet the rule is skipped;
- `drift_budget`: KL(model ‖ reference) from generation samples is below `max_kl`. H₀: KL ≥ max_kl;
- `length_budget`: mean generation length grows by less than `max_growth` (0.2 = 20%) over the
  baseline run's model (with `--baseline`), else over the run's reference, prompt by prompt.
  H₀: growth ≥ max_growth;
- `capability_non_inferiority`: on the capability `task`, `model` is no worse than `baseline` (another
  model of the run, typically the base) by more than `margin`, paired on the same documents (the
  alignment tax). H₀: Δ ≤ −margin on the task's `metric` (default: its first), Tango's score test
  for 0/1 scores, a paired t-test otherwise;
- `win_rate`: `model`'s judged win rate over the pairwise `judge`'s baseline (default: the suite's reference) is
  above `at_least` (default ½: better than the baseline). `on: length_controlled` (the default) tests the
  length-controlled win rate, H₀: σ(θ) ≤ at_least on the logit scale (the delta method's θ and sandwich se, t on
  n − 2 degrees of freedom); `on: raw` tests the raw win rate, H₀: win rate ≤ at_least (the score test on
  Wilson's effective n). Prompts with an unparsed verdict are left out of n;
- `beats_baseline`: `model`'s accuracy (`metric`: `preference/accuracy` or `rewards/accuracies`; on a best-of-N
  dataset `best_of_n/score`) beats a content-blind `baseline` (`longer_tokens`, `shorter_tokens`, `longer_chars`,
  `shorter_chars`, `chance`) on the same pairs or items, or with `best` (the default) every one of them. Chance is ½
  for pairs and, for best-of-N items, the mean share of correct answers per item (¼ for one correct of four).
  H₀: Δ ≤ 0 against the baseline, one-sided at α, on the test results.json records beside the comparison (Tango's
  where the baseline's scores are 0/1, a paired t where a length tie scored ½, a z test for a Ties composite and a
  mean over subsets); `best` is the intersection-union test: its p is the largest of the baselines' p.
A rule with fewer pairs (prompts, for generation rules; documents, for capability rules) than `min_pairs`
is undecidable, never a pass.

A key another kind uses is an error naming the kind (`evalkit.config.messages` words pydantic's errors so).
"""

from __future__ import annotations

import abc
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from evalkit.config.messages import suggestion
from evalkit.config.specs import Spec, Text
from evalkit.metrics.names import BASELINE_ACCURACIES, BEST_OF_N_SCORE, COMPARED, REGISTRY
from evalkit.results.estimates import BaselineName
from evalkit.results.schema import GateKind

JudgeOn = Literal["value", "interval"]
"""`interval`: a one-sided test at `gate.alpha` (the rule holds for the one-sided bound); `value`: the point
estimate alone, which is not a test and makes no error-rate promise."""

Correction = Literal["holm", "none"]
"""`GateSpec.correction`."""


class Rule(Spec, abc.ABC):
    """What every kind of rule has."""

    name: Text | None = None
    """What the rule is called in every report and in `junit.xml`; default: a name written from its settings."""
    kind: GateKind
    """Which test the rule is; it decides the other keys the rule takes."""
    model: str
    """The model of the run the rule judges."""
    min_pairs: int | None = Field(None, ge=2)
    """Fewest pairs (prompts, for generation rules) the rule is judged on; default `gate.min_pairs`."""

    unit: ClassVar[str] = "pairs"
    """What the rule's n counts."""

    @property
    def title(self) -> str:
        """The rule's name, or one written from its settings."""
        return self.name or self.described()

    @abc.abstractmethod
    def described(self) -> str:
        """The rule in words, from its settings."""

    @property
    def run_models(self) -> dict[str, str]:
        """The rule's keys that name a model of the judged run, with those names: `model`, and `baseline` where the
        kind compares two models of the same run."""
        return {"model": self.model}

    def _named(self) -> str:
        return f"rule {self.name!r}: " if self.name else ""


class PreferenceRule(Rule):
    """A rule on a metric of the preference pairs of one dataset (and subset)."""

    metric: str
    """A metric of the preference pairs, by its name in results.json (`rewards/accuracies`, `preference/accuracy`,
    `rewards/margins`, ...); a misspelt one gets a suggestion."""
    dataset: str | None = None
    """Needed when the suite has several datasets."""
    subset: str = "all"
    """A subset of the dataset (its `subset_column`'s value), or `all`."""

    compares: ClassVar[bool] = False
    """Whether the rule tests a difference between two models (a comparison), not one model's value."""

    @property
    def tested(self) -> bool:
        """Whether the rule is a test (on the one-sided bound), not a judgement of the point estimate alone."""
        return True

    @model_validator(mode="after")
    def _gateable_metric(self) -> PreferenceRule:
        known = list(COMPARED) if self.compares else list(REGISTRY)
        named = self._named()
        if self.metric not in known:
            hint = suggestion(self.metric, known)
            raise ValueError(f"{named}metric {self.metric!r} cannot be gated by kind {self.kind!r}{hint}")
        if self.compares and REGISTRY[self.metric].higher_is_better is None:
            raise ValueError(f"{named}metric {self.metric!r} has no better direction to test")
        untestable = REGISTRY[self.metric].untestable
        if untestable and self.tested:
            raise ValueError(
                f"{named}metric {self.metric!r} cannot be gated: {untestable}; "
                "gate on another metric or set `judge_on: value`"
            )
        return self

    def _where(self) -> str:
        where = f" on {self.dataset}" if self.dataset else ""
        return where + (f"/{self.subset}" if self.subset != "all" else "")


class AbsoluteRule(PreferenceRule):
    """`model`'s `metric` is at least (or at most) a value. H₀: the metric is on the wrong side of it."""

    kind: Literal["absolute"]
    at_least: float | None = None
    """The value the metric must be above (give this or `at_most`)."""
    at_most: float | None = None
    """The value the metric must be below, for metrics where lower is better."""
    judge_on: JudgeOn = "interval"
    """`interval`: a one-sided test at `gate.alpha`; `value`: the point estimate alone, which is not a test."""

    @model_validator(mode="after")
    def _one_bound(self) -> AbsoluteRule:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError(f"{self._named()}give exactly one of `at_least` and `at_most`")
        return self

    @property
    def tested(self) -> bool:
        return self.judge_on == "interval"

    @property
    def baseline(self) -> None:
        """An absolute rule holds one model to a number, against no other model."""
        return None

    @property
    def higher_passes(self) -> bool:
        """True for `at_least` (H₀: the metric below it), False for `at_most`."""
        return self.at_least is not None

    @property
    def threshold(self) -> float:
        threshold = self.at_least if self.at_least is not None else self.at_most
        assert threshold is not None, "validated: exactly one of `at_least` and `at_most` is given"
        return threshold

    def described(self) -> str:
        bound = f">= {self.at_least}" if self.at_least is not None else f"<= {self.at_most}"
        return f"{self.model} {self.metric} {bound}{self._where()}"


class SuperiorityRule(PreferenceRule):
    """`model` beats `baseline`, another model of the run, on the same pairs. H₀: Δ ≤ 0."""

    kind: Literal["superiority"]
    baseline: str
    """The other model of the run that `model` must beat."""

    compares: ClassVar[bool] = True

    @property
    def run_models(self) -> dict[str, str]:
        return {"model": self.model, "baseline": self.baseline}

    def described(self) -> str:
        return f"{self.model} beats {self.baseline} on {self.metric}{self._where()}"


class NonInferiorityRule(PreferenceRule):
    """Against the baseline run (`--baseline`), on the same pairs, `model` is no worse than `margin`.
    H₀: Δ ≤ −margin. Skipped until a baseline is recorded."""

    kind: Literal["non_inferiority"]
    baseline: str | None = None
    """The model of the baseline run to hold `model` against; default: its counterpart by role, fingerprint, name."""
    margin: float = Field(ge=0.0)
    """How much worse than the baseline the model may be, in the metric's unit (0.02: two points of accuracy)."""

    compares: ClassVar[bool] = True

    def described(self) -> str:
        return f"{self.model} no worse than the baseline run on {self.metric} (margin {self.margin}){self._where()}"


class BeatsBaselineRule(PreferenceRule):
    """`model`'s accuracy beats a content-blind baseline on the same pairs (with `best`, every one). H₀: Δ ≤ 0."""

    kind: Literal["beats_baseline"]
    baseline: BaselineName | Literal["best"] = "best"
    """The baseline to beat: `longer_tokens`, `shorter_tokens`, `longer_chars`, `shorter_chars`, `chance`, or `best`:
    every one of them (the intersection-union test, whose p is the largest of theirs)."""

    compares: ClassVar[bool] = True

    @model_validator(mode="after")
    def _gateable_metric(self) -> BeatsBaselineRule:
        """Replaces `PreferenceRule`'s check: an accuracy of pairs, or a best-of-N dataset's score (not a pair metric
        of the registry)."""
        if self.metric not in (*BASELINE_ACCURACIES, BEST_OF_N_SCORE):
            raise ValueError(
                f"{self._named()}metric {self.metric!r}: a beats_baseline rule tests an accuracy, one of "
                f"{[*BASELINE_ACCURACIES, BEST_OF_N_SCORE]}"
            )
        return self

    def described(self) -> str:
        against = "every content-blind baseline" if self.baseline == "best" else f"the {self.baseline} baseline"
        return f"{self.model} beats {against} on {self.metric}{self._where()}"


class DriftBudgetRule(Rule):
    """KL(model ‖ reference), from `generation.drift` samples, is below `max_kl`. H₀: KL ≥ max_kl."""

    kind: Literal["drift_budget"]
    judge_on: JudgeOn = "interval"
    """`interval`: a one-sided test at `gate.alpha`; `value`: the point estimate alone, which is not a test."""
    max_kl: float = Field(ge=0.0)
    """The budget, in nats."""

    unit: ClassVar[str] = "prompts"

    @property
    def baseline(self) -> None:
        """The drift is measured against the run's reference, which the rule does not name."""
        return None

    def described(self) -> str:
        return f"{self.model} KL drift <= {self.max_kl}"


class LengthBudgetRule(Rule):
    """Mean generation length grows by less than `max_growth` over the baseline run's model, else the reference,
    prompt by prompt. H₀: growth ≥ max_growth."""

    kind: Literal["length_budget"]
    baseline: str | None = None
    """The model of the baseline run whose lengths are the budget's base; default: the model's counterpart."""
    max_growth: float
    """The growth allowed, as a share: 0.25 is 25% longer."""

    unit: ClassVar[str] = "prompts"

    def described(self) -> str:
        return f"{self.model} mean generation length grows <= {self.max_growth:.0%}"


class CapabilityRule(Rule):
    """On a capability `task`, `model` is no worse than `baseline` by `margin` on the same documents (the alignment
    tax). H₀: Δ ≤ −margin."""

    kind: Literal["capability_non_inferiority"]
    metric: str | None = None
    """The task's metric, as lm-eval names it; default: the task's first."""
    baseline: str
    """The other model of the run (typically the base) whose capability `model` must keep."""
    margin: float = Field(ge=0.0)
    """How much worse than `baseline` the model may be, in the task metric's unit (0.1: ten points of accuracy)."""
    task: str
    """The capability task (one of `capabilities.tasks`)."""

    unit: ClassVar[str] = "documents"

    @property
    def run_models(self) -> dict[str, str]:
        return {"model": self.model, "baseline": self.baseline}

    def described(self) -> str:
        on = f"{self.task}" + (f" {self.metric}" if self.metric else "")
        return f"{self.model} no worse than {self.baseline} on {on} (margin {self.margin})"


WinRateKey = Literal["length_controlled", "raw"]
"""Which judged win rate a `win_rate` rule tests."""


class WinRateRule(Rule):
    """`model`'s win rate over its baseline, by a pairwise `judge`, is above `at_least`. H₀: win rate ≤ at_least."""

    kind: Literal["win_rate"]
    judge: str
    """A pairwise judge of `generation.judges`."""
    baseline: str | None = None
    """The model `model` was judged against; default: the judge's baseline (the suite's reference)."""
    at_least: float = Field(0.5, gt=0.0, lt=1.0)
    """The win rate to beat; ½ is "better than the baseline"."""
    on: WinRateKey = "length_controlled"
    """`length_controlled`: the win rate predicted at equal lengths (AlpacaEval 2); `raw`: as judged."""

    unit: ClassVar[str] = "prompts"

    @property
    def run_models(self) -> dict[str, str]:
        return {"model": self.model} | ({"baseline": self.baseline} if self.baseline is not None else {})

    def described(self) -> str:
        which = "length-controlled win rate" if self.on == "length_controlled" else "win rate"
        over = f" over {self.baseline}" if self.baseline else ""
        return f"{self.model} {which}{over} by {self.judge} >= {self.at_least:g}"


GateRule = Annotated[
    AbsoluteRule
    | SuperiorityRule
    | NonInferiorityRule
    | DriftBudgetRule
    | LengthBudgetRule
    | CapabilityRule
    | WinRateRule
    | BeatsBaselineRule,
    Field(discriminator="kind"),
]
"""One release rule, of one kind."""


class GateSpec(Spec):
    """Release rules, checked after every bench and by `evalkit gate`."""

    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    """Level of every rule's one-sided test: the chance that a rule passes a release for which its null
    hypothesis holds is at most α (with `holm`, the chance that any rule does)."""
    correction: Correction = "holm"
    """How the rules' p-values are corrected together: Holm's step-down (family-wise error ≤ α), or none."""
    min_pairs: int = Field(30, ge=2)
    """Fewest pairs (prompts, for generation rules) a rule is judged on; a rule with fewer is undecidable
    and says so."""
    rules: list[GateRule] = Field(min_length=1)
    """The release rules; a release passes when every rule passes."""


def check_rule_names(rule: GateRule, where: str, models: list[str], datasets: list[str]) -> None:
    """A gate rule names models and datasets of the run (checkpoint sweeps add `<name>@<step>`)."""
    for key, name in rule.run_models.items():
        if name not in models and name.split("@")[0] not in models:
            raise ValueError(f"{where}.{key}: no model named {name!r}{suggestion(name, models)}; models are {models}")
    if not isinstance(rule, PreferenceRule):
        return
    if rule.dataset is not None and rule.dataset not in datasets:
        raise ValueError(f"{where}.dataset: no dataset named {rule.dataset!r}{suggestion(rule.dataset, datasets)}")
    if rule.dataset is None and len(datasets) > 1:
        raise ValueError(f"{where}.dataset: the suite has several datasets; name the one the rule is about")
