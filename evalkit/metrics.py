"""Preference metrics pooled over pairs.

Every metric is a mean (or rate) over the pairs of a (dataset, subset, model) cell, computed from
per-pair arrays in one go: never a mean of per-batch means, so the numbers cannot depend on the
batch size, the padding side or the number of processes. Names follow TRL's log keys.

With log-probs ℓ under the policy and ℓ_ref under the reference, for each pair:
  reward_chosen   = β·(ℓ(chosen) − ℓ_ref(chosen))
  reward_rejected = β·(ℓ(rejected) − ℓ_ref(rejected))
  margin          = reward_chosen − reward_rejected
  DPO loss        = −log σ(margin) = log(1 + e^(−margin))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalkit.results import Metric
from evalkit.scoring import PairScore

ALL_SUBSETS = "all"

HIGHER_IS_BETTER: dict[str, bool | None] = {
    "preference/accuracy": True,
    "logps/chosen": None,
    "logps/rejected": None,
    "rewards/accuracies": True,
    "rewards/ties": False,
    "rewards/margins": True,
    "rewards/chosen": None,
    "rewards/rejected": None,
    "loss": False,
}
"""Direction of each metric; None where neither direction is good in itself."""


def compute_metrics(dataset: str, scores: Sequence[PairScore], beta: float) -> list[Metric]:
    """Metrics of every model in `scores`, over all pairs and per subset."""
    out: list[Metric] = []
    for model in dict.fromkeys(s.model for s in scores):
        rows = [s for s in scores if s.model == model]
        groups = {ALL_SUBSETS: rows}
        for name in sorted({s.subset for s in rows} - {ALL_SUBSETS}):
            groups[name] = [s for s in rows if s.subset == name]
        for subset, members in groups.items():
            for metric, value in pooled_metrics(members, beta).items():
                out.append(
                    Metric(
                        dataset=dataset,
                        subset=subset,
                        model=model,
                        metric=metric,
                        value=value,
                        n=len(members),
                        higher_is_better=HIGHER_IS_BETTER[metric],
                    )
                )
    return out


def pooled_metrics(rows: Sequence[PairScore], beta: float) -> dict[str, float]:
    """Metric name → value over `rows`; reward metrics only when every row has reference log-probs."""
    chosen = np.array([r.logp_chosen for r in rows], dtype=np.float64)
    rejected = np.array([r.logp_rejected for r in rows], dtype=np.float64)
    values = {
        "preference/accuracy": float(np.mean(chosen > rejected)),
        "logps/chosen": float(np.mean(chosen)),
        "logps/rejected": float(np.mean(rejected)),
    }
    if any(r.ref_logp_chosen is None or r.ref_logp_rejected is None for r in rows):
        return values
    ref_chosen = np.array([r.ref_logp_chosen for r in rows], dtype=np.float64)
    ref_rejected = np.array([r.ref_logp_rejected for r in rows], dtype=np.float64)
    reward_chosen = beta * (chosen - ref_chosen)
    reward_rejected = beta * (rejected - ref_rejected)
    margin = reward_chosen - reward_rejected
    values |= {
        "rewards/accuracies": float(np.mean(margin > 0)),  # strict, as TRL and RewardBench
        "rewards/ties": float(np.mean(margin == 0)),
        "rewards/margins": float(np.mean(margin)),
        "rewards/chosen": float(np.mean(reward_chosen)),
        "rewards/rejected": float(np.mean(reward_rejected)),
        "loss": float(np.mean(np.logaddexp(0.0, -margin))),
    }
    return values
