"""Scoring through real vLLM servers (`scoring.backend: vllm`, `evalkit score --endpoint`): a policy and a reference,
each on its own loopback server, must give the numbers evalkit computes in process (fp32) on every dataset layout;
a server that cannot return prompt log-probs is refused before any work; a server killed mid-run stops the run in
one line, and the rerun resumes from the cache.

The servers here serve plain models (no `--enable-lora`): vLLM's CPU LoRA path crashes with `prompt_logprobs`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from evalkit.cli import main
from evalkit.world.pairs import generate_pairs
from tests.conftest import ServedModel
from tests.integration.vllm_server import (
    VLLMServer,
    build_vllm_llama,
    free_port,
    server_command,
    server_environment,
    stop,
    vllm_python,
    wait_until_ready,
)

FP32_TOLERANCE = 1e-4
"""Nats per sequence: vLLM's fp32 sums agree with Hugging Face's within ~5e-6; a wrong token is off by > 1."""
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ScoringServers:
    policy: VLLMServer
    reference: VLLMServer


@pytest.fixture(scope="module")
def scoring_servers(
    tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast
) -> Iterator[ScoringServers]:
    """Two random tiny Llamas (head_dim 64), each on its own vLLM server: a policy and its reference."""
    python = vllm_python()
    root = tmp_path_factory.mktemp("vllm-score")
    for name, seed in (("policy", 0), ("reference", 1)):
        model = build_vllm_llama(tiny_tokenizer, seed=seed)
        model.save_pretrained(root / name)
        tiny_tokenizer.save_pretrained(root / name)
    started: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:  # both start at once: a server takes 30 s alone, minutes on a loaded machine
        for name in ("policy", "reference"):
            port = free_port()
            with (root / f"{name}.log").open("w") as log:
                command = server_command(python, root / name, port, {})
                started[name] = (
                    subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, env=server_environment(), start_new_session=True
                    ),
                    port,
                )
        for name, (server, port) in started.items():
            wait_until_ready(server, f"http://127.0.0.1:{port}/v1", root / f"{name}.log")
        policy, reference = (
            VLLMServer(f"http://127.0.0.1:{port}/v1", str(root / name), root / name, {}, root / f"{name}.log")
            for name, (_, port) in started.items()
        )
        yield ScoringServers(policy, reference)
    finally:
        for server, _ in started.values():
            stop(server)


def layouts(directory: Path) -> dict[str, Path]:
    """The same world pairs in each layout evalkit reads: message lists, prompt/answer strings, hh-rlhf dialogues."""
    pairs = generate_pairs(3, seed=3)[:8]
    rows: dict[str, list[dict[str, object]]] = {"conversational": [], "explicit": [], "implicit": []}
    for p in pairs:
        rows["conversational"].append({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected})
        question = str(p.prompt[-1]["content"])
        good, bad = (str(answer[-1]["content"]) for answer in (p.chosen, p.rejected))
        rows["explicit"].append({"prompt": question, "chosen": " " + good, "rejected": " " + bad})
        dialogue = f"\n\nHuman: {question}\n\nAssistant:"
        rows["implicit"].append({"chosen": f"{dialogue} {good}", "rejected": f"{dialogue} {bad}"})
    files = {}
    for layout, found in rows.items():
        files[layout] = directory / f"{layout}.jsonl"
        files[layout].write_text("".join(json.dumps(r) + "\n" for r in found))
    return files


def read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scores_through_two_servers_equal_those_in_process_on_every_layout(
    scoring_servers: ScoringServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pair by pair, policy and reference log-probs within fp32 rounding, the same token counts and truncation
    (max_length 40 cuts some completions), on conversational, explicit and implicit data."""
    monkeypatch.chdir(tmp_path)  # the endpoint cache under .evalkit/ of this test
    servers = scoring_servers
    models = ["--model", servers.policy.name, "--ref", servers.reference.name, "--max-length", "40"]
    for layout, data in layouts(tmp_path).items():
        here, served = tmp_path / f"{layout}-here.jsonl", tmp_path / f"{layout}-served.jsonl"
        assert main(["score", *models, "--data", str(data), "--out", str(here), "--no-reference-cache"]) == 0
        argv = ["score", *models, "--data", str(data), "--out", str(served)]
        argv += ["--endpoint", servers.policy.base_url, "--ref-endpoint", servers.reference.base_url]
        assert main(argv) == 0, layout
        expected, found = read(here), read(served)
        assert [r["id"] for r in found] == [r["id"] for r in expected] and len(found) >= 4
        assert any(r["truncated"] for r in found), layout  # truncation is exercised
        for a, b in zip(expected, found, strict=True):
            for key in ("n_tokens_chosen", "n_tokens_rejected", "truncated"):
                assert a[key] == b[key], (layout, key)
            for key in ("logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected"):
                assert b[key] == pytest.approx(a[key], abs=FP32_TOLERANCE), (layout, key)
        assert max(abs(r["ref_logp_chosen"] - r["logp_chosen"]) for r in found) > 0.1  # two models, two servers
    out = capsys.readouterr().out
    assert f"policy scored on vllm 0.32.0 at {servers.policy.base_url}" in out
    assert f"reference scored on vllm 0.32.0 at {servers.reference.base_url}" in out


