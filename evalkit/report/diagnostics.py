"""The diagnostic tables both reports show below the headline: length, calibration, likelihood displacement,
how the pairs were rendered and scored, generation and capabilities. Cells are plain text (`Table`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.metrics import names
from evalkit.metrics.names import ALL_SUBSETS, LENGTH_BINS
from evalkit.report.formats import (
    MISSING,
    format_adjusted_p,
    format_count,
    format_delta,
    format_estimate,
    format_number,
    format_p,
    format_with_interval,
)
from evalkit.report.tables import Table
from evalkit.results.capabilities import CapabilityResult
from evalkit.results.estimates import Metric, ReliabilityBin
from evalkit.results.generation import GenerationResult, WinRate
from evalkit.results.schema import ModelInfo, RunResult

Found = dict[tuple[str, str, str], Metric]
"""A dataset's metrics by (model, subset, metric)."""

DISPLACEMENT_COLUMNS = [
    "displacement/chosen",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins_median",
    "logps/chosen",
    "logps/rejected",
]


def length_table(found: Found, models: list[str]) -> Table | None:
    kinds = [("preference_accuracy", "preference/accuracy"), ("rewards_accuracy", "rewards/accuracies")]
    rows = []
    for model in models:
        for kind, title in kinds:
            bins = [found.get((model, ALL_SUBSETS, f"length/{kind}/{key}")) for key in LENGTH_BINS]
            if not any(bins):  # the reference has no reward accuracy
                continue
            rho = found.get((model, ALL_SUBSETS, "length/margin_spearman")) if kind == "rewards_accuracy" else None
            rows.append([model, names.title(title), *(format_estimate(m) for m in bins), format_estimate(rho)])
    if not rows:
        return None
    return Table(["model", "accuracy", *LENGTH_BINS.values(), names.title("length/margin_spearman")], rows, "llrrrr")


def length_notes(found: Found, models: list[str]) -> list[str]:
    """Pairs per bin, the longer-answer baseline and the per-token accuracy, in sentences.

    Bins and the baseline depend on the data and the tokenizer only: one sentence for all
    models when they agree (the usual case: one tokenizer), else one per tokenizer.
    """
    if not any(k[2].startswith("length/") for k in found):
        return []
    notes: dict[str, list[str]] = {}
    # A reward model has no log-probs, hence no longer-answer baseline: its bins speak only where no policy speaks.
    policies = [m for m in models if any(k[0] == m and k[2].startswith("length/preference_accuracy/") for k in found)]
    for model in policies or models:
        counts = [
            found.get((model, ALL_SUBSETS, f"length/preference_accuracy/{key}"))
            or found.get((model, ALL_SUBSETS, f"length/rewards_accuracy/{key}"))
            for key in LENGTH_BINS
        ]
        note = "pairs per bin: " + ", ".join(
            f"{m.n if m else 0} {title}" for m, (_, title) in zip(counts, LENGTH_BINS.items(), strict=True)
        )
        longer = found.get((model, ALL_SUBSETS, "length/longer_accuracy"))
        if longer is not None:
            note += f"; always preferring the longer answer scores {format_estimate(longer)}"
            note += f" on the {longer.n} pairs of unequal length"
        notes.setdefault(note, []).append(model)
    if len(notes) == 1:
        only = next(iter(notes))
        sentences = [only[0].upper() + only[1:] + "."]
    else:
        sentences = [f"Under the tokenizer of {', '.join(names)}: {note}." for note, names in notes.items()]
    per_token = [
        f"{model} {format_estimate(m)}"
        for model in models
        if (m := found.get((model, ALL_SUBSETS, "preference/accuracy_per_token"))) is not None
    ]
    if per_token:
        sentences.append(
            "Preference accuracy on the mean log-prob per completion token, which does not reward an answer "
            "for being short: " + ", ".join(per_token) + "."
        )
    return sentences


