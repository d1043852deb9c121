"""The sections of a suite that say what to build, score and render: frozen specs whose unknown keys are errors.

Each section is checked when the suite loads, before any model is touched; the training section
(`evalkit.config.training`) and the gate rules (`evalkit.config.rules`) have modules of their own.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from evalkit.config.base import Spec
from evalkit.config.objectives import Objective
from evalkit.results.schema import ScoringDtype

WeightsDtype = Literal["float32", "bfloat16", "float16", "auto"]
ModelKind = Literal["policy", "reward_model"]
"""What a checkpoint is: a causal LM scored by its log-probs (`policy`), or a one-label sequence classifier scored
by its raw logit (`reward_model`)."""
"""The dtype a checkpoint's weights are loaded in (`auto`: the checkpoint's own); the compute dtype of scoring is
`evalkit.results.schema.ScoringDtype`."""


class WorldSpec(Spec):
    """The embedded tiny world: a synthetic preference task, a tokenizer and a base model with no preference."""

    dir: Path = Path(".evalkit/world")
    """Where the world is built and cached; rebuilt only when the settings below change."""
    seed: int = 0
    """Seed for the pairs, the tokenizer corpus and the base model's pretraining."""
    pairs_per_subset: int = Field(300, ge=8, le=400)
    """Preference pairs generated for each subset (arithmetic, helpfulness, format); at most 400."""
    eval_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    """Share of pairs held out for evaluation; the rest is DPO training data."""
    vocab_size: int = Field(512, ge=300)
    """Size of the byte-level BPE vocabulary trained on the world's corpus."""
    hidden_size: int = Field(64, ge=16)
    """Width of the tiny base model."""
    num_layers: int = Field(2, ge=1)
    """Transformer layers of the tiny base model."""
    pretrain_steps: int = Field(2000, ge=1)
    """Optimiser steps of next-token pretraining on the balanced corpus."""


DataFormat = Literal["auto", "explicit", "conversational", "implicit", "unpaired", "best_of_n"]


class ColumnMap(Spec):
    """Which columns of the data hold the prompt and the two answers."""

    prompt: str = "prompt"
    """The column holding the prompt (explicit and conversational layouts)."""
    chosen: str = "chosen"
    """The column holding the preferred answer."""
    rejected: str = "rejected"
    """The column holding the dispreferred answer."""
    completion: str = "completion"
    """Unpaired data (KTO style): the column holding the one completion of a row."""
    label: str = "label"
    """Unpaired data: the column saying whether the completion is desirable (true) or undesirable (false)."""


def _text(value: str) -> str:
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]", value):
        raise ValueError("holds control characters or lone surrogates; expected printable text")
    return value


Text = Annotated[str, AfterValidator(_text)]
"""Free text that goes into every report and the terminal: printable characters only."""

SafeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
"""A dataset or model name: it names files evalkit writes (`pairs/<dataset>.jsonl`), so it is a plain file name
(letters, digits, `.`, `_`, `+`, `-`; at most 64 characters), never a path."""


