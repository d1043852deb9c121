"""Cells: the per-pair arrays of one (dataset, subset, model), sorted by pair id, that every metric and comparison
is a pure function of; the implicit rewards of a cell are computed here, once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.metrics.names import ALL_SUBSETS
from evalkit.results.pairs import PairScore, implicit_reward


@dataclass(frozen=True)
class Cell:
    """Per-pair arrays of one (dataset, subset, model) cell, sorted by pair id; each of shape (n,)."""

    ids: list[str]
    logp_chosen: np.ndarray
    logp_rejected: np.ndarray
    n_tokens_chosen: np.ndarray
    n_tokens_rejected: np.ndarray
    ref_logp_chosen: np.ndarray | None
    """None when any pair lacks reference log-probs (the reference model's own rows)."""
    ref_logp_rejected: np.ndarray | None
    prompts: np.ndarray | None = None
    """The prompt each pair belongs to (`PairScore.prompt_key`); None when not recorded. Pairs sharing a
    prompt are clustered in every interval and test."""
    score_chosen: np.ndarray | None = None
    """A reward model's scores (`PairScore.score_chosen`); None for a policy's cell."""
    score_rejected: np.ndarray | None = None
    logp_chosen_shared: np.ndarray | None = None
    """Each answer's log-prob over its first min(T_c, T_r) tokens (`PairScore.logp_chosen_shared`), the reference's
    beside; None where any pair lacks it (LD-DPO's weighting needs them)."""
    logp_rejected_shared: np.ndarray | None = None
    ref_logp_chosen_shared: np.ndarray | None = None
    ref_logp_rejected_shared: np.ndarray | None = None
    logp_prompt: np.ndarray | None = None
    """The prompt's log-prob (`PairScore.logp_prompt`, ORPO's NLL reads it) and its tokens; None where any pair
    lacks it."""
    n_tokens_prompt: np.ndarray | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[PairScore]) -> Cell:
        """The arrays of `rows`, sorted by pair id.

        Sorting makes every array the same whatever order the pairs were scored in (batch size,
        processes), so no number can move with it either.
        """
        rows = sorted(rows, key=lambda r: (r.id, repr(r)))  # repr breaks ties between repeated ids
        reference = all(r.ref_logp_chosen is not None and r.ref_logp_rejected is not None for r in rows)
        classifier = bool(rows) and all(r.is_reward_model for r in rows)

        def column(field: str, dtype: type = np.float64) -> np.ndarray:
            return np.array([getattr(r, field) for r in rows], dtype=dtype)

        def optional(field: str, dtype: type = np.float64) -> np.ndarray | None:
            present = bool(rows) and all(getattr(r, field) is not None for r in rows)
            return column(field, dtype) if present else None

        return cls(
            ids=[r.id for r in rows],
            logp_chosen=column("logp_chosen"),
            logp_rejected=column("logp_rejected"),
            n_tokens_chosen=column("n_tokens_chosen", np.int64),
            n_tokens_rejected=column("n_tokens_rejected", np.int64),
            ref_logp_chosen=column("ref_logp_chosen") if reference else None,
            ref_logp_rejected=column("ref_logp_rejected") if reference else None,
            prompts=np.array([r.prompt_key for r in rows]) if all(r.prompt_key for r in rows) else None,
            score_chosen=column("score_chosen") if classifier else None,
            score_rejected=column("score_rejected") if classifier else None,
            logp_chosen_shared=optional("logp_chosen_shared"),
            logp_rejected_shared=optional("logp_rejected_shared"),
            ref_logp_chosen_shared=optional("ref_logp_chosen_shared"),
            ref_logp_rejected_shared=optional("ref_logp_rejected_shared"),
            logp_prompt=optional("logp_prompt"),
            n_tokens_prompt=optional("n_tokens_prompt", np.int64),
        )

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def delta_length(self) -> np.ndarray:
        return np.asarray(self.n_tokens_chosen - self.n_tokens_rejected)

    @property
    def is_reward_model(self) -> bool:
        """A reward model's cell: its rewards are its scores, and it has no log-probs (no `preference/*`)."""
        return self.score_chosen is not None and self.score_rejected is not None

    def rewards(self, beta: float) -> Rewards | None:
        """The implicit rewards β·(ℓ − ℓ_ref) of a policy with a reference, a reward model's own scores, else None."""
        if self.score_chosen is not None and self.score_rejected is not None:
            return Rewards(self.score_chosen, self.score_rejected, self.score_chosen - self.score_rejected)
        if self.ref_logp_chosen is None or self.ref_logp_rejected is None:
            return None
        chosen = implicit_reward(self.logp_chosen, self.ref_logp_chosen, beta)
        rejected = implicit_reward(self.logp_rejected, self.ref_logp_rejected, beta)
        return Rewards(chosen, rejected, chosen - rejected)


