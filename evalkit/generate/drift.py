"""Drift of a policy from its reference: KL(π‖π_ref) along completions sampled from π itself.

At every position of a sample the exact KL between the two models' full next-token distributions is summed
(`per_token_kls`). That is the Rao-Blackwellised form of the Monte-Carlo estimate E_{y~π}[log π(y|x) −
log π_ref(y|x)]: the same expectation, never negative, and with far less variance than the sampled log-ratio,
which goes negative on small panels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evalkit.data.rendering import PLAIN, Rendering
from evalkit.generate.decode import Sample, per_prompt_means
from evalkit.generate.panel import PanelPrompt, render_prompt
from evalkit.metrics import stats
from evalkit.results.estimates import Statistics
from evalkit.results.generation import Drift
from evalkit.scoring.batching import share_out
from evalkit.scoring.logps import length_dependent_rope


@torch.inference_mode()
def per_token_kls(
    policy: PreTrainedModel,
    reference: Callable[[], contextlib.AbstractContextManager[PreTrainedModel]],
    tokenizer: PreTrainedTokenizerBase,
    panel: Sequence[PanelPrompt],
    samples: Sequence[Sample],
    batch_size: int,
    rendering: Rendering = PLAIN,
) -> list[float]:
    """Σ_t KL(π(·|x, y<t) ‖ π_ref(·|x, y<t)) over each sample's completion positions (its EOS included).

    `reference()` enters a context that yields the reference model (for an adapter on the reference's
    base: the same model with its adapter disabled), entered once per batch. Float64 sums. Both models
    read the prompt rendered the policy's way (`rendering`). A model whose rotary scaling depends on the
    longest position in a pass (`dynamic`, `longrope`) runs each sample alone, shortest first, as scoring does.
    """
    by_id = {p.id: p for p in panel}
    sequences = [(render_prompt(by_id[s.prompt_id].prompt, tokenizer, rendering), s.token_ids) for s in samples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    assert pad is not None, "a tokenizer without EOS or pad token cannot pad a batch"
    order = list(range(len(sequences)))
    if length_dependent_rope(getattr(policy, "config", None)) is not None:
        batch_size = 1
        order.sort(key=lambda i: (len(sequences[i][0]) + len(sequences[i][1]), i))
    sequences = [sequences[i] for i in order]
    policy.eval()

    def batch_kls(start: int) -> list[float]:
        batch = sequences[start : start + batch_size]
        width = max(len(prompt) + len(completion) for prompt, completion in batch)
        input_ids = torch.full((len(batch), width), int(pad), dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros_like(input_ids)  # (B, T)
        predicts = torch.zeros_like(input_ids, dtype=torch.bool)  # (B, T): position t predicts a completion token
        for row, (prompt, completion) in enumerate(batch):
            ids = prompt + completion
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            predicts[row, len(prompt) - 1 : len(ids) - 1] = True
        device = policy.device
        input_ids, attention_mask, predicts = input_ids.to(device), attention_mask.to(device), predicts.to(device)

        def log_probs(model: PreTrainedModel) -> torch.Tensor:
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # (B, T, V)
            return torch.log_softmax(logits[predicts].float(), dim=-1)  # (N, V): N predicted completion tokens

        own = log_probs(policy)
        with reference() as reference_model:
            theirs = log_probs(reference_model)
        kl = (own.exp() * (own - theirs)).sum(dim=-1).clamp(min=0.0)  # (N,): each ≥ 0 up to rounding
        rows = predicts.nonzero(as_tuple=True)[0]  # (N,)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=device).index_add_(0, rows, kl.double())
        return [float(v) for v in sums.cpu().tolist()]

    ordered = [kl for batch in share_out(range(0, len(sequences), batch_size), batch_kls) for kl in batch]
    kls = [0.0] * len(ordered)
    for index, kl in zip(order, ordered, strict=True):
        kls[index] = kl
    return kls


def drift_estimate(
    model: str,
    reference: str,
    samples: Sequence[Sample],
    kls: Sequence[float],
    samples_per_prompt: int,
    max_new_tokens: int,
    statistics: Statistics,
) -> Drift:
    """KL(π‖π_ref) ≈ mean over prompts of the mean per-token KL sum of that prompt's samples from π.

    The t interval's lower end is clipped at 0: a KL is never negative, and clipping only moves an end
    that lay outside the possible values, so coverage stays.
    """
    per_prompt = per_prompt_means(samples, list(kls))[model]
    estimate = stats.mean(np.array(list(per_prompt.values())), statistics.confidence_level)
    bounds = estimate.bounds
    if bounds["ci_low"] is not None:
        bounds["ci_low"] = max(bounds["ci_low"], 0.0)
    own = [s for s in samples if s.model == model]
    return Drift(
        model=model,
        reference=reference,
        kl=estimate.value,
        n=estimate.n,
        samples_per_prompt=samples_per_prompt,
        estimator="per_token",
        se=estimate.sampling.se,
        df=estimate.sampling.df,
        skewness=estimate.sampling.skewness,
        max_new_tokens=max_new_tokens,
        truncated=sum(not s.ended for s in own) / len(own) if own else None,
        **bounds,
    )