def plain_name(stem: str, fallback: str, separator: str = "-") -> str:
    """A file stem as a `SafeName` (`my pairs` → `my-pairs`): each run of other characters becomes `separator`,
    the ends are trimmed to a letter or digit, at most 64 characters, `fallback` when nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", separator, stem).strip("-._+")[:64]
    return name or fallback


class DatasetSpec(Spec):
    """Preference pairs to score: a local file or folder, or a hub dataset."""

    name: SafeName
    """The dataset's name in results and reports, and its per-pair files' (`pairs/<name>.jsonl`): a plain file
    name."""
    path: str
    """A JSONL/JSON/Parquet/CSV file, a folder `datasets` can load, or a hub dataset id."""
    revision: str | None = None
    """Hub revision (branch, tag or commit); pin a commit for reproducible results."""
    hub_config: str | None = None
    """Hub dataset configuration name, for datasets that have several."""
    split: str = "train"
    """Split to read from a folder or hub dataset (a single file is always one split)."""
    format: DataFormat = "auto"
    """`explicit`: prompt/chosen/rejected strings. `conversational`: chosen/rejected message lists, the
    prompt being their shared first messages or the prompt column. `implicit`: hh-rlhf dialogues, the
    prompt running through the last `\\n\\nAssistant:`. `unpaired`: KTO-style rows of a prompt, one completion and a
    desirable/undesirable `label` (strings or message lists); on a file of pairs, each chosen answer desirable and each
    rejected one undesirable, as TRL unpairs them. `best_of_n`: a prompt with a list of correct answers (`chosen`)
    and a list of incorrect ones (`rejected`), as RewardBench 2 ships them. `auto` picks from the columns and the
    first row (lists of strings are best-of-N)."""
    columns: ColumnMap = ColumnMap()
    """Other column names for the prompt and the answers."""
    id_column: str | None = None
    """Column holding a stable pair id; without one, ids are `<name>-<row>`."""
    subset_column: str | None = None
    """Column naming each pair's subset/category; metrics are reported per subset as well as overall."""
    limit: int | None = Field(None, ge=1)
    """Keep only the first `limit` rows."""
    sample: int | None = Field(None, ge=1)
    """Then draw this many rows at random (with `seed`), kept in file order."""
    seed: int = 0
    """Seed of `sample`."""


class ModelSpec(Spec):
    """A checkpoint to score: a model directory, a PEFT adapter directory, or a hub id."""

    name: SafeName
    """The model's name in results and reports: a plain file name."""
    path: str
    """Local model or adapter directory, or a hub model id."""
    kind: ModelKind = "policy"
    """`policy`: a causal LM, scored by its log-probs (implicit rewards against the reference). `reward_model`: an
    `AutoModelForSequenceClassification` with one label (or a PEFT adapter on one), scored as TRL's RewardTrainer
    and RewardBench score it: the raw logit at the last non-pad token; no reference."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when `path` is a hub id."""
    base: str | None = None
    """For adapters: the base model to load them onto, instead of the one in `adapter_config.json`."""
    dtype: WeightsDtype = "float32"
    """Weights dtype; `auto` keeps the checkpoint's own."""
    allow_pickle: bool = False
    """Allow pickled weights (`.bin`, `.pt`): loading them can run arbitrary code, so only for trusted files."""
    trust_remote_code: bool = False
    """Run the modelling code a hub repository ships; off unless you trust it."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Options of this model's chat template (e.g. `{enable_thinking: false}`), over the suite's
    `rendering.chat_template_kwargs`; passed to every rendering: scoring, training, generation prompts."""
    checkpoints: bool = False
    """Sweep a training output directory: score every `checkpoint-<step>` in it (as `<name>@<step>`)
    and the final model, to see the metrics along training and pick the one to ship."""
    method: Objective | None = None
    """The preference objective this model was trained with, so it is scored on what it optimised (e.g.
    `{name: simpo, beta: 2.0, gamma: 0.5}`, `{name: dpo, loss_type: ipo}`); default: the suite's `method`."""


class PanelSource(Spec):
    """Prompts drawn from one of the suite's datasets."""

    dataset: str
    """A dataset of the suite; its prompts are drawn."""
    n: int = Field(8, ge=1)
    """Prompts drawn."""
    seed: int = 0
    """Seed of the draw."""


class SamplingSpec(Spec):
    """Seeded sampling instead of greedy decoding."""

    k: int = Field(1, ge=1)
    """Samples per prompt."""
    temperature: float = Field(0.7, gt=0.0)
    """Softmax temperature of sampling."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling: the smallest set of tokens with this much probability."""
    seed: int = 0
    """Seed of sampling, per prompt: samples do not depend on the batch size or the other models."""


EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""The name of an environment variable (the key itself is never written in a suite)."""


class ServerSpec(Spec):
    """Where an OpenAI-compatible server answers and how hard to press it: what every use of a server shares."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s@?#]+$")]
    """The API root, ending in `/v1` (e.g. `http://gpu-box:8000/v1`). No user, password or query: it is written to
    results.json and the reports, so a key goes in `api_key_env`."""
    api_key_env: EnvironmentName | None = None
    """The environment variable holding the API key; it is read at run time and never written anywhere."""
    concurrency: int = Field(4, ge=1, le=1024)
    """Requests in flight at once; the server batches them."""
    timeout_s: float = Field(120.0, gt=0.0)
    """Seconds one request may take, connection to last byte, however slowly the server sends (each retry gets
    as long again)."""
    retries: int = Field(3, ge=0, le=20)
    """Further attempts after a failed one, with exponential backoff from 0.5 s up to 8 s."""


class EndpointSpec(ServerSpec):
    """An OpenAI-compatible server (`vllm serve`, TGI, `transformers serve`, Ollama, a hosted API), asked for chat
    completions through evalkit's own client."""

    max_response_bytes: int = Field(8 * 2**20, ge=1024)
    """The longest answer read, in bytes (default 8 MiB); a server that sends more is refused, in one line."""
    cache_dir: Path | None = Path(".evalkit/cache/endpoint")
    """Where every answer is kept as it arrives: an interrupted run resumes, a rerun asks nothing twice; null
    turns it off."""
    honours_seed: bool = False
    """Whether the server applies each request's `seed` to that request alone (vLLM does; `transformers serve`
    does not): only then is seeded sampling reproducible without the cache."""


class GenerationEndpointSpec(EndpointSpec):
    """The server that decodes the panel for every model (`generation.backend: openai`)."""

    models: dict[str, str] = {}
    """Suite model name → the served model name (`/v1/models` lists them); a model not named here (a checkpoint
    of a sweep: `name@step`) is asked for by its `path`, the name `vllm serve <path>` and `transformers serve`
    give it by default."""


class ScoringEndpointSpec(GenerationEndpointSpec):
    """The server (vLLM) that scores the models (`scoring.backend: vllm`): one for all, or one per model."""

    base_urls: dict[str, Annotated[str, StringConstraints(pattern=r"^https?://[^\s@?#]+$")]] = {}
    """Suite model name → the API root of that model's own server (a reference and a fully fine-tuned policy on
    two servers); a model not named here is scored on `base_url` (a base with its LoRA adapters on one server)."""


class ParitySpec(Spec):
    """Score a seeded sample of pairs both in this process and through the server, and report the differences."""

    pairs: int = Field(16, ge=1)
    """Pairs drawn from the first dataset (each scored on both answers)."""
    seed: int = 0
    """Seed of the draw."""


class JudgeEndpointSpec(EndpointSpec):
    """The server of a pairwise judge model."""

    model: str
    """The served judge model's name."""


