"""ORPO, as TRL 1.16's `trl.experimental.orpo.ORPOTrainer` computes it: reference-free, on mean log-probs.

With m = ℓ/T the mean log-prob per completion token of an answer, the log-odds ratio is
L = (m_c − m_r) − (log(1 − e^(m_c)) − log(1 − e^(m_r))), and the loss is NLL(chosen) − λ·log σ(L), λ being `beta`.
TRL logs rewards λ·m with their margin and accuracy, m as `logps/*`, and, by its own names, `log_odds_chosen` = L
and `log_odds_ratio` = log σ(L). The objective's margin is L: the pair is preferred the right way round when the
odds of the chosen answer are the higher.

TRL's NLL term (`nll_loss`) is the mean cross-entropy over the prompt's tokens (all but the first) and the chosen
answer's: −(ℓ_prompt + ℓ_c)/(P − 1 + T_c) for a batch of one pair. Scoring sums the prompt's log-prob for ORPO
models (`evalkit.config.objectives.reads_prompt`), so `nll_loss` and `objective/loss` are TRL's `eval_nll_loss` and
`eval_loss` at batch size 1. Where the rows hold no prompt log-prob (per-pair files written before evalkit summed
it), the NLL is the answer's alone (−m_c) and `nll_loss` is not reported.

A single completion's reward (`completion_reward`, best-of-N) is its log-odds m − log(1 − e^m): L is their difference.
"""

from __future__ import annotations

import numpy as np

from evalkit.config.objectives import OrpoObjective
from evalkit.metrics.cells import Cell
from evalkit.metrics.objectives.records import ObjectivePairs, log_sigmoid


def score(cell: Cell, objective: OrpoObjective) -> ObjectivePairs:
    """The objective's values of `cell`'s pairs (the reference is not used)."""
    beta = objective.beta
    mean_c, mean_r = cell.logp_chosen / cell.n_tokens_chosen, cell.logp_rejected / cell.n_tokens_rejected
    odds = log_odds_ratio(mean_c, mean_r)
    ratio = log_sigmoid(odds)
    reward_c, reward_r = beta * mean_c, beta * mean_r
    nll = chosen_nll(cell)
    logged = {
        "rewards/chosen": reward_c,
        "rewards/rejected": reward_r,
        "rewards/accuracies": (reward_c > reward_r).astype(np.float64),
        "rewards/margins": reward_c - reward_r,
        "logps/chosen": mean_c,
        "logps/rejected": mean_r,
        "log_odds_ratio": ratio,
        "log_odds_chosen": odds,
    }
    if nll is not None:
        logged["nll_loss"] = nll
    return ObjectivePairs(logged, odds, np.asarray((-mean_c if nll is None else nll) - beta * ratio))


def chosen_nll(cell: Cell) -> np.ndarray | None:
    """Per pair, ORPO's NLL term: the mean negative log-prob over the prompt's tokens after the first and the chosen
    answer's; None where the rows hold no prompt log-prob."""
    if cell.logp_prompt is None or cell.n_tokens_prompt is None:
        return None
    return np.asarray(
        -(cell.logp_prompt + cell.logp_chosen) / np.maximum(cell.n_tokens_prompt + cell.n_tokens_chosen, 1)
    )


def completion_reward(objective: OrpoObjective, logp: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Each completion's log-odds log(p/(1 − p)) of its per-token mean probability p = e^(ℓ/T) (λ scales nothing
    here: ORPO's margin is L itself)."""
    mean = logp / tokens
    return np.asarray(mean - log1mexp(mean))


def log_odds_ratio(mean_chosen: np.ndarray, mean_rejected: np.ndarray) -> np.ndarray:
    """log(odds_c / odds_r) with odds = p/(1 − p), p = e^m, m < 0."""
    return np.asarray((mean_chosen - mean_rejected) - (log1mexp(mean_chosen) - log1mexp(mean_rejected)))


def log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 − e^x) for x < 0, without cancellation (TRL's branch at −log 2)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(x < -np.log(2.0), np.log1p(-np.exp(x)), np.log(-np.expm1(x))))