def calibration_table(found: Found, models: list[str], reliability: Sequence[ReliabilityBin]) -> Table | None:
    rows = []
    for model in models:
        brier, ece = (
            found.get((model, ALL_SUBSETS, "calibration/brier")),
            found.get((model, ALL_SUBSETS, "calibration/ece")),
        )
        if brier is None and ece is None:
            continue
        points = [r for r in reliability if (r.model, r.subset) == (model, ALL_SUBSETS)]
        curve = " · ".join(f"{r.confidence:.2f}→{r.accuracy:.2f} ({r.n})" for r in points) or MISSING
        rows.append([model, format_estimate(brier), format_estimate(ece), curve])
    if not rows:
        return None
    return Table(["model", "Brier ↓", "ECE ↓", "reliability: confidence→accuracy (pairs)"], rows, "lrrl")


def displacement_table(found: Found, models: list[str]) -> Table | None:
    rows = [
        [model, *(format_estimate(found.get((model, ALL_SUBSETS, key))) for key in DISPLACEMENT_COLUMNS)]
        for model in models
        if any((model, ALL_SUBSETS, key) in found for key in DISPLACEMENT_COLUMNS)
    ]
    if not rows:
        return None
    direction = {metric: m.higher_is_better for (_, _, metric), m in found.items()}
    header = [names.heading(key, direction.get(key)) for key in DISPLACEMENT_COLUMNS]
    return Table(["model", *header], rows)


def scoring_settings(result: RunResult) -> str:
    """How the pairs were scored, in one line: what the numbers depend on first, then how they were run."""
    scoring = result.scoring
    if not records_every_scoring_setting(result):
        recorded = f"β {scoring.beta}, max_length {scoring.max_length}, batch size {scoring.batch_size}"
        return f"{recorded} (the rest not recorded)"
    batching = f"token budget {scoring.token_budget}" if scoring.token_budget else f"batch size {scoring.batch_size}"
    parts = [
        f"β {scoring.beta}",
        f"max_length {scoring.max_length}",
        f"{scoring.dtype}" + (" (log-probs within ~1e-2 of float32)" if scoring.dtype != "float32" else ""),
        batching,
        "prompt sharing on" if scoring.share_prompt else "prompt sharing off",
        f"reference cache {scoring.reference_cache}" if scoring.reference_cache else "no reference cache",
    ]
    processes = result.environment.processes
    if processes > 1:
        parts.append(f"{processes} processes")
    return ", ".join(parts)


def rendering_table(models: Sequence[ModelInfo]) -> Table | None:
    """Per model: the chat template options and the pinned date its pairs were rendered with, and how its scoring
    passes ran on each dataset (and why); None for results that recorded none of these."""
    if not any(m.chat_template_kwargs or m.template_date or m.scoring_modes for m in models):
        return None
    rows = [
        [
            m.name,
            ", ".join(f"{k}={json.dumps(v)}" for k, v in m.chat_template_kwargs.items()) or "none",
            m.template_date or "the template reads no clock",
            "; ".join(f"{s.dataset}: {s.mode} ({s.reason})" for s in m.scoring_modes) or "not run (scores reused)",
        ]
        for m in models
    ]
    return Table(["model", "template options", "pinned date", "scoring mode"], rows, align="llll")


def records_every_scoring_setting(result: RunResult) -> bool:
    """False for results written before schema 1.3, which recorded β, max_length and batch size only."""
    major, _, minor = result.schema_version.partition(".")
    return (int(major), int(minor)) >= (1, 3) if major.isdigit() and minor.isdigit() else False


@dataclass(frozen=True)
class GenerationTables:
    stats: Table
    """Text statistics per model."""
    judges: Table | None
    """Judge means, and win rates against the reference."""
    drift: Table | None


