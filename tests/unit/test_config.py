from pathlib import Path

import pytest

from evalkit.config.suite import Suite, load_suite, parse_suite
from evalkit.errors import EvalkitError

ROOT = Path(__file__).parents[2]
SUITES = sorted([*ROOT.joinpath("suites").glob("*.yaml"), *ROOT.joinpath("evalkit", "suites").glob("*.yaml")])

MINIMAL = """
name: demo
output_dir: out
datasets:
  - name: d
    path: pairs.jsonl
models:
  - name: base
    path: models/base
  - name: tuned
    path: models/tuned
reference: base
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_minimal_suite_loads_with_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, MINIMAL))
    assert suite.model_names == ["base", "tuned"]
    assert suite.scoring.max_length == 1024
    assert suite.scoring.beta == 0.1
    assert suite.world is None and suite.train == []


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_every_shipped_suite_validates(path: Path) -> None:
    assert isinstance(load_suite(path), Suite)


def test_unknown_top_level_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "refrence: base\n")
    with pytest.raises(EvalkitError) as error:
        load_suite(path)
    assert str(error.value) == f"{path}: refrence: unknown key (did you mean 'reference'?)"


def test_unknown_nested_key_names_the_key_path(tmp_path: Path) -> None:
    text = MINIMAL + "train:\n  base: base\n  output: tuned\n  data: t.jsonl\n  lora:\n    rank: 8\n"
    with pytest.raises(EvalkitError, match=r"train\.lora\.rank: unknown key \(did you mean 'r'\?\)"):
        load_suite(write(tmp_path, text))


def test_unknown_key_inside_a_list_item(tmp_path: Path) -> None:
    text = MINIMAL.replace("    path: models/base", "    path: models/base\n    dtyp: float32")
    with pytest.raises(EvalkitError, match=r"models\.0\.dtyp: unknown key \(did you mean 'dtype'\?\)"):
        load_suite(write(tmp_path, text))


def test_enumerations_are_checked_at_load(tmp_path: Path) -> None:
    text = MINIMAL.replace("    path: models/base", "    path: models/base\n    dtype: float8")
    with pytest.raises(EvalkitError, match=r"models\.0\.dtype: .*'float32'"):
        load_suite(write(tmp_path, text))


def test_reference_must_name_a_model(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"reference: no model named 'bsae' \(did you mean 'base'\?\)"):
        load_suite(write(tmp_path, MINIMAL.replace("reference: base", "reference: bsae")))


def test_duplicate_model_names_are_rejected() -> None:
    raw = {
        "name": "x",
        "output_dir": "o",
        "datasets": [{"name": "d", "path": "p.jsonl"}],
        "models": [{"name": "m", "path": "a"}, {"name": "m", "path": "b"}],
    }
    with pytest.raises(EvalkitError, match="duplicate name 'm'"):
        parse_suite(raw, source="s.yaml")


def test_train_output_must_differ_from_base(tmp_path: Path) -> None:
    text = MINIMAL + "train:\n  base: base\n  output: base\n  data: t.jsonl\n"
    with pytest.raises(EvalkitError, match="train.output must differ from train.base"):
        load_suite(write(tmp_path, text))


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"suite.yaml: name: required key is missing"):
        load_suite(write(tmp_path, MINIMAL.replace("name: demo\n", "")))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nmodels: [unclosed\n")
    with pytest.raises(EvalkitError, match=rf"^{path}:\d+: invalid YAML"):
        load_suite(path)


def test_missing_file() -> None:
    with pytest.raises(EvalkitError, match="nope.yaml: suite file not found"):
        load_suite("nope.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match="expected a mapping"):
        load_suite(write(tmp_path, "- just\n- a list\n"))


def test_peft_style_key_suggests_the_suite_key(tmp_path: Path) -> None:
    text = MINIMAL + "train:\n  base: base\n  output: tuned\n  data: t.jsonl\n  lora:\n    lora_alpha: 16\n"
    with pytest.raises(EvalkitError, match=r"train\.lora\.lora_alpha: unknown key \(did you mean 'alpha'\?\)"):
        load_suite(write(tmp_path, text))


TRAIN = MINIMAL + "train:\n  base: base\n  output: tuned\n  data: t.jsonl\n"


def test_train_args_are_checked_against_dpo_config(tmp_path: Path) -> None:
    text = TRAIN + "  args:\n    learnig_rate: 0.1\n"
    with pytest.raises(
        EvalkitError, match=r"train\.args\.learnig_rate: unknown DPOConfig option \(did you mean 'learning_rate'\?\)"
    ):
        load_suite(write(tmp_path, text))


def test_renamed_trl_options_are_understood_with_a_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = TRAIN + "  args:\n    evaluation_strategy: epoch\n    max_prompt_length: 64\n    tokenizer: tok/dir\n"
    (train,) = load_suite(write(tmp_path, text)).train
    assert train.args == {"eval_strategy": "epoch"}
    assert train.max_prompt_length == 64 and train.tokenizer == "tok/dir"
    err = capsys.readouterr().err
    assert "train.args.evaluation_strategy is `eval_strategy`" in err
    assert "train.args.max_prompt_length is `train.max_prompt_length`" in err


def test_removed_trl_options_are_explained(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"train\.args\.generate_during_eval: removed from TRL's DPOConfig"):
        load_suite(write(tmp_path, TRAIN + "  args:\n    generate_during_eval: true\n"))
    with pytest.raises(EvalkitError, match=r"train\.args\.output_dir: not set here"):
        load_suite(write(tmp_path, TRAIN + "  args:\n    output_dir: x\n"))


def test_lora_options_are_checked_against_lora_config(tmp_path: Path) -> None:
    text = TRAIN + "  lora:\n    r: 4\n    options:\n      use_dora: true\n      fan_in_fan_ot: true\n"
    with pytest.raises(
        EvalkitError,
        match=r"train\.lora\.options\.fan_in_fan_ot: unknown LoraConfig option \(did you mean 'fan_in_fan_out'\?\)",
    ):
        load_suite(write(tmp_path, text))


def test_heldout_needs_eval_fraction(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"train\.heldout: give both"):
        load_suite(write(tmp_path, TRAIN + "  eval_fraction: 0.1\n"))


def test_set_overrides_keys_by_index_or_name_with_yaml_values(tmp_path: Path) -> None:
    path = write(tmp_path, TRAIN)
    suite = load_suite(
        path,
        [
            "scoring.batch_size=3",
            "models.tuned.path=elsewhere",
            "models.0.dtype=bfloat16",
            "train.args.beta=0.5",
            "train.lora.target_modules=[q_proj, v_proj]",
        ],
    )
    assert suite.scoring.batch_size == 3
    assert suite.model("tuned").path == "elsewhere" and suite.model("base").dtype == "bfloat16"
    (train,) = suite.train
    assert train.args == {"beta": 0.5}
    assert train.lora is not None and train.lora.target_modules == ["q_proj", "v_proj"]


def test_bad_overrides_are_one_line_errors(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(
        EvalkitError, match=r"--set models\.bsae\.path=x: models\.bsae: no item 'bsae' \(did you mean 'base'\?\)"
    ):
        load_suite(path, ["models.bsae.path=x"])
    with pytest.raises(EvalkitError, match=r"--set scoring: expected key\.path=value"):
        load_suite(path, ["scoring"])
    with pytest.raises(EvalkitError, match=r"scoring\.batch_sise: unknown key \(did you mean 'batch_size'\?\)"):
        load_suite(path, ["scoring.batch_sise=2"])


def test_yaml_exponent_without_a_dot_is_still_a_number(tmp_path: Path) -> None:
    """YAML 1.1 reads `1e-4` as a string; TRL would fail deep inside the optimiser."""
    (train,) = load_suite(write(tmp_path, TRAIN + "  args:\n    learning_rate: 1e-4\n    beta: 5e-1\n")).train
    assert train.args == {"learning_rate": 1e-4, "beta": 0.5}


def test_generation_section_is_checked(tmp_path: Path) -> None:
    ok = MINIMAL + "generation:\n  from_dataset: {dataset: d, n: 4}\n  judges:\n    - {name: j, callable: 'm:f'}\n"
    suite = load_suite(write(tmp_path, ok))
    assert suite.generation is not None and suite.generation.sampling is None  # greedy by default
    with pytest.raises(EvalkitError, match=r"generation\.from_dataset\.dataset: no dataset named 'e'"):
        load_suite(write(tmp_path, MINIMAL + "generation:\n  from_dataset: {dataset: e}\n"))
    with pytest.raises(EvalkitError, match=r"generation: no prompts"):
        load_suite(write(tmp_path, MINIMAL + "generation:\n  max_new_tokens: 8\n"))
    both = MINIMAL + "generation:\n  prompts: [hi]\n  judges:\n    - {name: j, callable: 'm:f', reward_model: rm}\n"
    with pytest.raises(EvalkitError, match=r"generation\.judges\.j: give exactly one of"):
        load_suite(write(tmp_path, both))


@pytest.mark.parametrize("name", ["/tmp/evil", "../outside", "a/b", ".hidden", "", "x" * 65, "nul\x00", "tab\tname"])
def test_dataset_and_model_names_are_plain_file_names(name: str) -> None:
    """They name the files evalkit writes (`pairs/<dataset>.jsonl`): never a path out of the output directory."""
    for key in ("datasets", "models"):
        raw = {
            "name": "x",
            "output_dir": "o",
            "datasets": [{"name": "d", "path": "d.jsonl"}],
            "models": [{"name": "m", "path": "m"}],
        }
        raw[key][0]["name"] = name  # type: ignore[index]
        with pytest.raises(EvalkitError, match=rf"{key}\.0\.name: .* is not a plain name"):
            parse_suite(raw, "s.yaml")


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """Nine levels of nine aliases: under a kilobyte of YAML for 9⁹ values; refused before validation walks it."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("name: x\noutput_dir: o\ntrain:\n  args:\n" + "\n".join("    " + line for line in lines) + "\n")
    assert bomb.stat().st_size < 1000
    with pytest.raises(EvalkitError, match=r"bomb\.yaml: expands to more than 100,000 values through YAML aliases"):
        load_suite(bomb)
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: &n [*n]\n")
    with pytest.raises(EvalkitError, match=r"loop\.yaml: nested too deeply to be a suite"):
        load_suite(loop)
