"""Gate rules on the golden results (aligned vs base on the tiny world) and on hand-made pairs.

Golden figures used below: aligned `rewards/accuracies` 203 of 225 = 0.9022, Wilson [0.8564, 0.9345],
exact one-sided 95% lower bound (Clopper–Pearson) 0.8633; aligned vs base `preference/accuracy`
Δ +0.444 [+0.366, +0.518] (Tango), one-sided p 3.5e-20; KL(aligned ‖ base) 2.836 [1.865, 3.807] over
32 prompts, skewness-corrected one-sided upper bound 3.864; mean generation length aligned 14.59
tokens, base 14.38 (+1.5%).
"""

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
import scipy.stats

from evalkit.cli import main
from evalkit.config.rules import GateSpec
from evalkit.gate.judge import evaluate_gate, exit_code
from evalkit.gate.junit import write_junit
from evalkit.gate.summary import publish, summary_markdown
from evalkit.results.files import read_results, write_results
from evalkit.results.schema import GateVerdict, RunResult

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"


def judge(
    *rules: dict[str, Any], baseline: RunResult | None = None, baseline_dir: Path | None = None
) -> list[GateVerdict]:
    spec = GateSpec.model_validate({"rules": list(rules)})
    return evaluate_gate(spec, read_results(GOLDEN), GOLDEN.parent, baseline, baseline_dir)


def absolute(**kwargs: Any) -> dict[str, Any]:
    return {"kind": "absolute", "model": "aligned", "metric": "rewards/accuracies", **kwargs}


def test_absolute_rules_are_exact_one_sided_tests() -> None:
    """H₀: accuracy ≤ 0.85 against 203 of 225: p = P(X ≥ 203 | 225, 0.85), the bound Clopper–Pearson's.
    The two tested rules are corrected together (Holm: the smaller p doubled); the rule judged on its
    value alone is no test and stays out of the family."""
    passed, failed, by_value = judge(
        absolute(at_least=0.85), absolute(at_least=0.88), absolute(at_least=0.88, judge_on="value")
    )
    assert passed.passed and passed.p_value == pytest.approx(scipy.stats.binom.sf(202, 225, 0.85))
    assert passed.bound == pytest.approx(scipy.stats.beta.ppf(0.05, 203, 23))
    assert passed.p_adjusted == pytest.approx(2 * passed.p_value)
    assert "one-sided 95% lower bound +0.8633 > +0.85" in passed.reason and passed.test is not None
    assert not failed.passed and "lower bound +0.8633 <= +0.88" in failed.reason
    assert by_value.passed and (by_value.value, by_value.n, by_value.threshold) == (
        pytest.approx(0.9022, abs=1e-4),
        225,
        0.88,
    )
    assert by_value.p_value is None and "not a test" in by_value.reason
    (at_most,) = judge({"kind": "absolute", "model": "aligned", "metric": "loss", "at_most": 0.2})
    assert not at_most.passed and "upper bound" in at_most.reason


def test_superiority_is_one_sided_and_reads_a_reversed_comparison_the_right_way() -> None:
    """The run compared aligned against base; asking whether base beats aligned turns Δ, its interval and
    the flips around, so the one-sided p of the reverse question is 1 − p (Tango's Z changes sign)."""
    better, worse = judge(
        {"kind": "superiority", "model": "aligned", "baseline": "base", "metric": "preference/accuracy"},
        {"kind": "superiority", "model": "base", "baseline": "aligned", "metric": "preference/accuracy"},
    )
    assert better.passed and better.p_value is not None and better.p_value < 1e-19
    assert better.value == pytest.approx(0.4444, abs=1e-4) and better.bound == pytest.approx(0.3792, abs=1e-4)
    assert not worse.passed and worse.p_value == pytest.approx(1 - better.p_value)
    assert worse.value == pytest.approx(-0.4444, abs=1e-4) and worse.ci_high is not None and worse.ci_high < 0


def test_drift_and_length_budgets() -> None:
    tight, loose, by_value = judge(
        {"kind": "drift_budget", "model": "aligned", "max_kl": 3},
        {"kind": "drift_budget", "model": "aligned", "max_kl": 10},
        {"kind": "drift_budget", "model": "aligned", "max_kl": 3, "judge_on": "value"},
    )
    assert (tight.passed, loose.passed, by_value.passed) == (False, True, True)
    assert tight.bound == pytest.approx(3.864, abs=1e-3) and "first 24 tokens" in tight.reason
    grows, shrinks = judge(
        {"kind": "length_budget", "model": "aligned", "max_growth": 0.25},
        {"kind": "length_budget", "model": "aligned", "max_growth": -0.1},
    )
    assert grows.passed and grows.value == pytest.approx(14.59375 / 14.375 - 1)
    assert not shrinks.passed and "vs 14.4 for base (this run)" in shrinks.reason


