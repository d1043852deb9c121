"""Performance benchmarks run only when asked for: `make perf` (`pytest tests/benchmarks --benchmark-only`).

They are left out of collection otherwise, so `make test` never builds their large fixtures.
"""

from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_") and not config.getoption("benchmark_only"):
        return True
    return None
