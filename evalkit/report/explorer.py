"""The pair explorer's data: every scored pair of each dataset with its text and each model's margin.

It travels inside report.html as one JSON block (`<script type="application/json">`, which nothing
executes) that the page's own script (`templates/explorer.js`, allowed by its hash) filters, sorts and
pages; 50 rows are in the document at a time, so 10,000 pairs stay quick. Rows are arrays, not objects,
to keep the file small: `[id, subset index, Δlength, prompt, chosen, rejected, margin per model…]`,
where a margin is the policy's own log π(chosen) − log π(rejected) (every model has it, the reference
too) and Δlength = chosen − rejected completion tokens under the anchor's tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources

from markupsafe import Markup

from evalkit.metrics.names import ALL_SUBSETS
from evalkit.report.jinja import clip
from evalkit.results.pairs import PairScore
from evalkit.results.schema import RunResult
from evalkit.results.texts import ShownText

TEXT_LIMIT = 2000
"""Characters of one prompt or answer the explorer carries; longer texts are cut with a note."""

SCRIPT = resources.files("evalkit.report").joinpath("templates/explorer.js").read_text(encoding="utf-8")


def explorer_data(
    result: RunResult,
    pairs: Mapping[str, Sequence[PairScore]],
    texts: Mapping[str, Mapping[str, ShownText]],
    anchors: Mapping[str, str],
) -> dict[str, object] | None:
    """The explorer's JSON of every dataset with per-pair scores; None when there are none."""
    datasets = []
    for d in result.datasets:
        rows = pairs.get(d.name)
        if not rows or d.format == "best_of_n":  # completions scored two by two are not preference pairs
            continue
        models = list(dict.fromkeys(p.model for p in rows))
        anchor = anchors.get(d.name, models[0])
        column_of = {model: i for i, model in enumerate(models)}
        anchor_index = column_of.get(anchor, 0)
        margins: dict[str, list[float | None]] = {}
        first: dict[str, PairScore] = {}
        for p in rows:
            column = margins.setdefault(p.id, [None] * len(models))
            column[column_of[p.model]] = round(p.own_margin, 4)
            if p.model == models[anchor_index] or p.id not in first:
                first[p.id] = p
        known = texts.get(d.name, {})
        subsets = sorted({p.subset for p in first.values()} - {ALL_SUBSETS}) or [ALL_SUBSETS]
        index = {s: i for i, s in enumerate(subsets)}
        table = []
        for pair_id in sorted(first):
            p, text = first[pair_id], known.get(pair_id)
            words = [clip(t, TEXT_LIMIT) for t in (text.prompt, text.chosen, text.rejected)] if text else ["", "", ""]
            length = p.n_tokens_chosen - p.n_tokens_rejected
            table.append([pair_id, index.get(p.subset, 0), length, *words, *margins[pair_id]])
        datasets.append(
            {
                "name": d.name,
                "models": models,
                "anchor": anchor_index,
                "subsets": subsets,
                "texts": bool(known),
                "rows": table,
            }
        )
    return {"datasets": datasets} if datasets else None


def json_block(data: object) -> Markup:
    """`data` as JSON that cannot end its `<script>` block: every `<` written as `\\u003c` (still valid JSON)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
