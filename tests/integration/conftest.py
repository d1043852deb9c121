"""The embedded default suite, moved into a test's temporary directory."""

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from evalkit.config.suite import DEFAULT_SUITE
from evalkit.world.pairs import generate_pairs
from tests.integration.vllm_server import (
    JUDGE_TEMPLATE,
    VLLMServer,
    VLLMWorld,
    adapt_with_lora,
    build_vllm_llama,
    pretrain_briefly,
    serve_vllm,
    vllm_python,
)

REDUCED_ARGS = [
    "--set",
    "world.pairs_per_subset=16",
    "--set",
    "world.pretrain_steps=60",
    "--set",
    "train.args.num_train_epochs=1",
    "--set",
    "gate=null",  # a model trained this little is not meant to pass the release gate
]


@pytest.fixture()
def default_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default suite with its world under `tmp_path/world` and its outputs under `tmp_path/out`, run
    from `tmp_path` so that what it keeps relative to the working directory (the reference cache) stays there."""
    monkeypatch.chdir(tmp_path)
    text = DEFAULT_SUITE.read_text()
    text = text.replace(".evalkit/world", str(tmp_path / "world")).replace("reports/default", str(tmp_path / "out"))
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def reduced() -> list[str]:
    """`--set` overrides that make the default suite small enough for a test (and drop its gate)."""
    return list(REDUCED_ARGS)


TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Family:
    """A tokenizer family as its public tokenizer.json and tokenizer_config.json shape it."""

    special_tokens: list[str]
    bos: str | None
    eos: str
    pad: str | None
    adds_bos: bool
    """Whether encoding plain text adds BOS (the tokenizer's post-processor)."""
    template: str | None
    """File under tests/integration/templates holding the family's chat template, verbatim."""
    sentencepiece: str | None = None
    """Metaspace prefix scheme (`first`: Llama-2/Mistral, `never`: Gemma) for SentencePiece-style tokenizers; None:
    byte-level BPE (GPT-2, Llama-3, Qwen, SmolLM3)."""
    unk: str | None = None
    added: tuple[str, ...] = ()
    """Tokens added to the vocabulary that are not special (SmolLM3's `<think>`, `</think>`)."""


FAMILIES = {
    "gpt2": Family(["<|endoftext|>"], "<|endoftext|>", "<|endoftext|>", None, False, None, unk="<|endoftext|>"),
    "llama3": Family(
        ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "<|begin_of_text|>",
        "<|eot_id|>",
        None,
        True,
        "llama3.jinja",
    ),
    "qwen2.5": Family(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|endoftext|>", False, "qwen2.5.jinja"
    ),
    "smollm3": Family(
        ["<|im_start|>", "<|im_end|>", "<|finetune_right_pad_id|>"],
        None,
        "<|im_end|>",
        "<|finetune_right_pad_id|>",
        False,
        "smollm3.jinja",
        added=("<think>", "</think>"),
    ),
    "gemma2": Family(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
        "<bos>",
        "<eos>",
        "<pad>",
        True,
        "gemma2.jinja",
        sentencepiece="never",
        unk="<unk>",
    ),
    "mistral": Family(
        ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"], "<s>", "</s>", None, True, "mistral.jinja", "first", "<unk>"
    ),
}


def chat_template(family: str) -> str | None:
    name = FAMILIES[family].template
    return (TEMPLATES / name).read_text(encoding="utf-8").removesuffix("\n") if name else None


@functools.cache
def _family_tokenizer_json(family: str) -> str:
    """A BPE tokenizer of the family's kind trained on the world's text, the hh-rlhf markers and the template."""
    spec = FAMILIES[family]
    pairs = generate_pairs(30, seed=0)
    corpus = [m["content"] for p in pairs for text in (p.prompt, p.chosen, p.rejected) for m in text]
    corpus += ["\n\nHuman: Hello\n\nAssistant: Hi!", chat_template(family) or ""]
    if spec.sentencepiece is None:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=spec.unk))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme=spec.sentencepiece)
        tokenizer.decoder = decoders.Metaspace(prepend_scheme=spec.sentencepiece)
        alphabet = []
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=spec.special_tokens, initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    if spec.adds_bos:
        assert spec.bos is not None
        bos = (spec.bos, tokenizer.token_to_id(spec.bos))
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A $B", special_tokens=[bos]
        )
    tokenizer.add_tokens(list(spec.added))
    return tokenizer.to_str()


def family_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """A fresh tokenizer of `family` (TRL sets a missing pad token on the tokenizer it is given)."""
    spec = FAMILIES[family]
    named = {"bos_token": spec.bos, "eos_token": spec.eos, "pad_token": spec.pad, "unk_token": spec.unk}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_family_tokenizer_json(family)),
        **{key: value for key, value in named.items() if value is not None},
        chat_template=chat_template(family),
        model_max_length=2048,
    )


@pytest.fixture()
def family_tokenizers() -> Callable[[str], PreTrainedTokenizerFast]:
    """`make(family)`: a fresh stand-in tokenizer of one of `FAMILIES`."""
    return family_tokenizer


@pytest.fixture()
def family_checkpoints(
    tmp_path: Path, family_tokenizers: Callable[[str], PreTrainedTokenizerFast]
) -> Callable[[str, list[str]], Path]:
    """`save(family, names)`: a tiny random model per name (seeded 1, 2, ...) with the family's tokenizer, saved
    under `tmp_path/<name>`, and 6 conversational pairs in `tmp_path/pairs.jsonl`; returns `tmp_path`."""
    from evalkit.world.model import build_model

    def save(family: str, names: list[str]) -> Path:
        tokenizer = family_tokenizers(family)
        for seed, name in enumerate(names, start=1):
            torch.manual_seed(seed)
            build_model(tokenizer, hidden_size=32, num_layers=2).save_pretrained(tmp_path / name)
            tokenizer.save_pretrained(tmp_path / name)
        rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in generate_pairs(2, seed=5)]
        (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return tmp_path

    return save


@pytest.fixture(scope="session")
def vllm_world(
    tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast
) -> Iterator[VLLMWorld]:
    """A vLLM server for the session (about 30 s to start) serving a tiny world model, pretrained briefly so it
    writes text and answers judging prompts; the same model in memory, and a LoRA adapter of it (saved, and applied
    in memory) for `vllm_lora`. Skipped with no `.venv-vllm` under a bare `pytest`, a failure under `make test`."""
    vllm_python()  # skip before building anything
    root = tmp_path_factory.mktemp("vllm")
    model = build_vllm_llama(tiny_tokenizer, seed=0)
    pretrain_briefly(model, tiny_tokenizer)
    model.save_pretrained(root / "base")
    tiny_tokenizer.save_pretrained(root / "base")
    adapted = adapt_with_lora(model, root / "base", root / "adapter", seed=1)
    (root / "judge.txt").write_text(JUDGE_TEMPLATE)
    with serve_vllm(root / "base", root / "vllm.log") as server:
        yield VLLMWorld(server, model, tiny_tokenizer, root / "adapter", adapted, root / "judge.txt")


@pytest.fixture(scope="session")
def vllm_lora(vllm_world: VLLMWorld) -> Iterator[VLLMServer]:
    """A second vLLM server for the session: `vllm_world`'s base with its adapter beside, served as `dpo`
    (`--enable-lora --lora-modules dpo=DIR`). Apart from the first: on CPU a server with adapters returns prompt
    log-probs only one request at a time (see `serve_vllm`)."""
    root = vllm_world.adapter_dir.parent
    with serve_vllm(root / "base", root / "vllm-lora.log", {"dpo": vllm_world.adapter_dir}) as server:
        yield server
