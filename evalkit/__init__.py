"""evalkit: preference evaluation for DPO checkpoints.

Stages, in pipeline order: config → data → world (the embedded tiny world) → train → scoring →
metrics → results → report, wired together by `bench` and exposed by `cli`.
"""

__version__ = "0.1.0"
