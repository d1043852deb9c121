"""What both reports show, decided once: which comparisons come first, which flipped pairs are shown
with their text, the diagnostic tables, and how numbers are written.

`evalkit.report.document` writes these as markdown, `evalkit.report.html` as HTML. Cells are plain text: `Table`
escapes them when it writes markdown, and jinja2 autoescapes them in HTML. `evalkit bench` asks
`flips_to_show` which pairs to keep the text of, so the choice lives beside the reports that show it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.report.markdown import Markdown, escape
from evalkit.results.capabilities import CapabilityResult
from evalkit.results.estimates import Comparison, Metric, ReliabilityBin
from evalkit.results.generation import GenerationResult, WinRate
from evalkit.results.pairs import PairScore, pairs_path, read_pair_scores
from evalkit.results.schema import ModelInfo, RunResult

# (metric, column title) in the order a reviewer reads them.
COLUMNS = [
    ("preference/accuracy", "pref. acc"),
    ("rewards/accuracies", "reward acc"),
    ("rewards/ties", "ties"),
    ("rewards/margins", "margin"),
    ("loss", "DPO loss"),
]


TITLES = dict(COLUMNS) | {"preference/accuracy_per_token": "pref. acc/token", "logps/margins": "logp margin"}


LENGTH_BINS = [("chosen_shorter", "chosen shorter"), ("same_length", "same length"), ("chosen_longer", "chosen longer")]


DISPLACEMENT_COLUMNS = [
    ("displacement/chosen", "chosen fell below ref"),
    ("rewards/chosen", "reward chosen"),
    ("rewards/rejected", "reward rejected"),
    ("rewards/margins_median", "median margin"),
    ("logps/chosen", "logp chosen"),
    ("logps/rejected", "logp rejected"),
]


ARROWS = {True: " ↑", False: " ↓", None: ""}


MISSING = "—"


MAX_IDS = 50
"""Flipped pair ids listed per direction; results.json has them all."""


FLIP_METRIC = "preference/accuracy"
"""The accuracy whose flips the reports show with their text: the one every two models are compared on."""


FLIP_EXAMPLES = 6
"""Flipped pairs shown with their text per comparison and direction (spread over the sorted ids)."""


MATRIX_METRICS = ["preference/accuracy", "rewards/accuracies"]
"""Accuracies whose differences between the other models (not against the reference) are tabulated."""


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells: escaped when written as markdown, autoescaped in HTML."""

    header: list[str]
    rows: list[list[str]]
    align: str = ""
    """'l' or 'r' per column; by default the first column left, the others (numbers) right."""

    @property
    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.header) - 1)

    @property
    def markdown(self) -> Markdown:
        rule = "|" + "|".join("---" if a == "l" else "---:" for a in self.alignment) + "|"
        lines = ["| " + " | ".join(map(escape, self.header)) + " |", rule]
        return Markdown("\n".join(lines + ["| " + " | ".join(map(escape, row)) + " |" for row in self.rows]))


def primary_comparisons(comparisons: Sequence[Comparison], reference: str | None) -> list[Comparison]:
    """Each model against the anchor, turned so that the anchor is the baseline: what a release reads first.

    The anchor is the reference model or, without one (or when it was not compared), the first model.
    `comparisons` are those of one dataset, as `compare_models` lists them (later against earlier models).
    """
    anchor = _anchor(comparisons, reference)
    return [orient(c, anchor) for c in comparisons if anchor in (c.model, c.baseline)]


def other_comparisons(comparisons: Sequence[Comparison], reference: str | None) -> list[Comparison]:
    """The comparisons between models other than the anchor (see `primary_comparisons`)."""
    anchor = _anchor(comparisons, reference)
    return [c for c in comparisons if anchor not in (c.model, c.baseline)]


def _anchor(comparisons: Sequence[Comparison], reference: str | None) -> str | None:
    if not comparisons:
        return None
    if reference is not None and any(reference in (c.model, c.baseline) for c in comparisons):
        return reference
    return comparisons[0].baseline  # the first model: `compare_models` starts with the second against it


