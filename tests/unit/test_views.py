"""What both reports show: which comparisons come first, and which flipped pairs are shown with their text."""

from pathlib import Path

from evalkit.metrics.flips import FLIP_EXAMPLES, flips_to_show, orient, other_comparisons, primary_comparisons, spread
from evalkit.report.diagnostics import scoring_settings
from evalkit.report.tables import Table
from evalkit.report.views import dataset_view
from evalkit.results.estimates import Flips, Metric
from evalkit.results.files import read_results
from evalkit.results.schema import DatasetInfo, RunResult

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


def test_each_rule_reads_as_one_statement_in_its_own_unit() -> None:
    from evalkit.report.statements import statement
    from evalkit.report.tables import as_typed
    from evalkit.results.schema import GateVerdict

    def rule(kind: str, **numbers: object) -> GateVerdict:
        return GateVerdict(
            rule="r", kind=kind, passed=True, status="passed", reason="(the gate's own words)", **numbers
        )

    non_inferiority = rule(
        "non_inferiority",
        metric="preference/accuracy",
        value=-0.0044,
        ci_low=-0.031,
        ci_high=0.022,
        threshold=-0.02,
        p_value=0.012,
        p_adjusted=0.024,
        alpha=0.05,
        n=225,
        test="H0: Δ <= -0.02 (tango score)",
    )
    stated = statement(non_inferiority)
    assert as_typed(stated) == (
        "Δ pref. acc -0.004 [-0.03, +0.02], must be above -0.020; p = 0.024 (Holm) at α = 0.05; n = 225 pairs"
    )
    # A narrow PR-comment column may wrap between clauses, never inside a number, its interval or its unit.
    assert "−0.004\xa0[−0.03,\xa0+0.02]" in stated and "p\xa0=\xa00.024" in stated and "n\xa0=\xa0225" in stated
    drift = rule("drift_budget", value=0.12, ci_low=0.08, ci_high=0.16, threshold=0.5, n=32, test="H0: KL >= 0.5 (t)")
    assert as_typed(statement(drift)) == "KL 0.120 [0.08, 0.16] nats, must be at most 0.500 nats; n = 32 prompts"
    assert "0.120\xa0[0.08,\xa00.16]\xa0nats" in statement(drift)
    # a length growth in percent, not a raw 0.061
    growth = rule("length_budget", value=0.061, threshold=0.1, n=32, test="H0: growth >= +10% (t on L − (1 + g)·L)")
    assert as_typed(statement(growth)) == "length growth +6.1%, must be at most +10%; n = 32 prompts"
    skipped = rule("non_inferiority").model_copy(update={"status": "skipped", "passed": False})
    assert statement(skipped) == "(the gate's own words)"  # nothing judged: the reason says why


def test_the_verdict_sentence_says_who_beats_whom_and_how_the_rules_came_out() -> None:
    from evalkit.report.statements import verdict_sentence
    from evalkit.results.schema import GateVerdict

    result = golden()
    assert verdict_sentence(result) == (
        "aligned beats base on tinyworld: preference accuracy +0.44 [+0.37, +0.52], 110 pairs flipped to right, "
        "10 to wrong."
    )
    unclear = [c.model_copy(update={"p_adjusted": 0.2}) for c in result.comparisons]
    assert verdict_sentence(result.model_copy(update={"comparisons": unclear})).startswith(
        "aligned does not differ measurably from base on tinyworld: preference accuracy +0.44"
    )
    worse = [c.reversed().model_copy(update={"model": "aligned", "baseline": "base"}) for c in result.comparisons]
    assert verdict_sentence(result.model_copy(update={"comparisons": worse})).startswith(
        "aligned is worse than base on tinyworld: preference accuracy -0.44 [-0.52, -0.37], 10 pairs flipped to right"
    )
    passed = GateVerdict(rule="a", kind="absolute", passed=True, status="passed", reason="")
    waiting = GateVerdict(rule="b", kind="non_inferiority", passed=False, status="skipped", reason="")
    gated = result.model_copy(update={"gate": [passed, passed.model_copy(update={"rule": "c"}), waiting]})
    assert verdict_sentence(gated).endswith("; all 2 judged release rules pass, 1 waiting for a baseline.")
    first = result.model_copy(update={"gate": [waiting]})  # the first run: nothing to hold it against yet
    assert verdict_sentence(first).endswith("; 1 release rule waiting for a baseline.")


