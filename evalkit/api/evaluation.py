"""What evalkit's Python API hands back: a run's results with its per-pair scores, as frames and inline HTML.

An `Evaluation` is the in-memory twin of an output directory (`results.json` beside
`pairs/<dataset>.jsonl`): `evalkit.score`, `evalkit.compare_models`, `evalkit.run_suite` and
`evalkit.read_results` all return one, `save` writes it out (then `evalkit report`, `evalkit gate`
and `evalkit compare` read it like any run), and nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from evalkit.config.messages import suggestion
from evalkit.errors import EvalkitError
from evalkit.metrics.names import REGISTRY
from evalkit.results.estimates import Metric
from evalkit.results.files import claim_output, confined, write_jsonl, write_results
from evalkit.results.files import read_results as read_result_file
from evalkit.results.pairs import PairScore, pair_records
from evalkit.results.schema import DATASET_UNITS, RunResult

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, repr=False)
class Report:
    """The full HTML report of a run; a notebook shows it inline (sandboxed: its one script does not run)."""

    html: str
    """The self-contained document, exactly what `report.html` holds."""

    def __repr__(self) -> str:
        return f"Report({len(self.html):,} characters of HTML; shown inline in a notebook, or .save('report.html'))"

    def _repr_html_(self) -> str:
        from evalkit.report.html import framed

        return framed(self.html)

    def save(self, path: str | Path) -> Path:
        """Write the document to `path` (a `.html` file) and return the path."""
        from evalkit.results.files import atomic_write_text

        target = Path(path)
        atomic_write_text(target, self.html)
        return target


@dataclass(frozen=True, repr=False)
class Evaluation:
    """A run's results (`result`, as `results.json` holds them) and its per-pair scores (`pairs`, per dataset)."""

    result: RunResult
    pairs: Mapping[str, Sequence[PairScore]]
    """Per dataset, one row per pair and model (what `pairs/<dataset>.jsonl` holds); empty when not at hand."""

    def __repr__(self) -> str:
        datasets = ", ".join(f"{d.name} ({d.n_pairs} {DATASET_UNITS[d.format]})" for d in self.result.datasets)
        reference = f"; reference {self.result.reference}" if self.result.reference else ""
        return f"Evaluation({self.result.suite.name!r}: models {', '.join(self.models)} on {datasets}{reference})"

    @property
    def models(self) -> list[str]:
        return [m.name for m in self.result.models]

    def metric(self, metric: str, model: str | None = None, dataset: str | None = None, subset: str = "all") -> Metric:
        """One metric record (value, interval, n). `model` and `dataset` may be left out when the run holds just one
        (a run with a reference holds two models: name the one you mean)."""
        dataset = dataset or self._only("dataset", [d.name for d in self.result.datasets])
        model = model or self._only("model", self.models)
        found = self.result.metric(dataset, model, metric, subset)
        if found is None:
            self._explain_missing(metric, model, dataset, subset)
        return found

    def _explain_missing(self, metric: str, model: str, dataset: str, subset: str) -> NoReturn:
        """Raise the one-line error that says which of the four names is wrong, with a did-you-mean."""
        for kind, name, names in (
            ("model", model, self.models),
            ("dataset", dataset, [d.name for d in self.result.datasets]),
        ):
            if name not in names:
                raise EvalkitError(f"{kind} {name!r}: not in this run{suggestion(name, names)}; {kind}s: {names}")
        computed = sorted({m.metric for m in self.result.metrics if m.model == model and m.dataset == dataset})
        check_metric(metric, computed)  # a capability task's metrics are outside the registry: computed ones count
        subsets = sorted({m.subset for m in self.result.metrics if m.dataset == dataset})
        if subset not in subsets:
            raise EvalkitError(
                f"subset {subset!r}: not in {dataset!r}{suggestion(subset, subsets)}; subsets: {subsets}"
            )
        raise EvalkitError(f"metric {metric!r}: not computed for model {model!r} on {dataset!r}; computed: {computed}")

    def value(self, metric: str, model: str | None = None, dataset: str | None = None, subset: str = "all") -> float:
        """The value of one metric (see `metric`)."""
        return self.metric(metric, model, dataset, subset).value

    def metrics_frame(self) -> pd.DataFrame:
        """One row per (dataset, subset, model, metric): value, ci_low, ci_high, n, direction, interval method."""
        from evalkit.api.frames import metrics_frame

        return metrics_frame(self.result)

    def to_pandas(self) -> pd.DataFrame:
        """The metrics frame (`metrics_frame`)."""
        return self.metrics_frame()

    def comparisons_frame(self) -> pd.DataFrame:
        """One row per (dataset, subset, model, baseline, metric): paired Δ, its interval, test, p and flips."""
        from evalkit.api.frames import comparisons_frame

        return comparisons_frame(self.result)

    def pairs_frame(self) -> pd.DataFrame:
        """One row per (dataset, pair, model): log-probs, token counts, reference log-probs, rewards, margin."""
        from evalkit.api.frames import pairs_frame

        return pairs_frame(self.pairs, self.result.scoring.beta)

    def gate_frame(self) -> pd.DataFrame:
        """One row per gate rule (empty when no gate ran)."""
        from evalkit.api.frames import gate_frame

        return gate_frame(self.result)

    def samples_frame(self) -> pd.DataFrame:
        """One row per generation sample, a column per judge (empty when the run generated nothing)."""
        from evalkit.api.frames import samples_frame

        return samples_frame(self.result)

    def _repr_html_(self) -> str:
        from evalkit.report.html import render_inline

        return render_inline(self.result)

    def report(self) -> Report:
        """The full HTML report (charts, flipped pairs, audit, provenance); shown inline when it is a cell's value."""
        from evalkit.report.html import render_html

        return Report(render_html(self.result, self.pairs))

    def save(self, out_dir: str | Path, *, reports: bool = True, replace: bool = False) -> list[Path]:
        """Write `results.json`, the per-pair files and (with `reports`) `report.md` and `report.html` into
        `out_dir`, as `evalkit bench` does; returns the paths written. A directory that holds another run's outputs
        is refused (a report never mixes two runs) unless `replace` says it is yours to overwrite."""
        from evalkit.report.document import write_reports

        out = Path(out_dir)
        where = {
            info.name: confined(out, info.pairs_file, f"datasets.{info.name}.pairs_file")
            for info in self.result.datasets
            if info.name in self.pairs
        }
        # after every path is known to stay inside it: nothing written yet
        claim_output(out, self.result, "out_dir", replace=replace)
        write_results(self.result, out / "results.json")
        written = [out / "results.json"]
        for name, path in where.items():
            write_jsonl(pair_records(self.pairs[name], self.result.scoring.beta), path)
            written.append(path)
        return written + (write_reports(self.result, out) if reports else [])

    @staticmethod
    def _only(kind: str, names: list[str]) -> str:
        if len(names) != 1:
            choices = ", ".join(repr(name) for name in names)
            raise EvalkitError(f"{kind}: this run holds {len(names)} ({choices}); pass {kind}= the one you mean")
        return names[0]


def check_metric(name: str, also: Sequence[str] = ()) -> None:
    """Raise a one-line error with a did-you-mean when `name` is neither in the metric registry nor in `also`."""
    if name in REGISTRY or name in also:
        return
    known = [*REGISTRY, *(m for m in also if m not in REGISTRY)]
    raise EvalkitError(f"metric {name!r}: no such metric{suggestion(name, known)}; metrics are {known}")


def read_results(path: str | Path) -> Evaluation:
    """A `results.json` (or the directory holding it) with the per-pair files beside it, as an `Evaluation`."""
    from evalkit.report.views import read_pairs

    target = Path(path)
    if target.is_dir():
        target = target / "results.json"
    result = read_result_file(target)
    return Evaluation(result, read_pairs(result, target.parent))
