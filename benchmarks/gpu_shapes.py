"""The model shapes `benchmarks/gpu_bench.py` measures, from the real `config.json` files, and their tiny dry-run
versions; models are built from them with random weights, on the device, in float32."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

from benchmarks.workload import BOS, EOS, PAD

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
SHAPES: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-3.2-1B config.json
    "llama-3.2-1b": {
        "architecture": "llama",
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_parameters": LLAMA3_ROPE | {"factor": 32.0, "original_max_position_embeddings": 8192},
        "tie_word_embeddings": True,
    },
    # meta-llama/Llama-3.1-8B config.json
    "llama-3.1-8b": {
        "architecture": "llama",
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_parameters": LLAMA3_ROPE | {"factor": 8.0, "original_max_position_embeddings": 8192},
        "tie_word_embeddings": False,
    },
    # google/gemma-2-2b config.json: a 256k vocabulary, soft-capped logits (the cap applied after the selective head)
    "gemma-2-2b": {
        "architecture": "gemma2",
        "vocab_size": 256000,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "sliding_window": 4096,
        "final_logit_softcapping": 30.0,
        "attn_logit_softcapping": 50.0,
        "query_pre_attn_scalar": 256,
        "hidden_activation": "gelu_pytorch_tanh",
        "tie_word_embeddings": True,
    },
}
FP32_BASELINES = {"llama-3.2-1b": True, "llama-3.1-8b": False, "gemma-2-2b": True}
"""Whether the float32 phase also times TRL, the plain loop and autocast: two float32 8B models fill 64 GB of an
80 GB card, leaving no room for TRL's copies or autocast's bfloat16 weight casts, and no time in 8 minutes."""

DRY_SIZES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
"""Tiny shapes for `--dry-run`."""
DRY_VOCABULARIES = {"llama-3.2-1b": 1000, "llama-3.1-8b": 1000, "gemma-2-2b": 2000}
"""Vocabularies of the dry run, Gemma's twice Llama's as at full size."""


def shape_config(name: str, dry_run: bool) -> dict[str, Any]:
    config = dict(SHAPES[name])
    if dry_run:
        config |= DRY_SIZES | {"vocab_size": DRY_VOCABULARIES[name]}
        if "query_pre_attn_scalar" in config:
            config["query_pre_attn_scalar"] = DRY_SIZES["head_dim"]
    return config


def build_model(config: dict[str, Any], seed: int, device: torch.device) -> PreTrainedModel:
    """A randomly initialised float32 model of `config`, built on `device` (no weights leave the card)."""
    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    options = {key: value for key, value in config.items() if key != "architecture"}
    options |= {"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}
    torch.manual_seed(seed)
    with torch.device(device):
        if config["architecture"] == "gemma2":
            model: PreTrainedModel = Gemma2ForCausalLM(Gemma2Config(**options))
        else:
            model = LlamaForCausalLM(LlamaConfig(**options))
    model.eval()
    return model
