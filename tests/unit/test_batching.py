import pytest

from evalkit.scoring.batching import (
    PairShape,
    every_process,
    from_main,
    gather_in_order,
    padded_tokens,
    plan_batches,
    process_rank,
    share_out,
)

SHAPES = [
    PairShape(prompt, chosen, rejected)
    for prompt, chosen, rejected in [(10, 3, 4), (50, 5, 1), (12, 2, 2), (30, 8, 6), (11, 4, 3)]
]


def test_padded_tokens_counts_what_each_layout_runs() -> None:
    batch = [PairShape(10, 3, 4), PairShape(6, 5, 1)]
    # Shared prompt: 2 rows of prompt, chosen and rejected, padded to the longer, 10 + 3 + 4 = 17.
    assert padded_tokens(batch, share_prompt=True) == 2 * 17
    # Whole sequences: 4 rows padded to the longest prompt+completion, 10 + 4 = 14.
    assert padded_tokens(batch, share_prompt=False) == 4 * 14
    assert padded_tokens([], share_prompt=True) == 0


def test_batches_are_longest_first_and_cover_every_pair_once() -> None:
    # Prompt + longer completion: 14, 55, 14, 38, 15. Longest first; the two 14s by index, last first.
    assert plan_batches(SHAPES, batch_size=2, token_budget=None, share_prompt=False) == [[1, 3], [4, 2], [0]]
    # Prompt + both completions: 17, 56, 16, 44, 18.
    assert plan_batches(SHAPES, batch_size=2, token_budget=None, share_prompt=True) == [[1, 3], [4, 0], [2]]


@pytest.mark.parametrize("share_prompt", [True, False])
@pytest.mark.parametrize("budget", [1, 60, 120, 10_000])
def test_a_token_budget_bounds_every_batch_that_holds_more_than_one_pair(share_prompt: bool, budget: int) -> None:
    batches = plan_batches(SHAPES, batch_size=1, token_budget=budget, share_prompt=share_prompt)
    assert sorted(i for batch in batches for i in batch) == list(range(len(SHAPES)))
    for batch in batches:
        assert len(batch) == 1 or padded_tokens([SHAPES[i] for i in batch], share_prompt) <= budget
    if budget == 10_000:
        assert len(batches) == 1  # the budget, not batch_size, decides
    if budget == 1:
        assert all(len(batch) == 1 for batch in batches)  # over the budget alone: a batch of its own


def test_one_process_gathers_its_own_results_in_index_order() -> None:
    assert process_rank() == (0, 1)
    assert gather_in_order([(2, "c"), (0, "a"), (1, "b")], 3) == ["a", "b", "c"]


def test_one_process_computes_every_unit_once_in_order() -> None:
    computed: list[int] = []

    def square(unit: int) -> int:
        computed.append(unit)
        return unit * unit

    assert share_out([3, 1, 2], square) == [9, 1, 4]
    assert computed == [3, 1, 2]


def test_one_process_decides_alone() -> None:
    assert every_process(True) and not every_process(False)
    assert from_main(lambda: [1, 2]) == [1, 2]
