"""Pairwise judges and generation backends in report.md and report.html (`evalkit.report.judged`)."""

from pathlib import Path

from evalkit.report.document import render_markdown
from evalkit.report.html import render_html
from evalkit.report.judged import MEANINGS, judged_view
from evalkit.report.tables import unbreakable
from evalkit.results.files import read_results
from evalkit.results.generation import Backend, LengthControlledWinRate, PairwiseWinRate
from evalkit.results.schema import RunResult

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"

WIN_RATE = PairwiseWinRate(
    judge="llm",
    model="aligned",
    baseline="base",
    win_rate=0.65,
    ci_low=0.52,
    ci_high=0.76,
    method="wilson",
    n_effective=40.0,
    wins=22,
    ties=8,
    losses=10,
    n=40,
    unparsed=2,
    length_controlled=LengthControlledWinRate(
        win_rate=0.49,
        ci_low=0.33,
        ci_high=0.65,
        intercept=-0.04,
        length_coefficient=1.5,
        se=0.33,
        n=40,
        method="delta method",
    ),
    position_bias_rate=0.2,
    agreement_rate=0.8,
    first_position_rate=0.6,
)
BACKENDS = [
    Backend(
        used_by="generation",
        backend="openai",
        base_url="http://gpu-box:8000/v1",
        served_models={"base": "base", "aligned": "dpo"},
        api_key_env="VLLM_API_KEY",
        concurrency=8,
        deterministic=False,
        reason="greedy, but concurrent requests may be batched together and round differently",
        requests_sent=0,
    ),
    Backend(used_by="judge llm", backend="hf", deterministic=True, reason="in process"),
]


def judged_result() -> RunResult:
    result = read_results(GOLDEN)
    assert result.generation is not None
    generation = result.generation.model_copy(update={"pairwise": [WIN_RATE], "backends": BACKENDS})
    return result.model_copy(update={"generation": generation})


def test_an_older_results_file_reads_with_no_backends_and_no_pairwise_judges() -> None:
    generation = read_results(GOLDEN.with_name("results-1.5.json")).generation
    assert generation is not None and (generation.backends, generation.pairwise, generation.pairwise_judgments) == (
        [],
        [],
        [],
    )
    assert judged_view(generation) is None


def test_the_view_has_one_row_per_judged_model_and_says_what_cannot_be_repeated() -> None:
    generation = judged_result().generation
    assert generation is not None
    view = judged_view(generation)
    assert view is not None and view.win_rates is not None and view.backends is not None
    assert view.win_rates.rows == [
        [
            "llm",
            "aligned",
            "base",
            "0.650 [0.52, 0.76]",
            "0.490 [0.33, 0.65]",
            "1.500",
            "22 / 8 / 10",
            "20%",
            "80%",
            "40",
            "2",
        ]
    ]
    assert view.backends.rows[0][2] == "http://gpu-box:8000/v1 (base → base, aligned → dpo)"
    assert [row[3] for row in view.backends.rows] == ["no", "yes"]
    assert view.cautions == [
        "generation: a fresh run may not repeat these answers (greedy, but concurrent requests may be batched "
        "together and round differently); the response cache repeats them exactly"
    ]
    in_process = generation.model_copy(
        update={"pairwise": [], "backends": [BACKENDS[1].model_copy(update={"used_by": "generation"})]}
    )
    assert judged_view(in_process) is None  # nothing to add to a run decoded in process without pairwise judges
    echoed = generation.model_copy(update={"backends": [BACKENDS[0].model_copy(update={"answers_redacted": 2})]})
    view = judged_view(echoed)
    assert view is not None and view.cautions[1] == (
        "generation: the server echoed the API key in 2 answers; it is masked (***) in the completions kept and shown"
    )


def test_both_reports_show_the_judge_numbers_and_what_each_means() -> None:
    result = judged_result()
    markdown = render_markdown(result, budget=10**9)
    numbers = ["0.650 [0.52, 0.76]", "0.490 [0.33, 0.65]", "1.500", "22 / 8 / 10"]  # never wrapped in a PR comment
    assert "| llm | aligned | base | " + " | ".join(map(unbreakable, numbers)) + " |" in markdown
    assert all(f"- {line}" in markdown for line in MEANINGS)
    assert "> generation: a fresh run may not repeat these answers" in markdown
    html = render_html(result)
    assert "LC win rate" in html and "length-controlled win rate: the win rate the judge would give" in html
    assert "a fresh run may not repeat these answers" in html
    assert "VLLM_API_KEY" not in markdown + html  # the variable's name is in results.json, not in the reports
