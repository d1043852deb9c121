"""`evalkit bench --model M [--ref R] [--data D]`: a suite turned into a run of your own checkpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from evalkit.config.messages import notice
from evalkit.config.suite import Suite, parse_suite
from evalkit.gate.roles import rules_for_candidate
from evalkit.pipeline.checks import adapter_base


@dataclass(frozen=True)
class Candidate:
    """`evalkit bench --model M [--ref R] [--data D]`: your own checkpoint, scored with a suite's
    datasets, statistics, generation panel and gate, without writing a suite."""

    model: str
    reference: str | None = None
    data: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False

    def into(self, suite: Suite) -> Suite:
        """`suite` with its models replaced by `candidate` (and `reference`), its training dropped,
        its datasets replaced by `data` when given, and the gate rules about other models left out."""
        raw = suite.model_dump(mode="json")
        trust = {"allow_pickle": self.allow_pickle, "trust_remote_code": self.trust_remote_code}
        models = [{"name": "candidate", "path": self.model, **trust}]
        reference = self.reference or adapter_base(self.model)
        if reference is not None:
            models.insert(0, {"name": "reference", "path": reference, **trust})
        raw |= {
            "name": f"{suite.name}-candidate",
            "output_dir": f"{suite.output_dir}-candidate",
            "models": models,
            "reference": "reference" if reference is not None else None,
            "train": [],
            "candidate": None,
        }
        data = Path(self.data).resolve() if self.data is not None else None
        same = next((d for d in suite.datasets if Path(d.path).resolve() == data), None)
        if same is not None:
            # One of the suite's own datasets: its name, ids and subsets stay, so the run pairs with the baseline's.
            raw["datasets"] = [same.model_dump(mode="json", exclude_unset=True)]
            if raw.get("generation") and raw["generation"].get("from_dataset"):
                raw["generation"]["from_dataset"]["dataset"] = same.name
        elif self.data is not None:
            # A plain file name (see `config.SafeName`), whatever the file is called.
            name = re.sub(r"[^A-Za-z0-9._+-]+", "-", Path(self.data.rstrip("/")).stem).lstrip("._+-")[:64] or "data"
            raw |= {"datasets": [{"name": name, "path": self.data}], "world": None}
            if raw.get("generation") and raw["generation"].get("from_dataset"):
                raw["generation"]["from_dataset"]["dataset"] = name
            if suite.world is not None and suite.capabilities is not None and _reads_world(suite):
                notice("capabilities: the tasks are the tiny world's, which is not built with your data; left out")
                raw["capabilities"] = None
        if suite.gate is not None:
            # The suite's rules about its reference and its candidate now apply to yours; rules about other
            # models are left out.
            renamed = {suite.candidate_model or "": "candidate"}
            if suite.reference is not None and reference is not None:
                renamed[suite.reference] = "reference"
            rules = rules_for_candidate(
                suite.gate.rules,
                renamed,
                reference=reference is not None,
                capabilities=raw.get("capabilities") is not None,
                own_data=self.data is not None,
            )
            for rule in rules.left_out:
                notice(f"gate rule {rule.name or rule.kind!r} is about other models; left out")
            kept = suite.gate.model_copy(update={"rules": rules.kept})
            raw["gate"] = kept.model_dump(mode="json") if rules.kept else None
        return parse_suite(raw, source=f"evalkit bench --model {self.model}")


def _reads_world(suite: Suite) -> bool:
    """Whether the suite's capability tasks are files of its tiny world (written when the world is built)."""
    assert suite.world is not None and suite.capabilities is not None
    world = suite.world.dir.resolve()
    return any(world in (path.resolve(), *path.resolve().parents) for path in suite.capabilities.include_path)
