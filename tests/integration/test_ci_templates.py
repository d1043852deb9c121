"""The GitHub Actions templates of docs/ci/ (docs/how-to/ci.md) in a repository that is not evalkit: their
pins and permissions as written, and their shell steps run in order in a scratch repository, as GitHub's
runner would run them (see `Job`)."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import junitparser
import pytest
import xmlschema
import yaml

import evalkit
from evalkit.results.files import read_results

SCHEMAS = Path(__file__).parents[1] / "schemas"

WORKFLOWS = Path(__file__).parents[2] / "docs" / "ci"
SOURCE_ROOT = Path(evalkit.__file__).parents[1]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
SUITE = """\
version: 1
name: mine
output_dir: reports/mine
datasets:
  - name: prefs
    path: data/pairs.jsonl
models:
  - name: base
    path: models/base
  - name: tuned
    path: models/tuned
reference: base
gate:
  min_pairs: 2
  rules:
    - name: scored every pair
      kind: absolute
      model: tuned
      metric: preference/accuracy
      at_least: 0.0
      judge_on: value
    - name: no worse than the last release
      kind: non_inferiority
      model: tuned
      metric: preference/accuracy
      margin: 0.05
"""
FAKE_GH = '''\
"""`gh` as the workflows call it, offline: records each call (with the files it sends) and answers from $FAKE_GH."""
import json, os, shutil, sys
from pathlib import Path
state = Path(os.environ["FAKE_GH"])
argv = sys.argv[1:]
sent = {a.split("=@", 1)[0]: Path(a.split("=@", 1)[1]).read_text() for a in argv if "=@" in a}
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps({"argv": argv, "sent": sent}) + "\\n")
if argv[:2] == ["run", "download"]:
    shutil.copytree(state / "artifact", argv[argv.index("--dir") + 1])
elif argv[:2] == ["pr", "view"]:
    print(json.loads((state / "heads.json").read_text()).get(argv[2], ""))
elif argv[:2] == ["api", "--paginate"]:
    print((state / "comment-ids").read_text(), end="")
'''


@dataclass
class Job:
    """One job of a workflow run here as GitHub's runner runs it on ubuntu-latest: each `run:` step a
    `bash --noprofile --norc -eo pipefail` script with the workflow's, the job's and the step's `env:`,
    `${{ }}` expressions taken from `context` (an unknown one fails the test), each step's $GITHUB_OUTPUT read
    back as `steps.<id>.outputs`, and after a failed step only `if: always()` steps. `uses:` steps are not run
    (checkout is the scratch repository's state; caches and artifacts are GitHub's), nor are the steps named
    in `skip` (the install step: evalkit is the one this test imports, on PATH as `evalkit`)."""

    workflow: dict[str, Any]
    name: str
    root: Path
    context: dict[str, str]
    variables: dict[str, str] = field(default_factory=dict)
    """Set for every step, as the runner's own environment would be."""
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    def expand(self, text: str, env: dict[str, str] | None = None) -> str:
        def value(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("steps."):
                _, step, _, key = expression.split(".")
                return self.outputs.get(step, {}).get(key, "")
            if expression.startswith("env."):
                return (env or {})[expression.removeprefix("env.")]
            return self.context[expression]

        return EXPRESSION.sub(value, str(text))

    def environment(self, step: dict[str, Any], output: Path) -> dict[str, str]:
        env = {
            "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}",
            "HOME": os.environ["HOME"],
            "PYTHONPATH": str(SOURCE_ROOT),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(self.root / "step-summary.md"),
            "GITHUB_EVENT_NAME": self.context["github.event_name"],
            "GITHUB_WORKSPACE": self.context["github.workspace"],
            "RUNNER_TEMP": str(self.root / "runner-temp"),
            "RUNNER_OS": "Linux",
        } | self.variables
        job = self.workflow["jobs"][self.name]
        for scope in (self.workflow.get("env", {}), job.get("env", {}), step.get("env", {})):
            env |= {key: self.expand(value, env) for key, value in scope.items()}
        return env

    def runs(self, condition: str | None, failed: bool) -> bool:
        """The two conditions the templates use, no more: `always()` and `github.event_name == '...'`."""
        if condition is None:
            return not failed
        terms = [term.strip() for term in condition.split("&&")]
        always = "always()" in terms
        events = [re.fullmatch(r"github\.event_name == '(\w+)'", t) for t in terms if t != "always()"]
        assert all(events), f"the test does not know the condition {condition!r}"
        return (always or not failed) and all(m[1] == self.context["github.event_name"] for m in events if m)

    def run(self, cwd: Path, skip: tuple[str, ...] = ()) -> int:
        """The job's exit status: that of its first failed step, else 0."""
        (self.root / "runner-temp").mkdir(parents=True, exist_ok=True)
        status = 0
        for index, step in enumerate(self.workflow["jobs"][self.name]["steps"]):
            if "uses" in step or step["name"] in skip or not self.runs(step.get("if"), status != 0):
                continue
            output = self.root / f"output-{self.name}-{index}"
            output.write_text("")
            script = self.root / f"step-{self.name}-{index}.sh"
            script.write_text(step["run"])
            env = self.environment(step, output)
            done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd, env=env)
            assert "<<" not in output.read_text()  # key=value lines only, which is all this reads back
            if "id" in step:
                self.outputs[step["id"]] = dict(line.split("=", 1) for line in output.read_text().splitlines())
            status = status or done.returncode
        return status

    def job_outputs(self) -> dict[str, str]:
        return {key: self.expand(value) for key, value in self.workflow["jobs"][self.name]["outputs"].items()}


