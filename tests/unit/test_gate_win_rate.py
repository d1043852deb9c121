"""The `win_rate` gate rule on judged win rates: raw (exact binomial, or the score test on Wilson's effective n)
and length-controlled (a t on the logit scale), with hand-worked p-values and bounds, and the cases that are
never a pass (no readable verdict, an undefined interval, too few prompts).

Hand-worked figures: 24 wins and 6 losses of 30 prompts give a raw win rate of 0.8, and H₀: rate ≤ 0.5 the exact
p = P(X ≥ 24 | 30, ½) = 7.15e-4. A length-controlled fit with θ = 0.4 and se(θ) = 0.2 over 30 prompts is
σ(0.4) = 0.5987; H₀: σ(θ) ≤ ½ is θ ≤ 0, t = 0.4 / 0.2 = 2 on 28 degrees of freedom, one-sided p = 0.0276, and the
one-sided 95% lower bound 0.4 − 1.7011·0.2 = +0.0598 on the logit scale.
"""

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
import scipy.stats
import yaml

from evalkit.config.rules import GateSpec
from evalkit.config.suite import parse_suite
from evalkit.errors import EvalkitError
from evalkit.gate.judge import evaluate_gate, exit_code
from evalkit.gate.junit import write_junit
from evalkit.gate.summary import summary_markdown
from evalkit.results.files import read_results
from evalkit.results.generation import LengthControlledWinRate, PairwiseWinRate
from evalkit.results.schema import GateVerdict

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"


def record(n: int = 30, wins: int = 24, intercept: float = 0.4, se: float | None = 0.2) -> PairwiseWinRate:
    controlled = LengthControlledWinRate(
        win_rate=float(scipy.stats.logistic.cdf(intercept)),
        ci_low=None,
        ci_high=None,
        intercept=intercept,
        length_coefficient=1.0,
        se=se,
        n=n,
        method="delta method",
    )
    return PairwiseWinRate(
        judge="llm",
        model="aligned",
        baseline="base",
        win_rate=wins / n if n else None,
        ci_low=None,
        ci_high=None,
        method="wilson",
        n_effective=float(n) if n else None,
        wins=wins,
        ties=0,
        losses=n - wins,
        n=n,
        unparsed=2,
        length_controlled=controlled if n else None,
        position_bias_rate=0.1,
        agreement_rate=0.9,
        first_position_rate=0.55,
    )


def judge(found: PairwiseWinRate, *rules: dict[str, Any]) -> list[GateVerdict]:
    result = read_results(GOLDEN)
    assert result.generation is not None
    judged = result.model_copy(update={"generation": result.generation.model_copy(update={"pairwise": [found]})})
    spec = GateSpec.model_validate({"rules": list(rules)})
    return evaluate_gate(spec, judged, GOLDEN.parent)


def win_rate(**kwargs: Any) -> dict[str, Any]:
    return {"kind": "win_rate", "model": "aligned", "judge": "llm", **kwargs}


def test_the_raw_win_rate_is_an_exact_binomial_test() -> None:
    above, below = judge(
        record(),
        win_rate(on="raw"),
        win_rate(on="raw", at_least=0.75),
    )
    assert above.passed and above.p_value == pytest.approx(scipy.stats.binom.sf(23, 30, 0.5))
    assert above.p_value == pytest.approx(7.15e-4, rel=1e-2)
    assert above.bound == pytest.approx(scipy.stats.beta.ppf(0.05, 24, 7))  # Clopper–Pearson's lower end
    assert not below.passed and below.p_value == pytest.approx(scipy.stats.binom.sf(23, 30, 0.75))
    assert "win rate of aligned over base by llm = 0.8, over 30 prompts, 2 unparsed" in above.reason
    assert (above.value, above.threshold, above.n, above.metric) == (0.8, 0.5, 30, "llm/raw")