def feedback_info() -> DatasetInfo:
    """An unpaired dataset of five labelled completions, as results.json records it."""
    return DatasetInfo(
        name="fb",
        path="fb.jsonl",
        fingerprint="x",
        n_pairs=5,
        subsets=["all"],
        pairs_file="completions/fb.jsonl",
        format="unpaired",
    )


def test_an_unpaired_dataset_is_shown_as_its_table_of_labels_and_auc() -> None:
    """The golden run with one more dataset of labelled completions: its view's headline is the per-label table,
    the reference on its log-probs alone, the group sizes from the log-prob means every model has."""

    def metric(
        model: str, name: str, value: float, n: int, low: float | None = None, high: float | None = None
    ) -> Metric:
        return Metric(
            dataset="fb",
            subset="all",
            model=model,
            metric=name,
            value=value,
            ci_low=low,
            ci_high=high,
            n=n,
            higher_is_better=None,
        )

    result = golden()
    extra = [
        metric("base", "trl/logps/chosen", -10.0, 3, -12.0, -8.0),
        metric("base", "trl/logps/rejected", -11.0, 2, -13.0, -9.0),
        metric("aligned", "trl/logps/chosen", -9.0, 3, -11.0, -7.0),
        metric("aligned", "trl/logps/rejected", -12.0, 2, -14.0, -10.0),
        metric("aligned", "trl/rewards/chosen", 0.25, 3, 0.1, 0.4),
        metric("aligned", "trl/rewards/rejected", -0.125, 2, -0.3, 0.05),
        metric("aligned", "objective/auc", 0.8333, 5, 0.35, 0.97),
    ]
    info = feedback_info()
    result = result.model_copy(update={"metrics": [*result.metrics, *extra], "datasets": [*result.datasets, info]})
    view = dataset_view(result, "fb", 5)
    assert view.unit == "completions" and view.comparisons == [] and view.length is None
    assert view.headline.header == [
        "subset",
        "model",
        "reward desirable",
        "reward undesirable",
        "reward AUC ↑",
        "logp desirable",
        "logp undesirable",
        "n desirable",
        "n undesirable",
    ]
    base, aligned = view.headline.rows
    assert base == ["all", "base", "—", "—", "—", "-10.000 [-12.00, -8.00]", "-11.000 [-13.00, -9.00]", "3", "2"]
    assert aligned[2:5] == ["0.250 [0.10, 0.40]", "-0.125 [-0.30, 0.05]", "0.833 [0.35, 0.97]"]


def test_an_unpaired_dataset_shows_the_auc_comparisons_of_models_with_rewards() -> None:
    """Two models with rewards on five labelled completions (the hand-worked rows of test_unpaired_comparisons.py:
    AUCs 5/6 and 3/4): the view has one section, the later model against the earlier, on the reward AUC, and the
    markdown report counts completions, not pairs."""
    from evalkit.report.document import render_markdown
    from evalkit.results.estimates import Comparison

    result = golden()
    info = feedback_info()
    auc = Metric(
        dataset="fb", subset="all", model="aligned", metric="objective/auc", value=0.8333, n=5, higher_is_better=True
    )
    delta = Comparison(
        dataset="fb",
        subset="all",
        model="aligned",
        baseline="base",
        metric="objective/auc",
        model_value=5 / 6,
        baseline_value=0.75,
        value=1 / 12,
        ci_low=-0.4,
        ci_high=0.55,
        n=5,
        higher_is_better=True,
        test="mover_auc",
        p_value=0.7,
        p_adjusted=0.9,
        method="mover_auc",
        se=0.2357,
        mde=None,
        n_positive=3,
        n_negative=2,
        correlation=0.6124,
    )
    result = result.model_copy(
        update={
            "metrics": [*result.metrics, auc],
            "datasets": [*result.datasets, info],
            "comparisons": [*result.comparisons, delta],
        }
    )
    view = dataset_view(result, "fb", 5)
    (section,) = view.comparisons
    assert (section.model, section.baseline, section.n) == ("aligned", "base", 5)
    (row,) = section.table.rows
    assert row[:3] == ["reward AUC ↑", "+0.083 [-0.40, +0.55]", "0.7"] and row[4:6] == ["0.750", "0.833"]
    assert "### fb: aligned vs base (5 completions both scored)" in render_markdown(result)
