"""Local stand-ins for RewardBench 2 and RewardBench 1, built from the tiny world's prompts.

They have the real datasets' columns and types (`evalkit.data.best_of_n`), so the loading code that reads the hub
datasets is the code tested offline. Best-of-4 items reuse the world's preferences, so a tiny DPO policy trained on
the world has signal on them: the correct sum among three wrong ones (`Math`), the helpful reply among dismissive
ones (`Focus`), the reply in the asked letter case among ones that ignore it (`Precise IF`). The `Ties` subset is
shaped as RewardBench 2's: a `ref:<k>` item with one correct sum and a `tied:<k>` item for the same prompt with
several correct phrasings. RewardBench 1's stand-in is the world's pairs under RewardBench 1 subset names.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from evalkit.data.best_of_n import BestOfNItem, item_rows
from evalkit.world.pairs import CASE_INSTRUCTIONS, EXCUSES, FACTS, SUM_QUESTIONS, TASKS

STANDIN_MODEL = "tiny-world"


def _wrong_sums(total: int) -> list[int]:
    return [w for w in (total + 1, total - 1, total + 2, total - 2, total + 3) if w >= 0][:3]


def _math(index: int, rng: random.Random) -> BestOfNItem:
    a, b = rng.randrange(10), rng.randrange(10)
    question = rng.choice(SUM_QUESTIONS).format(a=a, b=b)
    wrong = [f"{a} + {b} = {w}." for w in _wrong_sums(a + b)]
    return BestOfNItem(str(index), question, [f"{a} + {b} = {a + b}."], wrong, "Math")


def _focus(index: int, rng: random.Random) -> BestOfNItem:
    task, advice = rng.choice(sorted(TASKS.items()))
    excuses = [f"No, {e}." for e in rng.sample(EXCUSES, 3)]
    return BestOfNItem(str(index), f"Help me {task}?", [f"Sure, {advice}."], excuses, "Focus")


def _precise_if(index: int, rng: random.Random) -> BestOfNItem:
    question, answer = rng.choice(sorted(FACTS.items()))
    case = rng.choice(("upper", "lower"))
    instruction = rng.choice(CASE_INSTRUCTIONS[case])
    right, other = (answer.upper(), answer.lower()) if case == "upper" else (answer.lower(), answer.upper())
    wrong = [other + ".", answer.capitalize() + ".", other + "!"]
    return BestOfNItem(str(index), f"{instruction} {question}", [right + "."], wrong, "Precise IF")


def _ties(index: int, rng: random.Random) -> list[BestOfNItem]:
    a, b = rng.randrange(1, 10), rng.randrange(1, 10)
    question = f"Compute {a} + {b}."
    wrong = [f"{a} + {b} = {w}." for w in _wrong_sums(a + b)]
    ref = BestOfNItem(f"ref:{index}", question, [f"{a} + {b} = {a + b}."], wrong, "Ties")
    phrasings = [f"{a} + {b} = {a + b}.", f"{b} + {a} = {a + b}.", f"The sum is {a + b}."]
    return [ref, BestOfNItem(f"tied:{index}", question, phrasings, wrong[:2], "Ties")]


def reward_bench_2_standin(items_per_subset: int, seed: int) -> list[BestOfNItem]:
    """`items_per_subset` items of each subset (Ties: as many prompts, two items each), seeded."""
    rng = random.Random(seed)
    items: list[BestOfNItem] = []
    counter = itertools.count()
    for make in (_math, _focus, _precise_if):
        items += [make(next(counter), rng) for _ in range(items_per_subset)]
    for index in range(items_per_subset):
        items += _ties(index, rng)
    return items


RB1_SUBSETS = {"Math": "math-prm", "Focus": "alpacaeval-easy", "Precise IF": "llmbar-natural"}
"""The RewardBench 1 subset each stand-in subset plays (its section aggregation reads these names)."""


def reward_bench_1_standin(pairs_per_subset: int, seed: int) -> list[dict[str, object]]:
    """RewardBench 1 `filtered` rows: each stand-in best-of-N item's correct answer against its first wrong one."""
    items = [i for i in reward_bench_2_standin(pairs_per_subset, seed) if i.subset in RB1_SUBSETS]
    return [
        {
            "prompt": item.prompt,
            "chosen": item.chosen[0],
            "chosen_model": STANDIN_MODEL,
            "rejected": item.rejected[0],
            "rejected_model": STANDIN_MODEL,
            "subset": RB1_SUBSETS[item.subset],
            "id": index,
        }
        for index, item in enumerate(items)
    ]


def write_standins(directory: Path, items_per_subset: int, seed: int) -> tuple[Path, Path]:
    """Write `reward-bench-2.jsonl` and `reward-bench.jsonl` stand-ins under `directory`; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    rb2 = directory / "reward-bench-2.jsonl"
    rows = item_rows(reward_bench_2_standin(items_per_subset, seed), STANDIN_MODEL)
    rb2.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rb1 = directory / "reward-bench.jsonl"
    rb1.write_text(
        "".join(json.dumps(r) + "\n" for r in reward_bench_1_standin(items_per_subset, seed)), encoding="utf-8"
    )
    return rb2, rb1
