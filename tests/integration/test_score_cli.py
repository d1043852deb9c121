"""`evalkit score` end to end on tiny checkpoints saved to disk."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.cli import main
from evalkit.world.pairs import generate_pairs

REQUIRED = {"id", "logp_chosen", "logp_rejected", "n_tokens_chosen", "n_tokens_rejected", "truncated"}
WITH_REFERENCE = {"ref_logp_chosen", "ref_logp_rejected", "reward_chosen", "reward_rejected", "margin"}


@pytest.fixture()
def checkpoints(
    tmp_path: Path, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model

    base = tmp_path / "base"
    tiny_model.save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    torch.manual_seed(9)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    adapter = tmp_path / "adapter"
    get_peft_model(LlamaForCausalLM.from_pretrained(base), lora).save_pretrained(adapter)
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in generate_pairs(4, seed=3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"base": base, "adapter": adapter, "data": data}


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_writes_one_row_per_pair_and_does_not_depend_on_batch_size(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    outputs = {}
    for size in (1, 3, 8):
        out = tmp_path / f"scores-{size}.jsonl"
        argv = ["score", "--model", str(checkpoints["adapter"]), "--ref", str(checkpoints["base"])]
        argv += ["--data", str(checkpoints["data"]), "--batch-size", str(size), "--out", str(out)]
        assert main(argv) == 0
        outputs[size] = read(out)
    rows = outputs[1]
    assert len(rows) == 12 and set(rows[0]) >= REQUIRED | WITH_REFERENCE
    for size in (3, 8):
        for a, b in zip(rows, outputs[size], strict=True):
            assert a["id"] == b["id"]
            for key in ("logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected"):
                assert a[key] == pytest.approx(b[key], abs=1e-5)
    for r in rows:
        assert r["reward_chosen"] == pytest.approx(0.1 * (r["logp_chosen"] - r["ref_logp_chosen"]))
        assert r["margin"] == pytest.approx(r["reward_chosen"] - r["reward_rejected"])


def test_score_without_reference_truncates_and_reports_prompts_too_long(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # With the tiny tokenizer the 4 arithmetic prompts are 12-17 tokens and their answers 8-9; the 8 other
    # prompts are 23-48 tokens. At max_length 20: 4 pairs scored (one whole, 12 + 8 = 20), 8 left out.
    out = tmp_path / "scores.jsonl"
    argv = ["score", "--model", str(checkpoints["base"]), "--data", str(checkpoints["data"])]
    assert main([*argv, "--max-length", "20", "--out", str(out)]) == 0
    rows = read(out)
    assert set(rows[0]) >= REQUIRED and "margin" not in rows[0]
    assert len(rows) == 4 and all(r["id"] in {"pairs-0", "pairs-1", "pairs-2", "pairs-3"} for r in rows)
    assert sorted(r["truncated"] for r in rows) == [False, True, True, True]
    err = capsys.readouterr().err
    assert "8 pairs have a prompt that fills max_length=20" in err


def test_score_reads_a_hub_shaped_folder_of_hh_rlhf_dialogues(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "hh-rlhf" / "data"
    folder.mkdir(parents=True)
    dialogue = "\n\nHuman: What is 2 plus 2?\n\nAssistant:"
    frame = pd.DataFrame([{"chosen": dialogue + " 2 + 2 = 4.", "rejected": dialogue + " 2 + 2 = 5."}] * 3)
    frame.to_parquet(folder / "test-00000-of-00001.parquet")
    out = tmp_path / "hh.jsonl"
    argv = ["score", "--model", str(checkpoints["base"]), "--data", str(tmp_path / "hh-rlhf"), "--split", "test"]
    assert main([*argv, "--out", str(out)]) == 0
    assert len(read(out)) == 3


def test_malformed_data_exits_2_naming_the_line(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b",\n')
    out = tmp_path / "never.jsonl"
    assert main(["score", "--model", str(checkpoints["base"]), "--data", str(bad), "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"evalkit: error: {bad}:2: invalid JSON: Expecting property name enclosed in double quotes"]
    assert not out.exists()


def test_scoring_a_plain_model_never_imports_peft_or_trl(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """PEFT and TRL take seconds to import; a plain model needs neither (an adapter loads PEFT when it is met)."""
    argv = ["score", "--model", str(checkpoints["base"]), "--data", str(checkpoints["data"])]
    argv += ["--out", str(tmp_path / "s.jsonl"), "--no-reference-cache"]
    code = (
        f"import sys; from evalkit.cli import main; assert main({argv!r}) == 0; "
        "imported = [m for m in ('peft', 'trl') if m in sys.modules]; assert not imported, imported"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert len(read(tmp_path / "s.jsonl")) == 4 * 3


def test_score_shows_intervals_and_against_a_reference_its_value_and_the_paired_difference(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.jsonl"
    argv = ["score", "--model", str(checkpoints["adapter"]), "--ref", str(checkpoints["base"])]
    assert main([*argv, "--data", str(checkpoints["data"]), "--out", str(out)]) == 0
    rows = read(out)
    ours = sum(r["logp_chosen"] > r["logp_rejected"] for r in rows) / len(rows)
    theirs = sum(r["ref_logp_chosen"] > r["ref_logp_rejected"] for r in rows) / len(rows)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].strip() == "evalkit score · policy against reference"
    header = next(line for line in printed if "metric" in line)
    assert "policy" in header and "reference" in header and "Δ [95% CI]" in header
    row = next(line for line in printed if " preference/accuracy " in line).split("│")
    # policy and reference each with an interval; Δ = policy − reference on the same pairs, with its paired interval
    assert row[3].strip().startswith(f"{ours:.3f} [") and row[4].strip().startswith(f"{theirs:.3f} [")
    assert row[5].strip().startswith(f"{ours - theirs:+.3f} [") and row[6].strip() == "12"


def test_score_keeps_the_data_own_ids_and_subsets_and_maps_columns(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    pairs = generate_pairs(2, seed=3)
    own = tmp_path / "own.jsonl"
    rows = [
        {"id": f"q{i}", "subset": p.subset, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        for i, p in enumerate(pairs)
    ]
    own.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["score", "--model", str(checkpoints["base"]), "--no-reference-cache"]
    assert main([*argv, "--data", str(own), "--out", str(tmp_path / "own-scores.jsonl")]) == 0
    scored = read(tmp_path / "own-scores.jsonl")
    assert [(r["id"], r["subset"]) for r in scored] == [(f"q{i}", p.subset) for i, p in enumerate(pairs)]

    renamed = tmp_path / "renamed.jsonl"
    renamed.write_text(
        "".join(
            json.dumps(
                {"qid": r["id"], "cat": r["subset"], "question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]}
            )
            + "\n"
            for r in rows
        )
    )
    mapping = ["--columns", "prompt=question,chosen=good,rejected=bad", "--id-column", "qid", "--subset-column", "cat"]
    assert main([*argv, "--data", str(renamed), *mapping, "--out", str(tmp_path / "renamed-scores.jsonl")]) == 0
    again = read(tmp_path / "renamed-scores.jsonl")
    assert [(r["id"], r["subset"], r["logp_chosen"]) for r in again] == [
        (r["id"], r["subset"], r["logp_chosen"]) for r in scored
    ]


def test_score_of_data_without_the_mapped_column_exits_2_listing_the_columns_before_loading_a_model(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "renamed.jsonl"
    data.write_text(json.dumps({"question": "q", "good": "a", "bad": "b"}) + "\n")
    argv = ["score", "--model", str(tmp_path / "nowhere"), "--data", str(data), "--out", str(tmp_path / "s.jsonl")]
    assert main(argv) == 2  # the model path is checked first
    argv[2] = str(checkpoints["base"])
    assert main([*argv, "--columns", "prompt=question,chosen=good"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[0].startswith(f"evalkit: error: --model: directory not found: {tmp_path / 'nowhere'}")
    assert lines[1] == (
        f"evalkit: error: {data}: no column 'rejected' (columns.rejected); found 'question', 'good', 'bad'; "
        "set columns.rejected to one of them"
    )
    assert not (tmp_path / "s.jsonl").exists()


def test_score_with_a_method_shows_the_objectives_metrics_on_its_trainers_tokens(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.jsonl"
    argv = ["score", "--model", str(checkpoints["adapter"]), "--data", str(checkpoints["data"]), "--out", str(out)]
    assert main([*argv, "--method", '{"name": "simpo", "beta": 2.0, "gamma": 0.5}']) == 0
    shown = capsys.readouterr().out
    assert "evalkit score · policy (simpo (β=2, γ=0.5))" in shown
    cells = {
        line.split("│")[2].strip(): line.split("│")[3].split()[0] for line in shown.splitlines() if "│ pairs" in line
    }
    # SimPO's reward, by hand from the per-pair rows: β times each answer's mean log-prob, averaged over the pairs.
    rows = read(out)
    chosen = sum(2.0 * r["logp_chosen"] / r["n_tokens_chosen"] for r in rows) / len(rows)
    assert float(cells["trl/rewards/chosen"]) == pytest.approx(chosen, abs=5e-4)
    assert {"objective/accuracy", "objective/loss", "trl/rewards/margins"} <= set(cells)
    assert main(argv) == 0  # without a method: DPO's metrics only
    assert "trl/rewards/chosen" not in capsys.readouterr().out


def test_score_labelled_completions_writes_one_row_each_and_the_reward_auc(
    checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """KTO-style data (prompt, completion, label) is told by its columns; pairs are read as labelled completions
    with `--format unpaired`, as TRL unpairs them. Each row's reward is β·(ℓ − ℓ_ref) at the model's β, and the AUC
    shown is the share of (desirable, undesirable) reward pairs in the right order, ties counting half."""
    pairs = read(checkpoints["data"])
    feedback = tmp_path / "feedback.jsonl"
    labelled = [
        {"id": f"f{i}-{label}", "prompt": p["prompt"], "completion": p[answer], "label": label}
        for i, p in enumerate(pairs)
        for answer, label in (("chosen", True), ("rejected", False))
    ]
    feedback.write_text("".join(json.dumps(r) + "\n" for r in labelled[:-1]))  # 12 desirable, 11 undesirable
    argv = ["score", "--model", str(checkpoints["adapter"]), "--ref", str(checkpoints["base"])]
    out = tmp_path / "completions.jsonl"
    assert main([*argv, "--data", str(feedback), "--out", str(out), "--method", '{"name": "kto", "beta": 0.5}']) == 0
    shown = capsys.readouterr().out
    rows = read(out)
    assert [r["id"] for r in rows] == [r["id"] for r in labelled[:-1]]
    assert {r["model"] for r in rows} == {"policy"}
    for r in rows:
        assert r["reward"] == pytest.approx(0.5 * (r["logp"] - r["ref_logp"]))
    good = [r["reward"] for r in rows if r["label"]]
    bad = [r["reward"] for r in rows if not r["label"]]
    auc = sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))
    cells = {
        line.split("│")[2].strip(): line.split("│")[3].split()[0] for line in shown.splitlines() if "│ feedback" in line
    }
    assert float(cells["objective/auc"]) == pytest.approx(auc, abs=5e-4)
    assert {"trl/kl", "objective/loss", "trl/rewards/chosen"} <= set(cells)
    assert "wrote 23 completions" in shown
    # A classifier has no log-ratio to score labelled completions by: one line, nothing written.
    rm = ["score", "--model", str(checkpoints["adapter"]), "--reward-model", "--data", str(feedback)]
    assert main([*rm, "--out", str(tmp_path / "rm.jsonl")]) == 2
    assert "--reward-model: a reward model scores pairs; labelled completions have no pair" in capsys.readouterr().err
    assert not (tmp_path / "rm.jsonl").exists()

    unpaired = tmp_path / "unpaired.jsonl"
    assert main([*argv, "--data", str(checkpoints["data"]), "--format", "unpaired", "--out", str(unpaired)]) == 0
    ids = [r["id"] for r in read(unpaired)]
    assert ids[:2] == ["pairs-0/chosen", "pairs-1/chosen"] and ids[-1] == "pairs-11/rejected" and len(ids) == 24
