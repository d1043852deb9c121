import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit import checkpoints
from evalkit.checkpoints import is_loadable, load_model, release
from evalkit.config.specs import ModelSpec, ScoringSpec
from evalkit.errors import EvalkitError
from evalkit.scoring.score import score_pairs, tokenize_pair
from evalkit.world.pairs import generate_pairs


@pytest.fixture()
def base_dir(tmp_path: Path, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast) -> Path:
    path = tmp_path / "base"
    tiny_model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def adapter_dir(tmp_path: Path, base_dir: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(4)
    base = LlamaForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    path = tmp_path / "adapter"
    get_peft_model(base, lora).save_pretrained(path)
    return path


def logps(loaded: checkpoints.LoadedModel, model: Any = None) -> list[float]:
    pairs = [tokenize_pair(p, loaded.tokenizer) for p in generate_pairs(2, seed=0)]
    scores = score_pairs(
        model or loaded.model, pairs, ScoringSpec(max_length=1024, batch_size=8), loaded.tokenizer.pad_token_id, "t"
    )
    return [s.chosen for s in scores]


def test_model_directory_loads_with_a_content_fingerprint(base_dir: Path) -> None:
    first = load_model(ModelSpec(name="b", path=str(base_dir)))
    again = load_model(ModelSpec(name="b", path=str(base_dir)))
    assert first.info.kind == "model" and first.info.base is None
    assert first.info.fingerprint == again.info.fingerprint
    config = json.loads((base_dir / "config.json").read_text())
    (base_dir / "config.json").write_text(json.dumps(config | {"rms_norm_eps": 1e-5}))
    assert load_model(ModelSpec(name="b", path=str(base_dir))).info.fingerprint != first.info.fingerprint


def test_adapter_loads_onto_the_base_its_config_names(base_dir: Path, adapter_dir: Path) -> None:
    base = load_model(ModelSpec(name="b", path=str(base_dir)))
    adapter = load_model(ModelSpec(name="a", path=str(adapter_dir)))
    assert adapter.info.kind == "adapter" and Path(adapter.info.base or "").resolve() == base_dir.resolve()
    assert not adapter.shares_reference  # no reference given: its own copy of the base
    assert logps(adapter) != pytest.approx(logps(base), abs=1e-3)


def test_adapter_base_can_be_overridden(base_dir: Path, adapter_dir: Path, tmp_path: Path) -> None:
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"base_model_name_or_path": str(tmp_path / "moved-away")}))
    with pytest.raises(EvalkitError, match=r"models\.a: the adapter's base model .*moved-away.*set `base`"):
        load_model(ModelSpec(name="a", path=str(adapter_dir)))
    adapter = load_model(ModelSpec(name="a", path=str(adapter_dir), base=str(base_dir)))
    assert adapter.info.base == str(base_dir)


def test_adapter_on_the_reference_shares_its_weights_and_releases_them(base_dir: Path, adapter_dir: Path) -> None:
    reference = load_model(ModelSpec(name="base", path=str(base_dir)))
    before = logps(reference)
    adapter = load_model(ModelSpec(name="a", path=str(adapter_dir)), reference=reference)
    assert adapter.shares_reference
    with adapter.as_reference() as disabled:
        assert logps(adapter, disabled) == pytest.approx(before, abs=1e-6)  # the reference: adapter off
    assert logps(adapter) != pytest.approx(before, abs=1e-3)
    release(adapter)
    assert not any("lora" in name for name, _ in reference.model.named_modules())
    assert logps(reference) == pytest.approx(before, abs=1e-6)


def test_hub_ids_load_with_their_revision(
    monkeypatch: pytest.MonkeyPatch, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    calls: list[tuple[str, str, Any]] = []

    def fake(kind: str, obj: Any) -> Any:
        def from_pretrained(path: str, revision: str | None = None, **_: Any) -> Any:
            calls.append((kind, path, revision))
            return obj

        return from_pretrained

    monkeypatch.setattr(checkpoints.AutoModelForCausalLM, "from_pretrained", fake("model", tiny_model))
    monkeypatch.setattr(checkpoints.AutoTokenizer, "from_pretrained", fake("tokenizer", tiny_tokenizer))
    monkeypatch.setattr(checkpoints, "_adapter_config", lambda spec: None)
    loaded = load_model(ModelSpec(name="m", path="HuggingFaceTB/SmolLM3-3B", revision="a1b2c3"))
    assert calls == [
        ("model", "HuggingFaceTB/SmolLM3-3B", "a1b2c3"),
        ("tokenizer", "HuggingFaceTB/SmolLM3-3B", "a1b2c3"),
    ]
    assert loaded.info.path == "HuggingFaceTB/SmolLM3-3B"


def test_what_counts_as_loadable(base_dir: Path, tmp_path: Path) -> None:
    assert is_loadable(str(base_dir))
    assert is_loadable("gpt2") and is_loadable("HuggingFaceTB/SmolLM3-3B")
    assert not is_loadable(str(tmp_path / "missing" / "dir"))
    assert not is_loadable("./checkpoints/nope")


def test_unloadable_model_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalkitError, match=r"models\.m: cannot load a model from"):
        load_model(ModelSpec(name="m", path=str(tmp_path / "empty")))


