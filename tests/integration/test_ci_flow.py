"""The documented CI flow on the full default suite, as a user types it (docs/how-to/ci.md):
`make bench` before any baseline exists, `make baseline`, then `make bench MODEL=...` for a better, a
worse and a broken candidate. Every run writes results, reports, a schema-valid junit.xml, summary.md
and the step summary; the exit code says which of the four outcomes it was."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import junitparser
import pytest
import xmlschema

from evalkit.cli import main
from evalkit.config.suite import DEFAULT_SUITE
from evalkit.results.files import read_results
from evalkit.results.schema import RunResult

SCHEMAS = Path(__file__).parents[1] / "schemas"
RUN_PAGE = "https://ci.example/acme/models/actions/runs/7"


def ant_schema() -> xmlschema.XMLSchema:
    """The Ant schema with its later revision's `<skipped>` (see tests/schemas/README.md)."""
    text = (SCHEMAS / "ant-junit.xsd").read_text(encoding="utf-8")
    text = text.replace('<xs:choice minOccurs="0">', '<xs:choice minOccurs="0"><xs:element name="skipped"/>')
    tests = '<xs:attribute name="tests" type="xs:int" use="required">'
    return xmlschema.XMLSchema(
        text.replace(tests, '<xs:attribute name="skipped" type="xs:int" use="optional"/>' + tests)
    )


class Project:
    """A user's checkout: the default suite, its world and outputs under one directory, run from there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        text = DEFAULT_SUITE.read_text().replace(".evalkit/world", str(root / "world"))
        self.suite = root / "suites" / "default.yaml"
        self.suite.parent.mkdir(parents=True)
        self.suite.write_text(text.replace("reports/default", str(root / "reports" / "default")))
        self.baseline = root / "suites" / "baselines" / "default"
        self.step_summary = root / "step-summary.md"

    def bench(self, *args: str) -> tuple[int, Path]:
        """`make bench [MODEL=...]`: the recorded baseline is passed when there is one."""
        baseline = ["--baseline", str(self.baseline / "results.json")] if self.baseline.exists() else []
        self.step_summary.write_text("")
        code = main(["bench", str(self.suite), *args, *baseline])
        return code, self.root / "reports" / ("default-candidate" if "--model" in args else "default")

    def record_baseline(self) -> None:
        """`make baseline`: the last run's results and per-pair scores, copied under suites/baselines/."""
        out = self.root / "reports" / "default"
        self.baseline.mkdir(parents=True)
        shutil.copy(out / "results.json", self.baseline / "results.json")
        shutil.copytree(out / "pairs", self.baseline / "pairs")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("EVALKIT_REPORT_URL", RUN_PAGE)
        project = Project(root)
        patch.setenv("GITHUB_STEP_SUMMARY", str(project.step_summary))
        yield project


def outputs(out: Path, project: Project) -> tuple[RunResult, junitparser.TestSuite, str]:
    """The run's results, its junit.xml (checked against both schemas) and its summary (also in the step summary)."""
    xmlschema.XMLSchema(SCHEMAS / "jenkins-junit-10.xsd").validate(out / "junit.xml")
    ant_schema().validate(out / "junit.xml")
    (suite,) = junitparser.JUnitXml.fromfile(str(out / "junit.xml"))
    summary = (out / "summary.md").read_text()
    assert project.step_summary.read_text().strip() == summary.strip()
    assert f"Full report: {RUN_PAGE}" in summary and f"[report.html]({RUN_PAGE})" in (out / "report.md").read_text()
    return read_results(out / "results.json"), suite, summary


def outcomes(suite: junitparser.TestSuite) -> dict[str, str]:
    return {case.name: type(case.result[0]).__name__ if case.result else "passed" for case in suite}