def test_the_length_controlled_win_rate_is_tested_on_the_logit_scale() -> None:
    (passed,) = judge(record(), win_rate())  # alone: Holm over two rules would double p
    (failed,) = judge(record(), win_rate(at_least=0.55))
    assert passed.passed and passed.p_adjusted == passed.p_value
    assert passed.p_value == pytest.approx(scipy.stats.t.sf(2.0, 28))
    assert passed.p_value == pytest.approx(0.0276, abs=1e-4)
    assert passed.bound == pytest.approx(0.4 - scipy.stats.t.ppf(0.95, 28) * 0.2)
    assert passed.bound == pytest.approx(0.0598, abs=1e-4)
    assert passed.value == pytest.approx(0.5987, abs=1e-4) and passed.threshold == 0.5
    assert "length-controlled win rate" in passed.reason and "logit(0.5) = +0" in passed.reason
    logit = float(scipy.stats.logistic.ppf(0.55))  # 0.2007
    assert not failed.passed and failed.p_value == pytest.approx(scipy.stats.t.sf((0.4 - logit) / 0.2, 28))
    assert exit_code([passed, failed]) == 1


def test_no_readable_verdict_an_undefined_interval_or_too_few_prompts_is_never_a_pass() -> None:
    (unread,) = judge(record(n=0, wins=0), win_rate())
    assert unread.status == "undecidable" and "gave no readable verdict" in unread.reason
    (no_interval,) = judge(record(se=None), win_rate())
    assert no_interval.status == "undecidable" and "interval is undefined" in no_interval.reason
    (few,) = judge(record(n=20, wins=20, intercept=3.0), win_rate(on="raw"))
    assert few.status == "undecidable" and few.reason.endswith("needs at least 30 prompts, has 20")
    (other_judge,) = judge(record(), win_rate(judge="other"))
    assert other_judge.status == "undecidable" and "no pairwise judgments of 'aligned' by 'other'" in other_judge.reason
    (other_baseline,) = judge(record(), win_rate(baseline="aligned"))
    assert other_baseline.status == "undecidable"
    assert "no pairwise judgments of 'aligned' against 'aligned' by 'llm'" in other_baseline.reason


def test_junit_and_the_summary_carry_the_rule(tmp_path: Path) -> None:
    passed, failed = judge(record(), win_rate(on="raw"), win_rate(on="raw", at_least=0.9))
    write_junit([passed, failed], tmp_path / "junit.xml")
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = suite.findall("testcase")
    assert {c.get("classname") for c in cases} == {"evalkit.gate.win_rate"}
    assert [c.get("name") for c in cases] == ["aligned win rate by llm >= 0.5", "aligned win rate by llm >= 0.9"]
    assert [c.find("failure") is None for c in cases] == [True, False]
    summary = summary_markdown([passed, failed], "x")
    failure = next(line for line in summary.splitlines() if line.startswith("| ❌ FAIL"))
    assert "| aligned win rate by llm &gt;= 0.9 |" in failure and "| aligned vs base |" in failure
    assert "win rate by llm 0.800, must be at least 0.900; p\xa0=\xa00.974 (Holm)" in failure
    assert failure.endswith("n\xa0=\xa030 prompts |")


SUITE = """
name: demo
output_dir: out
datasets: [{name: d, path: pairs.jsonl}]
models: [{name: base, path: models/base}, {name: tuned, path: models/tuned}]
reference: base
"""


def test_a_rule_names_a_pairwise_judge_of_the_suite() -> None:
    raw = {
        "generation": {
            "prompts": ["hi"],
            "judges": [{"name": "rm", "reward_model": "r"}, {"name": "llm", "model": "j"}],
        },
        "gate": {"rules": [{"kind": "win_rate", "model": "tuned", "judge": "lm"}]},
    }
    suite = yaml.safe_load(SUITE) | raw
    with pytest.raises(EvalkitError) as err:
        parse_suite(suite, "s.yaml")
    assert str(err.value) == (
        "s.yaml: gate.rules.0.judge: no pairwise judge 'lm' (did you mean 'llm'?); pairwise judges are ['llm']"
    )
    suite["gate"]["rules"][0]["judge"] = "llm"
    assert parse_suite(suite, "s.yaml").gate is not None
