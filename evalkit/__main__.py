"""`python -m evalkit` is the same as the `evalkit` console script."""

from evalkit.cli import entrypoint

entrypoint()
