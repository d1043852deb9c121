"""A suite with a dataset of labelled completions (KTO style), end to end through `evalkit bench` on tiny models:
a KTO adapter and a DPO adapter on one base (the reference), scored beside a dataset of pairs; per-completion rows,
per-label reward means, the AUC gated by a rule, and every report's table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.cli import main
from evalkit.metrics.auc import mann_whitney_auc
from evalkit.results.files import read_results
from evalkit.world.pairs import generate_pairs


@pytest.fixture()
def unpaired_suite(
    tmp_path: Path,
    tiny_model: LlamaForCausalLM,
    tiny_tokenizer: PreTrainedTokenizerFast,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    from peft import LoraConfig, get_peft_model

    monkeypatch.chdir(tmp_path)  # the reference cache is kept relative to the working directory

    base = tmp_path / "base"
    tiny_model.save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    for seed, name in ((9, "kto"), (10, "dpo")):
        torch.manual_seed(seed)
        lora = LoraConfig(
            r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"
        )
        get_peft_model(LlamaForCausalLM.from_pretrained(base), lora).save_pretrained(tmp_path / name)
    pairs = generate_pairs(3, seed=4)  # 3 per subset: 9 pairs, so 9 desirable and 9 undesirable completions
    rows = [
        {"prompt": p.prompt, "completion": answer, "label": label}
        for p in pairs
        for answer, label in ((p.chosen, True), (p.rejected, False))
    ]
    (tmp_path / "labelled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paired = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs[:4]]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in paired))
    suite = {
        "name": "unpaired",
        "output_dir": str(tmp_path / "out"),
        "datasets": [
            {"name": "labelled", "path": str(tmp_path / "labelled.jsonl")},  # told unpaired by its columns
            {"name": "pairs", "path": str(tmp_path / "pairs.jsonl")},
            # The same pairs as labelled completions: each chosen answer desirable, each rejected one not.
            {"name": "unpaired-pairs", "path": str(tmp_path / "pairs.jsonl"), "format": "unpaired"},
        ],
        "models": [
            {"name": "base", "path": str(base)},
            {"name": "kto", "path": str(tmp_path / "kto"), "method": {"name": "kto", "beta": 0.5}},
            {"name": "dpo", "path": str(tmp_path / "dpo")},
        ],
        "reference": "base",
        "scoring": {"beta": 0.1},
        "gate": {
            "min_pairs": 8,
            "rules": [
                {"kind": "absolute", "model": "kto", "metric": "objective/auc", "dataset": "labelled", "at_least": 0.1},
                {
                    "kind": "absolute",
                    "model": "dpo",
                    "metric": "objective/auc",
                    "dataset": "labelled",
                    "at_least": 0.0,
                    "min_pairs": 10,
                },
                # Models of two objectives compare on the AUC, scale-free: kto is listed first, so the run records
                # dpo against kto and the rule reads it turned round.
                {
                    "kind": "superiority",
                    "model": "kto",
                    "baseline": "dpo",
                    "metric": "objective/auc",
                    "dataset": "labelled",
                },
            ],
        },
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_a_suite_scores_labelled_completions_for_every_model(
    unpaired_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One rule undecidable (10 completions of each label asked, 9 there): the gate's exit code 2.
    assert main(["bench", str(unpaired_suite)]) == 2
    out = unpaired_suite.parent / "out"
    result = read_results(out / "results.json")
    info = {d.name: d for d in result.datasets}
    assert info["labelled"].format == "unpaired" and info["labelled"].n_pairs == 18
    assert info["labelled"].pairs_file == "completions/labelled.jsonl" and info["pairs"].format == "pairs"
    assert (info["unpaired-pairs"].format, info["unpaired-pairs"].n_pairs) == ("unpaired", 8)

    rows = [json.loads(line) for line in (out / "completions" / "labelled.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 18 and {"id", "label", "logp", "ref_logp", "n_tokens", "reward"} <= rows[-1].keys()
    assert all(r["ref_logp"] is None and "reward" not in r for r in rows if r["model"] == "base")
    metrics = {(m.model, m.metric): m for m in result.metrics if m.dataset == "labelled" and m.subset == "all"}
    for model, beta in (("kto", 0.5), ("dpo", 0.1)):  # the KTO model by its own β; the DPO one at scoring.beta
        mine = [r for r in rows if r["model"] == model]
        rewards = np.array([beta * (r["logp"] - r["ref_logp"]) for r in mine])
        labels = np.array([r["label"] for r in mine])
        desirable = metrics[(model, "trl/rewards/chosen")]
        assert desirable.value == pytest.approx(rewards[labels].mean()) and desirable.n == 9
        assert [r["reward"] for r in mine] == pytest.approx(list(rewards))
        assert desirable.method in ("student_t", "cluster_t") and desirable.ci_low is not None
        auc = metrics[(model, "objective/auc")]
        assert auc.value == pytest.approx(mann_whitney_auc(rewards[labels], rewards[~labels]))
        assert (auc.method, auc.n, auc.n_positive, auc.n_negative) == ("newcombe_auc", 18, 9, 9)
    assert (("kto", "trl/kl") in metrics) and (("dpo", "trl/kl") not in metrics)  # KTO's KL point is KTO's own
    assert ("base", "objective/auc") not in metrics and ("base", "trl/logps/chosen") in metrics
    assert ("kto", "preference/accuracy") not in metrics  # pairs' metrics stay on the pairs
    assert any(m.dataset == "pairs" and m.metric == "preference/accuracy" for m in result.metrics)

    assert result.gate is not None
    kto_rule, dpo_rule, versus = sorted(result.gate, key=lambda v: (v.kind != "absolute", v.model != "kto"))
    (delta,) = [c for c in result.comparisons if c.dataset == "labelled" and c.subset == "all"]
    assert (delta.model, delta.baseline, delta.metric, delta.test) == ("dpo", "kto", "objective/auc", "mover_auc")
    aucs = {model: metrics[(model, "objective/auc")].value for model in ("kto", "dpo")}
    assert delta.value == pytest.approx(aucs["dpo"] - aucs["kto"]) and (delta.n_positive, delta.n_negative) == (9, 9)
    assert not any(c.model == "base" or c.baseline == "base" for c in result.comparisons if c.dataset == "labelled")
    assert versus.kind == "superiority" and versus.value == pytest.approx(aucs["kto"] - aucs["dpo"])
    assert versus.status in ("passed", "failed") and versus.test is not None and "MOVER" in versus.test
    assert kto_rule.status == "passed" and kto_rule.test is not None and "Newcombe" in kto_rule.test
    assert dpo_rule.status == "undecidable" and "needs at least 10 desirable" in dpo_rule.reason

    report = (out / "report.md").read_text()
    assert "## labelled: headline (18 completions)" in report and "reward AUC" in report
    assert "### labelled: dpo vs kto (18 completions both scored)" in report
    assert "reward desirable" in (out / "report.html").read_text()
    printed = capsys.readouterr().out
    assert "labelled (18 labelled completions)" in printed and "n = 18 completions" in printed
    assert "kto on labelled: reward AUC 0.432 [0.21, 0.68] over 9 + 9 completions" in printed


def test_a_rerun_reuses_the_labelled_completions_scores(
    unpaired_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labelled completions are kept in the output's store as pairs are: a rerun scores none of them again and
    writes the same rows; a model whose weights changed is scored again."""
    assert main(["bench", str(unpaired_suite)]) == 2
    out = unpaired_suite.parent / "out"
    first = (out / "completions" / "labelled.jsonl").read_text()
    capsys.readouterr()
    assert main(["bench", str(unpaired_suite)]) == 2
    said = capsys.readouterr().err
    for model in ("base", "kto", "dpo"):
        for dataset in ("labelled", "unpaired-pairs", "pairs"):
            assert f"reusing the scores of {model} on {dataset} from an earlier run" in said
    assert (out / "completions" / "labelled.jsonl").read_text() == first
    # Another adapter under the name `dpo`: its rows and its comparisons are new, the others' are kept.
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(11)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    base = unpaired_suite.parent / "base"
    get_peft_model(LlamaForCausalLM.from_pretrained(base), lora).save_pretrained(unpaired_suite.parent / "dpo")
    assert main(["bench", str(unpaired_suite)]) == 2
    said = capsys.readouterr().err
    assert "reusing the scores of kto on labelled" in said and "reusing the scores of dpo on labelled" not in said
    again = (out / "completions" / "labelled.jsonl").read_text().splitlines()
    before = first.splitlines()
    assert [line for line in again if '"model": "kto"' in line] == [line for line in before if '"model": "kto"' in line]
    assert [line for line in again if '"model": "dpo"' in line] != [line for line in before if '"model": "dpo"' in line]
