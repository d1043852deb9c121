"""The embedded default suite, moved into a test's temporary directory."""

from pathlib import Path

import pytest

DEFAULT_SUITE = Path(__file__).parents[2] / "suites" / "default.yaml"

REDUCED_ARGS = [
    "--set",
    "world.pairs_per_subset=16",
    "--set",
    "world.pretrain_steps=60",
    "--set",
    "train.args.num_train_epochs=1",
    "--set",
    "gate=null",  # a model trained this little is not meant to pass the release gate
]


@pytest.fixture()
def default_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default suite with its world under `tmp_path/world` and its outputs under `tmp_path/out`, run
    from `tmp_path` so that what it keeps relative to the working directory (the reference cache) stays there."""
    monkeypatch.chdir(tmp_path)
    text = DEFAULT_SUITE.read_text()
    text = text.replace(".evalkit/world", str(tmp_path / "world")).replace("reports/default", str(tmp_path / "out"))
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def reduced() -> list[str]:
    """`--set` overrides that make the default suite small enough for a test (and drop its gate)."""
    return list(REDUCED_ARGS)
