"""The reference's log-probs kept on disk: a second checkpoint scored against the same reference runs no
reference forward pass, and changing anything the numbers depend on misses."""

from __future__ import annotations

import datetime
import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

from evalkit.checkpoints import LoadedModel
from evalkit.cli import main
from evalkit.config.specs import ModelSpec
from evalkit.config.suite import parse_suite
from evalkit.data.pairs import load_pairs
from evalkit.pipeline import score as suite_scoring
from evalkit.pipeline.score import ScoredSuite, score_suite
from evalkit.world.model import build_model
from evalkit.world.pairs import generate_pairs


@pytest.fixture()
def checkpoints(tmp_path: Path, tiny_tokenizer: PreTrainedTokenizerFast) -> Path:
    for name, seed in (("reference", 0), ("first", 1), ("second", 2), ("other-reference", 3)):
        torch.manual_seed(seed)
        build_model(tiny_tokenizer, hidden_size=32, num_layers=2).save_pretrained(tmp_path / name)
        tiny_tokenizer.save_pretrained(tmp_path / name)
    for name, seed in (("pairs", 3), ("other-pairs", 4)):
        rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in generate_pairs(3, seed=seed)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


@pytest.fixture()
def forwards(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Forward passes run by each loaded model, by model name (every pass starts at the input embeddings)."""
    calls: Counter[str] = Counter()
    load = suite_scoring.load_model

    def counting(spec: ModelSpec, reference: LoadedModel | None = None, **rendering: Any) -> LoadedModel:
        loaded = load(spec, reference, **rendering)
        loaded.model.get_input_embeddings().register_forward_hook(lambda *_: calls.update([spec.name]))
        return loaded

    monkeypatch.setattr(suite_scoring, "load_model", counting)
    return calls


def score(root: Path, policy: str, cache: Path | None, **scoring: Any) -> ScoredSuite:
    reference = scoring.pop("reference", "reference")
    suite = parse_suite(
        {
            "name": "cache",
            "output_dir": str(root / "out"),
            "datasets": [{"name": "d", "path": str(root / scoring.pop("data", "pairs.jsonl"))}],
            "models": [{"name": "policy", "path": str(root / policy)}, {"name": "ref", "path": str(root / reference)}],
            "reference": "ref",
            "scoring": {"reference_cache": str(cache) if cache else None, **scoring},
        },
        source="test",
    )
    return score_suite(suite, {"d": load_pairs(suite.datasets[0])})


def reference_logps(scored: ScoredSuite) -> list[tuple[float | None, float | None]]:
    return [(r.ref_logp_chosen, r.ref_logp_rejected) for r in scored.scores["d"] if r.model == "policy"]


def test_a_second_checkpoint_runs_no_reference_forward_pass(
    checkpoints: Path, forwards: Counter[str], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    score(checkpoints, "first", cache)
    assert forwards["ref"] > 0 and len(list(cache.glob("*.json"))) == 1
    forwards.clear()
    second = score(checkpoints, "second", cache)
    assert forwards["ref"] == 0 and forwards["policy"] > 0
    uncached = score(checkpoints, "second", None)
    assert reference_logps(second) == reference_logps(uncached)  # exactly: floats survive the JSON round trip
    assert [r.logp_chosen for r in second.scores["d"]] == [r.logp_chosen for r in uncached.scores["d"]]


@pytest.mark.parametrize(
    "change",
    [
        {"max_length": 40},
        {"dtype": "bfloat16"},
        {"data": "other-pairs.jsonl"},
        {"reference": "other-reference"},
        {"reference": "templated-reference"},
    ],
    ids=["max_length", "dtype", "dataset", "reference weights", "reference chat template"],
)
def test_changing_any_part_of_the_key_misses(
    checkpoints: Path, forwards: Counter[str], tmp_path: Path, change: dict[str, Any]
) -> None:
    cache = tmp_path / "cache"
    score(checkpoints, "first", cache)
    # The same weights with another chat template: the tokens the policy scores are the same, the reference is not.
    shutil.copytree(checkpoints / "reference", checkpoints / "templated-reference")
    template = checkpoints / "templated-reference" / "chat_template.jinja"
    template.write_text(template.read_text() + "{# changed #}")
    forwards.clear()
    score(checkpoints, "first", cache, **change)
    assert forwards["ref"] > 0
    assert len(list(cache.glob("*.json"))) == 2


class _Clock:
    """Stands in for `datetime` in transformers' chat template renderer: `now()` is `day`."""

    day = datetime.datetime(2026, 3, 1, 12, 0)

    @classmethod
    def now(cls, tz: Any = None) -> datetime.datetime:
        return cls.day


def test_a_clock_reading_template_scores_byte_identically_on_two_days_and_the_cache_hits(
    tmp_path: Path,
    forwards: Counter[str],
    family_checkpoints: Callable[[str, list[str]], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SmolLM3's template writes today's date; with the clock faked to two different days, `evalkit score` writes
    the same bytes both days and the second day's reference comes from the cache (no reference forward pass)."""
    family_checkpoints("smollm3", ["policy", "reference"])
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tmp_path / "policy")
    monkeypatch.chdir(tmp_path)  # the reference cache lives under ./.evalkit
    monkeypatch.setattr(chat_template_utils, "datetime", _Clock)
    message = [{"role": "user", "content": "Hi"}]
    written = []
    for day in (datetime.datetime(2026, 3, 1, 23, 59), datetime.datetime(2026, 3, 2, 0, 1)):
        _Clock.day = day
        assert f"Today Date: {day:%d %B %Y}" in str(tokenizer.apply_chat_template(message, tokenize=False))
        forwards.clear()
        out = tmp_path / f"{day:%d}.jsonl"
        argv = ["score", "--model", "policy", "--ref", "reference", "--data", "pairs.jsonl", "--out", str(out)]
        assert main(argv) == 0
        written.append((out.read_bytes(), forwards["reference"]))
    (day_one, first_passes), (day_two, second_passes) = written
    assert day_one == day_two and len(day_one.splitlines()) == 6
    assert first_passes > 0 and second_passes == 0
