"""Capability tasks through real lm-evaluation-harness, offline, on the tiny world's local task files.

A tiny model is trained until it knows the 20 facts of `tinyworld_facts` (160 documents); two LoRA
adapters sit on it: `intact` with lora_B = 0 (PEFT's default initialisation: exactly the base), and
`damaged` with large random lora_B (a deliberately broken adapter, which truly forgets some facts). The gate
must pass "intact is no worse than base" and fail "damaged is no worse than base".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import junitparser
import pytest
import torch
from peft import LoraConfig, get_peft_model
from scipy import stats as scipy_stats
from transformers import AutoModelForCausalLM, AutoTokenizer

from evalkit.capabilities import harness, runs
from evalkit.cli import main
from evalkit.data.rendering import chat_token_ids
from evalkit.errors import EvalkitError
from evalkit.results.files import read_results
from evalkit.world.model import build_model, pretrain
from evalkit.world.tasks import facts_documents, write_tasks
from evalkit.world.tokenizer import train_tokenizer

pytest.importorskip("lm_eval")

MARGIN = 0.05


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base that answers every fact right, two adapters on it, the task files and a few preference pairs."""
    root = tmp_path_factory.mktemp("capabilities")
    documents = facts_documents()
    conversations = [
        [{"role": "user", "content": d["question"]}, {"role": "assistant", "content": d["choices"][d["answer"]]}]
        for d in documents
    ]
    tokenizer = train_tokenizer([m["content"] for c in conversations for m in c], vocab_size=320)
    torch.manual_seed(0)
    model = build_model(tokenizer, hidden_size=32, num_layers=2)
    pretrain(model, [chat_token_ids(tokenizer, c) for c in conversations], 300, tokenizer.pad_token_id, seed=0)
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    for name, initialise in (("intact", True), ("damaged", False)):
        torch.manual_seed(1)
        fresh = AutoModelForCausalLM.from_pretrained(base)
        targets = ["q_proj", "v_proj", "down_proj"]
        config = LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=initialise)
        adapter = get_peft_model(fresh, config)
        if not initialise:
            with torch.no_grad():  # random lora_B, four times PEFT's random scale: a truly broken adapter
                for parameter_name, weight in adapter.named_parameters():
                    if "lora_B" in parameter_name:
                        weight.mul_(4.0)
        adapter.peft_config["default"].base_model_name_or_path = str(base)
        adapter.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    write_tasks(root / "tasks")
    pairs = [
        {"prompt": d["question"], "chosen": d["choices"][d["answer"]], "rejected": d["choices"][d["answer"] - 1]}
        for d in documents[:8]
    ]
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return root


