"""The HTML report and its charts, read as text (tests/integration/test_browser.py opens it in Chromium)."""

import json
import re
from pathlib import Path

import pytest

from evalkit.metrics.flips import flips_to_show
from evalkit.report import charts
from evalkit.report.explorer import explorer_data, json_block
from evalkit.report.html import REPORT_CSP, REPORT_SCRIPT, render_html, sweep_steps
from evalkit.report.views import read_pairs
from evalkit.results.files import read_results
from evalkit.results.schema import GateVerdict, PairText, RunResult

GOLDEN = Path(__file__).parents[1] / "golden"


def golden() -> RunResult:
    return read_results(GOLDEN / "results.json")


def rendered(result: RunResult | None = None, with_pairs: bool = True) -> str:
    result = result or golden()
    return render_html(result, read_pairs(result, GOLDEN) if with_pairs else {})


def test_sections_come_in_the_order_a_reviewer_reads_them() -> None:
    verdict = GateVerdict(rule="r", kind="absolute", passed=True, status="passed", reason="fine")
    html = rendered(golden().model_copy(update={"gate": [verdict]}))
    order = ['id="verdict"', 'id="headline"', 'id="subsets"', 'id="charts"', 'id="flips"', 'id="generation"']
    order += ['id="audit"', 'id="provenance"']
    positions = [html.index(section) for section in order]
    assert positions == sorted(positions)
    assert 'class="verdict pass"' in html and "Gate PASSED: all 1 rules" in html


def test_without_a_gate_the_banner_holds_the_verdict_sentence_alone() -> None:
    html = rendered()
    sentence = "aligned beats base on tinyworld: preference accuracy +0.44 [+0.37, +0.52], 110 pairs flipped to right"
    assert f'<p class="sentence" id="sentence">{sentence}' in html and "Gate " not in html.split("</section>")[0]
    assert 'class="verdict info"' in html  # neither the pass nor the fail colour: no gate judged anything


def test_failed_rules_come_first_in_a_failing_banner() -> None:
    gate = [
        GateVerdict(rule="first", kind="absolute", passed=True, status="passed", reason="ok"),
        GateVerdict(
            rule="second", kind="superiority", passed=False, status="failed", reason="Δ +0.01, p = 0.4", p_value=0.4
        ),
    ]
    html = rendered(golden().model_copy(update={"gate": gate}))
    assert 'class="verdict fail"' in html and "Gate FAILED: 1 of 2 rules failed</strong>." in html
    assert html.index("<b>second</b>") < html.index("<b>first</b>")
    assert "p = 0.4" in html


def test_a_rule_waiting_for_a_baseline_shows_as_skipped_never_as_a_pass() -> None:
    gate = [
        GateVerdict(rule="first", kind="absolute", passed=True, status="passed", reason="ok"),
        GateVerdict(rule="later", kind="non_inferiority", passed=False, status="skipped", reason="no baseline yet"),
    ]
    html = rendered(golden().model_copy(update={"gate": gate}))
    assert "Gate PASSED: 1 of 1 judged rules; 1 skipped (no baseline yet)</strong>" in html
    assert '<span class="tag skip">skipped</span><b>later</b>' in html
    broken = [gate[0], gate[1].model_copy(update={"status": "undecidable"})]
    html = rendered(golden().model_copy(update={"gate": broken}))
    assert 'class="verdict fail"' in html and "Gate UNDECIDABLE: 1 of 2 rules could not be judged" in html
    assert html.index("<b>later</b>") < html.index("<b>first</b>")


def test_headline_shows_intervals_deltas_and_significance() -> None:
    html = rendered()
    assert '<td>0.916<span class="ci">[0.87, 0.95]</span></td>' in html
    title = "p = 6.9e-20, adjusted (BH) 2.1e-19, n = 225"
    delta = f'<td class="good" title="{title}">+0.444<span class="ci">[+0.37, +0.52]</span>'
    assert delta in html
    assert '<td class="good">▲ better</td>' in html
    assert "pref. acc ↑" in html and "DPO loss ↓" in html


def test_the_page_is_self_contained() -> None:
    html = rendered()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "no external resource"
    assert "@import" not in html and not re.search(r"url\((?!#)", html)
    assert f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP.replace(chr(39), "&#39;")}">' in html
    assert "unsafe-inline'; img-src data:; script-src 'sha256-" in REPORT_CSP and "unsafe-eval" not in REPORT_CSP
    # one script, allowed by its hash; the explorer's data is a JSON block nothing executes
    assert html.count("<script>") == 1 and f"<script>{REPORT_SCRIPT}</script>" in html
    assert html.count('<script type="application/json" id="pairs-data">') == 1
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_chart_element_ids_are_unique_in_the_page() -> None:
    ids = re.findall(r'\sid="([^"]+)"', rendered())
    assert len(ids) == len(set(ids))