class JudgeSpec(Spec):
    """A judge of completions: pointwise (a Python callable, or a reward model) or pairwise (an LLM judge that
    compares each model's answer with the baseline's, in both orders: a local model, or one behind an endpoint)."""

    name: str
    """The judge's name in results and reports, and in `win_rate` rules."""
    callable: str | None = None
    """`package.module:function`, called as `function(prompt, completion) -> float`."""
    reward_model: str | None = None
    """A sequence-classification checkpoint (directory or hub id); its first logit is the score."""
    model: str | None = None
    """A pairwise judge in this process: a causal LM checkpoint (directory or hub id) whose next-token
    probabilities of `A` and `B` after the judging prompt are its verdict."""
    endpoint: JudgeEndpointSpec | None = None
    """A pairwise judge behind an OpenAI-compatible endpoint (its log-probs when it gives them, else its
    parsed reply)."""
    template: Path | None = None
    """Pairwise only: your own judging prompt with exactly `{instruction}`, `{answer_a}` and `{answer_b}`;
    default: the shipped `evalkit/judges/templates/pairwise.txt`."""
    baseline: str | None = None
    """Pairwise only: the model every other model is judged against; default: the suite's reference."""

    @property
    def pairwise(self) -> bool:
        return self.model is not None or self.endpoint is not None

    @model_validator(mode="after")
    def _one_kind(self) -> JudgeSpec:
        given = [k for k in ("callable", "reward_model", "model", "endpoint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"generation.judges.{self.name}: give exactly one of `callable`, `reward_model` (pointwise), "
                f"`model` and `endpoint` (pairwise); got {given or 'none'}"
            )
        if not self.pairwise:
            for key in ("template", "baseline"):
                if getattr(self, key) is not None:
                    raise ValueError(f"generation.judges.{self.name}.{key}: only a pairwise judge reads it")
        return self


class DriftSpec(Spec):
    """KL(π‖π_ref) estimated from `samples` sampled completions per prompt (temperature 1)."""

    samples: int = Field(4, ge=1)
    """Sampled completions per prompt."""
    seed: int = 0
    """Seed of the samples."""


class GenerationSpec(Spec):
    """Side-by-side samples on one prompt panel, for every model."""

    prompts: list[str | list[dict[str, str]]] = []
    """Fixed prompts: text (rendered with the model's chat template when it has one) or messages."""
    from_dataset: PanelSource | None = None
    """Prompts drawn from a suite dataset, besides (or instead of) `prompts`."""
    max_new_tokens: int = Field(64, ge=1)
    """Tokens generated at most per completion."""
    batch_size: int = Field(8, ge=1)
    """Prompts decoded per batch in process; samples do not depend on it."""
    sampling: SamplingSpec | None = None
    """Null: greedy decoding (the default: reproducible and comparable)."""
    judges: list[JudgeSpec] = []
    """Judges of the completions: pointwise scores, or pairwise verdicts against a baseline model."""
    drift: DriftSpec | None = None
    """KL(model ‖ reference) from sampled completions; null: not measured."""
    backend: Literal["hf", "openai"] = "hf"
    """`hf`: `model.generate` in evalkit's own process (offline, reproducible); `openai`: every model's panel is
    decoded by the OpenAI-compatible server of `endpoint` (a vLLM server for a large panel)."""
    endpoint: GenerationEndpointSpec | None = None
    """The server for `backend: openai`."""

    @model_validator(mode="after")
    def _has_prompts(self) -> GenerationSpec:
        if not self.prompts and self.from_dataset is None:
            raise ValueError("generation: no prompts; give `prompts`, `from_dataset`, or both")
        if self.backend == "openai" and self.endpoint is None:
            raise ValueError("generation.endpoint: `backend: openai` needs an `endpoint` (base_url, ...)")
        if self.backend == "hf" and self.endpoint is not None:
            raise ValueError("generation.endpoint: set `backend: openai` to generate through it")
        names = [j.name for j in self.judges]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"generation.judges: duplicate name {repeated[0]!r}; names must be unique")
        return self


class CapabilitiesEndpointSpec(ServerSpec):
    """The server that scores every model's documents: lm-eval's `local-completions` model sends each document's
    token ids to `/v1/completions` with `echo` and `logprobs`, so the server must return prompt log-probs (vLLM
    does; `transformers serve` does not). lm-eval retries a failed request itself (backoff from 1 s up to 10 s)."""

    models: dict[str, str] = {}
    """Suite model name → the served model name (`/v1/models` lists them); a model not named here is asked for by
    its `path`, the name `vllm serve <path>` gives it by default."""


