"""`junit.xml`: one test case per gate rule, for CI systems that show test results.

Valid against both the Jenkins xUnit schema and the Ant JUnit schema (tests/schemas): a failed rule
is a `<failure>`, an undecidable one an `<error>`, one waiting for a baseline `<skipped>`, a pass
nothing at all.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

from evalkit.report import verdicts as verdict_words
from evalkit.results.files import atomic_write_text
from evalkit.results.schema import GateVerdict, RunResult

PACKAGE = "evalkit.gate"
"""The package test cases are filed under (`<package>.<kind>` names a rule's class): what CI history groups rules
by, so it stays what it has been since the first gate, wherever the gate's modules live."""


def write_junit(verdicts: Sequence[GateVerdict], path: Path, result: RunResult | None = None) -> None:
    """Write `junit_xml` to `path`."""
    atomic_write_text(path, junit_xml(verdicts, result))


def junit_xml(verdicts: Sequence[GateVerdict], result: RunResult | None = None) -> str:
    """JUnit XML, one test case per rule: `<failure>` for a failed rule, `<error>` for an undecidable one,
    `<skipped>` for one waiting for a baseline, nothing for a pass. Valid against both the Jenkins xUnit schema
    and the Ant JUnit schema (tests/schemas), which is why the numbers of every rule (value, interval, n, p) sit
    in the suite's `<properties>` and `<system-out>`: Ant allows no output or properties inside a test case."""
    count = {status: sum(v.status == status for v in verdicts) for status in verdict_words.LABELS}
    created = _timestamp(result.created_at if result is not None else None)
    suites = ElementTree.Element("testsuites")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name="evalkit gate",
        package=PACKAGE,
        id="0",
        timestamp=created,
        hostname=_xml_text(socket.gethostname() or "localhost"),
        tests=str(len(verdicts)),
        failures=str(count["failed"]),
        errors=str(count["undecidable"]),
        time=f"{result.duration_s if result is not None else 0.0:.3f}",
    )
    if count["skipped"]:  # only then: the 2011 Ant schema, which many tools still ship, knows no skipped count
        suite.set("skipped", str(count["skipped"]))
    properties = ElementTree.SubElement(suite, "properties")
    if result is not None:
        ElementTree.SubElement(properties, "property", name="suite", value=_xml_text(result.suite.name))
    for index, verdict in enumerate(verdicts):
        for key in _JUNIT_PROPERTIES:
            value = getattr(verdict, key)
            if value is not None:
                name = f"rules.{index}.{key}"
                ElementTree.SubElement(properties, "property", name=name, value=_xml_text(str(value)))
    for verdict in verdicts:
        case = ElementTree.SubElement(
            suite, "testcase", name=_xml_text(verdict.rule), classname=f"{PACKAGE}.{verdict.kind}", time="0"
        )
        message = _xml_text(f"{verdict_words.stated_value(verdict)}, n = {verdict.n}: {verdict.reason}")
        if verdict.status == "failed":
            ElementTree.SubElement(case, "failure", message=message, type=verdict.kind).text = message
        elif verdict.status == "undecidable":
            ElementTree.SubElement(case, "error", message=message, type="undecidable").text = message
        elif verdict.status == "skipped":
            ElementTree.SubElement(case, "skipped", message=_xml_text(verdict.reason))
    lines = [
        f"{verdict_words.LABELS[v.status]}: {v.rule}: {verdict_words.stated_value(v)}, n = {v.n}: {v.reason}"
        for v in verdicts
    ]
    ElementTree.SubElement(suite, "system-out").text = _xml_text("\n".join(lines))
    ElementTree.SubElement(suite, "system-err")
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


_JUNIT_PROPERTIES = (
    *("status", "dataset", "subset", "model", "baseline", "metric", "value", "ci_low", "ci_high"),
    *("bound", "threshold", "test", "p_value", "p_adjusted", "alpha", "n"),
)

# Characters XML 1.0 cannot carry at all (controls other than tab, newline and carriage return; surrogates;
# U+FFFE and U+FFFF): a rule name holding one would make the whole file unreadable.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _timestamp(created_at: str | None) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC, the one form the Ant schema accepts (no fraction, no zone)."""
    moment = datetime.datetime.now(datetime.timezone.utc)
    if created_at:
        with contextlib.suppress(ValueError):
            moment = datetime.datetime.fromisoformat(created_at)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")
