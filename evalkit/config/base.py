"""The base of every suite section, in a module of its own so that sections in other modules (the objectives)
can be fields of the sections here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    """Base for every suite section: immutable, and unknown keys are errors."""

    # `beta: .inf` is a typo, not a setting. The docstring under each field is its description (in the JSON Schema
    # of a suite that editors read, and the suite reference the docs generate from it).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)
