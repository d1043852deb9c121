"""The objective read from the TRL config a user's own TRL script saves beside its checkpoint (`training_args.bin`),
only where the model allows pickles, after the suite's `method` and evalkit's training record."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from evalkit.config.objectives import DpoObjective, SimpoObjective
from evalkit.config.recorded import TRL_ARGS
from evalkit.config.suite import parse_suite
from evalkit.pipeline.score import objective_info_of
from evalkit.trainers import trl_objective

OFF = {"bf16": False}  # TRL's configs turn bf16 on by default, which a CPU refuses


def save_simpo(directory: Path) -> Path:
    """A SimPO run's config as TRL's Trainer saves it, in `directory`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.cpo import CPOConfig

        simpo = {"loss_type": "simpo", "simpo_gamma": 0.7, "cpo_alpha": 0.0, "beta": 2.0}
        config = CPOConfig(output_dir=str(directory), **simpo, **OFF)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(config, directory / TRL_ARGS)
    return directory


SIMPO = SimpoObjective(name="simpo", beta=2.0, gamma=0.7, cpo_alpha=0.0)


def test_a_trl_config_is_read_where_pickles_are_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trl import DPOConfig

    assert trl_objective(str(save_simpo(tmp_path / "simpo")), True, "models.tuned") == SIMPO
    (tmp_path / "ipo").mkdir()
    torch.save(DPOConfig(output_dir=str(tmp_path), loss_type=["ipo"], beta=0.2, **OFF), tmp_path / "ipo" / TRL_ARGS)
    ipo = trl_objective(str(tmp_path / "ipo"), True, "models.tuned")
    assert isinstance(ipo, DpoObjective) and ipo.loss_types == ["ipo"] and ipo.beta == 0.2
    assert trl_objective(str(tmp_path), True, "models.tuned") is None  # no config here
    assert capsys.readouterr().err == ""


def test_a_trl_config_is_not_unpickled_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoints = [save_simpo(tmp_path / f"checkpoint-{step}") for step in (1, 2)]
    assert [trl_objective(str(c), False, "models.refused") for c in checkpoints] == [None, None]
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]  # one per model
    assert "models.refused:" in line and "checkpoint-1" in line and "was not read" in line
    assert "`allow_pickle: true`" in line and "`method`" in line


def test_an_unreadable_trl_config_is_a_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / TRL_ARGS).write_bytes(b"not a pickle")
    assert trl_objective(str(tmp_path), True, "models.tuned") is None
    assert "could not be read as a TRL config" in capsys.readouterr().err


def suite_of(path: Path, **model: Any) -> Any:
    return parse_suite(
        {
            "name": "objectives",
            "output_dir": "out",
            "datasets": [{"name": "d", "path": "pairs.jsonl"}],
            "models": [{"name": "base", "path": "b"}, {"name": "tuned", "path": str(path), **model}],
            "reference": "base",
        }
    )


def test_the_suites_method_then_evalkits_record_then_trls_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = save_simpo(tmp_path / "run")
    suite = suite_of(checkpoint, allow_pickle=True)
    info = objective_info_of(suite, suite.model("tuned"))
    assert info is not None and info.settings == SIMPO.model_dump(mode="json")
    orpo = {"name": "orpo", "beta": 0.3}
    (checkpoint / "evalkit_train.json").write_text(json.dumps({"method": orpo}), encoding="utf-8")
    info = objective_info_of(suite, suite.model("tuned"))
    assert info is not None and info.settings == orpo
    suite = suite_of(checkpoint, method={"name": "kto", "beta": 0.4})  # pickles not allowed: no notice either
    info = objective_info_of(suite, suite.model("tuned"))
    assert info is not None and info.name == "kto"
    assert capsys.readouterr().err == ""
