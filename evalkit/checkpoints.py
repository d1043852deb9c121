"""Loading checkpoints into memory: the composition root's loader (only `bench` calls it).

A model spec's `path` is a model directory, a PEFT adapter directory, or a hub id (with
`revision`). An adapter is loaded onto the base named in its `adapter_config.json`, or the
spec's `base`. When that base is the suite's reference, the adapter is attached to the
reference model already in memory and the reference is that same model with the adapter
disabled, exactly as TRL's DPOTrainer does with `peft_config` and no `ref_model`: one copy of
the base weights, however many adapters are scored.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from evalkit.config.messages import notice
from evalkit.config.recorded import TRAIN_RECORD
from evalkit.config.specs import ModelSpec
from evalkit.data.rendering import DEFAULT_DATE, PLAIN, Rendering, rendering_for
from evalkit.errors import EvalkitError, first_line
from evalkit.results.provenance import hash_file
from evalkit.results.schema import ModelInfo

FINGERPRINT_FILES = (
    "*.safetensors",
    "*.bin",
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
"""What scores depend on: weights, configs, and the tokenizer with its chat template."""


@dataclass
class LoadedModel:
    """A checkpoint in memory, with the tokenizer it must be scored with."""

    spec: ModelSpec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    info: ModelInfo
    shares_reference: bool = False
    """True for an adapter attached to the reference model: its reference is itself, adapter disabled."""
    pinned: bool = True
    """Whether the fingerprint pins the exact files (local, or a hub commit); only then are scores kept across runs."""
    rendering: Rendering = PLAIN
    """How this model's chat template is rendered (its options, its pinned date)."""

    @contextlib.contextmanager
    def as_reference(self) -> Iterator[PreTrainedModel]:
        """This model with its adapter disabled (only for `shares_reference` models)."""
        assert self.shares_reference
        with cast(Any, self.model).disable_adapter():
            yield self.model


