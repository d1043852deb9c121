"""Reports rendered from `results.json` alone: no model, no torch.

`render_markdown` gives a GitHub-flavoured summary fit for a PR comment or a CI step summary;
`summary_table` gives the same headline as a rich table for the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from rich.table import Table

from evalkit.results import Metric, RunResult, atomic_write_text

# (metric, column title) in the order a reviewer reads them.
COLUMNS = [
    ("preference/accuracy", "pref. acc"),
    ("rewards/accuracies", "reward acc"),
    ("rewards/ties", "ties"),
    ("rewards/margins", "margin"),
    ("loss", "DPO loss"),
    ("logps/chosen", "logp chosen"),
    ("logps/rejected", "logp rejected"),
]
ARROWS = {True: " ↑", False: " ↓", None: ""}
MISSING = "—"

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("evalkit", "templates"),
    autoescape=False,  # markdown; cells are escaped by `_md` below
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Row:
    model: str
    cells: list[str]
    subset: str = ""


@dataclass(frozen=True)
class HeadlineTable:
    dataset: str
    n_pairs: int
    header: list[str]
    rows: list[Row]
    subsets: list[Row]


def render_markdown(result: RunResult) -> str:
    """The markdown report of `result`."""
    env = result.environment
    packages = ", ".join(f"{name} {version}" for name, version in env.packages.items() if name != "evalkit")
    training = None
    if result.training is not None:
        t = result.training
        training = {
            "model": _md(t.model),
            "steps": t.steps,
            "seconds": f"{t.seconds:.0f}s",
            "final_loss": _number(t.final_loss),
            "final_reward_accuracy": _number(t.final_reward_accuracy),
            "log_history": _md(t.log_history),
        }
    reference = f"reference: `{_md(result.reference)}`" if result.reference else "no reference (policy metrics only)"
    return _environment.get_template("report.md.j2").render(
        suite_name=_md(result.suite.name),
        description=result.suite.description.strip(),
        reference_line=reference,
        beta=result.scoring.beta,
        max_length=result.scoring.max_length,
        created_at=result.created_at,
        duration=f"{result.duration_s:.0f}s",
        headline=headline_tables(result),
        training=training,
        audit=[
            {
                "dataset": _md(a.dataset),
                "model": _md(a.model),
                "n_pairs": a.n_pairs,
                "n_scored": a.n_scored,
                "truncated": a.truncated,
                "prompt_too_long": len(a.prompt_too_long),
                "prompt_not_prefix": a.prompt_not_prefix,
            }
            for a in result.audit
        ],
        models=[m.model_copy(update={"name": _md(m.name)}) for m in result.models],
        datasets=[d.model_copy(update={"name": _md(d.name)}) for d in result.datasets],
        evalkit_version=result.evalkit_version,
        packages=packages,
        device=env.device,
        git_sha=env.git_sha,
        schema_version=result.schema_version,
    )


def headline_tables(result: RunResult) -> list[HeadlineTable]:
    """One table per dataset: models as rows, the metrics that were computed as columns."""
    tables = []
    for dataset in result.datasets:
        metrics = [m for m in result.metrics if m.dataset == dataset.name]
        present = {m.metric for m in metrics}
        columns = [(key, title) for key, title in COLUMNS if key in present]
        direction = {m.metric: m.higher_is_better for m in metrics}
        header = [title + ARROWS[direction[key]] for key, title in columns] + ["n"]
        models = list(dict.fromkeys(m.model for m in metrics))
        subsets = sorted({m.subset for m in metrics} - {"all"})
        tables.append(
            HeadlineTable(
                dataset=_md(dataset.name),
                n_pairs=dataset.n_pairs,
                header=header,
                rows=[Row(_md(model), _cells(metrics, model, "all", columns)) for model in models],
                subsets=[
                    Row(_md(model), _cells(metrics, model, subset, columns), _md(subset))
                    for subset in subsets
                    for model in models
                ],
            )
        )
    return tables


def _cells(metrics: list[Metric], model: str, subset: str, columns: list[tuple[str, str]]) -> list[str]:
    found = {m.metric: m for m in metrics if m.model == model and m.subset == subset}
    cells = [_number(found[key].value) if key in found else MISSING for key, _ in columns]
    return [*cells, str(next(iter(found.values())).n) if found else MISSING]


def _number(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def _md(text: str) -> str:
    """Escape text for a markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


TERMINAL_COLUMNS = ["preference/accuracy", "rewards/accuracies", "rewards/margins", "loss"]


def summary_table(result: RunResult) -> Table:
    """The headline numbers of every dataset and model as a rich table for the terminal."""
    table = Table(title=f"evalkit · {result.suite.name}", title_justify="left")
    table.add_column("dataset")
    table.add_column("model")
    titles = dict(COLUMNS)
    direction = {m.metric: m.higher_is_better for m in result.metrics}
    for key in TERMINAL_COLUMNS:
        table.add_column(titles[key] + ARROWS[direction.get(key)], justify="right")
    table.add_column("n", justify="right")
    for dataset in result.datasets:
        for model in dict.fromkeys(m.model for m in result.metrics if m.dataset == dataset.name):
            values = [result.value(dataset.name, model, key) for key in TERMINAL_COLUMNS]
            n = next(m.n for m in result.metrics if (m.dataset, m.model, m.subset) == (dataset.name, model, "all"))
            table.add_row(dataset.name, model, *(_number(v) for v in values), str(n))
    return table


def write_reports(result: RunResult, out_dir: Path) -> list[Path]:
    """Render every report of `result` into `out_dir`; returns the files written."""
    path = out_dir / "report.md"
    atomic_write_text(path, render_markdown(result))
    return [path]
