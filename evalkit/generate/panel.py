"""The prompt panel: the same prompts for every model, taken from a dataset or listed in the suite, rendered the way
each model was trained (its chat template for message prompts, and for plain prompts when it has one)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from evalkit.config.specs import GenerationSpec
from evalkit.data.pairs import Message, PreferencePair, Text
from evalkit.data.rendering import PLAIN, Rendering, chat_token_ids
from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class PanelPrompt:
    """One prompt of the panel, as given (text or messages), with the text judges read."""

    id: str
    prompt: Text
    text: str
    """The prompt as plain text: the string itself, or the last message's content."""


def build_panel(spec: GenerationSpec, datasets: dict[str, list[PreferencePair]]) -> list[PanelPrompt]:
    """The suite's fixed prompts, then `n` prompts drawn with `seed` from the named dataset."""
    panel = [PanelPrompt(f"prompt-{i}", p, _plain(p)) for i, p in enumerate(spec.prompts)]
    if spec.from_dataset is not None:
        source = spec.from_dataset
        if source.dataset not in datasets:
            known = sorted(datasets)
            raise EvalkitError(
                f"generation.from_dataset.dataset: no dataset named {source.dataset!r}; datasets are {known}"
            )
        pairs = datasets[source.dataset]
        chosen = sorted(random.Random(source.seed).sample(range(len(pairs)), min(source.n, len(pairs))))
        panel += [PanelPrompt(pairs[i].id, pairs[i].prompt, _plain(pairs[i].prompt)) for i in chosen]
    return panel


def _plain(prompt: Text) -> str:
    if isinstance(prompt, str):
        return prompt
    return prompt[-1]["content"] if prompt else ""


def render_prompt(prompt: Text, tokenizer: PreTrainedTokenizerBase, rendering: Rendering = PLAIN) -> list[int]:
    """Token ids of `prompt` as this model was trained to see it (its template options and pinned date),
    ending where its answer starts."""
    if tokenizer.chat_template is not None:
        messages: list[Message] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return chat_token_ids(tokenizer, messages, rendering, add_generation_prompt=True)
    return list(tokenizer(text=_plain(prompt) if isinstance(prompt, list) else prompt)["input_ids"])
