"""Where a model or a dataset lives: a local path, or a hub id; checked before anything loads.

A string like `org/name` is both a relative path and a hub id. Loading libraries try the Hub whenever the
directory is missing, so a typo in a local path used to cost a minute of Hub retries and end in "couldn't
connect to huggingface.co". Here a path that can only be local (it starts with `.`, `/` or `~`, is not
shaped like a hub id, or its first part is a directory here) is reported at once as a missing directory, with
the nearest names beside it; with `HF_HUB_OFFLINE` set, a hub id must be in the Hugging Face cache.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Literal

from evalkit.errors import EvalkitError

RepoType = Literal["model", "dataset"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
"""File types a dataset path may name; a name ending in one is a file, never a hub id."""
MODEL_FILES = ("config.json", "adapter_config.json")
"""A cached model repository holds one of these (a model, or a PEFT adapter)."""


def looks_like_hub_id(path: str) -> bool:
    """`name` or `org/name`, not ending in a data file's suffix, or in a near miss of one (`pairs.jsnl` is a typo of
    a file, and asking the Hub for it would cost its retries)."""
    suffix = Path(path).suffix.lower()
    near_data_file = bool(suffix) and bool(difflib.get_close_matches(suffix, DATA_SUFFIXES, n=1, cutoff=0.7))
    return _HUB_ID.match(path) is not None and not near_data_file


def hub_offline() -> bool:
    """Whether `HF_HUB_OFFLINE` is set, read as huggingface_hub reads it (at each call: tests and callers may set it
    after huggingface_hub was imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def is_local_only(path: str) -> bool:
    """A path that cannot be a hub id, or that names a directory here on its way (`models/aligend`)."""
    if path.startswith((".", "/", "~")) or not looks_like_hub_id(path):
        return True
    first = path.split("/")[0]
    return "/" in path and Path(first).is_dir()


def in_hub_cache(repo_id: str, revision: str | None, repo_type: RepoType) -> bool:
    """Whether the Hugging Face cache holds the repository (at `revision`): what an offline load can read."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE
    from huggingface_hub.file_download import repo_folder_name

    if repo_type == "model":
        return any(
            isinstance(try_to_load_from_cache(repo_id, name, revision=revision, repo_type="model"), str)
            for name in MODEL_FILES
        )
    # A dataset repository has no file every one of them holds: its folder in the hub cache is the evidence, or the
    # tables `datasets` prepared from it earlier (`org___name` in its own cache), which it reads offline.
    from datasets import config

    folder = Path(HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="dataset")
    prepared = Path(config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")
    return (folder / "snapshots").is_dir() or prepared.is_dir()


def did_you_mean(path: str, directories: bool) -> str:
    """'; did you mean models/aligned?': the closest names beside where `path` points, or '' when none is close."""
    try:
        target = Path(path).expanduser()
    except RuntimeError:
        return ""
    parent = target.parent
    if not parent.is_dir():
        return ""
    try:
        siblings = [p.name for p in parent.iterdir() if (p.is_dir() if directories else p.is_file() or p.is_dir())]
    except OSError:
        return ""
    close = difflib.get_close_matches(target.name, siblings, n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(str(parent / name) if str(parent) != "." else name for name in close) + "?"


def _expanded(path: str, where: str) -> Path:
    """`~/x` and `~user/x` as the shell reads them; an unknown user is the user's mistake, not a crash."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise EvalkitError(f"{where}: {path}: no such user's home directory") from None


def check_model_location(path: str, revision: str | None, where: str) -> None:
    """A model directory here, or a hub id (in the cache when offline); else one line with the nearest names."""
    local = _expanded(path, where)
    if local.is_dir():
        return
    if local.exists():
        raise EvalkitError(f"{where}: {path} is a file; expected a model or adapter directory, or a hub model id")
    if is_local_only(path):
        raise EvalkitError(f"{where}: directory not found: {path}{did_you_mean(path, directories=True)}")
    if hub_offline() and not in_hub_cache(path, revision, "model"):
        raise EvalkitError(
            f"{where}: {path} is no directory here, and not in the Hugging Face cache while HF_HUB_OFFLINE is set"
            f"{did_you_mean(path, directories=True)}"
        )


def check_data_location(path: str, revision: str | None, where: str) -> None:
    """A data file or folder here, or a hub dataset id (in the cache when offline); else one line with the nearest
    names."""
    if _expanded(path, where).exists():
        return
    if is_local_only(path):
        raise EvalkitError(f"{where}: file not found: {path}{did_you_mean(path, directories=False)}")
    if hub_offline() and not in_hub_cache(path, revision, "dataset"):
        raise EvalkitError(
            f"{where}: {path} is no file here, and not in the Hugging Face cache while HF_HUB_OFFLINE is set"
            f"{did_you_mean(path, directories=False)}"
        )
