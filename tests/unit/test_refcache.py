from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from evalkit.checkpoints import LoadedModel
from evalkit.config.specs import ModelSpec
from evalkit.results.schema import ModelInfo, ScoringMode
from evalkit.scoring.cache import ReferenceCache, reference_key
from evalkit.scoring.score import CompletionLogps, ModelLogps


def reference(fingerprint: str = "f" * 64, dtype: Any = "float32", pinned: bool = True) -> LoadedModel:
    info = ModelInfo(name="ref", path="ref", kind="model", base=None, dtype=dtype, fingerprint=fingerprint)
    model: Any = SimpleNamespace(device=torch.device("cpu"))
    return LoadedModel(ModelSpec(name="ref", path="ref", dtype=dtype), model, None, info, pinned=pinned)  # type: ignore[arg-type]


def test_every_part_of_the_key_changes_it() -> None:
    """Weights/tokenizer/chat template (the fingerprint), weights dtype, tokens scored (dataset, tokenizer,
    template, max_length: all in the tokens key) and compute dtype: any change misses."""
    base = reference_key(reference(), "tokens", "float32")
    variants = [
        reference_key(reference(fingerprint="0" * 64), "tokens", "float32"),
        reference_key(reference(dtype="bfloat16"), "tokens", "float32"),
        reference_key(reference(), "other tokens", "float32"),
        reference_key(reference(), "tokens", "bfloat16"),
    ]
    assert base is not None and None not in variants
    assert len({base, *variants}) == 1 + len(variants)
    assert reference_key(reference(), "tokens", "float32") == base  # and nothing else does


def test_a_reference_whose_files_are_not_pinned_is_never_cached() -> None:
    assert reference_key(reference(pinned=False), "tokens", "float32") is None


def test_saved_logps_load_back_exactly_with_their_mode_and_a_damaged_file_misses(tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path / "cache")
    logps = [CompletionLogps(-1.0 / 3.0, -2.5e-7, 3, 4, False), CompletionLogps(-10.125, -9.0, 1, 2, True)]
    assert cache.load("k") is None
    mode = ScoringMode(dataset="d", mode="prompt-shared", reason="probed")
    cache.save("k", ModelLogps(logps, mode))
    assert cache.load("k") == ModelLogps(logps, mode)  # with how the passes that computed them ran
    (tmp_path / "cache" / "k.json").write_text("{not json")
    assert cache.load("k") is None


def test_the_score_store_key_counts_weights_dtypes_and_server_and_skips_unpinned_models() -> None:
    """float32 weights (the default) add nothing, so a key from before weights counted still hits; bfloat16 weights
    of either model, or a server, make another key; a model whose files are not pinned is never stored."""
    import hashlib

    from evalkit.scoring.cache import store_key

    def model(dtype: str = "float32", pinned: bool = True) -> Any:
        return SimpleNamespace(pinned=pinned, spec=SimpleNamespace(dtype=dtype))

    identity = "policy|reference|tokens|ids|float32"
    plain = store_key(identity, [model(), model()], None)
    assert plain == hashlib.sha256(identity.encode()).hexdigest()[:32]
    others = {
        store_key(identity, [model("bfloat16"), model()], None),
        store_key(identity, [model(), model("bfloat16")], None),
        store_key(identity, [model(), model()], "vllm"),
    }
    assert len(others) == 3 and plain not in others
    assert store_key(identity, [model(), model(pinned=False)], None) is None
