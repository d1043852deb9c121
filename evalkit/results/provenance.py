"""Where numbers came from: the environment block written into results and training outputs."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from evalkit import __version__
from evalkit.results.schema import Environment

PACKAGES = ["torch", "transformers", "trl", "peft", "datasets", "accelerate"]
"""Distributions whose versions are recorded beside evalkit's own (which is `evalkit.__version__`: its
distribution is named `evalkit-dpo`, and a source checkout run from PYTHONPATH has no metadata at all)."""


def environment() -> Environment:
    """Package versions, device and git sha of the current run."""
    import torch

    packages = {"evalkit": __version__}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        packages=packages,
        device=device,
        git_sha=git_sha(),
        processes=int(os.environ.get("WORLD_SIZE", "1")),  # set by torchrun and accelerate launch
    )


def git_sha() -> str | None:
    """The commit of the working directory's repository, if it is one."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def hash_file(digest: hashlib._Hash, path: Path, name: str) -> None:
    """Feed `name` and the bytes of `path` into `digest`, a megabyte at a time (weights run to GBs)."""
    digest.update(name.encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
