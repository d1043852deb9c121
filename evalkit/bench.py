"""The composition root: runs a suite from start to finish.

This is the only module that loads real models. It wires the stages in pipeline order: build
the tiny world (when the suite has one), train (when asked), score every model on every
dataset, compute metrics, and write `results.json`, the per-pair scores and the reports.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from evalkit import __version__
from evalkit.config import DatasetSpec, ModelSpec, Suite, load_suite
from evalkit.console import console
from evalkit.data import PreferencePair, load_pairs
from evalkit.errors import EvalkitError
from evalkit.metrics import compute_metrics
from evalkit.report import summary_table, write_reports
from evalkit.results import (
    SCHEMA_VERSION,
    DatasetInfo,
    Environment,
    ModelInfo,
    RunResult,
    ScoringInfo,
    SuiteInfo,
    TokenizationAudit,
    TrainingInfo,
    write_jsonl,
    write_results,
)
from evalkit.scoring import (
    CompletionLogps,
    PairScore,
    TokenizedPair,
    fits,
    pair_scores,
    score_pairs,
    tokenize_pair,
)
from evalkit.train import TrainingRun, train_dpo
from evalkit.world import build_world

PACKAGES = ["evalkit", "torch", "transformers", "trl", "peft", "datasets", "accelerate"]
WEIGHT_FILES = ("*.safetensors", "*.bin", "config.json", "adapter_config.json")


@dataclass
class LoadedModel:
    """A checkpoint in memory, with the tokenizer it must be scored with."""

    spec: ModelSpec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    info: ModelInfo


def run_bench(suite_path: Path, output_dir: Path | None = None) -> RunResult:
    """Run the suite at `suite_path`; write results and reports; return the results."""
    started = time.perf_counter()
    suite = load_suite(suite_path)
    out_dir = output_dir or suite.output_dir

    if suite.world is not None:
        build_world(suite.world)
    _check_inputs(suite)
    datasets = {d.name: load_pairs(d) for d in suite.datasets}

    training = _train(suite, out_dir) if suite.train is not None else None

    reference = _load_model(suite.model(suite.reference)) if suite.reference else None
    scores: dict[str, list[PairScore]] = {name: [] for name in datasets}
    reference_cache: dict[str, list[CompletionLogps]] = {}
    audits: list[TokenizationAudit] = []
    model_infos: list[ModelInfo] = []
    for spec in suite.models:
        loaded = reference if reference is not None and spec.name == reference.spec.name else _load_model(spec)
        model_infos.append(loaded.info)
        for name, pairs in datasets.items():
            rows, audit = _score_dataset(suite, name, pairs, loaded, reference, reference_cache)
            scores[name].extend(rows)
            audits.append(audit)
        if loaded is not reference:
            del loaded  # one policy in memory at a time, beside the reference

    metrics = [m for name, rows in scores.items() for m in compute_metrics(name, rows, suite.scoring.beta)]
    dataset_infos = []
    for spec_d in suite.datasets:
        pairs_file = Path("pairs") / f"{spec_d.name}.jsonl"
        write_jsonl(_pair_rows(scores[spec_d.name], suite.scoring.beta), out_dir / pairs_file)
        dataset_infos.append(
            DatasetInfo(
                name=spec_d.name,
                path=str(spec_d.path),
                fingerprint=_sha256_files([spec_d.path]),
                n_pairs=len(datasets[spec_d.name]),
                subsets=sorted({p.subset for p in datasets[spec_d.name]}),
                pairs_file=str(pairs_file),
            )
        )

    result = RunResult(
        schema_version=SCHEMA_VERSION,
        evalkit_version=__version__,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 1),
        suite=SuiteInfo(
            name=suite.name,
            description=suite.description,
            path=str(suite_path),
            sha256=_sha256_files([suite_path]),
        ),
        environment=_environment(),
        reference=suite.reference,
        scoring=ScoringInfo(**suite.scoring.model_dump()),
        models=model_infos,
        datasets=dataset_infos,
        audit=audits,
        training=_training_info(suite, training),
        metrics=metrics,
    )
    write_results(result, out_dir / "results.json")
    written = write_reports(result, out_dir)
    console.print(summary_table(result))
    console.print(f"wrote {out_dir / 'results.json'}, " + ", ".join(str(p) for p in written))
    return result


def _check_inputs(suite: Suite) -> None:
    """Fail before any heavy work when a file the suite names is missing."""
    produced = suite.train.output if suite.train is not None else None
    for d in suite.datasets:
        if not d.path.is_file():
            raise EvalkitError(f"datasets.{d.name}.path: file not found: {d.path}")
    for m in suite.models:
        if m.name != produced and not m.path.is_dir():
            raise EvalkitError(f"models.{m.name}.path: directory not found: {m.path}")
    if suite.train is not None and not suite.train.data.is_file():
        raise EvalkitError(f"train.data: file not found: {suite.train.data}")


def _train(suite: Suite, out_dir: Path) -> TrainingRun:
    assert suite.train is not None
    spec = suite.train
    pairs = load_pairs(DatasetSpec(name="train", path=spec.data))
    output = suite.model(spec.output).path
    console.print(f"training {spec.output!r} from {spec.base!r} with DPO on {len(pairs)} pairs")
    return train_dpo(spec, suite.model(spec.base).path, output, pairs)


def _load_model(spec: ModelSpec) -> LoadedModel:
    """Load a model directory or a PEFT adapter directory (onto the base its config names)."""
    dtype = getattr(torch, spec.dtype)
    adapter_config = spec.path / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftModel

        base_path = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
        if not base_path or not Path(base_path).is_dir():
            raise EvalkitError(
                f"{adapter_config}: base_model_name_or_path {base_path!r} is not a model directory; "
                "expected the path of the adapter's base model"
            )
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
        model = cast(PreTrainedModel, PeftModel.from_pretrained(base, spec.path))
        kind, files = "adapter", [*_weight_files(Path(base_path)), *_weight_files(spec.path)]
    else:
        base_path = None
        model = AutoModelForCausalLM.from_pretrained(spec.path, dtype=dtype)
        kind, files = "model", _weight_files(spec.path)
    tokenizer_dir = spec.path if (spec.path / "tokenizer_config.json").is_file() else Path(base_path or spec.path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # only fills padding, which scoring masks out
    torch.nn.Module.to(model, _device()).eval()  # PreTrainedModel.to is typed too narrowly for mypy
    info = ModelInfo(
        name=spec.name,
        path=str(spec.path),
        kind=kind,
        base=base_path,
        dtype=spec.dtype,
        fingerprint=_sha256_files(files),
    )
    return LoadedModel(spec, model, tokenizer, info)


def _score_dataset(
    suite: Suite,
    dataset: str,
    pairs: list[PreferencePair],
    policy: LoadedModel,
    reference: LoadedModel | None,
    reference_cache: dict[str, list[CompletionLogps]],
) -> tuple[list[PairScore], TokenizationAudit]:
    """Score one dataset under one model, and under the reference on the same tokens.

    Reference log-probs are cached by the exact token ids scored, so models that share a
    tokenizer (the usual case: checkpoints of one base) cost one reference pass in all.
    The reference model itself gets no reward metrics: its rewards are zero by definition.
    """
    settings = suite.scoring
    tokenized = [tokenize_pair(p, policy.tokenizer) for p in pairs]
    scorable = [t for t in tokenized if fits(t, settings.max_length)]
    too_long = [t.id for t in tokenized if not fits(t, settings.max_length)]
    if too_long:
        console.print(
            f"[yellow]{dataset}: {len(too_long)} pairs have a prompt that fills max_length="
            f"{settings.max_length} and are left out of the metrics (see the audit)[/yellow]"
        )
    label = f"{policy.spec.name} on {dataset}"
    key = _tokens_key(scorable, settings.max_length)
    ref: list[CompletionLogps] | None = None
    if reference is policy:
        own = reference_cache.get(key) or _score(policy, scorable, suite, label)
        reference_cache[key] = own
    else:
        own = _score(policy, scorable, suite, label)
        if reference is not None:
            # The reference is scored on the policy's own tokens, so both log-probs cover the same text.
            if key not in reference_cache:
                reference_cache[key] = _score(reference, scorable, suite, f"reference for {label}")
            ref = reference_cache[key]
    audit = TokenizationAudit(
        dataset=dataset,
        model=policy.spec.name,
        n_pairs=len(pairs),
        n_scored=len(scorable),
        truncated=sum(s.truncated for s in own),
        prompt_too_long=too_long,
        prompt_not_prefix=sum(not t.prompt_is_prefix for t in tokenized),
    )
    return pair_scores(policy.spec.name, scorable, own, ref), audit


def _tokens_key(pairs: list[TokenizedPair], max_length: int) -> str:
    digest = hashlib.sha256(str(max_length).encode())
    for p in pairs:
        digest.update(json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids]).encode())
    return digest.hexdigest()


def _score(model: LoadedModel, pairs: list[TokenizedPair], suite: Suite, label: str) -> list[CompletionLogps]:
    pad_id = model.tokenizer.pad_token_id
    assert pad_id is not None
    return score_pairs(model.model, pairs, suite.scoring.max_length, suite.scoring.batch_size, pad_id, label)


def _pair_rows(rows: list[PairScore], beta: float) -> list[dict[str, object]]:
    out = []
    for row in rows:
        record: dict[str, object] = dict(vars(row))
        if row.ref_logp_chosen is not None and row.ref_logp_rejected is not None:
            reward_chosen = beta * (row.logp_chosen - row.ref_logp_chosen)
            reward_rejected = beta * (row.logp_rejected - row.ref_logp_rejected)
            record |= {
                "reward_chosen": reward_chosen,
                "reward_rejected": reward_rejected,
                "margin": reward_chosen - reward_rejected,
            }
        out.append(record)
    return out


def _training_info(suite: Suite, run: TrainingRun | None) -> TrainingInfo | None:
    if run is None or suite.train is None:
        return None
    steps = [entry for entry in run.log_history if "loss" in entry and "rewards/accuracies" in entry]
    last = steps[-1] if steps else {}
    return TrainingInfo(
        model=suite.train.output,
        steps=run.steps,
        seconds=round(run.seconds, 1),
        final_loss=last.get("loss"),
        final_reward_accuracy=last.get("rewards/accuracies"),
        log_history=str(run.output_dir / "log_history.json"),
    )


def _weight_files(directory: Path) -> list[Path]:
    return sorted(p for pattern in WEIGHT_FILES for p in directory.glob(pattern))


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _environment() -> Environment:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    device = f"cuda ({torch.cuda.get_device_name(0)})" if _device().type == "cuda" else "cpu"
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        packages=packages,
        device=device,
        git_sha=_git_sha(),
    )


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _git_sha() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
