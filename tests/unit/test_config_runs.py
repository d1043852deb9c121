"""`train` as a list of runs: one mapping is one run, each run is checked under its own key path (`train.<i>.…`),
runs share a hold-out only when they split alike, and results and reports carry every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.config.suite import load_suite
from evalkit.errors import EvalkitError
from evalkit.pipeline.checks import check_inputs, check_outputs
from evalkit.report.document import render_markdown
from evalkit.report.html import render_html
from evalkit.results.files import read_results

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"

MODELS = """
name: runs
output_dir: out
datasets:
  - {name: d, path: pairs.jsonl}
models:
  - {name: base, path: models/base}
  - {name: dpo, path: models/dpo}
  - {name: simpo, path: models/simpo}
  - {name: rm, path: models/rm, kind: reward_model}
reference: base
"""
DPO = "  - {base: base, output: dpo, data: train.jsonl, method: {name: dpo, beta: 0.2}}\n"
SIMPO = "  - {base: base, output: simpo, data: train.jsonl, method: {name: simpo, beta: 2.0}}\n"
RM = "  - {base: base, output: rm, data: train.jsonl}\n"


def suite_file(tmp_path: Path, train: str, extra: str = "") -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(MODELS + extra + "train:\n" + train)
    return path


def test_runs_keep_their_order_trainers_and_objectives(tmp_path: Path) -> None:
    suite = load_suite(suite_file(tmp_path, DPO + SIMPO + RM))
    assert [run.output for run in suite.train] == ["dpo", "simpo", "rm"]
    assert [suite.trainer_of(run) for run in suite.train] == ["dpo", "dpo", "reward"]
    # Each trained model is scored with its own run's method; the reward model with none.
    objectives = suite.named_objectives()
    assert (objectives["dpo"].name, objectives["dpo"].beta) == ("dpo", 0.2)
    assert (objectives["simpo"].name, objectives["simpo"].beta) == ("simpo", 2.0)
    assert set(objectives) == {"dpo", "simpo"}
    assert suite.candidate_model == "rm"  # the last run's output
    assert load_suite(suite_file(tmp_path, DPO + SIMPO, "candidate: dpo\n")).candidate_model == "dpo"


def test_one_mapping_is_one_run(tmp_path: Path) -> None:
    mapping = "  base: base\n  output: dpo\n  data: train.jsonl\n"
    one = load_suite(suite_file(tmp_path, mapping)).train
    assert one == load_suite(suite_file(tmp_path, DPO.replace(", method: {name: dpo, beta: 0.2}", ""))).train
    assert [run.output for run in one] == ["dpo"]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (DPO + DPO, r"train\.1\.output: 'dpo' is trained by train\.0 too"),
        (
            SIMPO.replace("base: base", "base: dpo") + DPO,
            r"train\.0\.base: 'dpo' is trained by train\.1, which runs later",
        ),
        (
            DPO + SIMPO.replace("base: base", "base: bsae"),
            r"train\.1\.base: no model named 'bsae' \(did you mean 'base'\?\)",
        ),
        (DPO + RM.replace("base: base", "base: rm"), r"train\.1\.output must differ from train\.1\.base"),
        (
            DPO + SIMPO.replace("}}", "}, args: {learnig_rate: 0.1}}"),
            r"train\.1\.args\.learnig_rate: unknown CPOConfig option",
        ),
        (DPO + SIMPO.replace("}}", "}, lora: {rank: 4}}"), r"train\.1\.lora\.rank: unknown key \(did you mean 'r'\?\)"),
        (
            DPO + SIMPO.replace("}}", "}, eval_fraction: 0.1}"),
            r"train\.1\.heldout: give both `eval_fraction` and `heldout`",
        ),
    ],
)
def test_each_run_is_checked_under_its_index(tmp_path: Path, train: str, message: str) -> None:
    with pytest.raises(EvalkitError, match=message):
        load_suite(suite_file(tmp_path, train))


def test_a_reward_model_does_not_start_another_run(tmp_path: Path) -> None:
    extra = "  - {name: rm2, path: models/rm2, kind: reward_model}\n"
    text = (
        (MODELS + extra).replace("reference: base\n", "")
        + "train:\n"
        + RM
        + RM.replace("output: rm", "output: rm2").replace("base: base", "base: rm")
    )
    (tmp_path / "suite.yaml").write_text(text)
    with pytest.raises(EvalkitError, match=r"train\.1\.base: 'rm' is a reward model"):
        load_suite(tmp_path / "suite.yaml")


def test_the_candidate_key_names_a_model(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"candidate: no model named 'dop' \(did you mean 'dpo'\?\)"):
        load_suite(suite_file(tmp_path, DPO, "candidate: dop\n"))


def test_runs_share_a_hold_out_only_when_they_split_alike(tmp_path: Path) -> None:
    def split(run: str, seed: int) -> str:
        return run.replace("}}\n", f"}}, eval_fraction: 0.2, split_seed: {seed}, heldout: held.jsonl}}\n")

    assert len(load_suite(suite_file(tmp_path, split(DPO, 0) + split(SIMPO, 0))).train) == 2
    with pytest.raises(EvalkitError, match=r"train\.1\.heldout: train\.0 writes held\.jsonl too, from another split"):
        load_suite(suite_file(tmp_path, split(DPO, 0) + split(SIMPO, 1)))


def test_inputs_and_outputs_are_checked_for_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("pairs.jsonl", "train.jsonl"):
        (tmp_path / name).write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    for name in ("base", "rm"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text("{}")
    # Every run's output is trained later: only the base and the data must exist now.
    check_inputs(load_suite(suite_file(tmp_path, DPO + SIMPO), train_options=False))
    held = SIMPO.replace("data: train.jsonl", "data: pairs.jsonl").replace(
        "}}\n", "}, eval_fraction: 0.2, heldout: train.jsonl}\n"
    )
    suite = load_suite(suite_file(tmp_path, DPO + held), train_options=False)
    with pytest.raises(EvalkitError, match=r"train\.1\.heldout: train\.jsonl is also train\.0\.data\.path"):
        check_outputs(suite, tmp_path / "out")


def test_reports_show_every_run() -> None:
    golden = read_results(GOLDEN)
    assert golden.training is not None and golden.training_runs == [golden.training]
    second = golden.training.model_copy(update={"model": "rm", "steps": 7, "trainer": "RewardTrainer"})
    both = golden.model_copy(update={"training": None, "trainings": [golden.training, second]})
    assert both.training_runs == [golden.training, second]
    markdown = render_markdown(both)
    assert markdown.count("## Training") == 1
    assert "`aligned`: 255 DPO steps" in markdown and "`rm`: 7 reward model steps" in markdown
    html = render_html(both)
    assert "Training: aligned" in html and "Training: rm" in html