def test_every_chart_is_drawn_with_per_pair_files_and_noted_without() -> None:
    with_pairs, without = rendered(), rendered(with_pairs=False)
    questions = [
        "How much better than base, and where",  # the forest plot of Δ per subset
        "How far apart the answers are",  # margin distributions
        "Does length decide?",
        "Can the margin be read as a probability?",
        "Loss, reward accuracy and margin against step",
    ]
    assert [h for h in re.findall(r"<figure>\n<h4>(.*?)</h4>", with_pairs)] == questions
    assert "<h4>How far apart the answers are</h4>" not in without
    # the reliability bins 0.82→0.67 (3 pairs) and 0.94→0.33 (3 pairs) are under 5 pairs: left out, and said so
    assert "Bins of fewer than 5 pairs are left out (6 pairs)." in with_pairs
    assert "Reward-margin charts need the per-pair file beside results.json; it was not found." in without


def test_flipped_pairs_show_their_text_and_how_the_margin_moved() -> None:
    result = golden()
    shown = flips_to_show(result.comparisons, result.reference)["tinyworld"]
    texts = [
        PairText(dataset="tinyworld", id=i, subset="s", prompt=f"P{i}", chosen=f"C{i}", rejected=f"R{i}") for i in shown
    ]
    html = rendered(result.model_copy(update={"flip_examples": texts}))
    first = shown[0]
    assert f"<b>{first}</b>" in html and f"P{first}</pre>" in html and f"R{first}</pre>" in html
    assert "logp margin base -0.49 → aligned +6.88" in html
    assert "is not in results.json" not in html
    older = golden().model_copy(update={"flip_examples": []})  # results written before they kept the text
    assert "is not in results.json" in rendered(older)


def test_conversational_text_is_kept_whole() -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    text = PairText(dataset="d", id="1", subset="all", prompt=messages, chosen="a", rejected="b")
    assert text.prompt == "user: Hi\n\nassistant: Hello"


def test_strings_from_data_and_models_are_escaped() -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>$x^2$"
    result = golden()
    generation = result.generation
    assert generation is not None
    generation = generation.model_copy(
        update={"samples": [s.model_copy(update={"completion": evil}) for s in generation.samples]}
    )
    metrics = [m.model_copy(update={"model": evil}) if m.model == "aligned" else m for m in result.metrics]
    models = [m.model_copy(update={"name": evil}) if m.name == "aligned" else m for m in result.models]
    comparisons = [c.model_copy(update={"model": evil}) if c.model == "aligned" else c for c in result.comparisons]
    update = {"generation": generation, "metrics": metrics, "models": models, "comparisons": comparisons}
    html = rendered(result.model_copy(update=update))
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;$x^2$" in html
    forest = re.search(r"<svg.*?</svg>", html, re.S).group(0)  # type: ignore[union-attr]
    assert "&lt;script&gt;alert(1)" in forest  # the legend of the forest plot: escaped by matplotlib


def test_long_text_is_clipped_with_a_note() -> None:
    result = golden()
    generation = result.generation
    assert generation is not None
    long = generation.model_copy(
        update={"samples": [s.model_copy(update={"completion": "x" * 5000}) for s in generation.samples]}
    )
    html = rendered(result.model_copy(update={"generation": long}))
    assert "x" * 4000 + "… [1000 more characters]" in html and "x" * 4001 not in html


def test_checkpoints_named_at_step_get_a_sweep_chart() -> None:
    result = golden()
    renamed = {"aligned": "aligned@100"}
    metrics = [m.model_copy(update={"model": renamed.get(m.model, m.model)}) for m in result.metrics]
    final = [m.model_copy(update={"model": "aligned"}) for m in result.metrics if m.model == "aligned"]
    models = [*result.models, result.models[1].model_copy(update={"name": "aligned@100"})]
    sweep = result.model_copy(update={"metrics": metrics + final, "models": models})
    assert sweep_steps(sweep) == {"aligned@100": 100, "aligned": 255}
    assert sweep_steps(result) == {}
    assert "of each checkpoint</h4>" in render_html(sweep)


def test_charts_are_inline_svg_and_the_same_every_time() -> None:
    result = golden()
    models = [m.name for m in result.models]
    colors = charts.palette(models)
    metrics = [m for m in result.metrics if m.dataset == "tinyworld"]
    first = charts.accuracy_chart(metrics, models, colors, "x")
    assert first.startswith("<svg") and 'class="chart"' in first and "<metadata>" not in first
    assert first == charts.accuracy_chart(metrics, models, colors, "x")
    assert first != charts.accuracy_chart(metrics, models, colors, "y")  # ids salted per chart


