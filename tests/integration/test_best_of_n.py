"""RewardBench-shaped stand-ins in a suite: RewardBench 2's best-of-N items scored by DPO implicit rewards through
the pair engine and summarised as RewardBench 2 scores them, beside the content-blind baselines; RewardBench 1's
`filtered` layout through the pair pipeline with its subsets. Tiny random models: the numbers are checked for
their arithmetic, not their skill."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from evalkit.cli import main
from evalkit.results.files import read_results
from evalkit.results.schema import SCHEMA_FILE
from evalkit.world.rewardbench import write_standins


def test_reward_bench_standins_in_a_suite(
    tmp_path: Path,
    family_checkpoints: Callable[[str, list[str]], Path],
    capsys: pytest.CaptureFixture[str],
    schema_errors: Callable[..., list[str]],
) -> None:
    root = family_checkpoints("llama3", ["ref", "a", "b"])
    # A classifier reward model on the same base (its score head random): `kind: reward_model`.
    rm = AutoModelForSequenceClassification.from_pretrained(root / "ref", num_labels=1)
    rm.config.pad_token_id = AutoTokenizer.from_pretrained(root / "ref").eos_token_id
    rm.save_pretrained(root / "rm")
    AutoTokenizer.from_pretrained(root / "ref").save_pretrained(root / "rm")
    rb2, rb1 = write_standins(tmp_path / "standins", items_per_subset=4, seed=0)
    suite = {
        "version": 1,
        "name": "rewardbench",
        "output_dir": str(tmp_path / "out"),
        "datasets": [
            {"name": "rb2", "path": str(rb2), "id_column": "id", "subset_column": "subset"},
            {"name": "rb1", "path": str(rb1), "id_column": "id", "subset_column": "subset"},
        ],
        "models": [
            *({"name": n, "path": str(root / n)} for n in ("ref", "a")),
            # b was trained with SimPO: its completions are ranked by β·(mean log-prob), not DPO's β·(ℓ − ℓ_ref).
            {"name": "b", "path": str(root / "b"), "method": {"name": "simpo", "beta": 2.0}},
            {"name": "rm", "path": str(root / "rm"), "kind": "reward_model"},
        ],
        "reference": "ref",
        "scoring": {"beta": 0.1, "max_length": 256, "reference_cache": None},
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    assert main(["bench", str(tmp_path / "suite.yaml")]) == 0
    out = tmp_path / "out"
    raw = json.loads((out / "results.json").read_text())
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema_errors(raw, schema, schema) == []
    result = read_results(out / "results.json")
    info = {d.name: d for d in result.datasets}
    assert info["rb2"].format == "best_of_n" and info["rb2"].n_pairs == 4 * 3 + 4 * 2
    scores = {(m.subset, m.model): m for m in result.best_of_n}
    # The reference's implicit rewards are 0 by definition: a and b are scored, and the reward model by its logits.
    assert {model for _, model in scores} == {"a", "b", "rm"}
    for model in ("a", "b"):
        subsets = [scores[(s, model)].value for s in ("Focus", "Math", "Precise IF", "Ties")]
        assert scores[("all", model)].value == pytest.approx(sum(subsets) / 4)
        assert scores[("all", model)].method == "stratified_normal"
        assert scores[("Ties", model)].method == "cluster_bootstrap"
        assert scores[("Math", model)].method in ("wilson", "wilson_clustered", "student_t")
    assert result.best_of_n_rewards == {
        "a": "dpo sigmoid: β·(ℓ − ℓ_ref), β = scoring.beta",
        "b": "simpo: β·ℓ/T (γ left out)",
        "rm": "reward model score",
    }
    assert {(t.model, t.n_prompts) for t in result.best_of_n_ties} == {("a", 4), ("b", 4), ("rm", 4)}
    compared = {c.subset: c for c in result.best_of_n_comparisons if (c.model, c.baseline) == ("b", "a")}
    assert (compared["all"].model, compared["all"].baseline) == ("b", "a")
    assert compared["all"].value == pytest.approx(scores[("all", "b")].value - scores[("all", "a")].value)
    baselines = {(b.subset, b.baseline): b for b in result.baselines if b.dataset == "rb2"}
    against = {(c.subset, c.baseline): c for c in result.best_of_n_comparisons if c.model == "a"}
    shorter = against[("Math", "shorter_chars")]  # the model against "pick the shorter", on the same items
    assert shorter.baseline_value == pytest.approx(baselines[("Math", "shorter_chars")].value)
    assert shorter.model_value == pytest.approx(scores[("Math", "a")].value)
    assert baselines[("Math", "chance")].value == 0.25
    assert baselines[("Focus", "longer_tokens")].tokens_of == "ref"
    assert not any(m.dataset == "rb2" for m in result.metrics)  # completion pairs get no pair metrics
    # RewardBench 1's layout is pairs, reported per subset.
    assert {m.subset for m in result.metrics if m.dataset == "rb1"} >= {"all", "math-prm", "llmbar-natural"}
    # RewardBench 1's sections from the reward accuracies per subset: Chat is alpacaeval-easy, Chat Hard
    # llmbar-natural, Reasoning math-prm (each alone in its section here), Safety none (0).
    acc = {
        m.subset: m.value
        for m in result.metrics
        if (m.dataset, m.model, m.metric) == ("rb1", "a", "rewards/accuracies")
    }
    score = (acc["alpacaeval-easy"] + acc["llmbar-natural"] + acc["math-prm"] + 0.0) / 4
    report = (out / "report.md").read_text()
    sections = report.split("### rb1: RewardBench 1 sections")[1]
    row = next(line for line in sections.splitlines() if line.startswith("| a |"))
    assert row.rstrip(" |").endswith(f"{score:.3f}")
    assert "## rb2: best-of-N (20 items)" in report and "## rb1: headline" in report
    # Each model's ranking reward is said beside its scores, in both reports.
    assert "| b | simpo: β·ℓ/T (γ left out) |" in report and "| rm | reward model score |" in report
    assert "simpo: β·ℓ/T (γ left out)" in (out / "report.html").read_text()
    assert "<h4>rb2: Ties composite</h4>" in (out / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "rb2: best-of-N score" in printed
    # Random models do not beat every length baseline overall (length decides Focus here): the verdict says so.
    assert "a does not beat the content-blind baselines on rb2 (best-of-N score" in printed