def test_a_rule_never_passes_on_too_few_pairs() -> None:
    """225 pairs against a minimum of 300: the rule fails and says what it needs, however clear the evidence."""
    (verdict,) = judge(absolute(at_least=0.5, min_pairs=300))
    assert not verdict.passed and verdict.reason.endswith("needs at least 300 pairs, has 225")
    (drift,) = judge({"kind": "drift_budget", "model": "aligned", "max_kl": 10, "min_pairs": 40})
    assert not drift.passed and drift.reason.endswith("needs at least 40 prompts, has 32")


def test_holm_can_be_switched_off() -> None:
    rules = [absolute(at_least=0.85), absolute(at_least=0.8)]
    spec = GateSpec.model_validate({"correction": "none", "rules": rules})
    uncorrected = evaluate_gate(spec, read_results(GOLDEN), GOLDEN.parent)
    corrected = judge(*rules)
    assert [v.p_adjusted for v in uncorrected] == [v.p_value for v in uncorrected]
    # Holm by hand: the smaller p (at_least 0.8) times 2, the larger (0.85) times 1, never below the one before.
    assert corrected[1].p_value is not None and corrected[0].p_value is not None
    assert corrected[1].p_value < corrected[0].p_value
    assert corrected[1].p_adjusted == pytest.approx(2 * corrected[1].p_value)
    assert corrected[0].p_adjusted == pytest.approx(max(corrected[0].p_value, 2 * corrected[1].p_value))


def test_results_without_recorded_methods_cannot_be_gated(tmp_path: Path) -> None:
    """A 1.3 file has intervals but not their methods: no test can be replayed, so it is bad input."""
    raw = json.loads(GOLDEN.read_text())
    raw["schema_version"] = "1.3"
    for record in raw["metrics"]:
        record.pop("method"), record.pop("se"), record.pop("df"), record.pop("n_effective"), record.pop("skewness")
    old = tmp_path / "results.json"
    old.write_text(json.dumps(raw))
    spec = GateSpec.model_validate({"rules": [absolute(at_least=0.5)]})
    (verdict,) = evaluate_gate(spec, read_results(old), tmp_path)
    assert verdict.status == "undecidable" and not verdict.passed
    assert "predate recorded interval methods (schema < 1.4)" in verdict.reason