def test_pickled_weights_are_refused_unless_allowed(
    tmp_path: Path, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    path = tmp_path / "pickled"
    path.mkdir()
    tiny_model.config.save_pretrained(path)
    torch.save(tiny_model.state_dict(), path / "pytorch_model.bin")  # the old pickled checkpoint format
    tiny_tokenizer.save_pretrained(path)
    assert (path / "pytorch_model.bin").is_file() and not list(path.glob("*.safetensors"))
    with pytest.raises(
        EvalkitError, match=r"models\.p: .* would load pickled weights \(pytorch_model\.bin\).*allow_pickle: true"
    ):
        load_model(ModelSpec(name="p", path=str(path)))
    (path / "decoy.safetensors").write_bytes(b"")  # a safetensors file the loader never reads protects nothing
    with pytest.raises(EvalkitError, match=r"has no model\.safetensors or model\.safetensors\.index\.json"):
        load_model(ModelSpec(name="p", path=str(path)))
    loaded = load_model(ModelSpec(name="p", path=str(path), allow_pickle=True))
    assert loaded.info.kind == "model"


def test_a_pickled_adapter_beside_a_decoy_is_refused(tmp_path: Path) -> None:
    from evalkit.checkpoints import check_weights

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    (adapter / "model.safetensors").write_bytes(b"")  # PEFT would still read adapter_model.bin
    with pytest.raises(EvalkitError, match=r"has no adapter_model\.safetensors and would load pickled weights"):
        check_weights(str(adapter), allow_pickle=False, where="models.a")
    check_weights(str(adapter), allow_pickle=True, where="models.a")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    check_weights(str(adapter), allow_pickle=False, where="models.a")  # the file PEFT reads is safe


def test_trainer_pickles_beside_safetensors_are_not_weights(base_dir: Path) -> None:
    (base_dir / "training_args.bin").write_bytes(b"not read")
    assert load_model(ModelSpec(name="b", path=str(base_dir))).info.kind == "model"


def test_remote_code_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch, base_dir: Path) -> None:
    seen: list[object] = []
    original = checkpoints.AutoModelForCausalLM.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((kwargs["trust_remote_code"], kwargs["use_safetensors"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(checkpoints.AutoModelForCausalLM, "from_pretrained", spy)
    load_model(ModelSpec(name="b", path=str(base_dir)))
    load_model(ModelSpec(name="b", path=str(base_dir), trust_remote_code=True, allow_pickle=True))
    assert seen == [(False, True), (True, None)]


@pytest.fixture()
def pickled_dir(tmp_path: Path, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast) -> Path:
    path = tmp_path / "pickled"
    path.mkdir()
    tiny_model.config.save_pretrained(path)
    torch.save(tiny_model.state_dict(), path / "pytorch_model.bin")
    tiny_tokenizer.save_pretrained(path)
    return path


def test_a_decoy_index_naming_pickled_shards_is_refused(pickled_dir: Path, tiny_model: LlamaForCausalLM) -> None:
    index = {"metadata": {}, "weight_map": {name: "pytorch_model.bin" for name in tiny_model.state_dict()}}
    (pickled_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        EvalkitError, match=r"models\.p: .*model\.safetensors\.index\.json names pickled weights \(pytorch_model\.bin\)"
    ):
        load_model(ModelSpec(name="p", path=str(pickled_dir)))
    assert load_model(ModelSpec(name="p", path=str(pickled_dir), allow_pickle=True)).info.kind == "model"


def test_a_config_naming_pickled_weights_is_refused(pickled_dir: Path) -> None:
    (pickled_dir / "pytorch_model.bin").rename(pickled_dir / "adapter_model.bin")
    (pickled_dir / "model.safetensors").write_bytes(b"")  # what a name-only check would trust
    config = json.loads((pickled_dir / "config.json").read_text())
    (pickled_dir / "config.json").write_text(json.dumps(config | {"transformers_weights": "adapter_model.bin"}))
    with pytest.raises(EvalkitError, match=r"models\.p: .*config\.json names pickled weights \(adapter_model\.bin\)"):
        load_model(ModelSpec(name="p", path=str(pickled_dir)))


def test_a_malformed_index_is_a_one_line_error(base_dir: Path) -> None:
    (base_dir / "model.safetensors").rename(base_dir / "model-00001-of-00001.safetensors")
    (base_dir / "model.safetensors.index.json").write_text('{"weight_map": []}')
    with pytest.raises(EvalkitError, match=r"models\.b: .*model\.safetensors\.index\.json: expected a `weight_map`"):
        load_model(ModelSpec(name="b", path=str(base_dir)))


def hub_snapshot(cache: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A model repository as the hub client caches it (refs/main → snapshots/<commit>/), read offline."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
    return snapshot


def test_a_hub_checkpoint_with_a_decoy_index_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from evalkit.checkpoints import check_weights

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    decoy = json.dumps({"metadata": {}, "weight_map": {"lm_head.weight": "pytorch_model.bin"}}).encode()
    hub_snapshot(tmp_path / "hub", "acme/decoy", {"config.json": b"{}", "model.safetensors.index.json": decoy})
    with pytest.raises(EvalkitError, match=r"models\.h: .*acme/decoy.*names pickled weights \(pytorch_model\.bin\)"):
        check_weights("acme/decoy", allow_pickle=False, where="models.h")
    check_weights("acme/decoy", allow_pickle=True, where="models.h")
    safe = json.dumps({"metadata": {}, "weight_map": {"lm_head.weight": "model-1-of-1.safetensors"}}).encode()
    hub_snapshot(tmp_path / "hub", "acme/safe", {"config.json": b"{}", "model.safetensors.index.json": safe})
    check_weights("acme/safe", allow_pickle=False, where="models.h")
    check_weights("acme/absent", allow_pickle=False, where="models.h")  # not reachable: loading reports it