@dataclass(frozen=True)
class Rewards:
    """Implicit rewards of a cell's pairs; each of shape (n,)."""

    chosen: np.ndarray
    rejected: np.ndarray
    margin: np.ndarray


def per_pair_values(cell: Cell, beta: float) -> dict[str, np.ndarray]:
    """Per-pair values whose means are the compared metrics (accuracies as 0/1); a reward model has no log-probs,
    so only its reward values."""
    values: dict[str, np.ndarray] = {}
    if not cell.is_reward_model:
        values = {
            "preference/accuracy": (cell.logp_chosen > cell.logp_rejected).astype(np.float64),
            "preference/accuracy_per_token": (per_token_margin(cell) > 0).astype(np.float64),
            "logps/margins": cell.logp_chosen - cell.logp_rejected,
        }
    rewards = cell.rewards(beta)
    if rewards is not None:
        values["rewards/accuracies"] = (rewards.margin > 0).astype(np.float64)
        values["rewards/margins"] = rewards.margin
        values["loss"] = np.logaddexp(0.0, -rewards.margin)
    return values


def per_token_margin(cell: Cell) -> np.ndarray:
    return np.asarray(cell.logp_chosen / cell.n_tokens_chosen - cell.logp_rejected / cell.n_tokens_rejected)


def cells_of(dataset: str, scores: Sequence[PairScore]) -> Iterator[tuple[str, str, list[PairScore]]]:
    """(model, subset, rows) for every model (in order of appearance), over all pairs, then per subset."""
    for model in dict.fromkeys(s.model for s in scores):
        rows = [s for s in scores if s.model == model]
        check_scores(dataset, model, rows)
        yield model, ALL_SUBSETS, rows
        for subset in sorted({s.subset for s in rows} - {ALL_SUBSETS}):
            yield model, subset, [s for s in rows if s.subset == subset]


def check_scores(dataset: str, model: str, rows: Sequence[PairScore]) -> None:
    """Refuse rows no metric can be honest about: non-finite log-probs and empty completions.

    A NaN or infinite log-prob (a float16 overflow, a broken checkpoint) would turn every mean
    it enters into NaN or ±inf, and dropping it would silently change the pairs; so evalkit
    stops and names the pairs. An empty completion has no per-token log-prob.
    """
    bad = [
        r.id
        for r in rows
        if not all(
            np.isfinite(v)
            for v in (
                r.logp_chosen,
                r.logp_rejected,
                r.ref_logp_chosen,
                r.ref_logp_rejected,
                r.score_chosen,
                r.score_rejected,
            )
            if v is not None
        )
    ]
    if bad:
        raise EvalkitError(
            f"dataset {dataset!r}, model {model!r}: non-finite log-probs or scores (NaN or ±inf) for {len(bad)} of "
            f"{len(rows)} pairs: {_some(bad)}; evalkit refuses to average them. Check the model and its "
            "dtype (float16 overflows to inf; try float32 or bfloat16) and the tokens of these pairs"
        )
    empty = [r.id for r in rows if r.n_tokens_chosen < 1 or r.n_tokens_rejected < 1]
    if empty:
        raise EvalkitError(
            f"dataset {dataset!r}, model {model!r}: {len(empty)} pairs have an answer with no completion "
            f"tokens: {_some(empty)}; expected every chosen and rejected answer to add at least one token"
        )


def rows_by_id(dataset: str, model: str, rows: Sequence[PairScore]) -> dict[str, PairScore]:
    check_scores(dataset, model, rows)
    by_id = {r.id: r for r in rows}
    if len(by_id) < len(rows):
        repeated = sorted(pair_id for pair_id, count in Counter(r.id for r in rows).items() if count > 1)
        raise EvalkitError(
            f"dataset {dataset!r}, model {model!r}: pair ids repeat ({_some(repeated)}); paired comparisons "
            "match pairs by id, so expected unique ids (check the dataset's id_column)"
        )
    return by_id


def _some(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"
