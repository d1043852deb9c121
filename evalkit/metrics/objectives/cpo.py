"""CPO, SimPO and AlphaPO, as TRL 1.16's `trl.experimental.cpo.CPOTrainer` computes them: reference-free.

The log-prob of an answer is ℓ (summed) for CPO's `sigmoid` and `hinge`, and ℓ/T (its mean per completion token)
for `ipo`, SimPO and AlphaPO (`average_log_prob` in TRL). With AlphaPO's α ≠ 0 (CPO's `alpha`, or `alphapo`) it
becomes the reward r = (1 − p^(−α))/α of p = e^ℓ; otherwise r = ℓ. Then z = r_c − r_r (minus γ/β for SimPO and
AlphaPO), per pair (ε: `label_smoothing`):

    sigmoid, simpo, alphapo   −(1−ε)·log σ(βz) − ε·log σ(−βz)
    hinge                     max(0, 1 − βz)
    ipo                       (z − 1/(2β))²

plus `cpo_alpha` times the NLL of the chosen answer (its mean −log-prob per completion token, TRL's `nll_loss`,
logged only when `cpo_alpha` is not 0). TRL logs rewards β·r, their margin and accuracy, and ℓ (or ℓ/T) as
`logps/*`. The objective's margin is βz (z for `ipo`): for SimPO, β·Δ(mean log-prob) − γ.

A single completion's reward (`completion_reward`, best-of-N) is β·r (r for `ipo`): the margin's term of each answer.
γ shifts every pair's margin alike and so ranks nothing: it is left out.
"""

from __future__ import annotations

import numpy as np

from evalkit.config.objectives import AlphapoObjective, CpoObjective, SimpoObjective
from evalkit.metrics.cells import Cell
from evalkit.metrics.objectives.records import ObjectivePairs, log_sigmoid

CpoFamily = CpoObjective | SimpoObjective | AlphapoObjective


def score(cell: Cell, objective: CpoFamily) -> ObjectivePairs:
    """The objective's values of `cell`'s pairs (the reference is not used)."""
    loss_type = objective.loss_type if isinstance(objective, CpoObjective) else "simpo"
    alpha = 0.0 if isinstance(objective, SimpoObjective) else objective.alpha
    gamma = 0.0 if isinstance(objective, CpoObjective) else objective.gamma
    cpo_alpha = 0.0 if isinstance(objective, AlphapoObjective) else objective.cpo_alpha
    beta, smoothing = objective.beta, objective.label_smoothing
    mean_c, mean_r = cell.logp_chosen / cell.n_tokens_chosen, cell.logp_rejected / cell.n_tokens_rejected
    averaged = loss_type in ("ipo", "simpo")
    logp_c, logp_r = (mean_c, mean_r) if averaged else (cell.logp_chosen, cell.logp_rejected)
    reward_c, reward_r = alphapo_reward(logp_c, alpha), alphapo_reward(logp_r, alpha)
    z = reward_c - reward_r - gamma / beta
    if loss_type == "hinge":
        losses = np.maximum(0.0, 1.0 - beta * z)
    elif loss_type == "ipo":
        losses = (z - 1.0 / (2.0 * beta)) ** 2
    else:
        losses = -log_sigmoid(beta * z) * (1.0 - smoothing) - log_sigmoid(-beta * z) * smoothing
    nll = -mean_c
    logged = {
        "rewards/chosen": beta * reward_c,
        "rewards/rejected": beta * reward_r,
        "rewards/accuracies": (beta * reward_c > beta * reward_r).astype(np.float64),
        "rewards/margins": beta * reward_c - beta * reward_r,
        "logps/chosen": logp_c,
        "logps/rejected": logp_r,
    }
    if cpo_alpha != 0.0:
        logged["nll_loss"] = nll
    margin = z if loss_type == "ipo" else beta * z
    return ObjectivePairs(logged, margin, np.asarray(losses + cpo_alpha * nll))


def completion_reward(objective: CpoFamily, logp: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Each completion's reward β·r (r for CPO's `ipo`), with r as `score` computes it; γ is left out."""
    loss_type = objective.loss_type if isinstance(objective, CpoObjective) else "simpo"
    alpha = 0.0 if isinstance(objective, SimpoObjective) else objective.alpha
    reward = alphapo_reward(logp / tokens if loss_type in ("ipo", "simpo") else logp, alpha)
    return reward if loss_type == "ipo" else np.asarray(objective.beta * reward)


def alphapo_reward(logp: np.ndarray, alpha: float) -> np.ndarray:
    """AlphaPO's reward (1 − p^(−α))/α of p = e^logp; logp itself at α = 0 (its limit)."""
    if alpha == 0.0:
        return logp
    return np.asarray((1.0 - np.exp(-alpha * logp)) / alpha)
