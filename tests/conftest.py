"""Shared fixtures: tiny tokenizers and models built offline in seconds."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs
from evalkit.world.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The world's tokenizer, trained on a small sample of the world's text."""
    pairs = generate_pairs(30, seed=0)
    corpus = [m["content"] for p in pairs for text in (p.prompt, p.chosen, p.rejected) for m in text]
    return train_tokenizer(corpus, vocab_size=320)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A random 2-layer, width-32 Llama: enough to test exact arithmetic of scoring."""
    torch.manual_seed(0)
    return build_model(tiny_tokenizer, hidden_size=32, num_layers=2).eval()
