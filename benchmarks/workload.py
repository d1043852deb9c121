"""The scoring workload the speed benchmarks share: random-word pairs, a word-level tokenizer, random models, and
the three ways to score them (evalkit, TRL's `DPOTrainer.evaluate()`, a plain forward loop).

Used by `tests/benchmarks/test_scoring_speed.py` (CPU, a 4-layer Llama) and `benchmarks/gpu_bench.py` (one GPU,
models of real shapes), so both compare the same code on the same kind of pairs. Text is words `w<i>` of a
vocabulary as large as the model's, one token each, so TRL and evalkit tokenize it alike, offline.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from evalkit.config.specs import ScoringSpec
from evalkit.data.pairs import PreferencePair
from evalkit.results.pairs import implicit_reward
from evalkit.scoring.logps import Runner
from evalkit.scoring.score import CompletionLogps, TokenizedPair, score_pairs, tokenize_pair

PAD, BOS, EOS = 0, 1, 2
"""Special token ids of `word_tokenizer`; models built for it take the same."""


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """One token per word `w<i>`, a BOS before every text; `</s>` is EOS and matched inside words, as TRL needs."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<pad>": PAD, "<s>": BOS, "</s>": EOS, "<unk>": 3} | {f"w{i}": i for i in range(4, vocab_size)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def workload(pairs: int, prompt: int, answer: int, vocab_size: int, seed: int = 0) -> list[PreferencePair]:
    """Pairs of random words: prompts of prompt±20% words, answers of answer±25%."""
    rng = random.Random(seed)

    def words(mean: int, spread: float) -> str:
        n = rng.randint(round(mean * (1 - spread)), round(mean * (1 + spread)))
        return " ".join(f"w{rng.randrange(4, vocab_size)}" for _ in range(n))

    return [
        PreferencePair(f"p{i}", words(prompt, 0.2), " " + words(answer, 0.25), " " + words(answer, 0.25))
        for i in range(pairs)
    ]


def tokenize(pairs: list[PreferencePair], tokenizer: PreTrainedTokenizerFast) -> list[TokenizedPair]:
    return [tokenize_pair(p, tokenizer) for p in pairs]


# --- the three ways to score ---------------------------------------------------------------------------------------


def evalkit_scores(
    models: dict[str, PreTrainedModel],
    tokenized: list[TokenizedPair],
    settings: ScoringSpec,
    runners: dict[str, Runner] | None = None,
) -> dict[str, list[CompletionLogps]]:
    """evalkit's per-pair log-probs under each model (`runners`: how to run each, else the probes choose)."""
    return {
        name: score_pairs(model, tokenized, settings, PAD, name, runner=(runners or {}).get(name))
        for name, model in models.items()
    }


@torch.inference_mode()
def plain_loop(
    models: dict[str, PreTrainedModel], tokenized: list[TokenizedPair], pairs_per_pass: int | None = None
) -> dict[str, list[tuple[float, float]]]:
    """The loop anyone would write first: full logits and a log-softmax over all of them, either one sequence
    per pass with no padding (`pairs_per_pass` None) or that many pairs per pass in the given order, their
    chosen and rejected sequences right-padded together."""
    out: dict[str, list[tuple[float, float]]] = {}
    step = pairs_per_pass or 1
    for name, model in models.items():
        rows: list[tuple[float, float]] = []
        for start in range(0, len(tokenized), step):
            batch = tokenized[start : start + step]
            sequences = [(t.prompt_ids, t.chosen_ids) for t in batch] + [(t.prompt_ids, t.rejected_ids) for t in batch]
            if pairs_per_pass is None:
                sums = [value for sequence in sequences for value in _plain_pass(model, [sequence])]
            else:
                sums = _plain_pass(model, sequences)
            rows += [(sums[i], sums[len(batch) + i]) for i in range(len(batch))]
        out[name] = rows
    return out


def _plain_pass(model: PreTrainedModel, sequences: list[tuple[list[int], list[int]]]) -> list[float]:
    """Summed completion log-probs of each (prompt, completion), the sequences right-padded into one pass."""
    width = max(len(p) + len(c) for p, c in sequences)
    ids = torch.full((len(sequences), width), PAD, dtype=torch.long)  # (B, T)
    attention = torch.zeros_like(ids)  # (B, T)
    completion = torch.zeros_like(ids, dtype=torch.bool)  # (B, T)
    for row, (prompt, answer) in enumerate(sequences):
        ids[row, : len(prompt) + len(answer)] = torch.tensor(prompt + answer)
        attention[row, : len(prompt) + len(answer)] = 1
        completion[row, len(prompt) : len(prompt) + len(answer)] = True
    ids, attention, completion = ids.to(model.device), attention.to(model.device), completion.to(model.device)
    logits = model(input_ids=ids, attention_mask=attention).logits  # (B, T, V)
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V): position t predicts token t+1
    picked = log_probs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    return torch.where(completion[:, 1:], picked.double(), 0.0).sum(dim=-1).cpu().tolist()


def trl_trainer(
    models: dict[str, PreTrainedModel],
    tokenizer: PreTrainedTokenizerFast,
    pairs: list[PreferencePair],
    out: Path,
    beta: float,
    batch_size: int = 8,
    bf16: bool = False,
    copies: bool = True,
) -> Any:
    """TRL's DPOTrainer set up for evaluation (it tokenizes the dataset here, outside any timing).

    `copies`: hand TRL copies of the models, since accelerate's preparation may wrap a model's forward; without
    them (too large to copy), the models are TRL's from here on. `bf16`: TRL's own mixed precision switch."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])
    args = DPOConfig(
        output_dir=str(out),
        beta=beta,
        per_device_eval_batch_size=batch_size,
        bf16=bf16,
        fp16=False,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    give = copy.deepcopy if copies else (lambda model: model)
    return DPOTrainer(
        model=give(models["policy"]),
        ref_model=give(models["reference"]),
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
    )


def reward_margin(policy: CompletionLogps, reference: CompletionLogps, beta: float) -> float:
    """The implicit reward margin of one pair, from evalkit's own `implicit_reward`."""
    chosen = implicit_reward(policy.chosen, reference.chosen, beta)
    return chosen - implicit_reward(policy.rejected, reference.rejected, beta)


def mean_dpo_loss(policy: list[CompletionLogps], reference: list[CompletionLogps], beta: float) -> float:
    losses = [math.log1p(math.exp(-reward_margin(p, r, beta))) for p, r in zip(policy, reference, strict=True)]
    return sum(losses) / len(losses)


# --- what the arithmetic costs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """The sizes that set a causal LM's forward FLOPs."""

    body_params: int
    """Parameters of the layers (attention, MLP, norms): neither the embedding nor the LM head."""
    head_params: int
    layers: int
    attention_width: int
    """Query heads × head size: the width of QKᵀ and AV."""


def model_shape(model: PreTrainedModel) -> ModelShape:
    config = model.config.get_text_config(decoder=True)
    hidden, vocab = config.hidden_size, config.vocab_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    total = sum(p.numel() for p in model.parameters())
    embedding = vocab * hidden
    untied_head = 0 if getattr(config, "tie_word_embeddings", False) else vocab * hidden
    return ModelShape(
        body_params=total - embedding - untied_head,
        head_params=vocab * hidden,
        layers=config.num_hidden_layers,
        attention_width=config.num_attention_heads * head_dim,
    )


def model_flops(shape: ModelShape, pair: TokenizedPair, share_prompt: bool = True) -> float:
    """Forward FLOPs one model needs for one pair: the prompt once (twice without sharing), both completions,
    the head only where a completion token is predicted, and attention (QKᵀ and AV over each token's
    context)."""
    prompt, completions = len(pair.prompt_ids), [len(pair.chosen_ids), len(pair.rejected_ids)]
    prompts = 1 if share_prompt else 2
    tokens = prompts * prompt + sum(completions)
    context = prompts * prompt * (prompt + 1) / 2 + sum(n * prompt + n * (n + 1) / 2 for n in completions)
    return (
        2 * shape.body_params * tokens
        + 2 * shape.head_params * sum(completions)
        + 4 * shape.layers * shape.attention_width * context
    )
