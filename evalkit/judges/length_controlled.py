"""Length-controlled win rate: what the judge would prefer if both answers had the same length.

Judges reward longer answers, and DPO tends to lengthen them, so a raw judged win rate mixes quality with
verbosity. AlpacaEval 2 (Dubois et al., 2024, "Length-Controlled AlpacaEval") fits a logistic model of the
judge's preference for the candidate on the length difference and reads the win rate it predicts at a zero
difference. The facts of the method, as AlpacaEval implements it:

- the feature is tanh(Δ / sd(Δ)), Δ = len(candidate) − len(reference) in characters, sd the sample
  standard deviation over the prompts (ddof 1); tanh bounds the pull of a few very long answers;
- the target is the preference itself, a probability in [0, 1] (a tie is ½), fitted by the soft-label
  log-likelihood Σ y log p + (1 − y) log(1 − p);
- the length-controlled win rate is the model's prediction with the feature at 0.

AlpacaEval also has an instruction-difficulty term, fitted once across its leaderboard's many models; with
one candidate and one reference it cannot be estimated, so it is left out here: logit p = θ + φ·tanh(Δ/sd),
and the length-controlled win rate is σ(θ). A tiny ridge penalty (`RIDGE`) keeps θ finite when every
prompt is won (or lost); its effect on any other fit is below 1e-4.

Interval: a percentile bootstrap over prompts (each resample refits the whole estimator, sd included) with a
fixed seed, so the same judgments give the same interval. Its coverage is checked by simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIDGE = 1e-3
"""Penalty λ/2·(θ² + φ²) on the log-likelihood: a flat prior that only matters under complete separation."""
RESAMPLES = 2000
SEED = 0
METHOD = "percentile bootstrap over prompts"


@dataclass(frozen=True)
class LengthModel:
    """The fitted logistic model logit P(candidate preferred) = intercept + length_coefficient·tanh(Δ/sd)."""

    intercept: float
    length_coefficient: float
    """φ: how much the judge's preference follows the length difference (0: not at all)."""


@dataclass(frozen=True)
class LengthControlled:
    """The win rate predicted at zero length difference, with its bootstrap interval."""

    win_rate: float
    ci_low: float | None
    ci_high: float | None
    """None when fewer than two prompts were judged."""
    model: LengthModel
    n: int
    method: str
    resamples: int
    seed: int


def length_feature(deltas: np.ndarray) -> np.ndarray:
    """tanh(Δ / sd(Δ)) along the last axis; all zeros where the deltas do not vary (nothing to control)."""
    sd = deltas.std(axis=-1, ddof=1, keepdims=True) if deltas.shape[-1] > 1 else np.zeros((*deltas.shape[:-1], 1))
    safe = np.where(sd > 0, sd, 1.0)
    return np.where(sd > 0, np.tanh(deltas / safe), 0.0)


def fit_length_models(preferences: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(θ, φ) of each row: Newton's method on the penalised soft-label log-likelihood, all rows at once.

    preferences, features: (R, n). Returns two (R,) arrays. The objective is strictly convex (the ridge),
    so Newton converges from zero; steps are capped so a near-separated row cannot overshoot.
    """
    theta = np.zeros(preferences.shape[0])
    phi = np.zeros(preferences.shape[0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] + phi[:, None] * features)))  # (R, n)
        residual = p - preferences
        g_theta = residual.sum(axis=1) + RIDGE * theta
        g_phi = (residual * features).sum(axis=1) + RIDGE * phi
        w = p * (1.0 - p)
        h_tt = w.sum(axis=1) + RIDGE
        h_tp = (w * features).sum(axis=1)
        h_pp = (w * features**2).sum(axis=1) + RIDGE
        det = h_tt * h_pp - h_tp**2
        step_theta = np.clip((h_pp * g_theta - h_tp * g_phi) / det, -4.0, 4.0)
        step_phi = np.clip((h_tt * g_phi - h_tp * g_theta) / det, -4.0, 4.0)
        theta, phi = theta - step_theta, phi - step_phi
        if max(np.abs(step_theta).max(), np.abs(step_phi).max()) < 1e-10:
            break
    return theta, phi


def length_controlled_win_rate(
    preferences: np.ndarray,
    candidate_lengths: np.ndarray,
    reference_lengths: np.ndarray,
    confidence: float,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> LengthControlled:
    """The length-controlled win rate of the candidate over the reference, one preference per prompt.

    preferences: (n,) in [0, 1], the candidate's (1 win, ½ tie, 0 loss, or a judge's probability);
    lengths: (n,) characters.
    """
    assert preferences.size > 0, "a win rate of no prompts is undefined; callers skip empty cells"
    y = preferences.astype(np.float64)
    deltas = candidate_lengths.astype(np.float64) - reference_lengths.astype(np.float64)
    theta, phi = fit_length_models(y[None, :], length_feature(deltas[None, :]))
    value = float(_sigmoid(theta[0]))
    low = high = None
    if y.size > 1:
        picks = np.random.default_rng(seed).integers(0, y.size, size=(resamples, y.size))  # (R, n)
        boot_theta, _ = fit_length_models(y[picks], length_feature(deltas[picks]))
        tail = (1.0 - confidence) / 2.0
        low, high = (float(v) for v in np.quantile(_sigmoid(boot_theta), [tail, 1.0 - tail]))
    return LengthControlled(
        win_rate=value,
        ci_low=low,
        ci_high=high,
        model=LengthModel(float(theta[0]), float(phi[0])),
        n=int(y.size),
        method=METHOD,
        resamples=resamples,
        seed=seed,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