class CapabilitiesSpec(Spec):
    """Capability tasks of lm-evaluation-harness, run on every model of the suite (`evalkit-dpo[capabilities]`), so
    that what alignment cost (the alignment tax) is measured document by document beside the preferences."""

    tasks: list[str] = Field(min_length=1)
    """lm-eval task names: its own (`mmlu`, `gsm8k`, `ifeval`: these download their data from the hub) or
    those of the task YAML files under `include_path`."""
    include_path: list[Path] = []
    """Directories (or single YAML files) of local tasks, passed to lm-eval's `TaskManager(include_path=...)`."""
    allow_code: bool = False
    """Let task files under `include_path` run Python (lm-eval's `!function`, which imports a module beside the
    YAML and calls it); without it such a task is refused before anything runs."""
    num_fewshot: int | None = Field(None, ge=0)
    """Few-shot examples per document; None: each task's own setting."""
    limit: int | None = Field(None, ge=1)
    """Only the first `limit` documents of each task (the same documents for every model)."""
    batch_size: int = Field(8, ge=1)
    """Requests per forward pass in lm-eval; results do not depend on it beyond float rounding."""
    apply_chat_template: bool = False
    """Render each document with the model's chat template (lm-eval's `apply_chat_template`): for chat models."""
    cache: Path | None = Path(".evalkit/cache/capabilities")
    """Where a model's per-document task results are kept across runs, keyed by the model's fingerprint, the
    task (its files' fingerprint and version), these settings and the lm-eval version; null turns it off."""
    endpoint: CapabilitiesEndpointSpec | None = None
    """Score the documents on an OpenAI-compatible server (a vLLM server the models are served on) instead of in
    evalkit's process: a large model then needs no second copy for its alignment tax. evalkit still tokenizes
    (with each model's own tokenizer); null: lm-eval's Hugging Face model on the loaded checkpoint."""

    @model_validator(mode="after")
    def _distinct(self) -> CapabilitiesSpec:
        repeated = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if repeated:
            raise ValueError(f"capabilities.tasks: {repeated[0]!r} is listed twice")
        return self


class ScoringSpec(Spec):
    """How log-probs become rewards, and how pairs are batched."""

    beta: float = Field(0.1, gt=0.0)
    """β of the implicit reward r = β·(log π − log π_ref); use the value the model was trained with."""
    max_length: int = Field(1024, ge=2)
    """Prompt+completion tokens kept per sequence; the end of a completion beyond it is cut (as in TRL)."""
    batch_size: int = Field(8, ge=1)
    """Pairs per forward pass (pairs are sorted by length first); results do not depend on it."""
    token_budget: int | None = Field(None, ge=1)
    """Tokens per forward pass, padding included, instead of a fixed `batch_size`: many short pairs or few
    long ones per pass. Results do not depend on it."""
    share_prompt: bool = True
    """Run each pair as one row, its prompt once and both answers after it under a mask that keeps them apart
    (a model that cannot is scored on whole sequences). Results do not depend on it."""
    dtype: ScoringDtype = "float32"
    """Compute dtype of the forward passes: `bfloat16` autocast only when asked (faster where the hardware has
    bf16 matmuls; log-probs then differ from float32 by ~1e-2); log-softmax and sums stay in float32/float64."""
    reference_cache: Path | None = Path(".evalkit/cache/reference")
    """Directory where reference log-probs are kept across runs, keyed by the reference's weights, tokenizer
    and chat template, the token ids scored and these settings; null turns it off."""
    backend: Literal["hf", "vllm"] = "hf"
    """`hf`: forward passes in this process. `vllm`: evalkit tokenizes as in process and sends the token ids to a
    vLLM server (`endpoint`), which returns each token's log-prob; no model is loaded here."""
    endpoint: ScoringEndpointSpec | None = None
    """The server(s) for `backend: vllm`; the served name of a model is its path unless `models` maps it."""
    parity: ParitySpec | None = None
    """`backend: vllm` only: also score a seeded sample in this process (the model loaded here for it) and report
    the per-token and per-sequence differences, to learn by how much the engine moves the numbers."""

    @model_validator(mode="after")
    def _backend_has_endpoint(self) -> ScoringSpec:
        if self.backend == "vllm" and self.endpoint is None:
            raise ValueError("scoring.endpoint: `backend: vllm` needs an `endpoint` (base_url, ...)")
        if self.backend == "hf" and self.endpoint is not None:
            raise ValueError("scoring.endpoint: set `backend: vllm` to score through it")
        if self.backend == "hf" and self.parity is not None:
            raise ValueError("scoring.parity: compares the server with this process; set `backend: vllm`")
        return self


class RenderingSpec(Spec):
    """How chat templates are rendered, for every model (a model's own `chat_template_kwargs` win)."""

    chat_template_kwargs: dict[str, Any] = {}
    """Options passed to every chat template (`enable_thinking`, ...); a template ignores those it does not read."""
    date: datetime.date | None = None
    """The date written by templates that read the clock (`strftime_now`), never today's. Default: the date
    the model was trained with when evalkit trained it, else 2025-01-01."""
