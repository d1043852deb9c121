"""suites/vllm.yaml end to end against real vLLM servers: scoring, generation, a pairwise judge and a capability task.

The suite runs as shipped, with only what locates it changed: its base is the `vllm_world` model and its DPO
adapter that model's LoRA adapter, both decoded by the `vllm_lora` server (the adapter as `dpo`, the name the
shipped suite asks for); the judge is the `vllm_world` server's model with the judging prompt it was trained on;
the pairs are scored and the capability task run on the LoRA server one request at a time (on CPU, vLLM's LoRA path
returns prompt log-probs only for requests not batched together).
"""

import json
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli import main
from evalkit.results.schema import SCHEMA_FILE
from evalkit.world.pairs import generate_pairs
from evalkit.world.tasks import write_tasks
from tests.integration.vllm_server import VLLMServer, VLLMWorld

SUITE = Path(__file__).parents[2] / "suites" / "vllm.yaml"


@pytest.mark.slow
def test_the_vllm_suite_generates_judges_and_runs_capability_tasks_on_vllm(
    vllm_world: VLLMWorld, vllm_lora: VLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema_errors: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = [
        {"id": p.id, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in generate_pairs(2, seed=3)
    ]
    (tmp_path / "heldout.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    write_tasks(tmp_path / "tasks")
    base, judge = str(vllm_world.server.model_dir), vllm_world.server
    overrides = {
        "datasets.heldout.path": str(tmp_path / "heldout.jsonl"),
        "models.base.path": base,
        "models.dpo.path": str(vllm_world.adapter_dir),
        "scoring.endpoint.base_url": vllm_lora.base_url,
        "scoring.endpoint.concurrency": "1",
        "scoring.parity.pairs": "2",
        "generation.endpoint.base_url": vllm_lora.base_url,
        "generation.endpoint.concurrency": "2",
        "generation.from_dataset.n": "6",
        "generation.max_new_tokens": "16",
        "generation.judges.vllm-judge.endpoint.base_url": judge.base_url,
        "generation.judges.vllm-judge.endpoint.model": judge.name,
        "generation.judges.vllm-judge.endpoint.concurrency": "2",
        "generation.judges.vllm-judge.template": str(vllm_world.judge_template),
        "capabilities.tasks": "[tinyworld_facts]",
        "capabilities.include_path": f"[{tmp_path / 'tasks'}]",
        "capabilities.limit": "12",
        "capabilities.endpoint.base_url": vllm_lora.base_url,
        "capabilities.endpoint.concurrency": "1",
    }
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    assert main(["bench", str(SUITE), "--out", str(tmp_path / "out"), *sets]) == 0

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema_errors(results, schema, schema) == []
    generation = results["generation"]
    backends = {b["used_by"]: b for b in generation["backends"]}
    decoding = backends["generation"]
    assert (decoding["backend"], decoding["base_url"]) == ("openai", vllm_lora.base_url)
    assert decoding["served_models"] == {"base": base, "dpo": "dpo"}
    assert decoding["requests_sent"] == 12  # 6 prompts, 2 models, no retry
    by_model = {m: [s["completion"] for s in generation["samples"] if s["model"] == m] for m in ("base", "dpo")}
    assert len(by_model["dpo"]) == 6 and by_model["dpo"] != by_model["base"]  # the adapter decoded, not the base

    # every verdict read from vLLM's log-probs: no prompt unparsed
    [judged] = generation["pairwise"]
    assert (judged["judge"], judged["model"], judged["baseline"]) == ("vllm-judge", "dpo", "base")
    assert (judged["n"], judged["unparsed"]) == (6, 0)
    readings = [j[order] for j in generation["pairwise_judgments"] for order in ("candidate_first", "reference_first")]
    assert len(readings) == 12 and {r["source"] for r in readings} == {"logprobs"}
    assert backends["judge vllm-judge"]["base_url"] == judge.base_url

    # the pairs scored on the server, with the parity check against this process on 2 of them
    served = {m["name"]: m["served"] for m in results["models"]}
    assert served["base"]["served_model"] == base and served["dpo"]["served_model"] == "dpo"
    assert served["dpo"]["base_url"] == vllm_lora.base_url and served["dpo"]["engine"] == "vllm"
    parity = served["dpo"]["parity"]
    assert parity["n_pairs"] == 2 and parity["sequence_max"] < 1e-3  # fp32 on both sides
    accuracy = {(m["model"], m["metric"]): m for m in results["metrics"] if m["subset"] == "all"}
    assert accuracy[("dpo", "rewards/accuracies")]["n"] == len(rows)  # every pair scored, through the server

    capabilities = results["capabilities"]
    assert capabilities["endpoint"] == vllm_lora.base_url
    assert capabilities["served_models"] == {"base": base, "dpo": "dpo"}
    scores = {(s["model"], s["metric"]): s["n"] for s in capabilities["scores"]}
    assert scores == {("base", "acc"): 12, ("dpo", "acc"): 12}
    [comparison] = capabilities["comparisons"]
    assert comparison["n"] == 12
