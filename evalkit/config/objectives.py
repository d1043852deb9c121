"""The preference objective a model was trained with, and so is scored with: `method` in a suite.

Each objective is one of TRL's trainers with its own option names (TRL 1.16): `dpo` is `DPOTrainer` with any of
its pairwise loss types, `cpo`, `simpo` and `alphapo` are `CPOTrainer` (reference-free), `orpo` is `ORPOTrainer`
(reference-free) and `kto` is `KTOTrainer`. The names and defaults are TRL's, so a model's numbers in evalkit are
the ones its training logged; every enumeration is a `Literal`, checked when the suite loads, never at the first
loss step. `trainer_options` gives the keyword arguments of the trainer's config class.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from evalkit.config.base import Spec
from evalkit.results.schema import ObjectiveInfo, RunResult, Tokenization

DpoLossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
]
"""`DPOConfig.loss_type` values evalkit scores: every pairwise loss of TRL's DPOTrainer (`aot`, `aot_unpaired`
and `sft` rank or imitate across a batch, so they have no per-pair preference to score)."""

FDivergence = Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"]
"""`DPOConfig.f_divergence_type`: the f-divergence whose derivative replaces the log-ratio (f-DPO)."""

F_DIVERGENCE_LOSSES = frozenset({"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop"})
"""The loss types TRL allows a non-default `f_divergence_type` with (built on the chosen-rejected reward
difference; TRL rejects the others)."""

CpoLossType = Literal["sigmoid", "hinge", "ipo"]
"""`CPOConfig.loss_type` for `cpo`; TRL's `simpo` and `alphapo` are objectives of their own here."""

KtoLossType = Literal["kto", "apo_zero_unpaired"]
"""`KTOConfig.loss_type` values."""


