"""evalkit from Python, used the way docs/how-to/python.md shows it, on tiny in-memory models.

The API's numbers are the CLI's: `evalkit.score` on a DataFrame and on a `datasets.Dataset` gives every
metric `evalkit bench` writes for the same models saved to disk and the same pairs in a file, interval
and n included; a log-prob is checked against a plain forward pass, the rewards and the accuracy against
the per-pair frame by hand, a comparison's flips against both models' frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

import evalkit
from evalkit.api.functions import as_pairs
from evalkit.cli import main
from evalkit.results.files import read_results as read_result_file
from evalkit.scoring.score import tokenize_pair
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs

BETA = 0.1
LAYOUT = evalkit.Layout(id_column="id", subset_column="subset")


@pytest.fixture(scope="module")
def aligned(tiny_tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """Another random tiny Llama: a model that differs from the base on every pair."""
    torch.manual_seed(1)
    return build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    return [
        {"id": p.id, "subset": p.subset, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        for p in generate_pairs(5, seed=4)
    ]


@pytest.fixture(scope="module")
def run(
    aligned: LlamaForCausalLM, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, rows: list
) -> evalkit.Evaluation:
    pairs = pd.DataFrame(rows)
    return evalkit.score(
        aligned,
        pairs,
        tokenizer=tiny_tokenizer,
        ref=tiny_model,
        beta=BETA,
        name="aligned",
        ref_name="base",
        layout=LAYOUT,
    )


def test_api_numbers_equal_the_clis_on_the_same_pairs(
    run: evalkit.Evaluation,
    aligned: LlamaForCausalLM,
    tiny_model: LlamaForCausalLM,
    tiny_tokenizer: PreTrainedTokenizerFast,
    rows: list,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, model in (("base", tiny_model), ("aligned", aligned)):
        model.save_pretrained(tmp_path / name)
        tiny_tokenizer.save_pretrained(tmp_path / name)
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = {
        "name": "cli",
        "output_dir": str(tmp_path / "out"),
        "datasets": [{"name": "pairs", "path": "pairs.jsonl", "id_column": "id", "subset_column": "subset"}],
        "models": [{"name": "base", "path": "base"}, {"name": "aligned", "path": "aligned"}],
        "reference": "base",
        "scoring": {"beta": BETA, "reference_cache": None},
    }
    (tmp_path / "suite.yaml").write_text(json.dumps(suite))  # JSON is YAML
    assert main(["bench", "suite.yaml"]) == 0
    cli = read_result_file(tmp_path / "out" / "results.json")

    def table(metrics: pd.DataFrame) -> pd.DataFrame:
        keys = ["dataset", "subset", "model", "metric"]
        return metrics.sort_values(keys).reset_index(drop=True)[[*keys, "value", "ci_low", "ci_high", "n", "method"]]

    ours = table(run.metrics_frame())
    theirs = table(evalkit.Evaluation(cli, {}).metrics_frame())
    assert len(ours) == len(theirs) > 40
    pd.testing.assert_frame_equal(ours, theirs, rtol=1e-9, atol=1e-12)
    # The same from a datasets.Dataset, and through run_suite (the CLI's own path, from Python).
    from datasets import Dataset

    from_dataset = evalkit.score(
        aligned,
        Dataset.from_list(rows),
        tokenizer=tiny_tokenizer,
        ref=tiny_model,
        beta=BETA,
        name="aligned",
        ref_name="base",
        layout=LAYOUT,
    )
    pd.testing.assert_frame_equal(table(from_dataset.metrics_frame()), theirs, rtol=1e-9, atol=1e-12)
    suite_run = evalkit.run_suite(tmp_path / "suite.yaml", ["scoring.batch_size=3"], out=tmp_path / "again")
    assert suite_run is not None
    # Three pairs per pass instead of eight: float rounding of other batch shapes, nothing more.
    pd.testing.assert_frame_equal(table(suite_run.metrics_frame()), theirs, rtol=1e-6, atol=1e-7)
    assert len(suite_run.pairs_frame()) == 2 * len(rows)
    # Directories instead of models in memory, the file instead of a frame: loaded as evalkit bench loads them.
    from_paths = evalkit.score(
        tmp_path / "aligned",
        tmp_path / "pairs.jsonl",
        ref=tmp_path / "base",
        name="aligned",
        ref_name="base",
        layout=LAYOUT,
    )
    pd.testing.assert_frame_equal(table(from_paths.metrics_frame()), theirs, rtol=1e-9, atol=1e-12)
    # A frame read back from Parquet holds the chat messages as numpy arrays: the same pairs all the same.
    pd.DataFrame(rows).to_parquet(tmp_path / "pairs.parquet")
    from_parquet = evalkit.score(
        aligned,
        pd.read_parquet(tmp_path / "pairs.parquet"),
        tokenizer=tiny_tokenizer,
        ref=tiny_model,
        name="aligned",
        ref_name="base",
        layout=LAYOUT,
    )
    pd.testing.assert_frame_equal(table(from_parquet.metrics_frame()), theirs, rtol=1e-9, atol=1e-12)
    from_mapping = evalkit.run_suite(suite, out=tmp_path / "mapping")  # a mapping of suite keys, as in a notebook
    assert from_mapping is not None and (tmp_path / "mapping" / "suite.yaml").is_file()
    pd.testing.assert_frame_equal(table(from_mapping.metrics_frame()), theirs, rtol=1e-9, atol=1e-12)


def test_a_log_prob_is_the_sum_over_the_completion_of_a_plain_forward_pass(
    run: evalkit.Evaluation, aligned: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, rows: list
) -> None:
    pair = as_pairs(rows, "pairs", LAYOUT)[0]
    tokens = tokenize_pair(pair, tiny_tokenizer)
    ids = torch.tensor([tokens.prompt_ids + tokens.chosen_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(aligned(input_ids=ids).logits[0, :-1].double(), dim=-1)  # (T-1, V)
    start = len(tokens.prompt_ids)
    expected = sum(float(logprobs[t - 1, ids[0, t]]) for t in range(start, ids.shape[1]))
    frame = run.pairs_frame()
    row = frame[(frame.id == pair.id) & (frame.model == "aligned")].iloc[0]
    assert row.logp_chosen == pytest.approx(expected, abs=1e-4)
    assert row.n_tokens_chosen == len(tokens.chosen_ids)


def test_frames_are_tidy_and_agree_with_the_per_pair_rows(run: evalkit.Evaluation) -> None:
    metrics = run.metrics_frame()
    assert list(metrics.columns[:8]) == ["dataset", "subset", "model", "metric", "value", "ci_low", "ci_high", "n"]
    assert not metrics.duplicated(["dataset", "subset", "model", "metric"]).any()
    assert set(metrics.subset) == {"all", "arithmetic", "format", "helpfulness"}
    assert run.models == ["base", "aligned"]  # the reference first: the results compare aligned against it
    assert "rewards/accuracies" not in set(metrics[metrics.model == "base"].metric)  # a reference has no rewards
    pairs = run.pairs_frame()
    mine = pairs[pairs.model == "aligned"]
    assert len(mine) == 15 and mine.ref_logp_chosen.notna().all()
    margin = BETA * ((mine.logp_chosen - mine.ref_logp_chosen) - (mine.logp_rejected - mine.ref_logp_rejected))
    np.testing.assert_allclose(mine.margin, margin, rtol=1e-12)
    assert run.value("rewards/accuracies", "aligned") == pytest.approx(float((margin > 0).mean()))
    assert run.value("loss", "aligned") == pytest.approx(float(np.log1p(np.exp(-margin)).mean()))
    accuracy = run.metric("preference/accuracy", "aligned", subset="format")
    subset = mine[mine.subset == "format"]
    assert accuracy.n == len(subset) and accuracy.value == pytest.approx(
        float((subset.logp_chosen > subset.logp_rejected).mean())
    )
    assert accuracy.ci_low is not None and accuracy.ci_low < accuracy.value < accuracy.ci_high
    comparisons = run.comparisons_frame()
    assert set(comparisons.baseline) == {"base"} and set(comparisons.model) == {"aligned"}
    assert run.gate_frame().empty and run.samples_frame().empty


def test_compare_models_tests_two_runs_pair_by_pair(
    aligned: LlamaForCausalLM, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, rows: list
) -> None:
    pairs = pd.DataFrame(rows)
    base = evalkit.score(tiny_model, pairs, tokenizer=tiny_tokenizer, name="base", layout=LAYOUT)
    mine = evalkit.score(aligned, pairs, tokenizer=tiny_tokenizer, name="aligned", layout=LAYOUT)
    both = evalkit.compare_models(base, mine)
    row = both.comparisons_frame().query("subset == 'all' and metric == 'preference/accuracy'").iloc[0]
    right = {}
    for run, name in ((base, "base"), (mine, "aligned")):
        frame = run.pairs_frame().set_index("id").sort_index()
        right[name] = frame.logp_chosen > frame.logp_rejected
    assert (row.model, row.baseline) == ("aligned", "base")
    assert row.value == pytest.approx(right["aligned"].mean() - right["base"].mean())
    assert row.wrong_to_right == int((right["aligned"] & ~right["base"]).sum())
    assert row.right_to_wrong == int((~right["aligned"] & right["base"]).sum())
    assert row.test == "tango_score" and row.ci_low <= row.value <= row.ci_high
    other = evalkit.score(aligned, pairs.iloc[:10], tokenizer=tiny_tokenizer, name="fewer", layout=LAYOUT)
    with pytest.raises(evalkit.EvalkitError, match="other pairs"):
        evalkit.compare_models(base, other)
    with pytest.raises(evalkit.EvalkitError, match="model named 'base'"):
        evalkit.compare_models(
            base, evalkit.score(aligned, pairs, tokenizer=tiny_tokenizer, name="base", layout=LAYOUT)
        )


def test_a_peft_model_is_measured_against_its_adapter_disabled(
    tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, rows: list
) -> None:
    import copy

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(2)
    config = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapted = get_peft_model(copy.deepcopy(tiny_model), config).eval()
    run = evalkit.score(adapted, rows, tokenizer=tiny_tokenizer, name="lora", ref_name="base", layout=LAYOUT)
    base = evalkit.score(tiny_model, rows, tokenizer=tiny_tokenizer, name="base", layout=LAYOUT)
    pairs = run.pairs_frame().set_index(["model", "id"])
    plain = base.pairs_frame().set_index("id")
    lora = pairs.loc["lora"]
    np.testing.assert_allclose(lora.ref_logp_chosen, plain.logp_chosen.loc[lora.index], atol=1e-5)
    assert not np.allclose(lora.logp_chosen, plain.logp_chosen.loc[lora.index], atol=1e-3)  # the adapter acts
    assert run.result.reference == "base" and run.models == ["base", "lora"]
    assert run.result.models[0].path.endswith("(adapter disabled)")


def test_inline_display_is_the_reports_tables_escaped_and_without_scripts(
    aligned: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, rows: list
) -> None:
    name = "<script>alert(1)</script>"
    run = evalkit.score(aligned, rows, tokenizer=tiny_tokenizer, name=name, layout=LAYOUT)
    inline = run._repr_html_()
    assert "<table>" in inline and "pref. acc" in inline
    assert "<script" not in inline and "&lt;script&gt;alert(1)&lt;/script&gt;" in inline
    value = f"{run.value('preference/accuracy', name):.3f}"
    assert value in inline
    framed = run.report()._repr_html_()
    assert framed.startswith('<iframe sandbox=""') and "srcdoc=" in framed
    assert "<script" not in framed  # the report's own print script and the name travel escaped
    assert run.report().html.startswith("<!doctype html>")


def test_saved_runs_read_back_and_render_with_the_cli(run: evalkit.Evaluation, tmp_path: Path) -> None:
    written = run.save(tmp_path / "run")
    assert tmp_path / "run" / "results.json" in written and (tmp_path / "run" / "pairs" / "pairs.jsonl").is_file()
    again = evalkit.read_results(tmp_path / "run")
    pd.testing.assert_frame_equal(again.metrics_frame(), run.metrics_frame())
    pd.testing.assert_frame_equal(again.pairs_frame(), run.pairs_frame())
    assert main(["report", str(tmp_path / "run" / "results.json"), "--out", str(tmp_path / "rendered")]) == 0
    assert (tmp_path / "rendered" / "report.html").is_file()


def test_bad_inputs_are_one_line_errors(aligned: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(evalkit.EvalkitError, match="expected a datasets.Dataset, a pandas DataFrame"):
        evalkit.score(aligned, 42, tokenizer=tiny_tokenizer)
    with pytest.raises(evalkit.EvalkitError, match="needs its tokenizer"):
        evalkit.score(aligned, [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    with pytest.raises(evalkit.EvalkitError, match="row 1: missing column 'rejected'"):
        evalkit.score(aligned, pd.DataFrame([{"prompt": "a", "chosen": "b"}]), tokenizer=tiny_tokenizer)
    with pytest.raises(evalkit.EvalkitError, match="has no rows"):
        evalkit.score(aligned, [], tokenizer=tiny_tokenizer)
    with pytest.raises(evalkit.EvalkitError, match="metric 'nope': no such metric; metrics are"):
        evalkit.score(aligned, [{"prompt": "a", "chosen": "b", "rejected": "c"}], tokenizer=tiny_tokenizer).value(
            "nope"
        )


def test_a_bad_method_is_one_line_error(aligned: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    pairs = [{"prompt": "a", "chosen": "b", "rejected": "c"}]
    cases: dict[str, object] = {
        "method.gamma: Input should be a valid number": {"name": "simpo", "gamma": "high"},
        "method.name: unknown name 'dop' \\(did you mean 'dpo'\\?\\)": {"name": "dop"},
        "method.name: unknown name 'simpx' \\(did you mean 'simpo'\\?\\)": "simpx",  # a name alone, as the CLI's
        "method.loss_type.0: unknown value 'sigmoid_typo'": {"name": "dpo", "loss_type": "sigmoid_typo"},
        "method: got a int; expected a name, a mapping or an objective": 3,
        # A plain model scored alone has no reference for DPO's or KTO's rewards: said before any scoring.
        "method: 'kto' compares the model with a reference; pass ref=": "kto",
    }
    for message, method in cases.items():
        with pytest.raises(evalkit.EvalkitError, match=message) as error:
            evalkit.score(aligned, pairs, tokenizer=tiny_tokenizer, method=method)
        assert "\n" not in str(error.value)


def test_value_names_the_model_when_the_run_holds_more_than_one(
    run: evalkit.Evaluation, aligned: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast, rows: list
) -> None:
    with pytest.raises(evalkit.EvalkitError) as error:
        run.value("rewards/accuracies")  # base (the reference) and aligned: which one is not for evalkit to guess
    assert str(error.value) == "model: this run holds 2 ('base', 'aligned'); pass model= the one you mean"
    with pytest.raises(evalkit.EvalkitError, match="model: this run holds 2"):
        run.metric("preference/accuracy")
    assert run.value("preference/accuracy", "base") != run.value("preference/accuracy", "aligned")
    alone = evalkit.score(aligned, rows, tokenizer=tiny_tokenizer, name="aligned", layout=LAYOUT)
    frame = alone.pairs_frame()
    assert alone.value("preference/accuracy") == pytest.approx(float((frame.logp_chosen > frame.logp_rejected).mean()))
    assert alone.value("preference/accuracy") == alone.value("preference/accuracy", "aligned", "pairs")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda run: run.value("rewards/accuracy", "aligned"),
            "metric 'rewards/accuracy': no such metric (did you mean 'rewards/accuracies'?); metrics are [",
        ),
        (lambda run: run.metric("preference/acuracy", "base"), "(did you mean 'preference/accuracy'?)"),
        (
            lambda run: run.value("loss", "algned"),
            "model 'algned': not in this run (did you mean 'aligned'?); models: ['base', 'aligned']",
        ),
        (
            lambda run: run.value("loss", "aligned", "pair"),
            "dataset 'pair': not in this run (did you mean 'pairs'?); datasets: ['pairs']",
        ),
        (lambda run: run.value("loss", "aligned", subset="fromat"), "subset 'fromat': not in 'pairs' (did you mean"),
        # Spelt right, but the reference has no implicit reward: said as such, not as a typo.
        (
            lambda run: run.value("rewards/accuracies", "base"),
            "metric 'rewards/accuracies': not computed for model 'base' on 'pairs'; computed: [",
        ),
    ],
)
def test_a_misspelt_name_is_one_line_with_a_did_you_mean(run: evalkit.Evaluation, call: object, message: str) -> None:
    with pytest.raises(evalkit.EvalkitError) as error:
        call(run)  # type: ignore[operator]
    assert message in str(error.value) and "\n" not in str(error.value)


def test_data_is_checked_before_any_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model directory that holds no model, beside bad data: the data's error is the one the user reads, and
    no model load was even tried (loading a real checkpoint can take minutes)."""
    from evalkit import checkpoints

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the data was checked")

    monkeypatch.setattr(checkpoints, "load_model", no_loading)
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("no config.json here\n")
    model, ref = tmp_path / "not-a-model", tmp_path / "not-a-model"
    (tmp_path / "columns.jsonl").write_text(json.dumps({"prompt": "a", "chosen": "b", "answer": "c"}) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    cases = {
        tmp_path / "missing.jsonl": "missing.jsonl",
        tmp_path / "columns.jsonl": "no column 'rejected' \\(columns.rejected\\); found 'prompt', 'chosen', 'answer'",
        tmp_path / "empty.jsonl": "empty file; expected preference pairs",
    }
    for data, message in cases.items():
        with pytest.raises(evalkit.EvalkitError, match=message):
            evalkit.score(model, data, ref=ref, name="aligned", ref_name="base")
    for table, message in (
        ([], "has no rows"),
        (pd.DataFrame([{"prompt": "a", "chosen": "b"}]), "missing column 'rejected'"),
    ):
        with pytest.raises(evalkit.EvalkitError, match=message):
            evalkit.score(model, table, ref=ref)
    # With good data, the same call gets as far as the model: the stand-in above is what stops it.
    (tmp_path / "good.jsonl").write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    with pytest.raises(AssertionError, match="a model was loaded"):
        evalkit.score(model, tmp_path / "good.jsonl")


PUBLIC = [
    "EvalkitCallback",
    "EvalkitError",
    "Evaluation",
    "Layout",
    "Report",
    "ScoringSpec",
    "Statistics",
    "WorldSpec",
    "__version__",
    "build_world",
    "compare_models",
    "read_results",
    "run_suite",
    "score",
]
"""The names the docs' API reference documents: `dir(evalkit)` offers these and nothing else."""


def test_dir_lists_the_public_names_only_even_after_the_submodules_load() -> None:
    code = (
        "import evalkit, evalkit.api.functions, evalkit.pipeline.bench, evalkit.errors; "
        "evalkit.score; evalkit.Evaluation; print(dir(evalkit)); print(sorted(evalkit.__all__))"
    )
    listed = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=Path(__file__).parents[2]
    ).stdout.splitlines()
    assert listed == [str(PUBLIC), str(PUBLIC)]
    # Here, with every module this test session imported bound on the package: still the same list.
    assert dir(evalkit) == PUBLIC and "api" in vars(evalkit)
    assert all(getattr(evalkit, name) is not None for name in PUBLIC)


def test_importing_evalkit_and_reading_results_import_no_torch() -> None:
    code = (
        "import sys, evalkit; assert 'torch' not in sys.modules; evalkit.read_results; evalkit.Evaluation; "
        "assert 'torch' not in sys.modules, 'reading results imported torch'; "
        "assert sorted(evalkit.__all__) == sorted(set(evalkit.__all__)); "
        "missing = [n for n in evalkit.__all__ if not hasattr(evalkit, n)]; assert not missing, missing"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
    assert (Path(evalkit.__file__).parent / "py.typed").is_file()
