"""`junit.xml` against the published Jenkins xUnit and Ant JUnit schemas (tests/schemas), and as
junitparser (what most CI plugins are built on) reads it."""

from __future__ import annotations

from pathlib import Path

import junitparser
import pytest
import xmlschema

from evalkit.gate.junit import write_junit
from evalkit.results.files import read_results
from evalkit.results.schema import GateVerdict, RunResult

SCHEMAS = Path(__file__).parents[1] / "schemas"
GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"


def ant_schema(with_skipped: bool) -> xmlschema.XMLSchema:
    """The Ant schema as shipped, or with the later revision's `<skipped>` element and `skipped` count."""
    text = (SCHEMAS / "ant-junit.xsd").read_text(encoding="utf-8")
    if with_skipped:
        choice = '<xs:choice minOccurs="0">'
        assert text.count(choice) == 1
        text = text.replace(choice, choice + '<xs:element name="skipped"/>')
        tests_attribute = '<xs:attribute name="tests" type="xs:int" use="required">'
        assert text.count(tests_attribute) == 1
        text = text.replace(
            tests_attribute, '<xs:attribute name="skipped" type="xs:int" use="optional"/>' + tests_attribute
        )
    return xmlschema.XMLSchema(text)


def verdict(rule: str, status: str, **fields: object) -> GateVerdict:
    values = {"value": 0.91, "ci_low": 0.87, "ci_high": 0.95, "n": 225, "p_value": 0.003, "model": "aligned"}
    return GateVerdict(
        rule=rule,
        kind="absolute",
        passed=status == "passed",
        status=status,
        reason=f"{rule} because",
        **(values | fields),  # type: ignore[arg-type]
    )


ALL_FOUR = [
    verdict("accuracy >= 0.8", "passed"),
    verdict("accuracy >= 0.95", "failed"),
    verdict("brier <= 0.1", "undecidable", value=None, ci_low=None, ci_high=None, p_value=None),
    verdict("no worse than last release", "skipped", value=None, n=None),
]


@pytest.fixture()
def result() -> RunResult:
    return read_results(GOLDEN)


def test_every_status_is_valid_against_both_schemas(tmp_path: Path, result: RunResult) -> None:
    path = tmp_path / "junit.xml"
    write_junit(ALL_FOUR, path, result)
    xmlschema.XMLSchema(SCHEMAS / "jenkins-junit-10.xsd").validate(path)
    ant_schema(with_skipped=True).validate(path)
    write_junit(ALL_FOUR[:3], path, result)  # nothing skipped: the 2011 Ant revision as shipped
    ant_schema(with_skipped=False).validate(path)


def test_junitparser_reads_each_rule_with_its_numbers(tmp_path: Path, result: RunResult) -> None:
    path = tmp_path / "junit.xml"
    write_junit(ALL_FOUR, path, result)
    (suite,) = junitparser.JUnitXml.fromfile(str(path))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 1, 1)
    outcomes = {case.name: [type(r).__name__ for r in case.result] for case in suite}
    assert outcomes == {
        "accuracy >= 0.8": [],
        "accuracy >= 0.95": ["Failure"],
        "brier <= 0.1": ["Error"],
        "no worse than last release": ["Skipped"],
    }
    failed = next(case for case in suite if case.name == "accuracy >= 0.95")
    assert failed.result[0].message == "0.91 [0.87, 0.95], n = 225: accuracy >= 0.95 because"
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["rules.0.value"] == "0.91" and properties["rules.0.n"] == "225"
    assert properties["rules.0.ci_low"] == "0.87" and properties["rules.2.status"] == "undecidable"
    assert "pass: accuracy >= 0.8: 0.91 [0.87, 0.95], n = 225" in (suite._elem.findtext("system-out") or "")
    # The run's own time, in the form Ant requires: UTC, no fraction, no zone.
    assert suite.timestamp == result.created_at.removesuffix("+00:00") and len(suite.timestamp) == 19


def test_characters_xml_cannot_carry_are_replaced_not_written(tmp_path: Path, result: RunResult) -> None:
    path = tmp_path / "junit.xml"
    write_junit([verdict("bell\x07 and nul\x00 rule", "failed")], path, result)
    xmlschema.XMLSchema(SCHEMAS / "jenkins-junit-10.xsd").validate(path)
    (suite,) = junitparser.JUnitXml.fromfile(str(path))
    assert [case.name for case in suite] == ["bell\ufffd and nul\ufffd rule"]
