"""A tiny causal LM pretrained on the world's balanced corpus.

Plain next-token training on every conversation, with each prompt's good and bad reply equally
often: the base model learns the language of the world but no preference between the replies.
"""

from __future__ import annotations

import math
import random

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.console import progress_bar

BATCH_SIZE = 32
PEAK_LEARNING_RATE = 3e-3
WARMUP_STEPS = 50


def build_model(tokenizer: PreTrainedTokenizerFast, hidden_size: int, num_layers: int) -> LlamaForCausalLM:
    """A randomly initialised Llama-architecture model sized for CPU-minutes training."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def pretrain(model: LlamaForCausalLM, sequences: list[list[int]], steps: int, pad_id: int, seed: int) -> float:
    """Next-token training on random batches of `sequences`; returns the mean loss of the last 50 steps."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=PEAK_LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _learning_rate_factor(step, steps))
    recent: list[float] = []
    model.train()
    with progress_bar() as bar:
        task = bar.add_task("pretraining base model", total=steps, status="")
        for _ in range(steps):
            input_ids, attention_mask = _pad_right(rng.sample(sequences, min(BATCH_SIZE, len(sequences))), pad_id)
            labels = input_ids.masked_fill(attention_mask == 0, -100)  # (B, T)
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            recent = [*recent[-49:], loss.item()]
            bar.update(task, advance=1, status=f"loss {recent[-1]:.3f}")
    model.eval()
    return sum(recent) / len(recent)


def _learning_rate_factor(step: int, total: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < WARMUP_STEPS:
        return (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _pad_right(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask
