"""evalkit: preference evaluation for DPO checkpoints.

Stages, in pipeline order: config → data → world (the embedded tiny world) → train → scoring →
metrics → results → report, wired together by `bench` and exposed by `cli`.

From Python (see docs/how-to/python.md): `score` a model on preference pairs, `compare_models`
of two scored runs on the same pairs (not `compare`: that name is the `evalkit compare` command's
module), `run_suite` as `evalkit bench` does, `read_results` of a finished run, `EvalkitCallback`
to evaluate properly inside a TRL `DPOTrainer`, and `build_world` (with a `WorldSpec`) to build the tiny
offline world the examples run on. Importing evalkit stays cheap: each name loads its module (and torch,
where it needs it) when it is first used, and `dir(evalkit)` lists `__all__` only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from evalkit.api.callback import EvalkitCallback as EvalkitCallback
    from evalkit.api.evaluation import Evaluation as Evaluation
    from evalkit.api.evaluation import Report as Report
    from evalkit.api.evaluation import read_results as read_results
    from evalkit.api.functions import Layout as Layout
    from evalkit.api.functions import compare_models as compare_models
    from evalkit.api.functions import score as score
    from evalkit.config.specs import ScoringSpec as ScoringSpec
    from evalkit.config.specs import WorldSpec as WorldSpec
    from evalkit.errors import EvalkitError as EvalkitError
    from evalkit.pipeline.bench import run_suite as run_suite
    from evalkit.results.estimates import Statistics as Statistics
    from evalkit.world import build_world as build_world

_EXPORTS = {
    "score": "evalkit.api.functions",
    "compare_models": "evalkit.api.functions",
    "run_suite": "evalkit.pipeline.bench",
    "Layout": "evalkit.api.functions",
    "read_results": "evalkit.api.evaluation",
    "Evaluation": "evalkit.api.evaluation",
    "Report": "evalkit.api.evaluation",
    "EvalkitCallback": "evalkit.api.callback",
    "ScoringSpec": "evalkit.config.specs",
    "Statistics": "evalkit.results.estimates",
    "build_world": "evalkit.world",
    "WorldSpec": "evalkit.config.specs",
    "EvalkitError": "evalkit.errors",
}
"""Public name → the module that defines it, imported on first use."""

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The public names only: not this module's own imports, nor the submodules Python binds here as they load
    (`evalkit.api`, `evalkit.config`, ...), which tab completion would otherwise offer as if they were the API."""
    return sorted(__all__)
