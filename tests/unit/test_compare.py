"""`evalkit compare`: two runs on their shared cells, and pair by pair where the same pairs were scored."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from evalkit.cli import main
from evalkit.report.compare import RunComparison, compare_runs, render_comparison_html, render_comparison_markdown
from evalkit.report.tables import as_typed
from evalkit.report.views import read_pairs
from evalkit.results.files import read_results
from evalkit.results.schema import RunResult

GOLDEN = Path(__file__).parents[1] / "golden"


def plain_markdown(comparison: RunComparison) -> str:
    """compare.md with its numbers' no-break spaces and minus signs read as a space and a hyphen."""
    return as_typed(render_comparison_markdown(comparison))


def golden() -> RunResult:
    return read_results(GOLDEN / "results.json")


def shifted(result: RunResult, by: float) -> RunResult:
    """`result` with the aligned model's accuracy and its interval moved up by `by`."""
    metrics = [
        m.model_copy(update={"value": m.value + by, "ci_low": m.ci_low + by, "ci_high": m.ci_high + by})  # type: ignore[operator]
        if (m.model, m.metric) == ("aligned", "preference/accuracy")
        else m
        for m in result.metrics
    ]
    return result.model_copy(update={"metrics": metrics, "created_at": "2026-12-01T00:00:00+00:00"})


def test_shared_cells_get_both_values_the_difference_and_whether_intervals_overlap() -> None:
    comparison = compare_runs(golden(), shifted(golden(), 0.05))
    cells = {(d.candidate.subset, d.candidate.model, d.candidate.metric): d for d in comparison.deltas}
    moved = cells[("all", "aligned", "preference/accuracy")]
    assert moved.delta == pytest.approx(0.05) and moved.overlap and moved.verdict == "overlap"
    assert cells[("all", "base", "preference/accuracy")].delta == 0
    far = compare_runs(golden(), shifted(golden(), 0.2)).deltas
    assert {
        d.verdict for d in far if d.candidate.metric == "preference/accuracy" and d.candidate.model == "aligned"
    } == {"disjoint: better"}
    assert comparison.paired == [] and comparison.notes == []


def test_markdown_says_it_is_not_a_paired_test_and_shows_provenance_of_both() -> None:
    text = plain_markdown(compare_runs(golden(), shifted(golden(), 0.05), paths=("old.json", "new.json")))
    assert "This is not a paired test" in text
    assert "| aligned | pref. acc ↑ | 0.916 [0.87, 0.95] | 0.966 [0.92, 1.00] | +0.050 | overlap |" in text
    assert "| results | old.json | new.json |" in text
    assert f"| written | {golden().created_at} | 2026-12-01T00:00:00+00:00 |" in text
    assert "## Pair by pair" not in text


def test_same_pairs_in_both_runs_are_compared_pair_by_pair() -> None:
    pairs = read_pairs(golden(), GOLDEN)["tinyworld"]
    # the candidate's aligned model now gets every pair right that it got wrong
    better = [
        dataclasses.replace(p, logp_chosen=max(p.logp_chosen, p.logp_rejected + 1)) if p.model == "aligned" else p
        for p in pairs
    ]
    comparison = compare_runs(golden(), golden(), {"tinyworld": pairs}, {"tinyworld": better})
    paired = {(p.model, p.metric): p for p in comparison.paired}
    accuracy = paired[("aligned", "preference/accuracy")]
    wrong_before = sum(p.logp_chosen <= p.logp_rejected for p in pairs if p.model == "aligned")
    assert accuracy.flips is not None
    assert (accuracy.flips.wrong_to_right, accuracy.flips.right_to_wrong, accuracy.n) == (wrong_before, 0, 225)
    assert accuracy.value == pytest.approx(wrong_before / 225) and accuracy.p_value < 0.001
    assert accuracy.test == "tango_score" and accuracy.mde is not None  # the schema's test name, and its MDE
    margin = paired[("aligned", "rewards/margins")]
    assert margin.test == "paired_t" and margin.wilcoxon_p_value is not None
    assert paired[("base", "preference/accuracy")].value == 0
    assert ("base", "rewards/margins") not in paired and ("aligned", "rewards/margins") in paired
    assert "## Pair by pair" in plain_markdown(comparison)