def test_results_of_schema_1_0_render_without_intervals_or_comparisons() -> None:
    result = golden()
    old = result.model_copy(
        update={
            "schema_version": "1.0",
            "statistics": None,
            "comparisons": [],
            "reliability": [],
            "generation": None,
            "training": None,
            "metrics": [m.model_copy(update={"ci_low": None, "ci_high": None}) for m in result.metrics],
        }
    )
    html = render_html(old)
    assert "No intervals: these results predate them" in html and 'id="flips"' not in html
    assert "<td>0.916</td>" in html


def test_an_interval_that_ends_inside_its_point_still_draws() -> None:
    """Wilson's upper end clamped at 1 can round a hair below an accuracy of 1.0; NaN values draw no whisker."""
    from evalkit.report.charts import whiskers

    assert whiskers(1.0, 0.9, 1.0 - 1e-12) == (pytest.approx(0.1), 0.0)
    assert whiskers(0.5, 0.4, 0.7) == (pytest.approx(0.1), pytest.approx(0.2))
    assert whiskers(float("nan"), 0.1, 0.2) == (0.0, 0.0) and whiskers(0.3, None, None) == (0.0, 0.0)
    result = golden()
    metrics = [
        m.model_copy(update={"value": 1.0, "ci_high": 1.0 - 1e-12}) if m.metric == "preference/accuracy" else m
        for m in result.metrics
    ]
    assert "<svg" in rendered(result.model_copy(update={"metrics": metrics}))


def test_the_report_script_cannot_end_its_own_element_early() -> None:
    # inside <script>, "</script" ends the element and "<!--" changes how the parser reads the rest
    assert not re.search(r"<[!/a-zA-Z]", REPORT_SCRIPT)


def test_the_explorer_carries_every_pair_with_its_text_and_margins() -> None:
    result = golden()
    pairs = read_pairs(result, GOLDEN)
    texts = {
        "tinyworld": {
            "arithmetic-0002": PairText(
                dataset="tinyworld",
                id="arithmetic-0002",
                subset="arithmetic",
                prompt="</script><script>alert(1)</script>",
                chosen="7",
                rejected="6",
            )
        }
    }
    data = explorer_data(result, pairs, texts, {"tinyworld": "base"})
    assert data is not None
    (dataset,) = data["datasets"]  # type: ignore[index]
    assert dataset["models"] == ["base", "aligned"] and dataset["anchor"] == 0
    assert dataset["subsets"] == ["arithmetic", "format", "helpfulness"] and len(dataset["rows"]) == 225
    row = next(r for r in dataset["rows"] if r[0] == "arithmetic-0002")
    scores = {p.model: p for p in pairs["tinyworld"] if p.id == "arithmetic-0002"}
    base, aligned = (round(scores[m].logp_chosen - scores[m].logp_rejected, 4) for m in ("base", "aligned"))
    length = scores["base"].n_tokens_chosen - scores["base"].n_tokens_rejected
    assert row == ["arithmetic-0002", 0, length, "</script><script>alert(1)</script>", "7", "6", base, aligned]
    assert base <= 0 < aligned  # arithmetic-0002 flipped wrong→right (results.json lists it)
    block = json_block(data)
    assert "</script" not in block and "<script" not in block
    assert json.loads(block) == data  # \u003c is still JSON


def test_the_page_shows_the_pairs_without_texts_when_no_texts_file_is_beside_the_results() -> None:
    html = rendered()
    data = json.loads(re.search(r'id="pairs-data">(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    rows = data["datasets"][0]["rows"]
    assert len(rows) == 225 and all(len(r) == 8 for r in rows)
    assert sum(1 for r in rows if r[3]) == len(golden().flip_examples)  # the flipped pairs results.json keeps


def test_chart_text_is_at_least_12_px_at_the_width_a_laptop_gives_it() -> None:
    """Each chart is drawn at `charts.WIDTH` inches and shown at most at its natural size (`max-width` in pt, one
    chart a row, the page's column 1,176 px wide at 1,280), so a text of f user units shows at f · 4/3 px."""
    html = rendered()
    for svg in re.findall(r"<svg .*?</svg>", html, re.S):
        natural_pt = float(re.search(r"max-width:([\d.]+)pt", svg).group(1))  # type: ignore[union-attr]
        view_width = float(re.search(r'viewBox="0 0 ([\d.]+)', svg).group(1))  # type: ignore[union-attr]
        shown_px = min(natural_pt * 4 / 3, 1176)
        sizes = [float(size) for size in re.findall(r"font-size: ([\d.]+)px", svg)]
        assert sizes and min(sizes) * shown_px / view_width >= 12, (min(sizes), shown_px, view_width)