def outcomes(suite: junitparser.TestSuite) -> dict[str, str]:
    return {case.name: type(case.result[0]).__name__ if case.result else "passed" for case in suite}


def workflow(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    loaded["on"] = loaded.pop(True)  # YAML 1.1 reads the key `on` as true
    return dict(loaded)


def git(repo: Path, *args: str) -> str:
    who = ["-c", "user.name=ci", "-c", "user.email=ci@example.com", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *who, *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def user_repository(tmp_path: Path, family_checkpoints: Callable[[str, list[str]], Path]) -> Path:
    """A repository of someone else's: two tiny checkpoints under models/, 6 pairs under data/, a suite whose
    gate holds `tuned` to the last release, and evals/candidate naming the checkpoint to judge."""
    made = family_checkpoints("llama3", ["base", "tuned"])
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    for name in ("base", "tuned"):
        shutil.move(made / name, repo / "models" / name)
    (repo / "data").mkdir()
    shutil.move(made / "pairs.jsonl", repo / "data" / "pairs.jsonl")
    (repo / "evals").mkdir()
    (repo / "evals" / "suite.yaml").write_text(SUITE)
    (repo / "evals" / "candidate").write_text("# the checkpoint this branch proposes\nmodels/tuned\n")
    git(repo, "init", "-q")
    git(repo, "add", "models", "data", "evals")
    git(repo, "commit", "-qm", "models, data and suite")
    return repo


def test_the_templates_pin_evalkit_and_every_action() -> None:
    gate, publish = workflow("evalkit-gate.yml"), workflow("evalkit-publish.yml")
    version = evalkit.__version__  # pyproject.toml reads it from there (dynamic)
    for template in (gate, publish):
        assert template["env"]["EVALKIT_VERSION"] == version
        steps = [s for job in template["jobs"].values() for s in job["steps"]]
        assert all(PINNED.match(s["uses"]) for s in steps if "uses" in s)
        (install,) = [s for s in steps if s.get("name") == "Install evalkit"]
        assert '"evalkit-dpo' in install["run"] and '==${EVALKIT_VERSION}"' in install["run"]
    # Only what the pull request can change triggers it; the models' cache follows the models, not the run.
    assert "evals/**" in gate["on"]["pull_request"]["paths"]
    keys = [s["with"]["key"] for s in gate["jobs"]["evaluate"]["steps"] if "actions/cache@" in s.get("uses", "")]
    assert keys[1] == "evalkit-models-${{ runner.os }}-${{ steps.candidate.outputs.models-key }}"
    assert not any("run_id" in key for key in keys)
    # The job that runs the pull request's code reads; only the job that runs nothing but gh writes.
    assert gate["permissions"] == {"contents": "read"} and publish["permissions"] == {}
    assert publish["jobs"]["judge"]["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "read"}
    assert publish["jobs"]["publish"]["permissions"] == {"checks": "write", "pull-requests": "write"}
    assert [list(s) for s in publish["jobs"]["publish"]["steps"]] == [["name", "env", "run"]]


@pytest.mark.slow
def test_the_templates_in_a_repository_that_is_not_evalkit(user_repository: Path, tmp_path: Path) -> None:
    """The shell steps of docs/ci/evalkit-gate.yml and evalkit-publish.yml, run in order in a scratch repository
    (see `Job`): a manual run records the first baseline, a pull request proposes a new candidate and deletes
    the baseline, and the publishing workflow judges its artifact again with the default branch's rules. The
    install steps are replaced by the evalkit under test; `gh` by a recording stand-in (GitHub's API is not
    reachable here: what gh does with its arguments is not tested)."""
    repo = user_repository
    bin_dir = tmp_path / "runner" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "evalkit").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m evalkit "$@"\n')
    (bin_dir / "gh").write_text(f"#!{sys.executable}\n{FAKE_GH}")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    context = {
        "github.workspace": str(repo),
        "github.server_url": "https://github.com",
        "github.repository": "acme/models",
        "github.run_id": "7001",
        "runner.os": "Linux",
        "inputs.candidate": "",
        "secrets.HF_TOKEN": "",
    }

    def gate(event: str, **more: str) -> tuple[int, Job]:
        job = Job(
            workflow("evalkit-gate.yml"), "evaluate", tmp_path / "runner", context | {"github.event_name": event} | more
        )
        (job.root / "step-summary.md").write_text("")
        shutil.rmtree(repo / "evalkit-report", ignore_errors=True)
        return job.run(repo, skip=("Install evalkit",)), job

    # 1. A manual run on main with no baseline yet: the candidate from evals/candidate, the rule that needs a
    # baseline skipped, exit 0. Its results become the baseline, committed on main.
    code, first = gate("workflow_dispatch")
    assert code == 0
    report = repo / "evalkit-report"
    (suite,) = junitparser.JUnitXml.fromfile(str(report / "junit.xml"))
    assert outcomes(suite) == {"scored every pair": "passed", "no worse than the last release": "Skipped"}
    assert "PASSED: 1 of 1 judged rules; 1 skipped (no baseline yet)" in (report / "summary.md").read_text()
    [candidate] = [m for m in read_results(report / "results.json").models if m.role == "candidate"]
    assert candidate.path == "models/tuned"
    summary = (first.root / "step-summary.md").read_text()
    assert "Candidate: `models/tuned` (from evals/candidate)" in summary
    assert "Baseline: none recorded in `evals/baseline` yet" in summary
    assert not (report / "pull-request.txt").exists()
    (repo / "evals" / "baseline").mkdir()
    shutil.copy(report / "results.json", repo / "evals" / "baseline" / "results.json")
    shutil.copytree(report / "pairs", repo / "evals" / "baseline" / "pairs")
    git(repo, "add", "evals/baseline")
    git(repo, "commit", "-qm", "baseline")
    main_sha = git(repo, "rev-parse", "--short", "HEAD")

    # 2. A pull request: a new candidate (the same weights as the release, so Δ = 0 exactly) that also deletes
    # the baseline. Checked out as GitHub does, the merge into main: the baseline still comes from main (HEAD^1),
    # and with 6 pairs a difference of 0 cannot show non-inferiority at margin 0.05: exit 1.
    git(repo, "checkout", "-qb", "next")
    shutil.copytree(repo / "models" / "tuned", repo / "models" / "next")
    (repo / "evals" / "candidate").write_text("models/next\n")
    git(repo, "rm", "-rq", "evals/baseline")
    git(repo, "add", "models/next", "evals/candidate")
    git(repo, "commit", "-qm", "propose next; drop the baseline")
    head_sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "next")
    code, pull = gate("pull_request", **{"github.event.pull_request.number": "7"})
    assert code == 1
    junit = report / "junit.xml"
    xmlschema.XMLSchema(SCHEMAS / "jenkins-junit-10.xsd").validate(junit)
    (suite,) = junitparser.JUnitXml.fromfile(str(junit))
    assert outcomes(suite) == {"scored every pair": "passed", "no worse than the last release": "Failure"}
    result = read_results(report / "results.json")
    assert [m.path for m in result.models if m.role == "candidate"] == ["models/next"]
    (held,) = [v for v in result.gate or [] if v.kind == "non_inferiority"]
    assert (held.status, held.value, held.n) == ("failed", 0, 6)
    summary = (pull.root / "step-summary.md").read_text()
    assert "Candidate: `models/next` (from evals/candidate)" in summary
    assert f"Baseline: `evals/baseline` at {main_sha}" in summary
    assert (report / "summary.md").read_text().strip() in summary
    assert (report / "pull-request.txt").read_text() == "7\n"
    # The models' cache key follows the candidate and the suite, the same on a rerun.
    assert first.outputs["candidate"]["models-key"] != pull.outputs["candidate"]["models-key"]
    assert (
        gate("pull_request", **{"github.event.pull_request.number": "7"})[1].outputs["candidate"]
        == pull.outputs["candidate"]
    )

    # 3. The publishing workflow, from main, on that run's artifact, whose summary.md and junit.xml the pull
    # request's run has forged. The number 7 names the pull request whose head is the run's commit.
    state = tmp_path / "gh"
    shutil.copytree(report, state / "artifact")
    (state / "artifact" / "summary.md").write_text("## evalkit gate: PASSED: all 2 rules\n")
    (state / "artifact" / "junit.xml").write_text('<testsuite name="forged" tests="0"/>\n')
    (state / "heads.json").write_text(json.dumps({"7": head_sha}))
    (state / "comment-ids").write_text("4242\n")
    git(repo, "checkout", "-q", "main")
    shutil.rmtree(repo / "evalkit-report")
    run_url = "https://github.com/acme/models/actions/runs/7001"
    context |= {
        "github.event_name": "workflow_run",
        "github.token": "t0ken",
        "github.event.workflow_run.id": "7001",
        "github.event.workflow_run.head_sha": head_sha,
        "github.event.workflow_run.html_url": run_url,
        "github.event.workflow_run.head_repository.full_name != github.repository": "true",
    }
    stand_in = {"FAKE_GH": str(state)}
    judge = Job(workflow("evalkit-publish.yml"), "judge", tmp_path / "runner", context, stand_in)
    assert judge.run(repo, skip=("Install evalkit",)) == 0
    outputs = judge.job_outputs()
    assert outputs["conclusion"] == "failure" and outputs["pull-request"] == "7"
    comment = base64.b64decode(outputs["summary"]).decode()
    assert comment.startswith("<!-- evalkit-gate -->\n> **Advisory.** This pull request comes from a fork")
    assert "FAILED" in comment and "forged" not in comment and "PASSED: all" not in comment
    assert f"at `{main_sha}`" in comment and run_url in comment
    needs = {f"needs.judge.outputs.{key}": value for key, value in outputs.items()}
    publish = Job(workflow("evalkit-publish.yml"), "publish", tmp_path / "runner", context | needs, stand_in)
    assert publish.run(tmp_path / "runner") == 0
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    assert [c["argv"][:2] for c in calls] == [
        ["run", "download"],
        ["pr", "view"],
        ["api", "repos/acme/models/check-runs"],
        ["api", "--paginate"],
        ["api", "-X"],
    ]
    check, _, edit = calls[2:]
    assert "conclusion=failure" in check["argv"] and f"head_sha={head_sha}" in check["argv"]
    assert check["sent"]["output[summary]"] == comment
    assert edit["argv"][2:4] == ["PATCH", "repos/acme/models/issues/comments/4242"] and edit["sent"]["body"] == comment
