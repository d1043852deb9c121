"""Which pairs go into which forward pass, and on which process.

Pairs are sorted by length, longest first, so a batch holds pairs of similar length and padding
wastes little compute; the longest batch comes first, so running out of memory shows at once.
A batch is either a fixed number of pairs (`batch_size`) or as many pairs as fit a token budget
(padding included), which keeps every forward pass about the same size whether the pairs are
short or long. With several processes (`torchrun`), whole batches are dealt out round-robin and
the results gathered back in input order: each batch is computed exactly as one process would
compute it, so the numbers do not depend on the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PairShape:
    """Token counts of one pair after truncation: its prompt and its two completions."""

    prompt: int
    chosen: int
    rejected: int


def padded_tokens(shapes: Sequence[PairShape], share_prompt: bool) -> int:
    """Tokens (padding included) the forward pass of one batch of `shapes` costs.

    With a shared prompt: B rows of prompt, chosen and rejected, padded to the longest such row.
    Without: 2·B whole sequences (prompt and one completion), padded to the longest.
    """
    return _cost(len(shapes), max((row_length(s, share_prompt) for s in shapes), default=0), share_prompt)


def row_length(shape: PairShape, share_prompt: bool) -> int:
    """Length of the row(s) `shape` takes in a batch: prompt and both completions with a shared prompt,
    prompt and the longer completion without."""
    if share_prompt:
        return shape.prompt + shape.chosen + shape.rejected
    return shape.prompt + max(shape.chosen, shape.rejected)


def _cost(pairs: int, longest: int, share_prompt: bool) -> int:
    return pairs * longest if share_prompt else 2 * pairs * longest


def plan_batches(
    shapes: Sequence[PairShape], batch_size: int, token_budget: int | None, share_prompt: bool
) -> list[list[int]]:
    """Indices of `shapes` grouped into batches, longest rows first.

    With `token_budget`, a batch takes pairs while its padded token count stays within the budget
    (a pair over the budget on its own gets a batch to itself); otherwise `batch_size` pairs.
    """
    lengths = [row_length(shape, share_prompt) for shape in shapes]
    order = sorted(range(len(shapes)), key=lambda i: (lengths[i], i), reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]  # longest first: the batch's first row
        if token_budget is None:
            full = len(current) + 1 > batch_size
        else:
            full = _cost(len(current) + 1, longest, share_prompt) > token_budget
        if current and full:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) unless torch.distributed runs with several processes."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def start_processes() -> None:
    """Join the process group when started by `torchrun` with several processes (gloo on CPU)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def share_out(units: Sequence[T], compute: Callable[[T], R]) -> list[R]:
    """`compute(unit)` of every unit, in order. With several processes each computes every world-th unit and
    every process gets all the results back; a unit is computed exactly as one process would compute it, so
    the results do not depend on the number of processes."""
    rank, world = process_rank()
    local = [(index, compute(units[index])) for index in range(rank, len(units), world)]
    return gather_in_order(local, len(units))


def every_process(flag: bool) -> bool:
    """True in every process when `flag` is true in every process: a choice all processes must share."""
    _, world = process_rank()
    if world == 1:
        return flag
    from accelerate.utils import gather_object

    return all(gather_object([flag]))


def from_main(compute: Callable[[], T]) -> T:
    """`compute()` run by the main process only, its result handed to every process: for what could differ
    between processes (a file another process or run writes meanwhile) but decides what they all do next."""
    rank, world = process_rank()
    if world == 1:
        return compute()
    from accelerate.utils import broadcast_object_list

    box = [compute() if rank == 0 else None]
    broadcast_object_list(box, from_process=0)
    return box[0]  # type: ignore[return-value]  # the main process's result, in every process


def gather_in_order(local: list[tuple[int, T]], total: int) -> list[T]:
    """Every process's (index, result) items, as one list in index order (the same on every process)."""
    _, world = process_rank()
    if world > 1:
        from accelerate.utils import gather_object

        local = list(gather_object(local))
    out: list[T | None] = [None] * total
    for index, item in local:
        out[index] = item
    assert all(item is not None for item in out), "every index is computed by exactly one process"
    return [item for item in out if item is not None]