def write_suite(world: Path, out: Path, cache: Path) -> Path:
    suite = {
        "version": 1,
        "name": "capabilities",
        "output_dir": str(out),
        "datasets": [{"name": "facts", "path": str(world / "pairs.jsonl")}],
        "models": [{"name": n, "path": str(world / n)} for n in ("base", "intact", "damaged")],
        "reference": "base",
        "scoring": {"reference_cache": None},
        "capabilities": {
            "include_path": [str(world / "tasks")],
            "tasks": ["tinyworld_facts"],
            "apply_chat_template": True,
            "batch_size": 16,
            "cache": str(cache),
        },
        "gate": {
            "rules": [
                {
                    "name": f"{n} keeps the facts",
                    "kind": "capability_non_inferiority",
                    "model": n,
                    "baseline": "base",
                    "task": "tinyworld_facts",
                    "margin": MARGIN,
                }
                for n in ("intact", "damaged")
            ]
        },
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(json.dumps(suite))
    return path


def lm_eval_accuracy(world: Path, adapter: str) -> float:
    """lm-eval's own aggregate for one adapter, loaded here with PEFT directly (not through evalkit)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from peft import PeftModel

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(world / "base"), world / adapter)
    lm = HFLM(pretrained=model, tokenizer=AutoTokenizer.from_pretrained(world / "base"), batch_size=16)
    manager = TaskManager(include_path=str(world / "tasks"), include_defaults=False)
    out: Any = simple_evaluate(
        model=lm, tasks=["tinyworld_facts"], task_manager=manager, bootstrap_iters=0, apply_chat_template=True
    )
    return float(out["results"]["tinyworld_facts"]["acc,none"])


def test_the_gate_passes_an_intact_adapter_and_catches_a_damaged_one(world: Path, tmp_path: Path) -> None:
    suite = write_suite(world, tmp_path / "out", tmp_path / "cache")
    assert main(["bench", str(suite)]) == 1  # a rule failed
    result = read_results(tmp_path / "out" / "results.json")
    caps = result.capabilities
    assert caps is not None
    assert caps.lm_eval_version == harness.lm_eval_version()
    (task,) = caps.tasks
    assert (task.name, task.version, task.n_documents, task.metrics) == ("tinyworld_facts", "1.0", 160, ["acc"])
    assert task.fingerprint is not None and len(task.fingerprint) == 64
    score = {s.model: s for s in caps.scores}
    assert score["base"].value == 1.0  # trained until it knows every fact
    assert score["base"].method == "wilson" and score["base"].n == 160
    damaged_accuracy = lm_eval_accuracy(world, "damaged")
    assert score["damaged"].value == pytest.approx(damaged_accuracy)
    assert damaged_accuracy < 1 - 2 * MARGIN  # truly damaged

    compared = {(c.model, c.baseline): c for c in caps.comparisons}
    intact, damaged = compared["intact", "base"], compared["damaged", "base"]
    # lora_B = 0: the intact adapter is the base, document by document.
    assert intact.value == 0.0 and intact.flips is not None and intact.flips.right_to_wrong == 0
    assert intact.flips.wrong_to_right == 0
    # The base is right everywhere, so the damaged adapter gains nothing and loses every document it gets wrong.
    assert damaged.flips is not None and damaged.flips.wrong_to_right == 0
    lost = round(160 * (1 - damaged_accuracy))
    assert damaged.flips.right_to_wrong == lost == len(damaged.flips.right_to_wrong_ids)
    assert damaged.value == pytest.approx(-lost / 160)
    assert all(i.startswith("fact-") for i in damaged.flips.right_to_wrong_ids)

    verdicts = {v.rule: v for v in result.gate or []}
    kept, broken = verdicts["intact keeps the facts"], verdicts["damaged keeps the facts"]
    assert (kept.status, broken.status) == ("passed", "failed")
    # With no discordant document (b = c = 0), Tango's statistic at Δ₀ = −m has q = m and reads
    # Z = n·m / √(n·m(1 − m)) = √n·√(m/(1 − m)): √160·√(0.05/0.95) = 2.902, one-sided p = 0.00185.
    z = (160**0.5) * (MARGIN / (1 - MARGIN)) ** 0.5
    assert kept.p_value == pytest.approx(float(scipy_stats.norm.sf(z)), rel=1e-9)
    assert kept.p_adjusted == pytest.approx(2 * kept.p_value)  # Holm over the two rules, the smaller p doubled
    assert broken.bound is not None and broken.bound < -MARGIN and "160 documents" in broken.reason

    junit = junitparser.JUnitXml.fromfile(str(tmp_path / "out" / "junit.xml"))
    cases = {case.name: case for suite_ in junit for case in suite_}
    assert cases["damaged keeps the facts"].classname == "evalkit.gate.capability_non_inferiority"
    assert [type(r).__name__ for r in cases["damaged keeps the facts"].result] == ["Failure"]
    assert cases["intact keeps the facts"].result == []

    # `evalkit gate` judges a copied results.json again, with no model and no lm-eval run: the same verdicts.
    assert main(["gate", str(tmp_path / "out" / "results.json")]) == 1
    again = read_results(tmp_path / "out" / "results.json")
    assert [v.status for v in again.gate or []] == ["passed", "failed"]

    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Capabilities: the alignment tax" in report
    # Numbers in report.md tables never wrap: the minus sign proper (U+2212), no-break spaces.
    assert f"| tinyworld_facts | acc ↑ | damaged − base | {damaged.value:+.3f}".replace("-", "−") in report
    assert "Capabilities: the alignment tax" in (tmp_path / "out" / "report.html").read_text()


def test_task_results_are_reused_until_the_task_changes(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated: list[tuple[str, tuple[str, ...]]] = []
    original = harness.CapabilityRunner._evaluate

    def counting(self: harness.CapabilityRunner, loaded: Any, tasks: list[str]) -> list[runs.TaskRun]:
        evaluated.append((loaded.spec.name, tuple(tasks)))
        return original(self, loaded, tasks)

    monkeypatch.setattr(harness.CapabilityRunner, "_evaluate", counting)
    cache = tmp_path / "cache"
    main(["bench", str(write_suite(world, tmp_path / "first", cache))])
    assert [name for name, _ in evaluated] == ["base", "intact", "damaged"]
    evaluated.clear()
    main(["bench", str(write_suite(world, tmp_path / "second", cache))])
    assert evaluated == []  # same models, same task files, same settings, same lm-eval: all from the cache
    first = read_results(tmp_path / "first" / "results.json").capabilities
    second = read_results(tmp_path / "second" / "results.json").capabilities
    assert first is not None and second is not None and first.scores == second.scores

    # A copy of the tasks whose data changed (one document's answer moved): a new fingerprint, so evaluated again.
    tasks = tmp_path / "tasks"
    write_tasks(tasks)
    data = tasks / "tinyworld_facts.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[0]["answer"] = (rows[0]["answer"] + 1) % 4
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = write_suite(world, tmp_path / "third", cache)
    raw = json.loads(suite.read_text())
    raw["capabilities"]["include_path"] = [str(tasks)]
    suite.write_text(json.dumps(raw))
    main(["bench", str(suite)])
    assert [name for name, _ in evaluated] == ["base", "intact", "damaged"]
    third = read_results(tmp_path / "third" / "results.json").capabilities
    assert third is not None and third.tasks[0].fingerprint != first.tasks[0].fingerprint
    base = next(s for s in third.scores if s.model == "base")
    assert base.value == pytest.approx(159 / 160)  # the moved answer is now wrong for a base that knows the fact


def test_an_unknown_task_is_named_with_a_suggestion(world: Path) -> None:
    from evalkit.config.specs import CapabilitiesSpec

    spec = CapabilitiesSpec(tasks=["tinyworld_fact"], include_path=[world / "tasks"])
    with pytest.raises(EvalkitError, match=r"no lm-eval task named 'tinyworld_fact' \(did you mean 'tinyworld_facts'"):
        harness.CapabilityRunner(spec)


def test_a_group_pools_the_documents_of_its_tasks(world: Path, tmp_path: Path) -> None:
    """A group (as `mmlu` is one) is one task of the suite: its tasks' documents pooled, ids prefixed by task."""
    import hashlib

    from evalkit.checkpoints import load_model
    from evalkit.config.specs import CapabilitiesSpec, ModelSpec

    group = tmp_path / "group" / "tinyworld.yaml"
    group.parent.mkdir()
    group.write_text(
        "group: tinyworld\ntask: [tinyworld_facts, tinyworld_arithmetic]\n"
        "aggregate_metric_list: [{metric: acc, aggregation: mean, weight_by_size: true}]\nmetadata: {version: 2.0}\n"
    )
    spec = CapabilitiesSpec(tasks=["tinyworld"], include_path=[world / "tasks", group.parent], cache=None)
    runner = harness.CapabilityRunner(spec)
    (resolved,) = runner.tasks
    assert resolved.fingerprint not in (None, hashlib.sha256(group.read_bytes()).hexdigest())  # its tasks count too
    (run,) = runner.run(load_model(ModelSpec(name="base", path=str(world / "base"))))
    assert (run.task, run.version, len(run.documents)) == ("tinyworld", "2.0", 260)
    ids = [d.id for d in run.documents]
    assert sum(i.startswith("tinyworld_facts/fact-") for i in ids) == 160
    assert sum(i.startswith("tinyworld_arithmetic/sum-") for i in ids) == 100


def test_a_task_keeps_its_fingerprint_where_its_files_lie_and_changes_it_with_them(tmp_path: Path) -> None:
    """The world's task files name their data by absolute path: the same files elsewhere are the same task."""
    from evalkit.config.specs import CapabilitiesSpec

    def fingerprint(directory: Path) -> str | None:
        spec = CapabilitiesSpec(tasks=["tinyworld_facts"], include_path=[directory], cache=None)
        return harness.CapabilityRunner(spec).tasks[0].fingerprint

    write_tasks(tmp_path / "here")
    write_tasks(tmp_path / "there")
    assert str(tmp_path / "there") in (tmp_path / "there" / "tinyworld_facts.yaml").read_text()
    assert fingerprint(tmp_path / "here") == fingerprint(tmp_path / "there")
    data = tmp_path / "there" / "tinyworld_facts.jsonl"
    data.write_text(data.read_text().replace("the sky is blue", "the sky is green"))
    assert fingerprint(tmp_path / "here") != fingerprint(tmp_path / "there")