def device() -> torch.device:
    """This process's device: its own GPU under `torchrun` (LOCAL_RANK), else the first; the CPU without one."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def is_loadable(path: str) -> bool:
    """A local directory, or something shaped like a hub id (checked when it loads)."""
    from evalkit.data.locations import looks_like_hub_id

    return Path(path).is_dir() or (not Path(path).exists() and looks_like_hub_id(path))


def load_model(
    spec: ModelSpec,
    reference: LoadedModel | None = None,
    *,
    template_options: dict[str, Any] | None = None,
    template_date: datetime.date | None = None,
) -> LoadedModel:
    """Load `spec`; an adapter on the reference's base is attached to the reference in memory.

    Its chat template is rendered with `template_options` (default: the spec's own) and, when it reads
    the clock, `template_date` (default: the date evalkit trained it with, else `DEFAULT_DATE`).
    """
    where = f"models.{spec.name}"
    adapter = _adapter_config(spec)
    check_weights(spec.path, spec.allow_pickle, where, spec.revision)
    if adapter is None:
        model = _from_pretrained(spec.path, spec.revision, spec, where)
        _check_one_label(model, spec, where)
        base_path, shares_reference = None, False
        tokenizer = _tokenizer(spec.path, spec.revision, spec, where)
    else:
        from peft import PeftModel

        base_path = spec.base or adapter.get("base_model_name_or_path")
        if not base_path:
            raise EvalkitError(f"{where}: the adapter names no base model; set `base` on the model")
        shares_reference = reference is not None and _same_checkpoint(base_path, None, spec.dtype, reference.spec)
        if reference is not None and shares_reference:
            base = reference.model
        elif not is_loadable(base_path):
            raise EvalkitError(
                f"{where}: the adapter's base model {base_path!r} is not a directory here (nor a hub id); "
                "set `base` on the model to where the base lives"
            )
        else:
            check_weights(base_path, spec.allow_pickle, f"{where}.base")
            # A reward model's adapter carries its trained head (`modules_to_save`); the base gets a one-label head.
            base = _from_pretrained(base_path, None, spec, f"{where}.base", one_label=spec.kind == "reward_model")
        try:
            model = cast(PreTrainedModel, PeftModel.from_pretrained(base, spec.path, revision=spec.revision))
        except (OSError, ValueError) as exc:
            raise EvalkitError(f"{where}: cannot load the adapter {spec.path!r}: {first_line(exc)}") from None
        tokenizer = _tokenizer(spec.path, spec.revision, spec, where, fallback=base_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # only fills padding, which scoring masks out
    torch.nn.Module.to(model, device()).eval()  # PreTrainedModel.to is typed too narrowly for mypy
    options = template_options if template_options is not None else dict(spec.chat_template_kwargs or {})
    rendering = rendering_for(tokenizer, options, template_date or trained_date(spec.path) or DEFAULT_DATE)
    if rendering.date is not None:
        say_pinned(f"models.{spec.name}", rendering.date)
    info = ModelInfo(
        name=spec.name,
        path=spec.path,
        kind="adapter" if adapter is not None else "model",
        reward_model=spec.kind == "reward_model",
        base=base_path,
        dtype=spec.dtype,
        fingerprint=_fingerprint(spec.path, model, base_path, rendering),
        chat_template_kwargs=rendering.options,
        template_date=rendering.date.isoformat() if rendering.date is not None else None,
    )
    commit = getattr(getattr(model, "config", None), "_commit_hash", None)
    pinned = commit is not None or all(Path(d).is_dir() for d in [spec.path, *([base_path] if base_path else [])])
    return LoadedModel(spec, model, tokenizer, info, shares_reference, pinned, rendering)


@dataclass
class ServedCheckpoint:
    """A checkpoint a server holds (`scoring.backend: vllm`): here only its tokenizer, to tokenize exactly as in
    process, and the fingerprint its scores are keyed by (its files when they are local, as in process)."""

    spec: ModelSpec
    tokenizer: PreTrainedTokenizerBase
    info: ModelInfo
    pinned: bool
    rendering: Rendering = PLAIN
    shares_reference: bool = False
    """Never: a served adapter's reference is the reference the suite names, served on its own."""


Checkpoint: TypeAlias = LoadedModel | ServedCheckpoint
"""A model of a suite run: loaded in this process, or held by a server."""


def load_served_checkpoint(
    spec: ModelSpec, *, template_options: dict[str, Any], template_date: datetime.date | None = None
) -> ServedCheckpoint:
    """`spec`'s tokenizer (an adapter without one: its base's) and rendering, loading no weights."""
    where = f"models.{spec.name}"
    adapter = _adapter_config(spec)
    base_path = (spec.base or adapter.get("base_model_name_or_path")) if adapter is not None else None
    tokenizer = _tokenizer(spec.path, spec.revision, spec, where, fallback=base_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rendering = rendering_for(tokenizer, template_options, template_date or trained_date(spec.path) or DEFAULT_DATE)
    if rendering.date is not None:
        say_pinned(where, rendering.date)
    digest = hashlib.sha256()
    for directory in [base_path, spec.path] if base_path else [spec.path]:
        digest.update(files_fingerprint(directory, spec.revision).encode())
    if not rendering.is_plain:
        digest.update(rendering.identity.encode())
    info = ModelInfo(
        name=spec.name,
        path=spec.path,
        kind="adapter" if adapter is not None else "model",
        base=base_path,
        dtype="served",
        fingerprint=digest.hexdigest(),
        chat_template_kwargs=rendering.options,
        template_date=rendering.date.isoformat() if rendering.date is not None else None,
    )
    pinned = all(Path(d).is_dir() for d in [spec.path, *([base_path] if base_path else [])])
    return ServedCheckpoint(spec, tokenizer, info, pinned, rendering)


def trained_date(path: str) -> datetime.date | None:
    """The date evalkit's training pinned the chat template to, for a model (or a `checkpoint-<step>` of a
    run) that evalkit trained; None for any other checkpoint."""
    for directory in (Path(path), Path(path).parent):
        record = directory / TRAIN_RECORD
        if not record.is_file():
            continue
        try:
            day = json.loads(record.read_text(encoding="utf-8")).get("rendering", {}).get("date")
            return datetime.date.fromisoformat(day) if isinstance(day, str) else None
        except (ValueError, AttributeError):
            return None
    return None


_SAID: set[tuple[str, datetime.date]] = set()


def say_pinned(where: str, day: datetime.date) -> None:
    """Say, once per model and date, that its template reads the clock and what date it gets instead."""
    if (where, day) in _SAID:
        return
    _SAID.add((where, day))
    notice(
        f"{where}: the chat template writes today's date (strftime_now); rendering it with {day.isoformat()} "
        "instead, so scores do not change from day to day (set `rendering.date` to choose another)"
    )


@dataclass(frozen=True)
class RewardModel:
    """A sequence-classification reward model with its tokenizer and the rendering of its chat template."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    rendering: Rendering


@contextlib.contextmanager
def load_reward_model(
    path: str, where: str, template_options: dict[str, Any] | None = None, template_date: datetime.date | None = None
) -> Iterator[RewardModel]:
    """A sequence-classification reward model, freed on exit; a chat template it has is rendered with
    `template_options` and, if it reads the clock, `template_date`."""
    from transformers import AutoModelForSequenceClassification

    check_weights(path, False, where)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise EvalkitError(f"{where}: cannot load a reward model from {path!r}: {first_line(exc)}") from None
    tokenizer = _tokenizer(path, None, ModelSpec(name="judge", path=path), where)
    torch.nn.Module.to(model, device()).eval()
    rendering = rendering_for(tokenizer, template_options or {}, template_date or DEFAULT_DATE)
    if rendering.date is not None:
        say_pinned(where, rendering.date)
    try:
        yield RewardModel(model, tokenizer, rendering)
    finally:
        del model


def release(loaded: LoadedModel) -> None:
    """Detach an adapter that was attached to the reference, leaving the reference as it was."""
    if loaded.shares_reference:
        cast(Any, loaded.model).unload()


def _adapter_config(spec: ModelSpec) -> dict[str, Any] | None:
    local = Path(spec.path) / "adapter_config.json"
    if local.is_file():
        try:
            config = json.loads(local.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{local}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        return config if isinstance(config, dict) else {}
    if Path(spec.path).exists():
        return None
    try:  # a hub id: an adapter repository has an adapter_config.json
        from peft import PeftConfig

        return dict(PeftConfig.from_pretrained(spec.path, revision=spec.revision).to_dict())
    except Exception:  # not an adapter (or not reachable): load it as a model, which reports properly
        return None


def _same_checkpoint(path: str, revision: str | None, dtype: str, reference: ModelSpec) -> bool:
    if dtype != reference.dtype or revision != reference.revision:
        return False
    if Path(path).exists() and Path(reference.path).exists():
        return Path(path).resolve() == Path(reference.path).resolve()
    return path == reference.path


PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
PICKLE_FREE = {"training_args.bin"}
ADAPTER_SAFETENSORS = ("adapter_model.safetensors",)
MODEL_SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
"""Pickles that trainers leave beside the weights and that loading a model never reads."""


def load_for_training(base: ModelSpec, *, classifier: bool = False) -> PreTrainedModel:
    """`base` as training starts from it: its weights in the spec's dtype with the architecture's default
    attention (TRL's own defaults, so a run trains as a user's DPOTrainer script would). `classifier`: as a
    sequence classifier with a fresh one-label head, as RewardTrainer builds a reward model from a causal LM."""
    from transformers import AutoModelForSequenceClassification

    check_weights(base.path, base.allow_pickle, "train.base", base.revision)
    auto: Any = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
    labels = {"num_labels": 1} if classifier else {}
    model = auto.from_pretrained(
        base.path,
        revision=base.revision,
        dtype="auto" if base.dtype == "auto" else getattr(torch, base.dtype),
        use_safetensors=None if base.allow_pickle else True,
        trust_remote_code=base.trust_remote_code,
        **labels,
    )
    return cast(PreTrainedModel, model)


def load_tokenizer(path: str, revision: str | None, spec: ModelSpec, where: str) -> PreTrainedTokenizerBase:
    """The tokenizer at `path` (a directory or hub id), loaded as `spec` allows; a failure is one line at `where`."""
    return _tokenizer(path, revision, spec, where)


def check_weights(path: str, allow_pickle: bool, where: str, revision: str | None = None) -> None:
    """Refuse a local checkpoint whose weights would load from pickles, unless they are explicitly allowed.

    Unpickling runs whatever code the file carries. A hub id is checked on the files transformers fetches first
    (config.json, model.safetensors, the shard index: `_hub_files`), from the same cache loading reads.
    """
    if allow_pickle:
        return
    directory = Path(path) if Path(path).is_dir() else _hub_files(path, revision)
    if directory is None:
        return
    adapter = (directory / "adapter_config.json").is_file()
    opened = _adapter_weight_files(directory) if adapter else _model_weight_files(directory, where)
    if opened is not None:
        source, files = opened
        pickled = sorted({name for name in files if not name.endswith(".safetensors")})
        if pickled:
            raise EvalkitError(
                f"{where}: {path}: {source} names pickled weights ({', '.join(pickled)}), which can run code "
                "when loaded; convert them to safetensors, or set `allow_pickle: true` on the model "
                "(--allow-pickle) if you trust them"
            )
        return
    pickled = sorted(
        p.name for pattern in PICKLED_WEIGHTS for p in directory.glob(pattern) if p.name not in PICKLE_FREE
    )
    if pickled:
        expected = " or ".join(ADAPTER_SAFETENSORS if adapter else MODEL_SAFETENSORS)
        raise EvalkitError(
            f"{where}: {path} has no {expected} and would load pickled weights ({', '.join(pickled)}), which can "
            "run code when loaded; convert them to safetensors, or set `allow_pickle: true` on the model "
            "(--allow-pickle) if you trust them"
        )


def _hub_files(repo: str, revision: str | None) -> Path | None:
    """The cached snapshot of a hub model's config.json, model.safetensors and shard index (fetched when missing:
    loading would fetch them next, into the same cache), or None when the hub id cannot be reached, which loading
    then reports."""
    from evalkit.data.locations import looks_like_hub_id

    if Path(repo).exists() or not looks_like_hub_id(repo):
        return None
    try:
        from huggingface_hub import snapshot_download

        # An adapter's weights are small: its pickle is fetched too (never opened), so that it is refused by name.
        patterns = ["config.json", *MODEL_SAFETENSORS, "adapter_config.json", *ADAPTER_SAFETENSORS, "adapter_model.bin"]
        return Path(snapshot_download(repo, revision=revision, allow_patterns=patterns))
    except Exception:  # not reachable, not found, gated: nothing to check, and loading says why in one line
        return None


def _adapter_weight_files(directory: Path) -> tuple[str, list[str]] | None:
    """What PEFT opens for an adapter: adapter_model.safetensors when it is there (else its pickle)."""
    name = ADAPTER_SAFETENSORS[0]
    return (name, [name]) if (directory / name).is_file() else None


def _model_weight_files(directory: Path, where: str) -> tuple[str, list[str]] | None:
    """The weight files transformers opens for a local model with `use_safetensors=True`, and the file that names
    them; None when it would find none (it then fails, or falls back to pickles only when they are allowed).

    The same precedence as transformers' `_get_resolved_checkpoint_files`: config.json's `transformers_weights`
    (which transformers lets name `adapter_model.bin`), then model.safetensors, then the shards the index maps
    weights to. A name is only a name: an index may map every weight to a pickle.
    """
    explicit = _json_object(directory / "config.json", where).get("transformers_weights")
    if isinstance(explicit, str):
        if explicit.endswith(".safetensors.index.json"):
            return explicit, _index_shards(directory / explicit, where)
        return "config.json", [explicit]
    if (directory / MODEL_SAFETENSORS[0]).is_file():
        return MODEL_SAFETENSORS[0], [MODEL_SAFETENSORS[0]]
    index = directory / MODEL_SAFETENSORS[1]
    if index.is_file():
        return index.name, _index_shards(index, where)
    return None


def _index_shards(index: Path, where: str) -> list[str]:
    weight_map = _json_object(index, where).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise EvalkitError(f"{where}: {index}: expected a `weight_map` of weight names to shard files")
    return sorted(set(weight_map.values()))


def _json_object(file: Path, where: str) -> dict[str, Any]:
    """A JSON object file's contents ({} when the file is absent); anything else is a one-line error."""
    if not file.is_file():
        return {}
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EvalkitError(f"{where}: {file}: not a JSON file ({first_line(exc)})") from None
    if not isinstance(value, dict):
        raise EvalkitError(f"{where}: {file}: expected a JSON object")
    return value


def _from_pretrained(
    path: str, revision: str | None, spec: ModelSpec, where: str, *, one_label: bool = False
) -> PreTrainedModel:
    """The model with PyTorch's fused attention (SDPA) where its architecture has it, else its default: a causal
    LM for a policy, a sequence classifier for a reward model (`one_label`: with a fresh one-label head, as
    RewardTrainer builds one on a causal LM)."""
    from transformers import AutoModelForSequenceClassification

    torch_dtype: Any = "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)
    options: dict[str, Any] = {
        "revision": revision,
        "dtype": torch_dtype,
        "use_safetensors": None if spec.allow_pickle else True,
        "trust_remote_code": spec.trust_remote_code,
    }
    if one_label:
        options["num_labels"] = 1
    auto: Any = AutoModelForSequenceClassification if spec.kind == "reward_model" else AutoModelForCausalLM
    try:
        try:
            model = auto.from_pretrained(path, attn_implementation="sdpa", **options)
        except ValueError as exc:
            if "sdpa" not in str(exc).lower():
                raise
            model = auto.from_pretrained(path, **options)
    except (OSError, ValueError) as exc:
        raise EvalkitError(f"{where}: cannot load a model from {path!r}: {first_line(exc)}") from None
    return cast(PreTrainedModel, model)


def _check_one_label(model: PreTrainedModel, spec: ModelSpec, where: str) -> None:
    labels = getattr(model.config, "num_labels", None)
    if spec.kind == "reward_model" and labels != 1:
        raise EvalkitError(
            f"{where}: {spec.path} is a classifier with {labels} labels; a reward model (`kind: reward_model`) has "
            "one label, its score"
        )


def _tokenizer(
    path: str, revision: str | None, spec: ModelSpec, where: str, fallback: str | None = None
) -> PreTrainedTokenizerBase:
    """The checkpoint's own tokenizer; an adapter without one uses its base's."""
    candidates = [(path, revision)] + ([(fallback, None)] if fallback else [])
    error: Exception | None = None
    for source, rev in candidates:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, revision=rev, trust_remote_code=spec.trust_remote_code)
            return cast(PreTrainedTokenizerBase, tokenizer)
        except (OSError, ValueError) as exc:
            error = exc
    raise EvalkitError(f"{where}: cannot load a tokenizer from {path!r}: {first_line(error)}")


def _fingerprint(path: str, model: PreTrainedModel, base_path: str | None, rendering: Rendering) -> str:
    """sha256 over the weight, config and tokenizer files of local checkpoints (`id@commit` for hub ones),
    and over the template options and pinned date when there are any: they change the tokens scored."""
    commit = getattr(getattr(model, "config", None), "_commit_hash", None)
    digest = hashlib.sha256()
    for directory in [base_path, path] if base_path else [path]:
        digest.update(files_fingerprint(directory, commit).encode())
    if not rendering.is_plain:
        digest.update(rendering.identity.encode())
    return digest.hexdigest()


def files_fingerprint(path: str, revision: str | None = None) -> str:
    """sha256 of a local checkpoint's weight, config and tokenizer files; `id@revision` for a hub id."""
    local = Path(path)
    if not local.is_dir():
        return f"{path}@{revision or 'unknown'}"
    digest = hashlib.sha256()
    for file in sorted(p for pattern in FINGERPRINT_FILES for p in local.glob(pattern) if p.name not in PICKLE_FREE):
        hash_file(digest, file, file.name)
    return digest.hexdigest()
