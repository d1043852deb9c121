"""Synthetic preference pairs whose preference is learnable but absent from the base model.

Three subsets, each a different kind of preference:
- `arithmetic`: a correct sum is preferred to a wrong one;
- `helpfulness`: a helpful reply is preferred to a dismissive one;
- `format`: following a capital/small letters instruction is preferred to ignoring it.

Every prompt has exactly one good and one bad reply, both fixed by the prompt. The pretraining
corpus shows both replies equally often, so the base model has no reason to prefer either: its
policy-only accuracy sits at chance, and whatever preference appears after DPO was learned there.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from evalkit.data.pairs import PreferencePair
from evalkit.errors import EvalkitError

NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana"]

SUM_QUESTIONS = ["What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.", "How much is {a} + {b}?"]

HELP_OPENERS = ["How do I", "Can you tell me how to", "What is the best way to", "Help me"]
TASKS = {
    "boil an egg": "put it in boiling water for nine minutes",
    "water a plant": "give it a cup of water when the soil is dry",
    "tie a knot": "cross the ends, loop one under and pull tight",
    "make tea": "steep the leaves in hot water for three minutes",
    "clean a window": "wipe it with soapy water, then dry it with a cloth",
    "fix a flat tire": "find the hole, patch it and pump the tire again",
    "learn to swim": "start in shallow water and practise floating first",
    "bake bread": "knead the dough, let it rise and bake it for forty minutes",
    "save money": "put a little aside each week before you spend",
    "sleep better": "go to bed at the same time and keep the room dark",
    "write a letter": "start with a greeting, say your news and sign your name",
    "plant a tree": "dig a wide hole, set the roots in and water well",
    "paint a wall": "tape the edges, roll on thin coats and let them dry",
    "cook rice": "simmer one cup of rice in two cups of water",
    "start running": "run slowly for ten minutes three times a week",
    "fold a shirt": "fold the sleeves back, then fold it in half twice",
    "read faster": "read in phrases and do not say the words aloud",
    "pack a bag": "roll your clothes and put heavy things at the bottom",
    "wash a car": "rinse it, scrub it with soap and rinse it again",
    "keep bread fresh": "wrap it in a cloth and keep it in a dry place",
    "light a fire": "stack small sticks over paper and light the paper",
    "sharpen a knife": "draw the blade across a stone at a low angle",
    "memorise a poem": "learn one line at a time and repeat it aloud",
    "calm down": "breathe in slowly for four counts and out for six",
}
EXCUSES = [
    "figure it out yourself",
    "that is not my problem",
    "ask someone else about it",
    "I do not feel like explaining",
    "you should already know that",
    "look it up somewhere else",
]

CASE_INSTRUCTIONS = {
    "upper": ["Answer in capital letters.", "Reply using only capital letters.", "Use upper case only."],
    "lower": ["Answer in small letters.", "Reply using only small letters.", "Use lower case only."],
}
FACTS = {
    "What color is the sky?": "the sky is blue",
    "What do cows drink?": "cows drink water",
    "Where do fish live?": "fish live in water",
    "What is ice made of?": "ice is frozen water",
    "What color is grass?": "grass is green",
    "How many legs does a cat have?": "a cat has four legs",
    "What do bees make?": "bees make honey",
    "When do owls hunt?": "owls hunt at night",
    "What is the sun?": "the sun is a star",
    "What do we breathe?": "we breathe air",
    "What color is snow?": "snow is white",
    "Where does rain come from?": "rain falls from clouds",
    "What do birds build?": "birds build nests",
    "How many days are in a week?": "a week has seven days",
    "What is the moon made of?": "the moon is made of rock",
    "What shape is a ball?": "a ball is round",
    "What do plants need?": "plants need light and water",
    "Which animal barks?": "a dog barks",
    "What grows on apple trees?": "apples grow on apple trees",
    "What do you wear on your feet?": "you wear shoes on your feet",
}


@dataclass(frozen=True)
class Exchange:
    """A prompt with its good and bad reply, before ids and splits are assigned."""

    prompt: str
    good: str
    bad: str


def arithmetic() -> Iterator[Exchange]:
    for template, a, b in itertools.product(SUM_QUESTIONS, range(10), range(10)):
        total = a + b
        # One fixed wrong answer per sum, so the corpus gives it the same weight as the right one.
        offset = (1, -1, 2, -2)[(7 * a + 3 * b) % 4]
        wrong = total + offset if total + offset >= 0 else total - offset
        yield Exchange(template.format(a=a, b=b), f"{a} + {b} = {total}.", f"{a} + {b} = {wrong}.")


def helpfulness() -> Iterator[Exchange]:
    for name, opener, (task, advice) in itertools.product(NAMES, HELP_OPENERS, TASKS.items()):
        excuse = EXCUSES[sum(map(ord, task)) % len(EXCUSES)]
        yield Exchange(f"{name} asks: {opener} {task}?", f"Sure, {advice}.", f"No, {excuse}.")


def formatting() -> Iterator[Exchange]:
    cases_and_leads = itertools.product(NAMES, ("upper", "lower"), (True, False), FACTS.items())
    for name, case, lead, (question, answer) in cases_and_leads:
        for instruction in CASE_INSTRUCTIONS[case]:
            request = f"{instruction} {question}" if lead else f"{question} {instruction}"
            prompt = f"{name} asks: {request}"
            upper, lower = answer.upper() + ".", answer.lower() + "."
            good, bad = (upper, lower) if case == "upper" else (lower, upper)
            yield Exchange(prompt, good, bad)


SUBSETS: dict[str, Callable[[], Iterator[Exchange]]] = {
    "arithmetic": arithmetic,
    "helpfulness": helpfulness,
    "format": formatting,
}


def generate_pairs(pairs_per_subset: int, seed: int) -> list[PreferencePair]:
    """`pairs_per_subset` distinct pairs from each subset, drawn with `seed`, as chat-message pairs."""
    rng = random.Random(seed)
    pairs: list[PreferencePair] = []
    for subset, exchanges in SUBSETS.items():
        pool = list(exchanges())
        if pairs_per_subset > len(pool):
            raise EvalkitError(
                f"world.pairs_per_subset: {pairs_per_subset} exceeds the {len(pool)} distinct "
                f"{subset!r} prompts; expected at most {len(pool)}"
            )
        for index, exchange in enumerate(rng.sample(pool, pairs_per_subset)):
            pairs.append(
                PreferencePair(
                    id=f"{subset}-{index:04d}",
                    prompt=[{"role": "user", "content": exchange.prompt}],
                    chosen=[{"role": "assistant", "content": exchange.good}],
                    rejected=[{"role": "assistant", "content": exchange.bad}],
                    subset=subset,
                )
            )
    return pairs


def max_pairs_per_subset() -> int:
    """The largest `pairs_per_subset` every subset can supply."""
    return min(sum(1 for _ in exchanges()) for exchanges in SUBSETS.values())