class DpoObjective(Spec):
    """TRL's `DPOTrainer`: rewards β·(log π − log π_ref) against a reference model, one or more loss types."""

    name: Literal["dpo"]
    """`dpo`."""
    loss_type: list[DpoLossType] = Field(default=["sigmoid"], min_length=1)
    """The loss (`ipo`), or several combined with `loss_weights` (MPO's `[sigmoid, bco_pair]`), as in TRL."""
    loss_weights: list[float] | None = None
    """One weight per loss type when several are combined; default 1.0 each."""
    beta: float | None = Field(None, gt=0.0)
    """β of the rewards (τ of IPO); default: the suite's `scoring.beta`."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """Probability that a label is flipped (`robust`, below 0.5) or EXO's ε (`exo_pair`); 0 for the others."""
    ld_alpha: float | None = Field(None, ge=0.0, le=1.0)
    """LD-DPO's α: weight of the tokens of the longer answer beyond the shorter one's length; null: no weighting."""
    f_divergence_type: FDivergence = "reverse_kl"
    """f-DPO's divergence: `reverse_kl` is plain DPO."""
    f_alpha_divergence_coef: float = 0.5
    """α of `alpha_divergence`."""
    discopop_tau: float = Field(0.05, gt=0.0)
    """τ of the `discopop` loss."""

    @field_validator("loss_type", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        """`loss_type: ipo` is short for `[ipo]`, as TRL's `DPOConfig` reads it."""
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_combination(self) -> DpoObjective:
        types = self.loss_types
        if self.loss_weights is not None and len(self.loss_weights) != len(types):
            raise ValueError(f"loss_weights: {len(self.loss_weights)} weights for {len(types)} loss types")
        if "robust" in types and self.label_smoothing >= 0.5:
            raise ValueError(
                f"label_smoothing: `robust` needs a flip probability below 0.5 (got {self.label_smoothing})"
            )
        if "exo_pair" in types and self.label_smoothing == 0.0:  # TRL's EXO takes log ε: infinite at 0
            raise ValueError("label_smoothing: `exo_pair` needs EXO's ε above 0 (the EXO paper uses 1e-3)")
        unsupported = [t for t in types if t not in F_DIVERGENCE_LOSSES]
        if self.f_divergence_type != "reverse_kl" and unsupported:
            raise ValueError(
                f"f_divergence_type: {self.f_divergence_type!r} is not defined for loss type {unsupported[0]!r} "
                f"(TRL allows it with {sorted(F_DIVERGENCE_LOSSES)})"
            )
        return self

    @property
    def loss_types(self) -> list[DpoLossType]:
        """The loss types, in order."""
        return list(self.loss_type)

    @property
    def weights(self) -> list[float]:
        """One weight per loss type (1.0 each unless given), as TRL combines them."""
        return list(self.loss_weights) if self.loss_weights is not None else [1.0] * len(self.loss_types)

    def trainer_options(self) -> dict[str, Any]:
        """The `trl.DPOConfig` keyword arguments this objective sets (β only when given)."""
        options = self.model_dump(exclude={"name", "loss_type", "beta"}, exclude_none=True)
        options["loss_type"] = self.loss_types
        return options | ({"beta": self.beta} if self.beta is not None else {})


class CpoObjective(Spec):
    """TRL's `CPOTrainer` (CPO): reference-free rewards β·log π summed over tokens, plus an NLL term on chosen."""

    name: Literal["cpo"]
    """`cpo`."""
    loss_type: CpoLossType = "sigmoid"
    """The loss on the reward margin (`simpo` and `alphapo` are `name: simpo` / `name: alphapo`)."""
    beta: float = Field(0.1, gt=0.0)
    """β of the rewards."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """Conservative-DPO label smoothing of the `sigmoid` loss."""
    cpo_alpha: float = Field(1.0, ge=0.0)
    """Weight of the NLL (behaviour cloning) term on the chosen answer."""
    alpha: float = 0.0
    """AlphaPO's reward shape α; 0 keeps log-prob rewards."""

    def trainer_options(self) -> dict[str, Any]:
        """The `trl.experimental.cpo.CPOConfig` keyword arguments."""
        return self.model_dump(exclude={"name"})


class SimpoObjective(Spec):
    """SimPO through TRL's `CPOTrainer` (`loss_type: simpo`): rewards β·(mean log-prob per token), margin γ."""

    name: Literal["simpo"]
    """`simpo`."""
    beta: float = Field(0.1, gt=0.0)
    """β of the length-normalised rewards (TRL's default 0.1; the SimPO paper uses 2.0 to 2.5)."""
    gamma: float = 0.5
    """The target reward margin γ (TRL's `simpo_gamma`)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """Label smoothing of the sigmoid loss."""
    cpo_alpha: float = Field(0.0, ge=0.0)
    """Weight of the NLL term on chosen: 0 is SimPO (TRL's `CPOConfig` default of 1.0 is CPO-SimPO)."""

    def trainer_options(self) -> dict[str, Any]:
        """The `trl.experimental.cpo.CPOConfig` keyword arguments."""
        return {
            "loss_type": "simpo",
            "beta": self.beta,
            "simpo_gamma": self.gamma,
            "label_smoothing": self.label_smoothing,
            "cpo_alpha": self.cpo_alpha,
        }


class AlphapoObjective(Spec):
    """AlphaPO through TRL's `CPOTrainer` (`loss_type: alphapo`): SimPO on rewards (1 − p^(−α))/α, p the
    per-token mean probability."""

    name: Literal["alphapo"]
    """`alphapo`."""
    alpha: float
    """The reward shape α (0 would be SimPO; the AlphaPO paper uses values near 0.25)."""
    beta: float = Field(0.1, gt=0.0)
    """β of the rewards."""
    gamma: float = 0.5
    """The target reward margin γ (TRL's `simpo_gamma`)."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    """Label smoothing of the sigmoid loss."""

    def trainer_options(self) -> dict[str, Any]:
        """The `trl.experimental.cpo.CPOConfig` keyword arguments (TRL turns `alphapo` into `simpo` with no NLL)."""
        return {
            "loss_type": "alphapo",
            "alpha": self.alpha,
            "beta": self.beta,
            "simpo_gamma": self.gamma,
            "label_smoothing": self.label_smoothing,
        }


class OrpoObjective(Spec):
    """TRL's `ORPOTrainer`: reference-free; the NLL of chosen plus λ times the log-sigmoid of the log-odds ratio of
    the per-token mean probabilities."""

    name: Literal["orpo"]
    """`orpo`."""
    beta: float = Field(0.1, gt=0.0)
    """λ, the weight of the odds-ratio term (TRL's `beta`); the rewards are β·mean log-prob."""

    def trainer_options(self) -> dict[str, Any]:
        """The `trl.experimental.orpo.ORPOConfig` keyword arguments."""
        return {"beta": self.beta}


class KtoObjective(Spec):
    """TRL's `KTOTrainer`: rewards β·(log π − log π_ref) of single answers, against a KL reference point."""

    name: Literal["kto"]
    """`kto`."""
    loss_type: KtoLossType = "kto"
    """`kto`, or `apo_zero_unpaired`."""
    beta: float = Field(0.1, gt=0.0)
    """β of the rewards."""
    desirable_weight: float = Field(1.0, gt=0.0)
    """Weight of the desirable answers' losses."""
    undesirable_weight: float = Field(1.0, gt=0.0)
    """Weight of the undesirable answers' losses."""

    def trainer_options(self) -> dict[str, Any]:
        """The `trl.KTOConfig` keyword arguments."""
        return self.model_dump(exclude={"name"})


Objective: TypeAlias = Annotated[
    DpoObjective | CpoObjective | SimpoObjective | AlphapoObjective | OrpoObjective | KtoObjective,
    Field(discriminator="name"),
]
"""A preference objective, told apart by `name`."""

ObjectiveName = Literal["dpo", "cpo", "simpo", "alphapo", "orpo", "kto"]


def needs_reference(objective: Objective) -> bool:
    """Whether the objective's rewards compare the model with a reference model (DPO, KTO) or not (CPO, SimPO,
    AlphaPO, ORPO)."""
    return isinstance(objective, DpoObjective | KtoObjective)


UNPAIRED_METRICS = frozenset(
    {
        "trl/rewards/chosen",
        "trl/rewards/rejected",
        "trl/rewards/margins",
        "trl/logps/chosen",
        "trl/logps/rejected",
        "trl/kl",
        "objective/loss",
        "objective/auc",
    }
)
"""The objective metrics of labelled completions (`evalkit.metrics.unpaired`): per-label means, KTO's KL point and
loss, and the reward AUC."""

KTO_METRICS = frozenset({"trl/kl", "objective/loss"})
"""Metrics of KTO's own loss on labelled completions: a model of another objective has its rewards and AUC only."""


def unscored_reason(objective: Objective, metric: str, unpaired: bool) -> str | None:
    """Why evalkit does not compute the objective metric `metric` for a model scored with `objective`, on labelled
    completions (`unpaired`) or on pairs; None where it does (the scorers in `evalkit.metrics.objectives` and
    `evalkit.metrics.unpaired` compute the same)."""
    if unpaired:
        if metric not in UNPAIRED_METRICS:
            return "labelled completions have no pairs to prefer one answer of"
        if metric in KTO_METRICS and not isinstance(objective, KtoObjective):
            return f"it belongs to KTO's loss, and the model is scored with {objective.name!r}"
        return None
    if isinstance(objective, KtoObjective) and metric == "trl/rewards/accuracies":
        return "TRL's KTOTrainer logs no reward accuracy (`objective/accuracy` is the sign of the same margin)"
    if isinstance(objective, KtoObjective) and metric == "objective/loss":
        return (
            "KTO's loss needs its KL reference point, which only unpaired scoring estimates; score the pairs as "
            "`format: unpaired` for it"
        )
    return None


def reads_prompt(objective: Objective | None) -> bool:
    """Whether the objective's numbers read the prompt's log-prob: ORPO's NLL term covers the prompt's tokens and
    the chosen answer's. Scoring sums the prompt only for such models (the LM head over every prompt position)."""
    return isinstance(objective, OrpoObjective)


def tokenization_of(objective: Objective | None) -> Tokenization:
    """How a model of `objective` has its pairs tokenized, so its log-probs are those its trainer computed: CPO,
    SimPO, AlphaPO (CPOTrainer) and ORPO (ORPOTrainer) tokenize the legacy way (`evalkit.scoring.legacy`), DPO and KTO
    (and a model no objective names) as DPOTrainer does."""
    legacy = isinstance(objective, CpoObjective | SimpoObjective | AlphapoObjective | OrpoObjective)
    return "legacy" if legacy else "dpo"


def default_objective(beta: float) -> DpoObjective:
    """The objective of a model no `method` names: sigmoid DPO at the suite's `scoring.beta`."""
    return DpoObjective(name="dpo", beta=beta)


def with_beta(objective: Objective, beta: float) -> Objective:
    """`objective` with a DPO β left unset filled in by `beta` (the suite's `scoring.beta`)."""
    if isinstance(objective, DpoObjective) and objective.beta is None:
        return objective.model_copy(update={"beta": beta})
    return objective


def describe(objective: Objective) -> str:
    """A short label for reports: `dpo (ipo, β=0.1)`, `simpo (β=2, γ=0.5)`, `orpo (λ=0.1)`."""
    if isinstance(objective, DpoObjective):
        beta = f", β={objective.beta:g}" if objective.beta is not None else ""
        return f"dpo ({'+'.join(objective.loss_types)}{beta})"
    if isinstance(objective, SimpoObjective | AlphapoObjective):
        shape = f", α={objective.alpha:g}" if isinstance(objective, AlphapoObjective) else ""
        return f"{objective.name} (β={objective.beta:g}, γ={objective.gamma:g}{shape})"
    if isinstance(objective, OrpoObjective):
        return f"orpo (λ={objective.beta:g})"
    return f"{objective.name} ({objective.loss_type}, β={objective.beta:g})"


def objective_info(objective: Objective) -> ObjectiveInfo:
    """The results record of `objective`."""
    return ObjectiveInfo(
        name=objective.name,
        label=describe(objective),
        settings=objective.model_dump(mode="json"),
        reference_free=not needs_reference(objective),
    )


OBJECTIVE: TypeAdapter[Objective] = TypeAdapter(Objective)
"""Checks an objective read back as a mapping (from results.json, or from a training record)."""


def objective_from(info: ObjectiveInfo | None) -> Objective | None:
    """The objective a results file records for a model (to recompute its metrics from per-pair rows); None when
    none is recorded or this evalkit does not know it (a file from a later version)."""
    if info is None:
        return None
    try:
        return OBJECTIVE.validate_python(info.settings)
    except ValidationError:
        return None


def objective_in(result: RunResult, model: str) -> Objective | None:
    """The objective `model` was scored with in `result` (to recompute its metrics from its per-pair or
    per-completion rows); None for a model the run does not hold, or holds without one."""
    info = next((m for m in result.models if m.name == model), None)
    return objective_from(info.objective) if info is not None else None