def pairs_run(tmp_path: Path, name: str, right: list[int], model: str = "aligned") -> tuple[RunResult, Path]:
    """A copy of the golden run whose per-pair file holds model `aligned` right (1) or wrong (0) on q0..qn;
    with another `model` name, the run as `bench --model` writes it (`candidate`/`reference`, with roles)."""
    directory = tmp_path / name
    (directory / "pairs").mkdir(parents=True)
    rows = [
        {
            "id": f"q{i}",
            "subset": "all",
            "model": model,
            "logp_chosen": -1.0 if ok else -3.0,
            "logp_rejected": -2.0,
            "n_tokens_chosen": 2,
            "n_tokens_rejected": 2,
            "truncated": False,
            "ref_logp_chosen": -2.0,
            "ref_logp_rejected": -2.0,
        }
        for i, ok in enumerate(right)
    ]
    (directory / "pairs" / "tinyworld.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = read_results(GOLDEN)
    names = {"aligned": model, "base": "base" if model == "aligned" else "reference"}
    roles = {"aligned": "candidate", "base": "reference"}
    models = [m.model_copy(update={"name": names[m.name], "role": roles[m.name]}) for m in result.models]
    result = result.model_copy(update={"models": models, "reference": names["base"]})
    write_results(result, directory / "results.json")
    return result, directory


def test_non_inferiority_against_a_baseline_run(tmp_path: Path) -> None:
    """The baseline is right on q0..q7 of 8, the candidate on q0..q5: Δ reward accuracy = −2/8 = −0.25.
    H₀: Δ ≤ −0.1 stands (Tango's Z(−0.1) = (0 − 2 + 0.8)/… < 0); H₀: Δ ≤ −1.01 is impossible, so the loose
    margin passes. Both rules lower `min_pairs` to 2 for the 8 pairs; by default (30) neither passes."""
    before, before_dir = pairs_run(tmp_path, "baseline", [1] * 8)
    _, now_dir = pairs_run(tmp_path, "now", [1] * 6 + [0] * 2)
    spec = GateSpec.model_validate(
        {
            "rules": [
                {
                    "kind": "non_inferiority",
                    "model": "aligned",
                    "metric": "rewards/accuracies",
                    "margin": m,
                    "min_pairs": 2,
                }
                for m in (0.1, 1.01)
            ]
        }
    )
    tight, loose = evaluate_gate(spec, read_results(now_dir / "results.json"), now_dir, before, before_dir)
    assert tight.value == pytest.approx(-0.25) and tight.n == 8 and tight.baseline == "aligned (baseline)"
    assert not tight.passed and tight.ci_low is not None and tight.ci_low <= -0.25
    assert tight.test == "H0: Δ <= -0.1 (tango score)"
    assert loose.passed
    default = GateSpec.model_validate(
        {"rules": [{"kind": "non_inferiority", "model": "aligned", "metric": "rewards/accuracies", "margin": 1.01}]}
    )
    (few,) = evaluate_gate(default, read_results(now_dir / "results.json"), now_dir, before, before_dir)
    assert not few.passed and few.reason.endswith("needs at least 30 pairs, has 8")


def test_a_candidate_run_is_held_against_the_baseline_models_of_the_same_role(tmp_path: Path) -> None:
    """`make baseline` records `aligned`/`base`; `make bench MODEL=...` names them `candidate`/`reference`.
    The rule about `candidate` finds `aligned` by role; a baseline with no model of that role, name or
    fingerprint is undecidable and says which models it has."""
    before, before_dir = pairs_run(tmp_path, "baseline", [1] * 8)
    now, now_dir = pairs_run(tmp_path, "now", [1] * 6 + [0] * 2, model="candidate")
    rule = {"kind": "non_inferiority", "model": "candidate", "metric": "rewards/accuracies", "margin": 1.01}
    spec = GateSpec.model_validate({"rules": [rule], "min_pairs": 2})
    (verdict,) = evaluate_gate(spec, now, now_dir, before, before_dir)
    assert verdict.status == "passed" and verdict.baseline == "aligned (baseline)" and verdict.n == 8
    assert verdict.value == pytest.approx(-0.25)
    strangers = before.model_copy(
        update={"models": [m.model_copy(update={"role": None, "fingerprint": "other"}) for m in before.models]}
    )
    (lost,) = evaluate_gate(spec, now, now_dir, strangers, before_dir)
    assert lost.status == "undecidable"
    assert "no model of the baseline run matches 'candidate' by role, fingerprint or name" in lost.reason
    named = GateSpec.model_validate({"rules": [rule | {"baseline": "aligned"}], "min_pairs": 2})
    assert evaluate_gate(named, now, now_dir, strangers, before_dir)[0].status == "passed"


def test_agreeing_on_every_pair_is_evidence_in_proportion_to_the_pairs(tmp_path: Path) -> None:
    """No discordant pair: Tango's one-sided 95% lower bound is −z²/(n + z²), z = 1.644854: −0.051345 on
    50 pairs (beyond a 0.02 margin: fail), −0.013346 on 200 (within it: pass). The old gate took the
    point Δ = 0 as its own bound and passed on 2 pairs."""
    z2 = 1.6448536269514722**2
    for n, passes in ((50, False), (200, True)):
        before, before_dir = pairs_run(tmp_path, f"baseline{n}", [1] * n)
        _, now_dir = pairs_run(tmp_path, f"now{n}", [1] * n)
        rule = {"kind": "non_inferiority", "model": "aligned", "metric": "rewards/accuracies", "margin": 0.02}
        spec = GateSpec.model_validate({"rules": [rule]})
        (verdict,) = evaluate_gate(spec, read_results(now_dir / "results.json"), now_dir, before, before_dir)
        assert verdict.bound == pytest.approx(-z2 / (n + z2), abs=1e-9) and verdict.passed is passes, n


def test_the_gate_level_is_its_alpha() -> None:
    """At α = 0.01 the one-sided bound is the 99% one: 0.85 is cleared at α = 0.05 (p = 0.014), not at 0.01."""
    rule = absolute(at_least=0.85)
    strict = evaluate_gate(
        GateSpec.model_validate({"alpha": 0.01, "rules": [rule]}), read_results(GOLDEN), GOLDEN.parent
    )
    assert not strict[0].passed and strict[0].alpha == 0.01 and strict[0].bound is not None
    assert strict[0].bound < 0.85 and judge(rule)[0].passed


def test_constant_differences_on_two_pairs_never_pass(tmp_path: Path) -> None:
    """Both pairs gain the same margin: a t-test would say p = 0. Too few pairs by default; with the
    minimum lowered, the standard error is 0 and the interval undefined: still no pass."""
    before, before_dir = pairs_run(tmp_path, "b2", [0, 0])
    _, now_dir = pairs_run(tmp_path, "n2", [1, 1])
    rules = [
        {"kind": "non_inferiority", "model": "aligned", "metric": "rewards/margins", "margin": 0.0, **extra}
        for extra in ({}, {"min_pairs": 2})
    ]
    spec = GateSpec.model_validate({"rules": rules})
    few, undefined = evaluate_gate(spec, read_results(now_dir / "results.json"), now_dir, before, before_dir)
    assert not few.passed and few.reason.endswith("needs at least 30 pairs, has 2")
    assert not undefined.passed and "interval is undefined" in undefined.reason


def test_rules_that_cannot_be_decided_are_undecidable_and_rules_waiting_for_a_baseline_are_skipped() -> None:
    """Neither is ever a pass; an undecidable rule makes the gate exit 2 (fix it first), a skipped one does not
    stop the run that records the first baseline. An undecidable rule stays in Holm's family as p = 1."""
    waiting, no_metric, typo, fine = judge(
        {"kind": "non_inferiority", "model": "aligned", "metric": "loss", "margin": 0.1},
        {"kind": "absolute", "model": "base", "metric": "calibration/brier", "at_most": 0.1},
        absolute(at_least=0.5, model="algned"),
        absolute(at_least=0.5),
    )
    assert (waiting.status, waiting.passed) == ("skipped", False)
    assert waiting.reason.startswith("no baseline yet: pass --baseline with a released run")
    assert no_metric.status == "undecidable" and "reference has no reward" in no_metric.reason
    assert typo.status == "undecidable"
    assert re.search(r"gate\.rules\.2.*model: no model named 'algned' \(did you mean 'aligned'\?\)", typo.reason)
    assert fine.status == "passed" and fine.p_value is not None
    assert fine.p_adjusted == pytest.approx(min(1.0, 3 * fine.p_value))  # a family of three: two undecidable
    assert exit_code([fine, waiting]) == 0 and exit_code([fine, no_metric]) == 2
    failing = judge(absolute(at_least=0.99))[0]
    assert exit_code([failing, fine]) == 1 and exit_code([failing, typo]) == 2


def test_too_few_pairs_or_no_interval_is_undecidable() -> None:
    (few,) = judge(absolute(at_least=0.5, min_pairs=1000))
    assert few.status == "undecidable" and "needs at least 1000 pairs, has 225" in few.reason
    (on_value,) = judge(absolute(at_least=0.5, min_pairs=1000, judge_on="value"))
    assert on_value.status == "undecidable"
    assert "needs at least 1000 pairs, has 225" in on_value.reason  # judged on its value, still held to min_pairs
    # A recorded interval with no test behind it (a method a one-sided test cannot replay) is not judged.
    result = read_results(GOLDEN)
    untested = [
        m.model_copy(update={"method": "none"}) if (m.model, m.metric) == ("aligned", "rewards/accuracies") else m
        for m in result.metrics
    ]
    spec = GateSpec.model_validate({"rules": [absolute(at_least=0.5)]})
    (no_test,) = evaluate_gate(spec, result.model_copy(update={"metrics": untested}), GOLDEN.parent)
    assert no_test.status == "undecidable" and "'rewards/accuracies' has no test (none interval)" in no_test.reason


def test_junit_counts_failures_and_summary_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    verdicts = judge(
        absolute(at_least=0.85), absolute(at_least=0.95), {"kind": "drift_budget", "model": "aligned", "max_kl": 1}
    )
    step_summary = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    publish(verdicts, tmp_path, read_results(GOLDEN))
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "0")
    cases = suite.findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [False, True, True]
    assert cases[1].get("classname") == "evalkit.gate.absolute"
    assert "lower bound +0.8633 <= +0.95" in (cases[1].find("failure").get("message") or "")  # type: ignore[union-attr]
    properties = {p.get("name"): p.get("value") for p in suite.findall("./properties/property")}
    assert properties["rules.0.n"] == "225" and properties["rules.0.model"] == "aligned"
    assert properties["rules.0.status"] == "passed" and properties["suite"] == "default"
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## evalkit gate: default: FAILED: 2 of 3 rules")
    assert step_summary.read_text().strip() == summary.strip()
    assert summary_markdown(verdicts[:1], "x").startswith("## evalkit gate: x: PASSED: all 1 rules")
    # The reports' statement per rule, numbers unbreakable, units stated: nats for KL, signed Δ, growth in percent.
    assert "KL 2.836\xa0[1.86,\xa03.81]\xa0nats, must be at most 1.000\xa0nats" in summary
    length, superiority = judge(
        {"kind": "length_budget", "model": "aligned", "max_growth": 0.25},
        {"kind": "superiority", "model": "aligned", "baseline": "base", "metric": "preference/accuracy"},
    )
    units = summary_markdown([length, superiority], "x")
    assert "length growth +1.5%, must be at most +25%" in units and "Δ pref. acc +0.444\xa0[+0.37,\xa0+0.52]" in units
    write_junit([], tmp_path / "empty.xml")
    assert ElementTree.parse(tmp_path / "empty.xml").getroot().find("testsuite").get("tests") == "0"  # type: ignore[union-attr]


