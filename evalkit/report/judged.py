"""The pairwise judges and generation backends in both reports: one view, rendered by report.md and report.html.

What a reader sees: per (judge, model, baseline) the raw and the length-controlled win rate with their
intervals, the judge's length coefficient and position bias, then how the panel was decoded and the judges
asked, with what each backend can promise about determinism; one line on what each judge number means.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.report.formats import MISSING, format_number, format_with_interval
from evalkit.report.tables import Table
from evalkit.results.generation import GenerationResult, PairwiseWinRate

MEANINGS = [
    "win rate: the model's mean preference over the prompts with both orders read, each prompt judged with the "
    "model's answer first and then second (a win 1, a tie ½, a loss 0, or the judge's probability), Wilson's interval",
    "wins / ties / losses: prompts won in both orders / where the orders disagreed (a tie) / lost in both",
    "length-controlled win rate: the win rate the judge would give if both answers had the same length (AlpacaEval 2's "
    "logistic model on the length difference), delta-method interval",
    "length coefficient: how strongly the judge's preference follows the length difference; 0 = not at all",
    "position bias: share of prompts where the verdict flipped with the swap (the position decided, not the answer); "
    "0 for a consistent judge",
    "agreement: share of prompts where both orders picked the same answer",
    "unparsed: prompts left out because a reply named neither answer; never guessed",
]
"""One line per judge number, as both reports print them."""


@dataclass(frozen=True)
class JudgedView:
    """The judged-generation part of the generation section."""

    win_rates: Table | None
    """Per pairwise judge, model and baseline; None without pairwise judges."""
    meanings: list[str]
    """What each number of `win_rates` means (empty without it)."""
    backends: Table | None
    """How the panel was decoded and each judge asked, and whether a fresh run would repeat it."""
    cautions: list[str]
    """One line per backend that cannot promise the same answers on a rerun with an empty cache."""


def judged_view(generation: GenerationResult) -> JudgedView | None:
    """None when the run decoded in process with no pairwise judge: nothing to add to the generation section."""
    in_process_only = all(b.backend == "hf" and b.used_by == "generation" for b in generation.backends)
    if not generation.pairwise and in_process_only:
        return None
    win_rates = Table(
        [
            "judge",
            "model",
            "baseline",
            "win rate",
            "LC win rate",
            "length coef.",
            "wins / ties / losses",
            "position bias",
            "agreement",
            "prompts",
            "unparsed",
        ],
        [_row(w) for w in generation.pairwise],
        align="lllrrrrrrrr",
    )
    backends = Table(
        ["used by", "backend", "where", "deterministic", "why", "requests sent"],
        [
            [
                b.used_by,
                "in process" if b.backend == "hf" else "OpenAI-compatible endpoint",
                _where(b.base_url, b.served_models),
                "yes" if b.deterministic else "no",
                b.reason,
                str(b.requests_sent) if b.requests_sent is not None else MISSING,
            ]
            for b in generation.backends
        ],
        align="lllllr",
    )
    cautions = [
        f"{b.used_by}: a fresh run may not repeat these answers ({b.reason}); the response cache repeats them exactly"
        for b in generation.backends
        if not b.deterministic
    ]
    cautions += [
        f"{b.used_by}: the server echoed the API key in {b.answers_redacted} answers; it is masked (***) in the "
        "completions kept and shown"
        for b in generation.backends
        if b.answers_redacted
    ]
    return JudgedView(
        win_rates if generation.pairwise else None,
        MEANINGS if generation.pairwise else [],
        backends if generation.backends else None,
        cautions,
    )


def _row(w: PairwiseWinRate) -> list[str]:
    controlled = w.length_controlled
    return [
        w.judge,
        w.model,
        w.baseline,
        format_with_interval(w.win_rate, w.ci_low, w.ci_high) if w.win_rate is not None else MISSING,
        format_with_interval(controlled.win_rate, controlled.ci_low, controlled.ci_high) if controlled else MISSING,
        format_number(controlled.length_coefficient) if controlled else MISSING,
        f"{w.wins} / {w.ties} / {w.losses}",
        _share(w.position_bias_rate),
        _share(w.agreement_rate),
        str(w.n),
        str(w.unparsed),
    ]


def _share(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else MISSING


def _where(base_url: str | None, served: dict[str, str]) -> str:
    if base_url is None:
        return "this process"
    models = ", ".join(f"{name} → {model}" for name, model in served.items())
    return f"{base_url} ({models})" if models else base_url