def orient(c: Comparison, baseline: str) -> Comparison:
    """`c` with `baseline` as its baseline (`Comparison.reversed`)."""
    if c.baseline == baseline:
        return c
    assert c.model == baseline, f"{baseline!r} is not part of {c.model!r} vs {c.baseline!r}"
    return c.reversed()


def spread(ids: Sequence[str], k: int = FLIP_EXAMPLES) -> list[str]:
    """At most `k` of `ids`, evenly spaced (ids are sorted, so this reaches across subsets)."""
    if len(ids) <= k:
        return list(ids)
    return [ids[i * len(ids) // k] for i in range(k)]


def flips_to_show(comparisons: Sequence[Comparison], reference: str | None) -> dict[str, list[str]]:
    """Per dataset, the ids of the flipped pairs whose text the reports show.

    For each model against the anchor (`primary_comparisons`), on all pairs, `FLIP_EXAMPLES` per
    direction of `FLIP_METRIC`. `evalkit bench` stores the text of exactly these pairs in
    `RunResult.flip_examples`, so the choice lives here, beside the report that shows them.
    """
    shown: dict[str, list[str]] = {}
    for dataset in dict.fromkeys(c.dataset for c in comparisons):
        ids = shown.setdefault(dataset, [])
        for c in primary_comparisons([c for c in comparisons if c.dataset == dataset], reference):
            if c.subset == "all" and c.metric == FLIP_METRIC and c.flips is not None:
                for pair_id in spread(c.flips.wrong_to_right_ids) + spread(c.flips.right_to_wrong_ids):
                    if pair_id not in ids:
                        ids.append(pair_id)
    return shown


def read_pairs(result: RunResult, results_dir: Path) -> dict[str, list[PairScore]]:
    """Per-pair scores of each dataset whose file lies beside the results (`DatasetInfo.pairs_file`).

    A dataset whose file is missing (a results.json copied on its own) is left out; the charts that
    need per-pair values say so in one line.
    """
    found = {d.name: pairs_path(results_dir, d) for d in result.datasets}
    return {name: read_pair_scores(path) for name, path in found.items() if path is not None}


def length_table(found: dict[tuple[str, str, str], Metric], models: list[str]) -> Table | None:
    kinds = [("preference_accuracy", "pref. acc"), ("rewards_accuracy", "reward acc")]
    rows = []
    for model in models:
        for kind, title in kinds:
            bins = [found.get((model, "all", f"length/{kind}/{key}")) for key, _ in LENGTH_BINS]
            if not any(bins):  # the reference has no reward accuracy
                continue
            rho = found.get((model, "all", "length/margin_spearman")) if kind == "rewards_accuracy" else None
            rows.append([model, title, *(format_estimate(m) for m in bins), format_estimate(rho)])
    if not rows:
        return None
    return Table(["model", "accuracy", *(title for _, title in LENGTH_BINS), "ρ(margin, Δlength)"], rows, "llrrrr")


def length_notes(found: dict[tuple[str, str, str], Metric], models: list[str]) -> list[str]:
    """Pairs per bin, the longer-answer baseline and the per-token accuracy, in sentences.

    Bins and the baseline depend on the data and the tokenizer only: one sentence for all
    models when they agree (the usual case: one tokenizer), else one per tokenizer.
    """
    if not any(k[2].startswith("length/") for k in found):
        return []
    notes: dict[str, list[str]] = {}
    for model in models:
        counts = [found.get((model, "all", f"length/preference_accuracy/{key}")) for key, _ in LENGTH_BINS]
        note = "pairs per bin: " + ", ".join(
            f"{m.n if m else 0} {title}" for m, (_, title) in zip(counts, LENGTH_BINS, strict=True)
        )
        longer = found.get((model, "all", "length/longer_accuracy"))
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
        if (m := found.get((model, "all", "preference/accuracy_per_token"))) is not None
    ]
    if per_token:
        sentences.append(
            "Preference accuracy on the mean log-prob per completion token, which does not reward an answer "
            "for being short: " + ", ".join(per_token) + "."
        )
    return sentences


def calibration_table(
    found: dict[tuple[str, str, str], Metric], models: list[str], reliability: Sequence[ReliabilityBin]
) -> Table | None:
    rows = []
    for model in models:
        brier, ece = found.get((model, "all", "calibration/brier")), found.get((model, "all", "calibration/ece"))
        if brier is None and ece is None:
            continue
        points = [r for r in reliability if (r.model, r.subset) == (model, "all")]
        curve = " · ".join(f"{r.confidence:.2f}→{r.accuracy:.2f} ({r.n})" for r in points) or MISSING
        rows.append([model, format_estimate(brier), format_estimate(ece), curve])
    if not rows:
        return None
    return Table(["model", "Brier ↓", "ECE ↓", "reliability: confidence→accuracy (pairs)"], rows, "lrrl")


def displacement_table(found: dict[tuple[str, str, str], Metric], models: list[str]) -> Table | None:
    rows = [
        [model, *(format_estimate(found.get((model, "all", key))) for key, _ in DISPLACEMENT_COLUMNS)]
        for model in models
        if any((model, "all", key) in found for key, _ in DISPLACEMENT_COLUMNS)
    ]
    if not rows:
        return None
    direction = {metric: m.higher_is_better for (_, _, metric), m in found.items()}
    header = [title + ARROWS[direction.get(key)] for key, title in DISPLACEMENT_COLUMNS]
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


def metric_title(metric: str, higher_is_better: bool | None) -> str:
    return TITLES.get(metric, metric) + ARROWS[higher_is_better]


def format_estimate(metric: Metric | None) -> str:
    """'0.947 [0.91, 0.97]': the value to three decimals, the interval to two (or more, to tell its ends apart)."""
    if metric is None:
        return MISSING
    if metric.ci_low is None or metric.ci_high is None:
        return format_number(metric.value)
    return f"{format_number(metric.value)} [{format_interval(metric.ci_low, metric.ci_high)}]"


def format_delta(c: Comparison) -> str:
    """'+0.476 [+0.40, +0.55]'."""
    value = f"{c.value:+.3f}" if abs(c.value) < 100 else f"{c.value:+.1f}"
    if c.ci_low is None or c.ci_high is None:
        return value
    return f"{value} [{format_interval(c.ci_low, c.ci_high, signed=True)}]"


def format_interval(low: float, high: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if max(abs(low), abs(high)) >= 100:
        return f"{low:{sign}.0f}, {high:{sign}.0f}"
    for spec in (".2f", ".3f", ".3g"):
        ends = f"{low:{sign}{spec}}", f"{high:{sign}{spec}}"
        if ends[0] != ends[1]:
            break
    return ", ".join(ends)


def format_bracket(low: float | None, high: float | None, signed: bool = False) -> str:
    """'[0.87, 0.95]', or '' where the interval is undefined."""
    return "" if low is None or high is None else f"[{format_interval(low, high, signed)}]"


def format_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3g}"


def adjusted_p(c: Comparison) -> float:
    """The p a significance mark reads: Benjamini–Hochberg adjusted over the run (raw in files before 1.4)."""
    return c.p_adjusted if c.p_adjusted is not None else c.p_value


def format_adjusted_p(c: Comparison) -> str:
    return format_p(c.p_adjusted) if c.p_adjusted is not None else MISSING


def format_number(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


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


def format_with_interval(value: float, low: float | None, high: float | None, signed: bool = False) -> str:
    text = f"{value:+.3f}" if signed else format_number(value)
    if low is None or high is None:
        return text
    return f"{text} [{low:+.2f}, {high:+.2f}]" if signed else f"{text} [{low:.2f}, {high:.2f}]"


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
            [task, metric + ARROWS[higher], *(format_estimate(found.get((task, metric, m))) for m in models)]
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
                c.metric + ARROWS[c.higher_is_better],
                f"{c.model} − {c.baseline}",
                format_delta(c),
                format_p(c.p_value),
                format_adjusted_p(c),
                str(c.flips.wrong_to_right) if c.flips is not None else MISSING,
                str(c.flips.right_to_wrong) if c.flips is not None else MISSING,
                str(c.n),
                named or MISSING,
            ]
        )
    header = ["task", "metric", "models", "Δ", "p", "p (BH)", "gained", "lost", "documents", "lost documents"]
    paired = Table(header, rows, align="lll" + "r" * 6 + "l") if rows else None
    return CapabilityView(note, tasks, scores, paired)
