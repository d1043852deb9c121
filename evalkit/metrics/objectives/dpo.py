"""DPO and its pairwise loss types, as TRL 1.16's `DPOTrainer._compute_loss` computes them.

With ℓ the summed log-prob of an answer, ℓ_ref the reference's, T its completion tokens, the log-ratios are
u_c = ℓ(chosen) − ℓ_ref(chosen) and u_r likewise; the scores s = f'(e^u) of the f-divergence (u itself for
`reverse_kl`, plain DPO) and Δ = s_c − s_r. TRL logs, whatever the loss: rewards β·u, their margin and accuracy
(β·u_c > β·u_r) and ℓ. The loss types, per pair (ε: `label_smoothing`, Δ̄ = s_c/T_c − s_r/T_r):

    sigmoid       −log σ(βΔ)                    hinge         max(0, 1 − βΔ)
    ipo           (Δ̄ − 1/(2β))²                 sigmoid_norm  −log σ(βΔ̄)
    robust        (−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)) / (1 − 2ε)
    exo_pair      σ(βΔ)(log σ(βΔ) − log(1−ε)) + σ(−βΔ)(log σ(−βΔ) − log ε)
    discopop      −log σ(βΔ)·(1 − σ(βΔ/τ)) + e^(−βΔ)·σ(βΔ/τ)
    nca_pair      −log σ(βu_c) − ½·log σ(−βu_c) − ½·log σ(−βu_r)
    bco_pair      −log σ(βu_c) − log σ(−βu_r)
    sppo_hard     (u_c − 1/(2β))² + (u_r + 1/(2β))²
    apo_zero      1 − σ(βu_c) + σ(βu_r)
    apo_down      σ(βu_c) + 1 − σ(β(u_c − u_r))

LD-DPO (`ld_alpha` = α) replaces every ℓ, the policy's and the reference's, by ℓ_shared + α·(ℓ − ℓ_shared),
ℓ_shared being the log-prob of the answer's first min(T_c, T_r) tokens: the tokens past the shorter answer's length
count α times (TRL logs these weighted ℓ as `logps/*`).

Several loss types add up with their weights. The margin each loss optimises is βΔ for the losses of Δ, Δ̄ for
IPO (in nats per token: its target is 1/(2β)), βΔ̄ for `sigmoid_norm`, and the reward margin β(u_c − u_r) for the
losses that place each answer on its own (nca_pair, bco_pair, sppo_hard, apo_*); with several loss types, the
first one's.

A single completion's reward (`completion_reward`, best-of-N) is the term of that margin each answer contributes, so
the margin is reward(chosen) − reward(rejected): β·s, s/T for IPO, β·s/T for `sigmoid_norm`, β·u for the losses
that place each answer on its own. For plain sigmoid DPO it is the implicit reward β·(ℓ − ℓ_ref).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evalkit.config.objectives import DpoObjective
from evalkit.metrics.cells import Cell
from evalkit.metrics.objectives.records import ObjectivePairs, log_sigmoid, sigmoid
from evalkit.results.pairs import implicit_reward


@dataclass(frozen=True)
class Terms:
    """What a DPO loss reads of a cell; arrays of shape (n,)."""

    beta: float
    chosen: np.ndarray
    """u_c, the chosen answer's log-ratio to the reference."""
    rejected: np.ndarray
    """u_r."""
    delta: np.ndarray
    """Δ = s_c − s_r, the difference of the f-divergence scores."""
    delta_mean: np.ndarray
    """Δ̄ = s_c/T_c − s_r/T_r, per completion token."""
    smoothing: float
    tau: float


def score(cell: Cell, objective: DpoObjective) -> ObjectivePairs | None:
    """The DPO objective's values of `cell`'s pairs; None without reference log-probs (the reference's own cell),
    and under LD-DPO's weighting without the log-probs of the tokens the answers share (rows written before them)."""
    logps = weighted_logps(cell, objective.ld_alpha)
    if logps is None:
        return None
    assert objective.beta is not None, "the suite fills in a DPO objective's β (Suite.objective)"
    beta = objective.beta
    chosen, rejected = logps.chosen - logps.ref_chosen, logps.rejected - logps.ref_rejected
    s_c, s_r = f_score(chosen, objective), f_score(rejected, objective)
    t_c, t_r = np.maximum(cell.n_tokens_chosen, 1), np.maximum(cell.n_tokens_rejected, 1)
    terms = Terms(
        beta, chosen, rejected, s_c - s_r, s_c / t_c - s_r / t_r, objective.label_smoothing, objective.discopop_tau
    )
    loss = sum(
        (weight * LOSSES[kind](terms) for kind, weight in zip(objective.loss_types, objective.weights, strict=True)),
        np.zeros(cell.n),
    )
    reward_c, reward_r = beta * chosen, beta * rejected
    logged = {
        "rewards/chosen": reward_c,
        "rewards/rejected": reward_r,
        "rewards/accuracies": (reward_c > reward_r).astype(np.float64),
        "rewards/margins": reward_c - reward_r,
        "logps/chosen": logps.chosen,
        "logps/rejected": logps.rejected,
    }
    return ObjectivePairs(logged, margin(objective.loss_types[0], terms), loss)


@dataclass(frozen=True)
class ComparedLogps:
    """The log-probs a DPO loss compares, of the policy and the reference; each of shape (n,)."""

    chosen: np.ndarray
    rejected: np.ndarray
    ref_chosen: np.ndarray
    ref_rejected: np.ndarray