def suite_with(tmp_path: Path, rules: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "name: golden\noutput_dir: out\ndatasets: [{name: tinyworld, path: x.jsonl}]\n"
        "models: [{name: base, path: b}, {name: aligned, path: a}]\nreference: base\n"
        "generation: {prompts: [hi], drift: {samples: 2}}\n"
        f"gate:\n  rules:\n{rules}"
    )
    return path


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    copy = tmp_path / "run" / "results.json"
    copy.parent.mkdir()
    copy.write_text(GOLDEN.read_text())
    return copy


def test_gate_command_exit_codes(tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passing = suite_with(
        tmp_path, "    - {kind: absolute, model: aligned, metric: rewards/accuracies, at_least: 0.8}\n"
    )
    before = results.read_bytes()
    assert main(["gate", str(results), "--suite", str(passing)]) == 0
    assert results.read_bytes() == before  # a reader never modifies what it reads
    assert (results.parent / "junit.xml").is_file() and (results.parent / "summary.md").is_file()
    out = tmp_path / "judged"
    written = {p.name for p in results.parent.iterdir()}
    assert main(["gate", str(results), "--suite", str(passing), "--out", str(out)]) == 0
    assert {p.name for p in results.parent.iterdir()} == written and results.read_bytes() == before
    assert {"results.json", "report.md", "report.html", "junit.xml", "summary.md"} <= {p.name for p in out.iterdir()}
    assert read_results(out / "results.json").gate is not None  # the judged results, beside the other outputs
    for kind, rule in [
        ("absolute", "{kind: absolute, model: aligned, metric: rewards/accuracies, at_least: 0.95}"),
        ("superiority", "{kind: superiority, model: base, baseline: aligned, metric: preference/accuracy}"),
        ("drift_budget", "{kind: drift_budget, model: aligned, max_kl: 1}"),
        ("length_budget", "{kind: length_budget, model: aligned, max_growth: 0.0}"),
    ]:
        capsys.readouterr()
        assert main(["gate", str(results), "--suite", str(suite_with(tmp_path, f"    - {rule}\n"))]) == 1, kind
        junit = ElementTree.parse(results.parent / "junit.xml").getroot()
        assert junit.find("./testsuite/testcase").get("classname") == f"evalkit.gate.{kind}"  # type: ignore[union-attr]
        assert "FAIL" in capsys.readouterr().out  # verdicts are results: stdout


def test_gate_command_bad_input_exits_2(tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    malformed = suite_with(tmp_path, "    - {kind: absolute, model: aligned, metric: rewards/accuracies}\n")
    assert main(["gate", str(results), "--suite", str(malformed)]) == 2
    assert "gate.rules.0: give exactly one of `at_least` and `at_most`" in capsys.readouterr().err
    needs = suite_with(tmp_path, "    - {kind: non_inferiority, model: aligned, metric: loss, margin: 0.1}\n")
    assert main(["gate", str(results), "--suite", str(needs), "--baseline", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: results file not found" in capsys.readouterr().err
    old = tmp_path / "old.json"
    old.write_text(json.dumps(json.loads(GOLDEN.read_text()) | {"schema_version": "0.3"}))
    assert main(["gate", str(results), "--suite", str(needs), "--baseline", str(old)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "schema_version '0.3' is not readable by this evalkit (expected 1.x)" in lines[0]
    assert main(["gate", str(results)]) == 2  # the golden run had no rules
    assert "the run had no gate rules; pass --suite" in capsys.readouterr().err


def test_rules_from_the_artifact_itself_are_named_as_such(
    tmp_path: Path, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fork's artifact could carry `at_least: 0.0`: judging with its own rules is said out loud."""
    raw = json.loads(results.read_text())
    raw["suite"]["gate"] = {"rules": [absolute(at_least=0.0)]}
    results.write_text(json.dumps(raw))
    assert main(["gate", str(results)]) == 0
    assert "judging with the rules recorded in" in capsys.readouterr().err
    strict = suite_with(
        tmp_path, "    - {kind: absolute, model: aligned, metric: rewards/accuracies, at_least: 0.95}\n"
    )
    assert main(["gate", str(results), "--suite", str(strict)]) == 1  # the trusted suite's rules decide
    assert "judging with the rules recorded in" not in capsys.readouterr().err


def test_an_artifact_of_a_candidate_run_is_judged_by_the_suite_s_rules_through_roles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI writes `candidate`/`reference` (bench --model); the trusted suite's rules speak of `aligned`/`base`."""
    raw = json.loads(GOLDEN.read_text())
    names = {"aligned": "candidate", "base": "reference"}
    for m in raw["models"]:
        m["name"] = names[m["name"]]
    for record in [*raw["metrics"], *raw["comparisons"], *raw["reliability"]]:
        record["model"] = names[record["model"]]
        if "baseline" in record:
            record["baseline"] = names[record["baseline"]]
    for drift in raw["generation"]["drift"]:
        drift["model"], drift["reference"] = names[drift["model"]], names[drift["reference"]]
    for sample in raw["generation"]["samples"]:
        sample["model"] = names[sample["model"]]
    raw["reference"] = "reference"
    artifact = tmp_path / "artifact" / "results.json"
    artifact.parent.mkdir()
    artifact.write_text(json.dumps(raw))
    rules = (
        "    - {kind: absolute, model: aligned, metric: rewards/accuracies, at_least: 0.8}\n"
        "    - {kind: superiority, model: aligned, baseline: base, metric: preference/accuracy}\n"
    )
    out = tmp_path / "judged"
    assert main(["gate", str(artifact), "--suite", str(suite_with(tmp_path, rules)), "--out", str(out)]) == 0
    verdicts = read_results(out / "results.json").gate or []
    assert [(v.model, v.baseline, v.status) for v in verdicts] == [
        ("candidate", None, "passed"),
        ("candidate", "reference", "passed"),
    ]
    baseline = tmp_path / "release" / "results.json"
    baseline.parent.mkdir()
    baseline.write_text(GOLDEN.read_text())
    args = ["gate", str(artifact), "--suite", str(suite_with(tmp_path, rules)), "--baseline", str(baseline)]
    assert main([*args, "--out", str(baseline.parent)]) == 2  # the judged results would replace the baseline
    assert "would replace --baseline" in capsys.readouterr().err and baseline.read_text() == GOLDEN.read_text()


def test_a_results_file_before_roles_is_matched_by_the_roles_runs_give_now() -> None:
    """Before 1.5 no model had a role: fingerprint alone held a candidate with the reference's weights against the
    baseline's reference (and passed). Migrated roles hold it against the baseline's candidate."""
    raw = json.loads(GOLDEN.read_text())
    for m in raw["models"]:
        m.pop("role")
    raw["schema_version"] = "1.4"
    from evalkit.results.migrate import migrate
    from evalkit.results.schema import RunResult

    old = RunResult.model_validate(migrate(raw))
    assert [(m.name, m.role) for m in old.models] == [("base", "reference"), ("aligned", "candidate")]
    from evalkit.results.matching import counterparts

    base = next(m for m in old.models if m.name == "base")
    run = old.model_copy(update={"models": [base.model_copy(update={"name": "candidate", "role": "candidate"})]})
    assert counterparts(run, old)["candidate"].name == "aligned"
