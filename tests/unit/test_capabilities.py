"""Capability scores, paired comparisons and their gate rule, on hand-made per-document results (no lm-eval run).

Hand-worked figures. Ten documents, the base right on all but d9, the aligned model wrong on d1, d4, d7
and right on d9: b = 1 gained, c = 3 lost, Δ = (1 − 3)/10 = −0.2; McNemar's z = (b − c)/√(b + c) = −1,
two-sided p = 2·Φ(−1) = 0.3173. Base 9/10 right: Wilson 95% with z = 1.96: centre (9 + 1.9208)/13.8415 =
0.78901, half-width 1.96·√(0.9 + 0.9604)/13.8415 = 0.19317, so [0.5958, 0.9822].
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import scipy.stats
from transformers import PreTrainedTokenizerFast

from evalkit.capabilities import harness, scores
from evalkit.capabilities.runs import DocumentScore, TaskRun
from evalkit.capabilities.scores import compare_runs, score_runs
from evalkit.cli import main
from evalkit.config.rules import GateSpec
from evalkit.config.specs import CapabilitiesSpec
from evalkit.config.suite import parse_suite
from evalkit.errors import EvalkitError
from evalkit.gate.judge import evaluate_gate
from evalkit.gate.junit import write_junit
from evalkit.gate.summary import summary_markdown
from evalkit.report.document import render_markdown
from evalkit.report.html import render_html
from evalkit.results.capabilities import CapabilityResult, CapabilityTask
from evalkit.results.estimates import Statistics
from evalkit.results.files import read_results
from evalkit.results.schema import RunResult
from evalkit.world.pairs import FACTS
from evalkit.world.tasks import arithmetic_documents, facts_documents, write_tasks

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"
OLDER = GOLDEN.with_name("results-1.5.json")
"""A real run written before capability tasks existed."""
STATISTICS = Statistics()


def run(model: str, right: set[int], n: int = 10, task: str = "facts", hashes: str = "h") -> TaskRun:
    documents = [DocumentScore(f"d{i}", f"{hashes}{i}", {"acc": float(i in right)}) for i in range(n)]
    return TaskRun(task, model, "1.0", 0, {"acc": True}, documents)


BASE = run("base", set(range(9)))
ALIGNED = run("aligned", {0, 2, 3, 5, 6, 8, 9})


def test_scores_are_shares_with_wilson_intervals() -> None:
    (base,) = score_runs([BASE], STATISTICS)
    assert (base.dataset, base.model, base.metric, base.value, base.n) == ("facts", "base", "acc", 0.9, 10)
    assert base.method == "wilson" and base.higher_is_better is True
    assert (base.ci_low, base.ci_high) == (pytest.approx(0.5958, abs=1e-4), pytest.approx(0.9822, abs=1e-4))


def test_continuous_scores_get_a_t_interval() -> None:
    """Values 1, 2, 3, 4: mean 2.5, sd √(5/3) = 1.2910, se 0.6455, t(3) 97.5% = 3.1824: 2.5 ± 2.0543."""
    documents = [DocumentScore(f"d{i}", "h", {"f1": float(v)}) for i, v in enumerate([1, 2, 3, 4])]
    (score,) = score_runs([TaskRun("qa", "base", None, None, {"f1": True}, documents)], STATISTICS)
    half = scipy.stats.t.ppf(0.975, 3) * math.sqrt(5 / 3) / 2
    assert score.method == "student_t" and score.value == 2.5
    assert (score.ci_low, score.ci_high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))


def test_paired_accuracy_is_tango_with_the_flipped_documents() -> None:
    (c,) = compare_runs([BASE, ALIGNED], STATISTICS)
    assert (c.model, c.baseline, c.test, c.method, c.n) == ("aligned", "base", "tango_score", "tango", 10)
    assert c.value == pytest.approx(-0.2) and (c.model_value, c.baseline_value) == (0.7, 0.9)
    assert c.p_value == pytest.approx(2 * scipy.stats.norm.cdf(-1.0))
    assert c.flips is not None
    assert (c.flips.wrong_to_right_ids, c.flips.right_to_wrong_ids) == (["d9"], ["d1", "d4", "d7"])
    assert c.ci_low is not None and c.ci_high is not None and c.ci_low < -0.2 < c.ci_high


def test_only_the_same_documents_are_paired() -> None:
    """A document whose hash differs (its text changed) is not the same document: it is left out."""
    changed = run("aligned", {0, 2, 3, 5, 6, 8, 9}, hashes="h")
    documents = [*changed.documents[:9], DocumentScore("d9", "other", {"acc": 1.0})]
    (c,) = compare_runs([BASE, TaskRun("facts", "aligned", "1.0", 0, {"acc": True}, documents)], STATISTICS)
    assert c.n == 9 and c.flips is not None and c.flips.wrong_to_right == 0 and c.flips.right_to_wrong == 3


def test_continuous_comparisons_are_paired_t() -> None:
    """Differences 1, 1, 2, 0: mean 1, sd √(2/3), se √(2/3)/2; two-sided p from t(3)."""
    ours = [DocumentScore(f"d{i}", "h", {"f1": v}) for i, v in enumerate([2.0, 3.0, 5.0, 4.0])]
    theirs = [DocumentScore(f"d{i}", "h", {"f1": v}) for i, v in enumerate([1.0, 2.0, 3.0, 4.0])]
    runs = [
        TaskRun("qa", "base", None, None, {"f1": True}, theirs),
        TaskRun("qa", "new", None, None, {"f1": True}, ours),
    ]
    (c,) = compare_runs(runs, STATISTICS)
    se = math.sqrt(2 / 3) / 2
    assert (c.test, c.value, c.flips) == ("paired_t", 1.0, None)
    assert c.se == pytest.approx(se) and c.p_value == pytest.approx(2 * scipy.stats.t.sf(1 / se, 3))


def result_with(comparisons_of: list[TaskRun], gate: list[dict[str, Any]] | None = None) -> RunResult:
    golden = read_results(GOLDEN)
    task = CapabilityTask(
        name="facts",
        version="1.0",
        source="facts.yaml",
        fingerprint="f" * 64,
        num_fewshot=0,
        limit=None,
        n_documents=10,
        metrics=["acc"],
    )
    caps = CapabilityResult(
        lm_eval_version="0.4.13",
        apply_chat_template=False,
        tasks=[task],
        scores=score_runs(comparisons_of, STATISTICS),
        comparisons=scores.with_fdr(compare_runs(comparisons_of, STATISTICS)),
    )
    return golden.model_copy(update={"capabilities": caps})


def rule(**kwargs: Any) -> dict[str, Any]:
    return {"kind": "capability_non_inferiority", "model": "aligned", "baseline": "base", "task": "facts", **kwargs}


def test_the_rule_is_tangos_non_inferiority_test_on_the_documents() -> None:
    """b = 1, c = 3, n = 10 at Δ₀ = −0.5: the quadratic 2n q² + (−b − c + (2n − b + c)Δ₀) q − cΔ₀(1 − Δ₀) = 0
    is 20q² − 15.0q + 2.25 = 0, q = (15 + √(225 − 180))/40 = 0.54271; Z = (b − c − nΔ₀)/√(n(2q + Δ₀ − Δ₀²))
    = 3/√(10·0.33541) = 1.6381, one-sided p = 0.0507: not below 0.05, so margin 0.5 fails on 10 documents;
    the same data pass margin 0.6 and fail margin 0.1."""
    spec = GateSpec.model_validate(
        {"min_pairs": 10, "correction": "none", "rules": [rule(margin=0.5), rule(margin=0.6), rule(margin=0.1)]}
    )
    half, wide, tight = evaluate_gate(spec, result_with([BASE, ALIGNED]), GOLDEN.parent)
    q = (15 + math.sqrt(45)) / 40
    z = 3 / math.sqrt(10 * (2 * q - 0.5 - 0.25))
    assert half.p_value == pytest.approx(float(scipy.stats.norm.sf(z)), rel=1e-9)
    assert (half.status, wide.status, tight.status) == ("failed", "passed", "failed")
    assert half.kind == "capability_non_inferiority" and half.dataset == "facts" and half.metric == "acc"
    assert half.test == "H0: Δ <= -0.5 (tango score)" and "over 10 documents" in half.reason
    assert half.value == pytest.approx(-0.2) and half.n == 10


def test_the_rule_reads_a_comparison_recorded_the_other_way_round() -> None:
    """base − aligned recorded (base listed last): the rule about aligned reads Δ = −0.2 all the same."""
    spec = GateSpec.model_validate({"min_pairs": 10, "rules": [rule(margin=0.6)]})
    (verdict,) = evaluate_gate(spec, result_with([ALIGNED, BASE]), GOLDEN.parent)
    assert verdict.value == pytest.approx(-0.2) and verdict.status == "passed"


def test_the_rule_is_undecidable_without_the_task_the_comparison_or_enough_documents(tmp_path: Path) -> None:
    spec = GateSpec.model_validate({"rules": [rule(margin=0.1)]})
    (no_tasks,) = evaluate_gate(spec, read_results(OLDER), GOLDEN.parent)
    assert no_tasks.status == "undecidable" and "no capability tasks" in no_tasks.reason
    (too_few,) = evaluate_gate(spec, result_with([BASE, ALIGNED]), GOLDEN.parent)  # min_pairs 30 > 10 documents
    assert too_few.status == "undecidable" and "needs at least 30 documents, has 10" in too_few.reason
    other = GateSpec.model_validate({"min_pairs": 10, "rules": [rule(margin=0.1, metric="acc_norm")]})
    (no_metric,) = evaluate_gate(other, result_with([BASE, ALIGNED]), GOLDEN.parent)
    assert no_metric.status == "undecidable" and "acc_norm" in no_metric.reason
    write_junit([no_tasks], tmp_path / "junit.xml")
    assert "<error" in (tmp_path / "junit.xml").read_text()
    assert "Δ" not in summary_markdown([no_tasks], "t").split("\n")[4]


SUITE: dict[str, Any] = {
    "name": "s",
    "output_dir": "out",
    "datasets": [{"name": "d", "path": "d.jsonl"}],
    "models": [{"name": "base", "path": "b"}, {"name": "aligned", "path": "a"}],
}


def suite_with(**sections: Any) -> dict[str, Any]:
    return {**SUITE, **sections}


def test_the_capabilities_section_is_validated_when_the_suite_loads() -> None:
    suite = parse_suite(suite_with(capabilities={"tasks": ["facts"], "num_fewshot": 5, "limit": 50}))
    assert suite.capabilities is not None and suite.capabilities.num_fewshot == 5
    with pytest.raises(EvalkitError, match=r"capabilities\.fewshot: unknown key \(did you mean 'num_fewshot'\?\)"):
        parse_suite(suite_with(capabilities={"tasks": ["facts"], "fewshot": 5}))
    with pytest.raises(EvalkitError, match=r"capabilities\.tasks: 'facts' is listed twice"):
        parse_suite(suite_with(capabilities={"tasks": ["facts", "facts"]}))
    with pytest.raises(EvalkitError, match=r"capabilities\.tasks: .*at least 1 item"):
        parse_suite(suite_with(capabilities={"tasks": []}))


def test_capability_rules_name_a_task_of_the_suite_and_another_model() -> None:
    gate = {"rules": [rule(margin=0.05)]}
    ok = parse_suite(suite_with(capabilities={"tasks": ["facts"]}, gate=gate))
    assert ok.gate is not None and ok.gate.rules[0].title == "aligned no worse than base on facts (margin 0.05)"
    with pytest.raises(EvalkitError, match=r"gate\.rules\.0\.task: no capability task 'fact' \(did you mean 'facts'"):
        parse_suite(suite_with(capabilities={"tasks": ["facts"]}, gate={"rules": [rule(margin=0.05, task="fact")]}))
    with pytest.raises(
        EvalkitError, match=r"gate\.rules\.0\.task: no capability task 'facts'; capabilities\.tasks are \[\]"
    ):
        parse_suite(suite_with(gate=gate))
    with pytest.raises(EvalkitError, match=r"gate\.rules\.0\.baseline: no model named 'bse'"):
        parse_suite(suite_with(capabilities={"tasks": ["facts"]}, gate={"rules": [rule(margin=0.05, baseline="bse")]}))
    with pytest.raises(EvalkitError, match=r"kind 'capability_non_inferiority' needs `margin`"):
        parse_suite(suite_with(capabilities={"tasks": ["facts"]}, gate={"rules": [rule()]}))
    with pytest.raises(EvalkitError, match=r"`dataset` is not used by kind 'capability_non_inferiority'"):
        parse_suite(suite_with(capabilities={"tasks": ["facts"]}, gate={"rules": [rule(margin=0.1, dataset="d")]}))


def test_without_lm_eval_a_suite_with_tasks_stops_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def absent(name: str) -> str:
        raise harness.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(harness.importlib.metadata, "version", absent)
    world = tmp_path / "world"
    suite = suite_with(world={"dir": str(world)}, capabilities={"tasks": ["facts"]})
    (tmp_path / "suite.yaml").write_text(json.dumps(suite))
    assert main(["bench", str(tmp_path / "suite.yaml")]) == 2
    message = capsys.readouterr()
    lines = [line for line in (message.out + message.err).splitlines() if line.strip()]
    assert lines == [
        "evalkit: error: capabilities: lm-eval is not installed; "
        "install the capabilities extra: pip install 'lm-eval[api]>=0.4.13,<0.5'"
    ]
    assert not world.exists()  # nothing built, trained or loaded


def test_the_worlds_tasks_hold_the_right_answers(tmp_path: Path) -> None:
    facts = facts_documents()
    assert len(facts) == 160 and len({d["id"] for d in facts}) == 160
    for d in facts:
        question = d["question"].split(" asks: ", 1)[1]
        assert d["choices"][d["answer"]] == FACTS[question] + "." and len(set(d["choices"])) == 4
    sums = arithmetic_documents()
    assert len(sums) == 100
    for d in sums:
        a, b = (int(x) for x in d["question"].removeprefix("What is ").removesuffix("?").split(" plus "))
        assert d["choices"][d["answer"]] == f"{a} + {b} = {a + b}." and len(set(d["choices"])) == 4
    first = write_tasks(tmp_path)
    stamps = [p.stat().st_mtime_ns for p in tmp_path.iterdir()]
    assert write_tasks(tmp_path) == first and [p.stat().st_mtime_ns for p in tmp_path.iterdir()] == stamps
    config = json.loads((tmp_path / "tinyworld_facts.yaml").read_text())
    assert config["dataset_kwargs"]["data_files"]["test"] == str((tmp_path / "tinyworld_facts.jsonl").resolve())


def test_the_report_section_escapes_names() -> None:
    hostile = [TaskRun("a|b<script>", m.model, "1.0", 0, {"acc": True}, m.documents) for m in (BASE, ALIGNED)]
    result = result_with(hostile)
    caps = result.capabilities
    assert caps is not None
    text = render_markdown(result)
    section = text[text.index("## Capabilities") :]
    assert "a\\|b&lt;script&gt;" in section and "<script>" not in section
    assert (
        "| a\\|b&lt;script&gt; | acc ↑ | aligned − base | \u22120.200\u00a0[" in section
    )  # numbers never wrap in markdown
    assert "d1, d4, d7" in section
    page = render_html(result)
    assert 'id="capabilities"' in page and "a|b&lt;script&gt;" in page and "<script>" not in page.split("<body")[1]


def test_old_results_read_without_capabilities(tmp_path: Path) -> None:
    older = json.loads(OLDER.read_text())
    assert older["schema_version"] == "1.5" and read_results(OLDER).capabilities is None
    # A 1.6 file with capabilities round-trips.
    written = tmp_path / "results.json"
    written.write_text(result_with([BASE, ALIGNED]).model_dump_json())
    assert read_results(written).capabilities == result_with([BASE, ALIGNED]).capabilities


def test_a_chat_template_is_required_when_documents_are_rendered_with_one() -> None:
    class Tokenizer:
        chat_template = None

    class Spec:
        name = "plain"

    class Loaded:
        spec, tokenizer = Spec(), Tokenizer()

    runner = object.__new__(harness.CapabilityRunner)
    runner.spec = CapabilitiesSpec(tasks=["facts"], apply_chat_template=True)
    with pytest.raises(EvalkitError, match=r"capabilities\.apply_chat_template: model 'plain' has no chat template"):
        runner._evaluate(Loaded(), ["facts"])  # type: ignore[arg-type]


TASK_WITH_CODE = """task: coded
dataset_path: json
dataset_kwargs: {data_files: {test: docs.jsonl}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_target: 0
doc_to_choice: ["a", "b"]
process_docs: !function utils.process_docs
"""


@pytest.mark.parametrize("layout", ["direct", "included"])
def test_task_files_that_run_python_need_allow_code(tmp_path: Path, layout: str) -> None:
    from evalkit.capabilities.harness import CapabilityRunner

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tmp_path / "utils.py").write_text("def process_docs(docs):\n    return docs\n")
    if layout == "direct":
        (tasks / "coded.yaml").write_text(TASK_WITH_CODE)
    else:  # the `!function` sits in a file outside include_path, which the task includes
        (tmp_path / "base.yaml").write_text(TASK_WITH_CODE.replace("task: coded\n", ""))
        (tasks / "coded.yaml").write_text("include: ../base.yaml\ntask: coded\n")
    spec = CapabilitiesSpec(tasks=["coded"], include_path=[tasks])
    with pytest.raises(
        EvalkitError,
        match=r"^capabilities\.include_path: .*yaml runs Python \(!function utils\.process_docs\); .*"
        r"capabilities\.allow_code: true",
    ) as refused:
        CapabilityRunner(spec)
    assert "\n" not in str(refused.value)
    CapabilityRunner(spec.model_copy(update={"allow_code": True}))  # trusted: indexed as before


def test_allow_code_is_a_suite_key() -> None:
    assert CapabilitiesSpec(tasks=["t"]).allow_code is False
    assert CapabilitiesSpec.model_validate({"tasks": ["t"], "allow_code": True}).allow_code is True


def test_a_served_model_encodes_documents_with_the_special_tokens_lm_eval_adds_in_process(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    """lm-eval's Hugging Face model encodes with the tokenizer's defaults (the world's adds BOS), except text that
    already starts with BOS; its API model adds nothing unless told. The world's chat template writes the BOS
    itself, so rendered documents must not get a second one; a template that does not gets the tokenizer's."""
    from evalkit.capabilities.served import with_special_tokens

    assert with_special_tokens(tiny_tokenizer, apply_chat_template=False)
    assert not with_special_tokens(tiny_tokenizer, apply_chat_template=True)  # "<s><|user|>x<|end|><|assistant|>"
    without_bos = copy.deepcopy(tiny_tokenizer)
    without_bos.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert with_special_tokens(without_bos, apply_chat_template=True)