def test_other_data_is_flagged_and_never_compared_pair_by_pair() -> None:
    candidate = golden()
    candidate = candidate.model_copy(
        update={"datasets": [d.model_copy(update={"fingerprint": "0" * 64}) for d in candidate.datasets]}
    )
    pairs = read_pairs(golden(), GOLDEN)
    comparison = compare_runs(golden(), candidate, pairs, pairs)
    assert comparison.paired == []
    assert comparison.notes == [
        "Dataset tinyworld: other data in the two runs (fingerprints differ); Δ mixes data and model."
    ]


def test_html_comparison_is_self_contained_and_escaped() -> None:
    evil = golden().model_copy(update={"suite": golden().suite.model_copy(update={"name": "<script>x</script>"})})
    html = render_comparison_html(compare_runs(golden(), evil))
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert html.count("<script") == 1 and "http" not in html.split("</head>")[1]


def test_cli_compare_writes_both_files_beside_the_candidate(tmp_path: Path) -> None:
    for name in ("old", "new"):
        shutil.copytree(GOLDEN, tmp_path / name)
    assert main(["compare", str(tmp_path / "old" / "results.json"), str(tmp_path / "new" / "results.json")]) == 0
    assert (tmp_path / "new" / "compare.md").is_file() and (tmp_path / "new" / "compare.html").is_file()
    assert "## Pair by pair" in (tmp_path / "new" / "compare.md").read_text()


def test_cli_compare_of_a_missing_or_foreign_file_exits_2(tmp_path: Path) -> None:
    assert main(["compare", str(tmp_path / "nope.json"), str(GOLDEN / "results.json")]) == 2
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    assert main(["compare", str(GOLDEN / "results.json"), str(tmp_path / "x.json")]) == 2
    assert main(["compare", str(GOLDEN / "results.json")]) == 2


def test_runs_scored_differently_say_so() -> None:
    baseline = golden().model_copy(update={"schema_version": "1.3"})
    candidate = baseline.model_copy(
        update={"scoring": baseline.scoring.model_copy(update={"max_length": 512, "dtype": "bfloat16"})}
    )
    comparison = compare_runs(baseline, candidate)
    assert comparison.notes == [
        "max_length differs (1024 and 512): long completions were cut at different points, so their log-probs"
        " cover different tokens.",
        "Scoring dtype differs (float32 and bfloat16): log-probs differ by ~1e-2 from the arithmetic alone.",
    ]
    text = plain_markdown(comparison)
    assert "| scoring | β 0.1, max_length 1024, float32," in text
    assert "β 0.1, max_length 512, bfloat16 (log-probs within ~1e-2 of float32)," in text


def test_a_file_that_did_not_record_the_dtype_is_not_said_to_differ() -> None:
    old = golden().model_copy(update={"schema_version": "1.2"})  # 1.2: dtype not recorded, read as the default
    bfloat16 = old.model_copy(
        update={"schema_version": "1.3", "scoring": old.scoring.model_copy(update={"dtype": "bfloat16"})}
    )
    assert compare_runs(old, bfloat16).notes == []


def renamed_run(result: RunResult, names: dict[str, str]) -> RunResult:
    """`result` as `evalkit bench --model` writes it: the same models under other names, with their roles."""
    roles = {"aligned": "candidate", "base": "reference"}
    models = [m.model_copy(update={"name": names[m.name], "role": roles.get(m.name)}) for m in result.models]
    metrics = [m.model_copy(update={"model": names[m.model]}) for m in result.metrics]
    return result.model_copy(update={"models": models, "metrics": metrics, "reference": names["base"]})