def weighted_logps(cell: Cell, ld_alpha: float | None) -> ComparedLogps | None:
    """The log-probs DPO compares: summed over the answer's tokens, or under LD-DPO (`ld_alpha` = α) the tokens
    within the shorter answer's length in full and those past it weighted by α, ℓ_shared + α·(ℓ − ℓ_shared), for the
    policy and the reference alike. None without the reference's log-probs, or without the shared parts LD-DPO
    needs."""
    if cell.ref_logp_chosen is None or cell.ref_logp_rejected is None:
        return None
    summed = (cell.logp_chosen, cell.logp_rejected, cell.ref_logp_chosen, cell.ref_logp_rejected)
    if ld_alpha is None:
        return ComparedLogps(*summed)
    shared = (
        cell.logp_chosen_shared,
        cell.logp_rejected_shared,
        cell.ref_logp_chosen_shared,
        cell.ref_logp_rejected_shared,
    )
    parts = [part for part in shared if part is not None]
    if len(parts) < len(shared):
        return None
    return ComparedLogps(*(part + ld_alpha * (whole - part) for whole, part in zip(summed, parts, strict=True)))


PER_ANSWER_LOSSES = frozenset({"nca_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down"})
"""The loss types that place each answer on its own, by its reward β·u (not by the f-divergence score)."""


def completion_reward(
    objective: DpoObjective, logp: np.ndarray, ref_logp: np.ndarray | None, tokens: np.ndarray
) -> np.ndarray | None:
    """Each completion's reward under the objective's first loss type (see the module's docstring); None without
    reference log-probs. LD-DPO's weighting needs a pair, so a lone completion gets the unweighted reward."""
    if ref_logp is None:
        return None
    assert objective.beta is not None, "the suite fills in a DPO objective's β (Suite.objective)"
    beta, kind = objective.beta, objective.loss_types[0]
    if kind in PER_ANSWER_LOSSES:
        return np.asarray(implicit_reward(logp, ref_logp, beta))
    score = f_score(logp - ref_logp, objective)
    if kind == "ipo":
        return np.asarray(score / np.maximum(tokens, 1))
    if kind == "sigmoid_norm":
        return np.asarray(beta * score / np.maximum(tokens, 1))
    return np.asarray(beta * score)


def f_score(log_ratio: np.ndarray, objective: DpoObjective) -> np.ndarray:
    """f'(π/π_ref) of f-DPO's divergence, from the log-ratio u (u itself for reverse KL, plain DPO)."""
    kind = objective.f_divergence_type
    if kind == "forward_kl":
        return np.asarray(1.0 - np.exp(-log_ratio))
    if kind == "js_divergence":
        return math.log(2.0) + log_sigmoid(log_ratio)
    coefficient = objective.f_alpha_divergence_coef
    if kind == "reverse_kl" or abs(coefficient - 1.0) < 1e-6:  # α → 1 is reverse KL, as in TRL
        return log_ratio
    # TRL clamps the exponent at 80 so that exp stays finite in float32.
    return np.asarray((np.exp(np.minimum((coefficient - 1.0) * log_ratio, 80.0)) - 1.0) / (coefficient - 1.0))


def _exo(t: Terms) -> np.ndarray:
    z = t.beta * t.delta
    return np.asarray(
        sigmoid(z) * (log_sigmoid(z) - math.log1p(-t.smoothing))
        + sigmoid(-z) * (log_sigmoid(-z) - math.log(t.smoothing))
    )


def _discopop(t: Terms) -> np.ndarray:
    z = t.beta * t.delta
    modulation = sigmoid(z / t.tau)
    return np.asarray(-log_sigmoid(z) * (1.0 - modulation) + np.exp(-z) * modulation)


LOSSES: dict[str, Callable[[Terms], np.ndarray]] = {
    "sigmoid": lambda t: -log_sigmoid(t.beta * t.delta),
    "hinge": lambda t: np.maximum(0.0, 1.0 - t.beta * t.delta),
    "ipo": lambda t: (t.delta_mean - 1.0 / (2.0 * t.beta)) ** 2,
    "sigmoid_norm": lambda t: -log_sigmoid(t.beta * t.delta_mean),
    "robust": lambda t: (
        (-(1.0 - t.smoothing) * log_sigmoid(t.beta * t.delta) + t.smoothing * log_sigmoid(-t.beta * t.delta))
        / (1.0 - 2.0 * t.smoothing)
    ),
    "exo_pair": _exo,
    "discopop": _discopop,
    "nca_pair": lambda t: (
        -log_sigmoid(t.beta * t.chosen)
        - 0.5 * log_sigmoid(-t.beta * t.chosen)
        - 0.5 * log_sigmoid(-t.beta * t.rejected)
    ),
    "bco_pair": lambda t: -log_sigmoid(t.beta * t.chosen) - log_sigmoid(-t.beta * t.rejected),
    "sppo_hard": lambda t: (t.chosen - 0.5 / t.beta) ** 2 + (t.rejected + 0.5 / t.beta) ** 2,
    "apo_zero": lambda t: 1.0 - sigmoid(t.beta * t.chosen) + sigmoid(t.beta * t.rejected),
    "apo_down": lambda t: sigmoid(t.beta * t.chosen) + 1.0 - sigmoid(t.beta * (t.chosen - t.rejected)),
}
"""Per-pair loss of each loss type, as `DPOTrainer._compute_loss` writes it."""


def margin(kind: str, t: Terms) -> np.ndarray:
    """The margin loss type `kind` pushes up (see the module's docstring)."""
    if kind == "ipo":
        return t.delta_mean
    if kind == "sigmoid_norm":
        return np.asarray(t.beta * t.delta_mean)
    if kind in ("sigmoid", "hinge", "robust", "exo_pair", "discopop"):
        return np.asarray(t.beta * t.delta)
    return np.asarray(t.beta * (t.chosen - t.rejected))
