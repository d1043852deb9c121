from pathlib import Path

from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from evalkit.checkpoints import load_model
from evalkit.config.specs import ModelSpec


def test_a_model_loads_with_sdpa_attention_and_local_files_pin_it(
    tmp_path: Path, tiny_model: LlamaForCausalLM, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    tiny_model.save_pretrained(tmp_path / "m")
    tiny_tokenizer.save_pretrained(tmp_path / "m")
    loaded = load_model(ModelSpec(name="m", path=str(tmp_path / "m")))
    assert loaded.model.config._attn_implementation == "sdpa"
    assert loaded.pinned  # local files: its scores may be kept across runs
