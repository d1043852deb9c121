"""The base of every record in `results.json`: strict, immutable, and with NaN and infinity written as strings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    # NaN and infinities (a diverged model's log-probs) are written as the strings "NaN", "Infinity", "-Infinity"
    # and read back as floats: strict JSON that every reader parses, and a file evalkit can read again.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, ser_json_inf_nan="strings")