@pytest.mark.slow
def test_the_documented_ci_flow(project: Project) -> None:
    # 1. The first run: the rule that needs a baseline is skipped, never passed; the rest decide.
    code, out = project.bench()
    assert code == 0
    first, junit, summary = outputs(out, project)
    assert [v.status for v in first.gate or []] == ["passed"] * 5 + ["skipped"]
    assert outcomes(junit)["no worse than the last release"] == "Skipped"
    assert (junit.tests, junit.failures, junit.errors, junit.skipped) == (6, 0, 0, 1)
    assert "PASSED: 5 of 5 judged rules; 1 skipped (no baseline yet)" in summary
    assert "| ⏭️ skipped | no worse than the last release |" in summary
    assert [m.role for m in first.models] == ["reference", "candidate"]
    # What the walking skeleton promises: the base has no preference, DPO learns it.
    assert 0.35 <= (first.value("tinyworld", "base", "preference/accuracy") or 0) <= 0.65
    assert (first.value("tinyworld", "aligned", "rewards/accuracies") or 0) >= 0.8
    (delta,) = [
        c
        for c in first.comparisons
        if (c.model, c.baseline, c.metric, c.subset) == ("aligned", "base", "preference/accuracy", "all")
    ]
    assert delta.ci_low is not None and delta.ci_low > 0 and delta.p_value is not None and delta.p_value < 0.001
    assert first.generation is not None
    (win,) = [w for w in first.generation.win_rates if w.model == "aligned"]
    assert win.delta_ci_low is not None and win.delta_ci_low > 0

    project.record_baseline()

    # 2. A candidate as good as the release (the same adapter, named `candidate` now): every rule passes,
    # the non-inferiority rule against the baseline's `aligned`, found by role.
    code, out = project.bench("--model", str(project.root / "reports" / "default" / "models" / "aligned"))
    assert code == 0
    better, junit, summary = outputs(out, project)
    assert [m.name for m in better.models] == ["reference", "candidate"]
    assert [v.status for v in better.gate or []] == ["passed"] * 6
    (held,) = [v for v in better.gate or [] if v.kind == "non_inferiority"]
    assert held.baseline == "aligned (baseline)" and held.n == 225 and held.value == 0
    assert "PASSED: all 6 rules" in summary and outcomes(junit) == dict.fromkeys(outcomes(junit), "passed")
    assert code == main(["compare", str(project.baseline / "results.json"), str(out / "results.json")])
    compared = (out / "compare.md").read_text()
    assert (
        "Model candidate of the candidate run is compared with aligned of the baseline run (same fingerprint)."
        in compared
    )
    assert "| candidate ↔ aligned | pref. acc ↑ |" in compared

    # 3. A worse candidate (the untrained base): it fails against the last release, exit 1.
    code, out = project.bench("--model", str(project.root / "world" / "base"))
    assert code == 1
    worse, junit, summary = outputs(out, project)
    (held,) = [v for v in worse.gate or [] if v.kind == "non_inferiority"]
    assert held.status == "failed" and held.value is not None and held.value < -0.2
    assert outcomes(junit)["no worse than the last release"] == "Failure"
    assert summary.startswith("## evalkit gate: default-candidate: FAILED:")

    # 4. A broken candidate run (its data cut to 10 pairs): the rules cannot be judged, exit 2, each an <error>.
    pairs = (project.root / "world" / "pairs" / "eval.jsonl").read_text().splitlines()[:10]
    cut = project.root / "cut.jsonl"
    cut.write_text("\n".join(pairs) + "\n")
    model = str(project.root / "reports" / "default" / "models" / "aligned")
    code, out = project.bench("--model", model, "--data", str(cut))
    assert code == 2
    broken, junit, summary = outputs(out, project)
    assert {v.status for v in broken.gate or []} == {"undecidable"}
    assert set(outcomes(junit).values()) == {"Error"} and junit.errors == len(broken.gate or [])
    assert "needs at least 30 pairs, has 10" in summary and summary.startswith(
        "## evalkit gate: default-candidate: UNDECIDABLE"
    )
    assert json.loads((out / "results.json").read_text())["gate"][0]["status"] == "undecidable"