def test_labelled_completions_through_two_servers_equal_those_in_process(
    scoring_servers: ScoringServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KTO-style rows (each completion with its KL partner, the same prompt with another row's completion) scored on
    the policy's and the reference's servers: every row's log-probs within fp32 rounding of those in process."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "feedback.jsonl"
    rows = [
        {"id": f"{i}-{label}", "prompt": p.prompt, "completion": answer, "label": label}
        for i, p in enumerate(generate_pairs(3, seed=5)[:6])
        for answer, label in ((p.chosen, True), (p.rejected, False))
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    servers = scoring_servers
    models = ["--model", servers.policy.name, "--ref", servers.reference.name, "--data", str(data)]
    here, served = tmp_path / "here.jsonl", tmp_path / "served.jsonl"
    assert main(["score", *models, "--out", str(here), "--no-reference-cache"]) == 0
    argv = ["score", *models, "--out", str(served)]
    assert main([*argv, "--endpoint", servers.policy.base_url, "--ref-endpoint", servers.reference.base_url]) == 0
    expected, found = read(here), read(served)
    assert [r["id"] for r in found] == [r["id"] for r in expected] and len(found) == 12
    for a, b in zip(expected, found, strict=True):
        assert (a["n_tokens"], a["kl_n_tokens"], a["label"]) == (b["n_tokens"], b["kl_n_tokens"], b["label"])
        for key in ("logp", "kl_logp", "ref_logp", "ref_kl_logp"):
            assert b[key] == pytest.approx(a[key], abs=FP32_TOLERANCE), key
    assert max(abs(r["ref_logp"] - r["logp"]) for r in found) > 0.1  # two models, two servers


def test_the_parity_check_reports_per_token_and_per_sequence_differences(
    scoring_servers: ScoringServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    data = layouts(tmp_path)["conversational"]
    argv = ["score", "--model", scoring_servers.policy.name, "--data", str(data), "--out", str(tmp_path / "s.jsonl")]
    assert main([*argv, "--endpoint", scoring_servers.policy.base_url, "--parity", "3"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("policy scored on"))
    parity = line.split("parity: ")[1]
    assert parity.startswith("3 pairs (float32 here): per token max ")
    figures = [float(word.rstrip(",;")) for word in parity.split() if word[:1].isdigit() and "e" in word]
    assert len(figures) == 4 and all(0 <= f < 1e-4 for f in figures)  # fp32 on both sides


def test_a_server_without_prompt_logprobs_is_refused_before_any_work(
    served_world: ServedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`transformers serve` decodes but cannot score: one line, exit 2, nothing written."""
    data = layouts(tmp_path)["explicit"]
    out = tmp_path / "scores.jsonl"
    argv = ["score", "--model", served_world.name, "--data", str(data), "--out", str(out)]
    assert main([*argv, "--endpoint", served_world.base_url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scoring needs a server that answers /completions with prompt_logprobs" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_server_killed_mid_run_stops_in_one_line_and_the_rerun_resumes_from_the_cache(
    scoring_servers: ScoringServers, tmp_path: Path
) -> None:
    """A third server on the policy's directory (so the same served name) is killed once some answers are cached:
    retried, then exit 2 and one line; the rerun against the policy's server asks only for what is missing."""
    pairs = generate_pairs(20, seed=5)  # 60 pairs, 120 requests one at a time
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n" for p in pairs)
    )
    model = scoring_servers.policy.model_dir
    port, log = free_port(), tmp_path / "victim.log"
    with log.open("w") as out:
        victim = subprocess.Popen(
            server_command(vllm_python(), model, port, {}),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_environment(),
            start_new_session=True,
        )
    try:
        wait_until_ready(victim, f"http://127.0.0.1:{port}/v1", log)
        argv = [
            "score",
            "--model",
            str(model),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "s.jsonl"),
            "--concurrency",
            "1",
        ]
        run = subprocess.Popen(
            [sys.executable, "-m", "evalkit", *argv, "--endpoint", f"http://127.0.0.1:{port}/v1"],
            cwd=tmp_path,
            env=os.environ | {"PYTHONPATH": str(REPOSITORY)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        cache = tmp_path / ".evalkit" / "cache" / "endpoint"
        deadline = time.monotonic() + 120
        while len(list(cache.rglob("*.json"))) < 20 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    assert run.returncode == 2, err
    problems = [line for line in err.strip().splitlines() if not line.startswith("scoring policy on pairs")]
    assert len(problems) == 1, err  # progress lines, then one line: no traceback
    assert "after 4 attempts" in problems[0] and "a rerun asks only for the rest" in problems[0]
    kept = len(list(cache.rglob("*.json")))
    assert 20 <= kept < 121  # the probe is not cached: 120 scoring answers at most
    rerun = subprocess.run(
        [sys.executable, "-m", "evalkit", *argv, "--endpoint", scoring_servers.policy.base_url],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"{120 - kept + 1} requests sent" in rerun.stdout  # the rest, and the probe
    assert len(read(tmp_path / "s.jsonl")) == 60


def test_a_suite_scored_on_two_servers_records_each_engine_and_both_reports_state_it(
    scoring_servers: ScoringServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`evalkit bench` with `scoring.backend: vllm`: per model, the engine, its version, the log-prob mode, what
    batching can do, and the parity check, in results.json, report.md and report.html."""
    monkeypatch.chdir(tmp_path)
    servers = scoring_servers
    suite = {
        "name": "served",
        "output_dir": str(tmp_path / "out"),
        "datasets": [{"name": "world", "path": str(layouts(tmp_path)["conversational"])}],
        "models": [{"name": "ref", "path": servers.reference.name}, {"name": "policy", "path": servers.policy.name}],
        "reference": "ref",
        "scoring": {
            "backend": "vllm",
            "max_length": 64,
            "endpoint": {"base_url": servers.policy.base_url, "base_urls": {"ref": servers.reference.base_url}},
            "parity": {"pairs": 2, "seed": 1},
        },
    }
    path = tmp_path / "served.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    assert main(["bench", str(path)]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    served = {m["name"]: m["served"] for m in results["models"]}
    assert served["ref"]["base_url"] == servers.reference.base_url
    assert served["policy"]["base_url"] == servers.policy.base_url
    for found in served.values():
        assert (found["engine"], found["engine_version"], found["logprob_mode"]) == (
            "vllm",
            "0.32.0",
            "prompt_logprobs",
        )
        assert found["batch_invariant"] is None and "VLLM_BATCH_INVARIANT=1" in found["batching_reason"]
        assert found["parity"]["n_pairs"] == 2 and found["parity"]["n_sequences"] == 4
        assert found["parity"]["sequence_max"] < FP32_TOLERANCE
    for report in ("report.md", "report.html"):
        text = (tmp_path / "out" / report).read_text()
        assert "vllm 0.32.0" in text and "VLLM_BATCH_INVARIANT=1" in text and "per token max" in text
