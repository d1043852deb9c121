"""NaN is undecidable everywhere: a metric, a paired Δ, a judge's probability is never a pass, a fail or a tie."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.judges.pairwise import PairToJudge, Verdict, combine, summarise_pairwise

GOLDEN = Path(__file__).parents[1] / "golden"
NAN = float("nan")


def gated(tmp_path: Path, rule: dict[str, object], change: str, **fields: float) -> int:
    """`evalkit gate` on the golden run with one rule, after setting `fields` of the records `change` names."""
    raw = json.loads((GOLDEN / "results.json").read_text())
    kind, model, metric = change.split(":")
    for record in raw[kind]:
        if record["model"] == model and record["metric"] == metric and record["subset"] == "all":
            record.update(fields)
    raw["suite"]["gate"] = {"rules": [{"name": "r", "model": "aligned", **rule}]}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(raw))
    return main(["gate", str(tmp_path / "run" / "results.json"), "--out", str(tmp_path / "out")])


ACCURACY = {"kind": "absolute", "metric": "preference/accuracy", "at_least": 0.5}


@pytest.mark.parametrize("judge_on", ["interval", "value"])
def test_a_nan_metric_is_undecidable_not_failed(tmp_path: Path, judge_on: str) -> None:
    fields = {"value": NAN, "ci_low": NAN, "ci_high": NAN}
    assert gated(tmp_path, ACCURACY | {"judge_on": judge_on}, "metrics:aligned:preference/accuracy", **fields) == 2
    verdict = json.loads((tmp_path / "out" / "results.json").read_text())["gate"][0]
    assert verdict["status"] == "undecidable" and "not a number" in verdict["reason"]


def test_a_nan_delta_never_passes_superiority(tmp_path: Path) -> None:
    rule = {"kind": "superiority", "baseline": "base", "metric": "preference/accuracy"}
    fields = {"value": NAN, "ci_low": NAN, "ci_high": NAN}
    assert gated(tmp_path, rule, "comparisons:aligned:preference/accuracy", **fields) == 2
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "UNDECIDABLE" in summary and "+nan" not in summary


def test_the_golden_rules_still_decide(tmp_path: Path) -> None:
    rule = {"kind": "superiority", "baseline": "base", "metric": "preference/accuracy"}
    assert gated(tmp_path, rule, "comparisons:aligned:preference/accuracy") == 0


PAIR = PairToJudge("p1", "say hi", "hi", "hello")


@pytest.mark.parametrize("p", [NAN, math.inf, -0.5, 1.5])
def test_a_judge_probability_that_is_not_one_is_unparsed_not_a_tie(p: float) -> None:
    judgment = combine(PAIR, Verdict(p, "logprobs", "A"), Verdict(0.2, "logprobs", "B"))
    assert judgment.preference is None and judgment.orders_agree is None
    record = summarise_pairwise(
        "j", "m", "b", [judgment, combine(PAIR, Verdict(1.0, "parsed", "A"), Verdict(0.0, "parsed", "B"))], 0.95
    )
    assert (record.unparsed, record.ties, record.wins) == (1, 0, 1)