def test_runs_whose_models_have_other_names_are_matched_by_role_and_fingerprint_and_say_so() -> None:
    baseline = golden()
    baseline = baseline.model_copy(
        update={
            "models": [m.model_copy(update={"role": {"aligned": "candidate"}.get(m.name)}) for m in baseline.models]
        }
    )
    candidate = renamed_run(golden(), {"aligned": "candidate", "base": "reference"})
    pairs = {
        name: [p.as_model({"aligned": "candidate", "base": "reference"}[p.model]) for p in rows]
        for name, rows in read_pairs(golden(), GOLDEN).items()
    }
    comparison = compare_runs(baseline, candidate, read_pairs(golden(), GOLDEN), pairs)
    cells = {(d.candidate.model, d.baseline.model) for d in comparison.deltas}
    assert cells == {("candidate", "aligned"), ("reference", "base")}
    assert all(d.delta == 0 for d in comparison.deltas)
    assert (
        "Model candidate of the candidate run is compared with aligned of the baseline run (same fingerprint)."
        in comparison.notes
    )
    assert not [n for n in comparison.notes if n.startswith("Only in")]
    assert {(p.model, p.n) for p in comparison.paired if p.metric == "preference/accuracy"} == {
        ("candidate", 225),
        ("reference", 225),
    }
    text = plain_markdown(comparison)
    assert "| candidate ↔ aligned | pref. acc ↑ | 0.916 [0.87, 0.95] | 0.916 [0.87, 0.95] | +0.000 | overlap |" in text


def test_cli_compare_prints_the_headline_table_and_ends_with_a_conclusion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("old", "new"):
        shutil.copytree(GOLDEN, tmp_path / name)
    assert main(["compare", str(tmp_path / "old" / "results.json"), str(tmp_path / "new" / "results.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if "aligned" in line and "pref. acc" in line)
    assert row.count("0.916 [0.87, 0.95]") == 2 and "+0.000" in row and "overlap" in row
    assert lines[-2].startswith("wrote ") and lines[-2].endswith("compare.html")
    # the same pairs in both runs: the paired test decides, for the candidate model only
    assert lines[-1] == (
        "aligned on tinyworld: preference accuracy 0.916 → 0.916, Δ +0.000 [-0.02, +0.02] pair by pair, p = 1, "
        "no measurable change."
    )


def test_conclusion_without_the_same_pairs_reads_the_intervals() -> None:
    from evalkit.report.compare import conclusion

    # 0.916 [0.87, 0.95] against 0.966 [0.92, 1.00]: overlapping; against 1.016 [0.97, 1.05]: disjoint
    assert conclusion(compare_runs(golden(), shifted(golden(), 0.05))) == (
        "aligned on tinyworld: preference accuracy 0.916 → 0.966, Δ +0.050, no evidence of a change (the intervals "
        "overlap)."
    )
    assert conclusion(compare_runs(golden(), shifted(golden(), 0.1))).endswith(
        "Δ +0.100, better (the intervals do not overlap)."
    )


@pytest.mark.parametrize("what", ["dataset", "model"])
def test_cli_compare_of_runs_that_share_nothing_exits_2_in_one_line(
    what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalkit.results.files import write_results

    run = golden()
    if what == "dataset":
        datasets = [d.model_copy(update={"name": "other", "fingerprint": "0" * 64}) for d in run.datasets]
        other = run.model_copy(update={"datasets": datasets})
    else:
        renamed = {"name": "", "fingerprint": "0" * 64, "role": None}
        models = [m.model_copy(update=renamed | {"name": f"x{m.name}"}) for m in run.models]
        other = run.model_copy(update={"models": models})
    write_results(other, tmp_path / "results.json")
    assert main(["compare", str(GOLDEN / "results.json"), str(tmp_path / "results.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not (tmp_path / "compare.md").exists()
    [line] = captured.err.splitlines()
    assert line.startswith(f"evalkit: error: {tmp_path / 'results.json'}: shares no {what} with {GOLDEN}/results.json")
