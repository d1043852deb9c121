"""KTO on pairs, as TRL 1.16's `KTOTrainer` scores a paired dataset: it unpairs each pair into its chosen answer,
desirable, and its rejected one, undesirable, and rewards each answer on its own, r = β·(ℓ − ℓ_ref).

TRL logs `rewards/chosen` and `rewards/rejected` (mean r per label), their difference `rewards/margins`, and ℓ as
`logps/*`; with one chosen and one rejected answer per pair, the means over pairs are TRL's means per label. It logs
no reward accuracy. The objective's margin here is r_c − r_r: the pair is preferred the right way round when KTO's
reward puts the chosen answer above the rejected one.

KTO's loss compares each reward with its KL reference point, which TRL estimates from mismatched prompt-answer
pairs; only unpaired scoring computes their log-probs (`evalkit.scoring.unpaired`), so on pairs there is no loss and
no `kl`: scoring the same pairs as `format: unpaired` gives both.
"""

from __future__ import annotations

from evalkit.config.objectives import KtoObjective
from evalkit.metrics.cells import Cell
from evalkit.metrics.objectives.records import ObjectivePairs
from evalkit.results.pairs import implicit_reward


def score(cell: Cell, objective: KtoObjective) -> ObjectivePairs | None:
    """KTO's values of `cell`'s pairs; None without reference log-probs (the reference's own cell)."""
    if cell.ref_logp_chosen is None or cell.ref_logp_rejected is None:
        return None
    reward_c = implicit_reward(cell.logp_chosen, cell.ref_logp_chosen, objective.beta)
    reward_r = implicit_reward(cell.logp_rejected, cell.ref_logp_rejected, objective.beta)
    logged = {
        "rewards/chosen": reward_c,
        "rewards/rejected": reward_r,
        "rewards/margins": reward_c - reward_r,
        "logps/chosen": cell.logp_chosen,
        "logps/rejected": cell.logp_rejected,
    }
    return ObjectivePairs(logged, reward_c - reward_r, None)
