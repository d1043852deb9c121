"""What both reports show: which comparisons come first, and which flipped pairs are shown with their text."""

from pathlib import Path

from evalkit.metrics.flips import FLIP_EXAMPLES, flips_to_show, orient, other_comparisons, primary_comparisons, spread
from evalkit.report.diagnostics import scoring_settings
from evalkit.report.tables import Table
from evalkit.results.schema import Flips, RunResult, read_results

GOLDEN = Path(__file__).parents[1] / "golden"


def golden() -> RunResult:
    return read_results(GOLDEN / "results.json")


def test_comparisons_are_turned_so_that_the_reference_is_the_baseline() -> None:
    result = golden()
    c = next(c for c in result.comparisons if c.metric == "preference/accuracy" and c.subset == "all")
    assert c.flips is not None
    reversed_ = c.model_copy(
        update={
            "model": "base",
            "baseline": "aligned",
            "model_value": c.baseline_value,
            "baseline_value": c.model_value,
            "value": -c.value,
            "ci_low": -c.ci_high if c.ci_high is not None else None,
            "ci_high": -c.ci_low if c.ci_low is not None else None,
            "flips": Flips(
                wrong_to_right=c.flips.right_to_wrong,
                right_to_wrong=c.flips.wrong_to_right,
                wrong_to_right_ids=c.flips.right_to_wrong_ids,
                right_to_wrong_ids=c.flips.wrong_to_right_ids,
            ),
        }
    )
    assert primary_comparisons([reversed_], "base") == [c]
    assert orient(c, "base") is c
    assert primary_comparisons([c], None) == [c]  # no reference: against the first model
    assert other_comparisons([c], "base") == []


def test_flips_to_show_spreads_over_the_ids_of_each_direction() -> None:
    result = golden()
    shown = flips_to_show(result.comparisons, result.reference)
    assert list(shown) == ["tinyworld"]
    ids = shown["tinyworld"]
    assert len(ids) == 2 * FLIP_EXAMPLES == len(set(ids))
    assert {i.split("-")[0] for i in ids} == {"arithmetic", "format", "helpfulness"}
    assert spread(["a", "b"], 6) == ["a", "b"]
    assert spread([str(i) for i in range(10)], 3) == ["0", "3", "6"]


def test_tables_escape_cells_when_written_as_markdown() -> None:
    table = Table(["name", "value"], [["a|b<c>\\", "1.000"]])
    assert table.markdown == "| name | value |\n|---|---:|\n| a\\|b&lt;c&gt;\\\\ | 1.000 |"


def test_scoring_settings_name_what_the_numbers_depend_on_then_how_they_were_run() -> None:
    current = golden()
    old = current.model_copy(update={"schema_version": "1.2"})  # schema 1.2 recorded three of the settings
    assert scoring_settings(old) == "β 0.1, max_length 1024, batch size 16 (the rest not recorded)"
    result = current.model_copy(update={"scoring": current.scoring.model_copy(update={"reference_cache": None})})
    assert scoring_settings(result) == (
        "β 0.1, max_length 1024, float32, batch size 16, prompt sharing on, no reference cache"
    )
    scoring = result.scoring.model_copy(
        update={"token_budget": 4096, "share_prompt": False, "dtype": "bfloat16", "reference_cache": "cache/ref"}
    )
    environment = result.environment.model_copy(update={"processes": 2})
    changed = result.model_copy(update={"scoring": scoring, "environment": environment})

    assert scoring_settings(changed) == (
        "β 0.1, max_length 1024, bfloat16 (log-probs within ~1e-2 of float32), token budget 4096,"
        " prompt sharing off, reference cache cache/ref, 2 processes"
    )
