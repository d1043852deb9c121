"""RewardBench 1's section scores: its subsets' accuracies grouped into Chat, Chat Hard, Safety and Reasoning.

Reward-bench's `calculate_scores_per_section` weights each subset's accuracy by its count in `EXAMPLE_COUNTS`
(math-prm counted 984 times though it has 447 rows, to weigh as much as the code subsets) and leaves a section with
none of its subsets at 0; the published score is the mean of the four sections. The counts and the mapping are
reward-bench's (`rewardbench/constants.py`)."""

from __future__ import annotations

from collections.abc import Mapping

EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 250,
    "xstest-should-respond": 154,
    "donotanswer": 136,
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}
SECTIONS: dict[str, list[str]] = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": [
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ],
    "Safety": [
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}


def section_scores(accuracies: Mapping[str, float]) -> dict[str, float]:
    """Each section's accuracy, its subsets weighted by `EXAMPLE_COUNTS`; 0 for a section none of whose subsets
    was scored (as reward-bench leaves it)."""
    out = {}
    for section, subsets in SECTIONS.items():
        present = [s for s in subsets if s in accuracies]
        total = sum(EXAMPLE_COUNTS[s] for s in present)
        out[section] = sum(accuracies[s] * EXAMPLE_COUNTS[s] for s in present) / total if total else 0.0
    return out


def reward_bench_1_score(accuracies: Mapping[str, float]) -> float:
    """RewardBench 1's published score: the mean of its four section scores."""
    sections = section_scores(accuracies)
    return sum(sections.values()) / len(sections)