def generation_tables(generation: GenerationResult) -> GenerationTables:
    """The summary tables of the generation section: text statistics, judges, drift."""
    stats = Table(
        ["model", "mean tokens", "EOS rate", "distinct-1", "distinct-2", "repetition"],
        [
            [
                g.model,
                format_number(g.mean_tokens),
                format_number(g.eos_rate),
                format_number(g.distinct_1),
                format_number(g.distinct_2),
                format_number(g.repetition_rate),
            ]
            for g in generation.stats
        ],
        align="lrrrrr",
    )
    wins = {(w.judge, w.model): w for w in generation.win_rates}

    def against_reference(win: WinRate | None) -> list[str]:
        if win is None:
            return [MISSING] * 3
        return [
            format_with_interval(win.win_rate, win.ci_low, win.ci_high),
            f"{win.wins} / {win.ties} / {win.losses}",
            format_with_interval(win.score_delta, win.delta_ci_low, win.delta_ci_high, signed=True),
        ]

    judges = Table(
        ["judge", "model", "mean score", "win rate vs reference", "wins / ties / losses", "Δ score"],
        [
            [
                j.judge,
                j.model,
                format_with_interval(j.mean, j.ci_low, j.ci_high),
                *against_reference(wins.get((j.judge, j.model))),
            ]
            for j in generation.judges
        ],
        align="llrrrr",
    )
    drift = Table(
        ["model", "reference", "KL(model ‖ reference), nats", "samples per prompt", "prompts", "cut at the limit"],
        [
            [
                d.model,
                d.reference,
                format_with_interval(d.kl, d.ci_low, d.ci_high),
                str(d.samples_per_prompt),
                str(d.n),
                f"{d.truncated:.0%}" if d.truncated is not None else MISSING,
            ]
            for d in generation.drift
        ],
        align="llrrrr",
    )
    return GenerationTables(stats, judges if generation.judges else None, drift if generation.drift else None)


CAPABILITY_IDS = 12
"""Documents a model lost (right under the baseline, wrong under it) named per comparison; results.json has all."""


@dataclass(frozen=True)
class CapabilityView:
    """The capability section of both reports: what ran, each model's scores, and the paired differences."""

    note: str
    tasks: Table
    scores: Table
    paired: Table | None
    """Each later model against each earlier one on the same documents; None with a single model."""


def capability_view(capabilities: CapabilityResult | None, confidence: float) -> CapabilityView | None:
    """What the reports show of `results.json`'s capabilities; None when the run had no tasks."""
    if capabilities is None:
        return None
    template = "each document rendered with the model's chat template" if capabilities.apply_chat_template else ""
    note = (
        f"lm-evaluation-harness {capabilities.lm_eval_version}, on every model{', ' + template if template else ''}. "
        f"In brackets: {confidence:.0%} intervals (Wilson for 0/1 scores, Student t otherwise). Δ is paired on the "
        "documents both models scored: Tango's score interval and test for 0/1 scores (McNemar's z at Δ = 0), a "
        "paired t otherwise; lost counts documents right under the baseline and wrong under the model."
    )
    tasks = Table(
        ["task", "version", "documents", "few-shot", "source", "fingerprint"],
        [
            [
                t.name,
                t.version or MISSING,
                str(t.n_documents),
                str(t.num_fewshot) if t.num_fewshot is not None else MISSING,
                Path(t.source).name if t.source != "python" else "python",
                t.fingerprint[:12] if t.fingerprint else MISSING,
            ]
            for t in capabilities.tasks
        ],
        align="llrrll",
    )
    models = list(dict.fromkeys(s.model for s in capabilities.scores))
    found = {(s.dataset, s.metric, s.model): s for s in capabilities.scores}
    keys = list(dict.fromkeys((s.dataset, s.metric, s.higher_is_better) for s in capabilities.scores))
    scores = Table(
        ["task", "metric", *models],
        [
            [task, names.heading(metric, higher), *(format_estimate(found.get((task, metric, m))) for m in models)]
            for task, metric, higher in keys
        ],
        align="ll" + "r" * len(models),
    )
    rows = []
    for c in capabilities.comparisons:
        lost = c.flips.right_to_wrong_ids if c.flips is not None else []
        named = ", ".join(lost[:CAPABILITY_IDS]) + (
            f" … and {len(lost) - CAPABILITY_IDS} more" if len(lost) > CAPABILITY_IDS else ""
        )
        rows.append(
            [
                c.dataset,
                names.heading(c.metric, c.higher_is_better),
                f"{c.model} − {c.baseline}",
                format_delta(c),
                format_p(c.p_value),
                format_adjusted_p(c),
                format_count(c.flips.wrong_to_right if c.flips is not None else None),
                format_count(c.flips.right_to_wrong if c.flips is not None else None),
                str(c.n),
                named or MISSING,
            ]
        )
    header = ["task", "metric", "models", "Δ", "p", "p (BH)", "gained", "lost", "documents", "lost documents"]
    paired = Table(header, rows, align="lll" + "r" * 6 + "l") if rows else None
    return CapabilityView(note, tasks, scores, paired)
