"""The embedded tiny world: everything `make bench` needs, built offline from a seed.

`build_world` writes, under the spec's `dir`:
- `base/`: a tokenizer with a chat template and a tiny base model (HF format, safetensors);
- `pairs/train.jsonl` and `pairs/eval.jsonl`: a seeded, subset-stratified split of the pairs;
- `tasks/`: the world's capability tasks as lm-evaluation-harness task files (`evalkit.world.tasks`),
  written beside a reused world too, since they depend on no setting;
- `world.json`: the settings it was built from. A later build with the same settings reuses
  the directory; different settings rebuild it. The build happens in a sibling temporary
  directory that is renamed into place, so an interrupted build never leaves a half world. A lock
  file beside the directory lets one process build while others (a `torchrun` run's, or a second
  run started at the same time) wait, then reuse what it built.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from evalkit.config.specs import WorldSpec
from evalkit.console import console
from evalkit.data.pairs import Message, Text, split_pairs, write_pairs
from evalkit.data.rendering import chat_token_ids
from evalkit.errors import EvalkitError
from evalkit.world.model import build_model, pretrain
from evalkit.world.pairs import generate_pairs
from evalkit.world.rewardbench import write_standins
from evalkit.world.tasks import write_tasks
from evalkit.world.tokenizer import train_tokenizer

# Bump when the generator, tokenizer or pretraining changes, so cached worlds are rebuilt.
WORLD_FORMAT = 1


@dataclass(frozen=True)
class World:
    """Paths of a built world."""

    dir: Path
    base_model: Path
    train_pairs: Path
    eval_pairs: Path
    tasks: Path
    rewardbench: Path
    """RewardBench 2 and RewardBench 1 stand-ins (`reward-bench-2.jsonl`, `reward-bench.jsonl`) from the world's
    prompts: best-of-N items a suite can score offline."""


def world_paths(directory: Path) -> World:
    return World(
        dir=directory,
        base_model=directory / "base",
        train_pairs=directory / "pairs" / "train.jsonl",
        eval_pairs=directory / "pairs" / "eval.jsonl",
        tasks=directory / "tasks",
        rewardbench=directory / "rewardbench",
    )


STANDIN_ITEMS = 12
"""Best-of-N stand-in items per RewardBench 2 subset (and pairs per RewardBench 1 subset) a world writes."""


def build_world(spec: WorldSpec) -> World:
    """Build the world described by `spec`, or reuse the cached one built from the same settings."""
    # One build at a time per directory: the processes of a `torchrun` run, or two runs started together,
    # wait for the first build and then reuse it.
    with _exclusive(spec.dir.with_name(f".{spec.dir.name}.lock")):
        world = _build_or_reuse(spec)
        write_tasks(world.tasks)
        write_standins(world.rewardbench, STANDIN_ITEMS, spec.seed)  # no model needed: written on every build
        return world


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        yield


def _build_or_reuse(spec: WorldSpec) -> World:
    world = world_paths(spec.dir)
    manifest = {"format": WORLD_FORMAT, "spec": spec.model_dump(mode="json", exclude={"dir"})}
    manifest_path = spec.dir / "world.json"
    if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("build") == manifest:
        console.print(f"[dim]tiny world: reusing {spec.dir}[/dim]")
        return world

    if spec.dir.exists() and not manifest_path.is_file() and (not spec.dir.is_dir() or any(spec.dir.iterdir())):
        # Rebuilding replaces the directory: never one evalkit did not create (its world.json is the marker).
        raise EvalkitError(
            f"world.dir: {spec.dir} exists and is not a tiny world evalkit built (no world.json); "
            "point world.dir at a new directory or an earlier world"
        )
    started = time.perf_counter()
    staging = spec.dir.with_name(f".{spec.dir.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    staged = world_paths(staging)

    pairs = generate_pairs(spec.pairs_per_subset, spec.seed)
    split = split_pairs(pairs, spec.eval_fraction, spec.seed)
    write_pairs(split.train, staged.train_pairs)
    write_pairs(split.held_out, staged.eval_pairs)

    conversations = [_conversation(pair.prompt, reply) for pair in pairs for reply in (pair.chosen, pair.rejected)]
    corpus = [message["content"] for conversation in conversations for message in conversation]
    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    sequences = [chat_token_ids(tokenizer, conversation) for conversation in conversations]

    torch.manual_seed(spec.seed)
    model = build_model(tokenizer, spec.hidden_size, spec.num_layers)
    final_loss = pretrain(model, sequences, spec.pretrain_steps, tokenizer.pad_token_id, spec.seed)
    model.save_pretrained(staged.base_model)
    tokenizer.save_pretrained(staged.base_model)

    build = {"build": manifest, "pretrain_loss": round(final_loss, 4), "pairs": len(pairs)}
    (staging / "world.json").write_text(json.dumps(build, indent=2) + "\n")
    shutil.rmtree(spec.dir, ignore_errors=True)
    spec.dir.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(spec.dir)
    console.print(
        f"tiny world: built {len(pairs)} pairs and a base model (loss {final_loss:.3f}) "
        f"in {time.perf_counter() - started:.0f}s at {spec.dir}"
    )
    return world


def _conversation(prompt: Text, reply: Text) -> list[Message]:
    assert isinstance(prompt, list) and isinstance(reply, list), "world pairs are conversational"
    return prompt + reply
