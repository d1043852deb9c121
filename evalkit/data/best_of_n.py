"""Best-of-N items: one prompt, a list of correct completions and a list of incorrect ones.

This is the layout of RewardBench 2 (`allenai/reward-bench-2`, split `test`): columns `id` (string), `prompt`
(string), `chosen` (list of strings), `rejected` (list of strings), `num_correct`, `num_incorrect`,
`total_completions` (ints), `models` (list of strings) and `subset` (string; Factuality, Precise IF, Math, Safety,
Focus, Ties). Its `Ties` subset pairs each prompt's `ref:<k>` item (one correct answer) with a `tied:<k>` item
(several equally correct answers), which its composite score reads together (`evalkit.metrics.best_of_n`).

RewardBench 1 (`allenai/reward-bench`, split `filtered`) is a pair dataset (`prompt`, `chosen`, `rejected`
strings, `chosen_model`, `rejected_model`, `subset`, integer `id`) and goes through `evalkit.data.pairs`.

Scoring reuses the pair engine: an item's completions are laid out as pairs (completions 1 and 2, 3 and 4, ...; an
odd last one paired with itself) so every completion gets its summed log-prob, tokenized as the pair pipeline
tokenizes, cached and batched the same way; `completion_index` maps them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalkit.config.specs import DatasetSpec
from evalkit.data.pairs import PreferencePair, read_rows
from evalkit.errors import EvalkitError

REWARD_BENCH_2 = "allenai/reward-bench-2"
REWARD_BENCH_2_REVISION = "7ff08853b0d5686e79b13fda8677024f566a104a"
"""The commit of `allenai/reward-bench-2` evalkit's RewardBench 2 settings pin (its `data/test-00000-of-00001.parquet`
revision); pass another `revision` to score a newer one."""
REWARD_BENCH_2_SPLIT = "test"
REWARD_BENCH_1 = "allenai/reward-bench"
REWARD_BENCH_1_SPLIT = "filtered"
TIES_SUBSET = "ties"
"""RewardBench 2's subset scored by its composite (`subset.lower() == "ties"`, as reward-bench compares it)."""
COUNT_COLUMNS = ("num_correct", "num_incorrect", "total_completions")
"""RewardBench 2's counts of each row; checked against the lists when present."""


@dataclass(frozen=True)
class BestOfNItem:
    """One prompt with its correct (`chosen`) and incorrect (`rejected`) completions."""

    id: str
    prompt: str
    chosen: list[str]
    rejected: list[str]
    subset: str = "all"

    @property
    def completions(self) -> list[str]:
        """Every completion, the correct ones first: the order item scores are listed in."""
        return [*self.chosen, *self.rejected]


def is_best_of_n_value(chosen: Any) -> bool:
    """A `chosen` cell of a best-of-N row: a list of strings (a list of `{role, content}` dicts is one chat)."""
    return isinstance(chosen, list) and bool(chosen) and all(isinstance(c, str) for c in chosen)


def is_best_of_n(spec: DatasetSpec) -> bool:
    """Whether `spec` names best-of-N rows: its `format`, or for `auto` its first row's `chosen` cell."""
    if spec.format != "auto":
        return spec.format == "best_of_n"
    first = read_rows(spec.model_copy(update={"limit": 1, "sample": None}))[0][1]
    return is_best_of_n_value(first.get(spec.columns.chosen))


def load_items(spec: DatasetSpec) -> list[BestOfNItem]:
    """The best-of-N items `spec` names; a malformed row is an `EvalkitError` naming the source, row and column."""
    rows = read_rows(spec)
    where = spec.path if spec.revision is None else f"{spec.path}@{spec.revision} [{spec.split}]"
    items = [_item(row, index, spec, f"{where}: row {index + 1}") for index, row in rows]
    ids = [item.id for item in items]
    if len(set(ids)) < len(ids):
        # RewardBench 2 reuses ids across subsets (Precise IF numbers its rows as Factuality does): qualify them.
        items = [BestOfNItem(f"{i.subset}/{i.id}", i.prompt, i.chosen, i.rejected, i.subset) for i in items]
        seen: set[str] = set()
        for (index, _), item in zip(rows, items, strict=True):
            if item.id in seen:
                raise EvalkitError(
                    f"{where}: row {index + 1}: id {item.id!r} repeats in its subset; expected unique ids"
                )
            seen.add(item.id)
    return items


def _item(row: dict[str, Any], index: int, spec: DatasetSpec, where: str) -> BestOfNItem:
    columns = spec.columns
    prompt = row.get(columns.prompt)
    if not isinstance(prompt, str) or not prompt:
        raise EvalkitError(f"{where}: column {columns.prompt!r}: expected the prompt as a non-empty string")
    answers = {}
    for key in (columns.chosen, columns.rejected):
        value = row.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise EvalkitError(f"{where}: column {key!r}: expected a list of non-empty strings (best-of-N layout)")
        answers[key] = list(value)
    chosen, rejected = answers[columns.chosen], answers[columns.rejected]
    if not chosen or not rejected:
        raise EvalkitError(f"{where}: expected at least one correct and one incorrect completion")
    counts = {"num_correct": len(chosen), "num_incorrect": len(rejected), "total_completions": len(chosen + rejected)}
    for column in COUNT_COLUMNS:
        if row.get(column) is not None and row[column] != counts[column]:
            raise EvalkitError(f"{where}: column {column!r} is {row[column]}, but the lists hold {counts[column]}")
    item_id = str(row[spec.id_column]) if spec.id_column and row.get(spec.id_column) is not None else None
    subset = str(row[spec.subset_column]) if spec.subset_column and row.get(spec.subset_column) is not None else "all"
    return BestOfNItem(item_id or f"{spec.name}-{index}", prompt, chosen, rejected, subset)


def completion_pairs(items: Sequence[BestOfNItem]) -> list[PreferencePair]:
    """Every completion of every item laid out as pairs the pair engine scores: (1, 2), (3, 4), ...; an odd last
    completion is paired with itself (scored once: the engine gives token-identical answers one log-prob).

    Pair ids are `<item id>#<first completion index>`; `completion_index` reads them back."""
    pairs = []
    for item in items:
        completions = item.completions
        for first in range(0, len(completions), 2):
            second = completions[first + 1] if first + 1 < len(completions) else completions[first]
            pairs.append(PreferencePair(f"{item.id}#{first}", item.prompt, completions[first], second, item.subset))
    return pairs


def completion_index(pair_id: str) -> tuple[str, int]:
    """(item id, index of the pair's first completion) of a pair id `completion_pairs` wrote."""
    item_id, _, first = pair_id.rpartition("#")
    return item_id, int(first)


def item_rows(items: Sequence[BestOfNItem], model: str) -> list[dict[str, Any]]:
    """Items as RewardBench 2 rows (every column it ships, in its order), for stand-in files; `model` names the
    generator of every completion (`models` lists one per completion)."""
    return [
        {
            "id": item.id,
            "prompt": item.prompt,
            "chosen": item.chosen,
            "rejected": item.rejected,
            "num_correct": len(item.chosen),
            "num_incorrect": len(item.rejected),
            "total_completions": len(item.completions),
            "models": [model] * len(item.completions),
            "subset": item.subset,
        }
        for item in items
    ]
