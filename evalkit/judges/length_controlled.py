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
prompt is won (or lost); elsewhere it moves σ(θ) by about λ·θ / (n·σ(θ)(1 − σ(θ))), under 1e-4 from four
prompts on.

Interval: the delta method on the logit scale, θ ± z·se(θ) mapped through σ, with the sandwich (HC1)
variance H⁻¹ (Σ sᵢ sᵢᵀ · n/(n − 2)) H⁻¹ of the fit (sᵢ the per-prompt scores, H the penalised Hessian).
The sandwich is right for soft labels and for a judge the logistic model fits only roughly; the logit scale
keeps the interval inside (0, 1). Simulations (tests/statistics) put its coverage at 95.0-95.7% for 60 and
200 prompts, where a percentile bootstrap over prompts covered 92.5-94%: the intercept and the length
coefficient are strongly correlated when the candidate is longer on most prompts, and resampling
understates that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.metrics import stats

RIDGE = 1e-4
"""Penalty λ/2·(θ² + φ²) on the log-likelihood: a flat prior that only matters under complete separation."""
METHOD = "delta method on the logit scale, sandwich (HC1) variance"


@dataclass(frozen=True)
class LengthModel:
    """The fitted logistic model logit P(candidate preferred) = intercept + length_coefficient·tanh(Δ/sd)."""

    intercept: float
    length_coefficient: float
    """φ: how much the judge's preference follows the length difference (0: not at all)."""


@dataclass(frozen=True)
class LengthControlled:
    """The win rate predicted at zero length difference, with its interval."""

    win_rate: float
    ci_low: float | None
    ci_high: float | None
    """None with fewer than three prompts (the variance has n − 2 degrees of freedom)."""
    model: LengthModel
    se: float | None
    """Standard error of the intercept θ (logit scale)."""
    n: int
    method: str


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
    preferences: np.ndarray, candidate_lengths: np.ndarray, reference_lengths: np.ndarray, confidence: float
) -> LengthControlled:
    """The length-controlled win rate of the candidate over the reference, one preference per prompt.

    preferences: (n,) in [0, 1], the candidate's (1 win, ½ tie, 0 loss, or a judge's probability);
    lengths: (n,) characters.
    """
    assert preferences.size > 0, "a win rate of no prompts is undefined; callers skip empty cells"
    y = preferences.astype(np.float64)
    x = length_feature(candidate_lengths.astype(np.float64) - reference_lengths.astype(np.float64))
    theta, phi = (float(v[0]) for v in fit_length_models(y[None, :], x[None, :]))
    se = _intercept_se(y, x, theta, phi) if y.size > 2 else None
    low = high = None
    if se is not None:
        z = stats.z_score(confidence)
        low, high = _sigmoid(theta - z * se), _sigmoid(theta + z * se)
    return LengthControlled(
        win_rate=_sigmoid(theta),
        ci_low=low,
        ci_high=high,
        model=LengthModel(theta, phi),
        se=se,
        n=int(y.size),
        method=METHOD,
    )


def _intercept_se(y: np.ndarray, x: np.ndarray, theta: float, phi: float) -> float:
    """√ of the sandwich variance's (θ, θ) entry; y, x: (n,)."""
    p = 1.0 / (1.0 + np.exp(-(theta + phi * x)))  # (n,)
    design = np.stack([np.ones_like(x), x], axis=1)  # (n, 2)
    hessian = (design * (p * (1 - p))[:, None]).T @ design + RIDGE * np.eye(2)  # (2, 2)
    scores = design * (p - y)[:, None]  # (n, 2)
    meat = scores.T @ scores * y.size / (y.size - 2)  # (2, 2), HC1
    bread = np.linalg.inv(hessian)
    return float(np.sqrt((bread @ meat @ bread)[0, 0]))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))
