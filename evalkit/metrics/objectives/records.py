"""What an objective makes of a cell's pairs: per pair, the values TRL's trainer logs and the objective's own
margin and loss. Every array has shape (n,), one value per pair in the cell's order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectivePairs:
    """One model's pairs under its objective."""

    logged: dict[str, np.ndarray]
    """TRL's eval log key (`rewards/chosen`, `log_odds_ratio`, ...) → its per-pair value: what the trainer logs for
    a batch of one pair, so the mean over pairs is its eval log at batch size 1 (accuracies as 0/1)."""
    margin: np.ndarray
    """The objective's own margin: the quantity its loss pushes up (β·Δ of the scores the loss compares, the
    length-normalised log-ratio for IPO, β·Δ(mean log-prob) − γ for SimPO, the log-odds ratio for ORPO). The pair
    is preferred the right way round when it is above 0."""
    loss: np.ndarray | None
    """The objective's loss of each pair: its mean is TRL's `eval_loss` at batch size 1. None where the loss is not
    a function of the pair alone (KTO's compares with a KL point estimated from other rows)."""


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log σ(x), stable for large |x| (TRL's `F.logsigmoid`)."""
    return np.asarray(-np.logaddexp(0.0, -x))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.exp(log_sigmoid(x)))
