"""evalkit's intervals hold their level and its gates their error rates: deterministic simulations.

The checks live in `evalkit.gate.calibration` (also `make calibration`, which prints the table the
docs show: docs/explanation/statistics.md). `make test` runs every check with enough replicates to catch a broken method
(2,000 datasets per coverage check: Monte Carlo error 0.5 points); `make test-exhaustive` runs them with
10,000, where a rate 0.65 points above α already fails.
"""

import pytest

from evalkit.gate.calibration import Check, is_promised, render_table, run_checks


def broken(checks: list[Check]) -> str:
    failing = [c for c in checks if is_promised(c) and not c.holds]
    return "\n" + render_table(failing) if failing else ""


@pytest.fixture(scope="module")
def checks() -> list[Check]:
    return run_checks(coverage=2000, gates=1000, marks=100)


def test_every_interval_covers_at_its_level(checks: list[Check]) -> None:
    coverage = [c for c in checks if c.kind == "coverage"]
    assert len([c for c in coverage if is_promised(c)]) == 40  # 10 methods × n = 20, 60, 200, 1000
    assert not broken(coverage), broken(coverage)


def test_no_gate_rule_passes_a_bad_release_more_often_than_alpha(checks: list[Check]) -> None:
    gates = [c for c in checks if c.kind == "false pass"]
    assert len(gates) == 44  # 11 rules × n = 30, 60, 200, 1000
    assert not broken(gates), broken(gates)


def test_holm_keeps_the_family_error_and_the_uncorrected_gate_would_not(checks: list[Check]) -> None:
    family = {(c.name.endswith("holm"), c.n): c for c in checks if c.kind == "family error"}
    for n in (30, 60):
        assert family[(True, n)].holds, family[(True, n)]
        assert family[(False, n)].rate > 0.10  # four rules at α each: about 1 − 0.95⁴ ≈ 19% would pass
    assert not broken(list(family.values()))


def test_report_marks_control_false_discoveries(checks: list[Check]) -> None:
    """With no true difference anywhere, raw p marks some cell in most reports; BH-adjusted p rarely."""
    marks = {c.name.endswith("raw p"): c for c in checks if c.kind == "false marks"}
    assert marks[False].holds, marks[False]
    assert marks[True].rate > 0.5


def test_the_minimum_detectable_effect_is_detected_with_its_power(checks: list[Check]) -> None:
    power = [c for c in checks if c.kind == "power"]
    assert len(power) == 4 and not broken(power), broken(power)


@pytest.mark.exhaustive
def test_the_full_grid_with_ten_thousand_replicates() -> None:
    checks = run_checks(coverage=10_000, gates=10_000, marks=400)
    assert not broken(checks), broken(checks)
