"""`results.json`: the one contract between running an evaluation and reading it.

Everything the reports and gates need is here, so they work on a copied file with no model and no
torch. The file is versioned (`schema_version`, major.minor: readers accept any minor of their
major) and its JSON Schema ships in `evalkit/results/schemas/results.schema.json`. The records are split by
what they hold (`estimates`, `generation`, `capabilities`; the run itself here); `files` writes and reads them.

Schema 1.1 added intervals (`ci_low`, `ci_high`) to every metric, paired `comparisons` between
models, `reliability` curves and the `statistics` settings; a 1.0 file still reads, with no
intervals and those lists empty. Schema 1.3 added the scoring settings that 1.2 left out (token
budget, prompt sharing, compute dtype, reference cache) and the number of processes that scored;
older files read with those fields at their defaults. Schema 1.4 names the method of every interval
and test and records what replaying a test needs (`method`, `se`, `df`, `n_effective`), the
false-discovery-adjusted p of every comparison, gate verdicts as one-sided tests (raw and Holm
p, the bound, α), drift as a per-token KL with its truncation, win rates with a sign test, and per
model the chat template options, the pinned template date and the scoring mode each dataset ran in.
Schema 1.5 gives every model its role in the run (`candidate`, `reference`), so a candidate run and a
baseline run are matched by role and fingerprint rather than by display name, and every gate verdict a
`status` (passed, failed, undecidable, skipped), so a rule waiting for a first baseline is never a pass.
Schema 1.6 adds `capabilities`: lm-evaluation-harness tasks run on every model (their versions, the
fingerprints of local task files, per-task scores with intervals and paired comparisons with flipped
documents), and the gate rule kind `capability_non_inferiority`; older files read with none.
Schema 1.7 adds to `generation` the backends that decoded and judged (an OpenAI-compatible endpoint or in
process, with their determinism statements), pairwise judgments in both orders, per (judge, model, baseline)
raw and length-controlled win rates with the judge's position bias, and the gate rule kind `win_rate`; older
files read with none.
Schema 1.8 adds each model's objective (`method`: `trl/*` and `objective/*` metrics beside DPO's), classifier
reward models (`reward_model`, per-pair `score_*`), the trainer that trained (`training.trainer`), content-blind
baselines and the models' tests against them, best-of-N items (RewardBench 2's rule, its Ties composite),
labelled completions (KTO style: per-label rewards and the AUC), and how a served model was scored
(`served`: the engine, its version, batch invariance, the parity check); older files read with none, and a
trained model as trained by `DPOTrainer`.
Older files are migrated once, where they are read (`evalkit.results.migrate`): their bootstrap settings dropped,
their methods left unrecorded (None), their verdicts given the status their `passed` implies, so readers
never branch on a version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from evalkit.metrics.names import REGISTRY
from evalkit.results.capabilities import CapabilityResult
from evalkit.results.estimates import BaselineScore, Comparison, Metric, ReliabilityBin, Statistics, TiesScore
from evalkit.results.generation import GenerationResult
from evalkit.results.record import Record

SCHEMA_VERSION = "1.9"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "results.schema.json"


class SuiteInfo(Record):
    name: str
    description: str
    path: str
    sha256: str
    gate: dict[str, Any] | None = None
    """The suite's gate rules, so `evalkit gate` can judge a copied results.json on its own."""


class Environment(Record):
    """Where the numbers were computed, so two results can be told apart."""

    python: str
    platform: str
    packages: dict[str, str]
    device: str
    git_sha: str | None
    processes: int = 1
    """Processes that shared the scoring out (`torchrun`); the numbers do not depend on it."""


ScoringModeName = Literal["prompt-shared", "whole sequences", "one sequence per pass", "served"]
"""How a model's forward passes ran (`evalkit.scoring.logps` chooses per model and dataset)."""
ModelKind = Literal["model", "adapter"]


class ScoringMode(Record):
    """How one model's forward passes run on one dataset, as the probes decide (the numbers are the same either
    way; recorded alike when its scores come from a cache)."""

    dataset: str
    mode: ScoringModeName
    """`prompt-shared`: each pair one row, its prompt once; `whole sequences`: prompt+answer rows, batched;
    `one sequence per pass`: each sequence alone (a model whose numbers depend on the longest in a batch);
    `served`: token ids sent to a serving engine, its prompt log-probs summed here (`scoring.backend: vllm`)."""
    reason: str
    """Why this mode: what the probes found, or the setting that chose it."""


ModelRole = Literal["candidate", "reference"]


class ObjectiveInfo(Record):
    """The preference objective a model was scored with (the suite's `method`), so its `trl/*` and `objective/*`
    metrics can be read and recomputed from its per-pair rows."""

    name: str
    """`dpo`, `cpo`, `simpo`, `alphapo`, `orpo` or `kto`."""
    label: str
    """How reports name it: `simpo (β=2, γ=0.5)`, `dpo (ipo, β=0.1)`."""
    settings: dict[str, Any]
    """Every option of the objective, defaults filled in, by the suite's names (`evalkit.config.objectives`)."""
    reference_free: bool
    """Its rewards need no reference model (CPO, SimPO, AlphaPO, ORPO)."""


class ParityResult(Record):
    """The same seeded sample of pairs scored in this process and on the server: by how much the engine moves the
    numbers (absolute differences, nats). Per token: each completion token's log-prob; per sequence: the sums."""

    n_pairs: int
    seed: int
    dtype: str
    """The in-process compute dtype (`scoring.dtype`)."""
    n_tokens: int
    token_max: float
    token_median: float
    n_sequences: int
    sequence_max: float
    sequence_median: float


class ServedScoring(Record):
    """How a model was scored on a serving engine (`scoring.backend: vllm`), and what its numbers can depend on."""

    engine: str
    """What the server says it is (`vllm`; `unknown` when it does not say)."""
    engine_version: str | None
    """From the server's `/version`; None when it has none."""
    base_url: str
    served_model: str
    logprob_mode: str
    """How the log-probs were asked for: `prompt_logprobs` (the engine's log-prob of each prompt token, summed
    here over the completion tokens)."""
    batch_invariant: bool | None
    """Whether the numbers cannot depend on which requests the server batched together; None: evalkit cannot know
    (vLLM is batch-invariant only when started with VLLM_BATCH_INVARIANT=1, which its API does not report)."""
    batching_reason: str
    concurrency: int
    requests_sent: int
    """HTTP requests this run sent (retries included); 0 when every answer came from the cache."""
    parity: ParityResult | None = None
    """The parity check against this process (`scoring.parity`), when it ran."""


class ModelInfo(Record):
    name: str = Field(min_length=1)
    path: str
    kind: ModelKind
    base: str | None
    """For adapters: the base model the adapter was loaded onto."""
    dtype: str
    fingerprint: str
    """sha256 over the weight and config files (and the template options and pinned date, when there are any)."""
    chat_template_kwargs: dict[str, Any] = {}
    """Options every chat rendering of this model was given (e.g. `enable_thinking`)."""
    template_date: str | None = None
    """ISO date the chat template's clock was pinned to; None when the template does not read the clock."""
    scoring_modes: list[ScoringMode] = []
    """Per dataset, how the scoring passes ran after the probes."""
    served: ServedScoring | None = None
    """Scored on a serving engine: which, and what its numbers can depend on; None in process (and in older files)."""
    role: ModelRole | None = None
    """What the model is in the run: the `candidate` (the suite's trained model, else its last model; or the
    checkpoint of `bench --model`), the `reference`, or None for the others (e.g. checkpoints of a sweep).
    Runs are matched by role and fingerprint, since display names differ between a suite run and a
    candidate run."""
    reward_model: bool = False
    """A classifier reward model (`kind: reward_model` in the suite), scored by its logit: its rewards are its
    scores, and it has no log-probs."""
    objective: ObjectiveInfo | None = None
    """The objective the model was scored with, where the suite names one (`method`); None: sigmoid DPO at
    `scoring.beta`, with no `trl/*` or `objective/*` metrics (and in results written before objectives existed)."""


DatasetFormat = Literal["pairs", "unpaired", "best_of_n"]
"""Preference pairs (chosen, rejected), or labelled completions (KTO style: a completion, desirable or not)."""

DATASET_UNITS: dict[str, str] = {"pairs": "pairs", "unpaired": "completions"}
"""What a dataset's `n_pairs` counts, by its format."""


class DatasetInfo(Record):
    name: str = Field(min_length=1)
    path: str
    fingerprint: str
    """sha256 of the data file."""
    n_pairs: int
    """Pairs; for an `unpaired` dataset, completions."""
    subsets: list[str]
    pairs_file: str = Field(min_length=1)
    """Per-pair scores, relative to the results file (read only from inside its directory: `pairs_path`); for an
    `unpaired` dataset, the per-completion scores (`completions/<dataset>.jsonl`)."""
    format: DatasetFormat = "pairs"
    """`unpaired`: labelled completions, scored one completion at a time (`pairs_file` then holds one row per
    completion and model: `id`, `label`, `logp`, `ref_logp`, `n_tokens`, ...). `best_of_n`: RewardBench 2's layout;
    `n_pairs` counts its items, its per-pair file holds their completions scored two by two
    (`evalkit.data.best_of_n.completion_pairs`), and its scores are in `RunResult.best_of_n`. Absent in older
    files: pairs."""


Tokenization = Literal["dpo", "legacy"]
"""How a model's pairs are tokenized: as TRL's DPOTrainer does, or as its CPOTrainer and ORPOTrainer do."""


class TokenizationAudit(Record):
    """What tokenization did to a dataset under one model's tokenizer."""

    dataset: str
    model: str
    n_pairs: int
    n_scored: int
    truncated: int
    """Pairs where `max_length` cut the end of a completion."""
    prompt_too_long: list[str]
    """Ids of pairs whose prompt alone fills `max_length`: left out of the metrics, never silently."""
    prompt_not_prefix: int
    """Pairs whose rendered prompt is not a token prefix of prompt+completion."""
    doubled_bos: int = 0
    """Pairs whose sequence starts with two BOS tokens (a template and the tokenizer both added one)."""
    tokenization: Tokenization | None = None
    """Whose tokenization a model's pairs had for their log-probs: `dpo` (TRL's DPOTrainer, for DPO and KTO models
    and a model no objective names) or `legacy` (TRL's CPOTrainer and ORPOTrainer, for CPO, SimPO, AlphaPO and ORPO
    models). None for a reward model's pairs and for labelled completions (tokenized as RewardTrainer and
    KTOTrainer do), and in files written before evalkit recorded it (pairs then had `dpo`)."""


class CurvePoint(Record):
    """TRL's logged values at one training step (training batch means; `eval_*` on the held-out split)."""

    step: int
    loss: float | None = None
    eval_loss: float | None = None
    reward_accuracy: float | None = None
    eval_reward_accuracy: float | None = None
    margin: float | None = None
    eval_margin: float | None = None


class TrainingInfo(Record):
    model: str
    steps: int
    seconds: float
    final_loss: float | None
    final_reward_accuracy: float | None
    log_history: str
    """Path of TRL's full log history."""
    curve: list[CurvePoint] = []
    """Loss, reward accuracy and margin against step, for training and (when held out) evaluation."""
    trainer: Literal["DPOTrainer", "CPOTrainer", "ORPOTrainer", "KTOTrainer", "RewardTrainer"] | None = None
    """The TRL trainer that ran (`train.method` picks it; `RewardTrainer` for a reward model); files written before
    schema 1.8 were all DPO and read as `DPOTrainer`."""


ScoringDtype = Literal["float32", "bfloat16"]
"""Compute dtype of scoring's forward passes (the suite's `scoring.dtype`, as run)."""


class ScoringInfo(Record):
    """The `scoring` settings of the suite, as run."""

    beta: float
    max_length: int
    batch_size: int
    token_budget: int | None = None
    share_prompt: bool = True
    dtype: ScoringDtype = "float32"
    """Compute dtype of the forward passes: bfloat16 log-probs differ from float32 ones by ~1e-2."""
    reference_cache: str | None = None
    """Where reference log-probs were kept across runs; None when the cache was off."""


GateKind = Literal[
    "absolute",
    "superiority",
    "non_inferiority",
    "drift_budget",
    "length_budget",
    "capability_non_inferiority",
    "win_rate",
    "beats_baseline",
]
GateStatus = Literal["passed", "failed", "undecidable", "skipped"]
"""`undecidable`: the rule could not be judged (no such metric, too few pairs, an undefined interval), a
problem to fix (exit 2); `skipped`: the rule needs a baseline run and none is recorded yet."""


class GateVerdict(Record):
    """One gate rule applied to a run: whether it passed, and the numbers it was decided on."""

    rule: str
    """The rule's name: given in the suite, or written from its settings."""
    kind: GateKind
    passed: bool
    """True exactly when `status` is `passed`."""
    status: GateStatus
    reason: str
    """One line: what was compared with what, and the outcome."""
    dataset: str | None = None
    subset: str | None = None
    model: str | None = None
    baseline: str | None = None
    """The other model (superiority) or the baseline run's model (non-inferiority, budgets)."""
    metric: str | None = None
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    """One-sided p of the rule's null hypothesis (the release is bad), before any correction."""
    p_adjusted: float | None = None
    """Holm-adjusted over the suite's tested rules (equal to `p_value` with `correction: none`); pass ⇔ ≤ α."""
    bound: float | None = None
    """The one-sided (1 − α) confidence bound the rule compares with its null boundary (for a length budget:
    of the mean of L − (1 + budget)·L_before in tokens, against 0)."""
    alpha: float | None = None
    """The gate's level."""
    test: str | None = None
    """The null hypothesis and method, e.g. `H0: Δ <= -0.02 (tango score)`; None for rules that are not tests."""
    n: int | None = None
    threshold: float | None = None

    @model_validator(mode="after")
    def _passed_is_the_status(self) -> GateVerdict:
        if self.passed != (self.status == "passed"):
            raise ValueError(f"passed is {self.passed} but status is {self.status!r}")
        return self


class PairText(Record):
    """Prompt and answers of one preference pair as plain text, so a report can show a flipped pair."""

    dataset: str
    id: str
    subset: str
    prompt: str
    """Conversational rows (lists of messages) are kept whole: one `role: content` paragraph per message."""
    chosen: str
    rejected: str

    @field_validator("prompt", "chosen", "rejected", mode="before")
    @classmethod
    def _plain_text(cls, value: object) -> object:
        messages = value if isinstance(value, list) else None
        if messages is not None and all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in messages):
            return "\n\n".join(f"{message['role']}: {message['content']}" for message in messages)
        return value  # anything else is held to `str`, and refused when it is not one


class RunResult(Record):
    schema_version: str
    evalkit_version: str
    created_at: str
    duration_s: float
    suite: SuiteInfo
    environment: Environment
    reference: str | None
    scoring: ScoringInfo
    statistics: Statistics | None = None
    """None in results written before intervals existed (schema 1.0)."""
    models: list[ModelInfo] = Field(min_length=1)
    datasets: list[DatasetInfo] = Field(min_length=1)
    audit: list[TokenizationAudit]
    training: TrainingInfo | None
    """The suite's training run, when it has one (`train` as one mapping or a one-item list)."""
    trainings: list[TrainingInfo] = []
    """Every training run in the suite's order, when it has several (`training` is then None); empty otherwise."""
    metrics: list[Metric]
    comparisons: list[Comparison] = []
    """Every later-listed model against every earlier-listed one, per dataset and subset."""
    reliability: list[ReliabilityBin] = []
    """Reliability-curve points of the models with rewards."""
    baselines: list[BaselineScore] = []
    """Content-blind baselines (longer, shorter, chance) per dataset and subset. Empty in files written before them."""
    baseline_comparisons: list[Comparison] = []
    """Every model's accuracy against every content-blind baseline on the same items, per dataset and subset:
    `baseline` names the baseline (a `BaselineName`), `metric` the model's accuracy. Empty in older files."""
    best_of_n: list[Metric] = []
    """Best-of-N datasets (RewardBench 2's layout): each model's `best_of_n/score` per dataset and subset, the subset
    `all` aggregated as RewardBench 2 publishes it (the mean of the subset scores). `method` names the interval:
    wilson where item scores are 0/1, student_t where ties at the top make them fractional, cluster_bootstrap for a
    Ties composite, stratified_normal for the mean over subsets. Empty in files written before them."""
    best_of_n_comparisons: list[Comparison] = []
    """Every later-listed model against every earlier-listed one on the same best-of-N items, per dataset and
    subset, and every model against each length baseline (`baseline` then names a `BaselineName`). Empty in older
    files."""
    best_of_n_ties: list[TiesScore] = []
    """The parts of each Ties composite in `best_of_n`. Empty in older files."""
    best_of_n_rewards: dict[str, str] = {}
    """Model → the reward its `best_of_n` scores ranked completions by: its objective's reward of one completion
    (`simpo: β·ℓ/T (γ left out)`, `orpo: log-odds ...`), DPO's implicit reward at `scoring.beta` for a model with no
    `method`, or `reward model score`. Empty in older files."""
    generation: GenerationResult | None = None
    """Side-by-side samples, their statistics, judges and drift, when the suite asks for them."""
    capabilities: CapabilityResult | None = None
    """lm-evaluation-harness tasks on every model, when the suite has a `capabilities` section."""
    gate: list[GateVerdict] | None = None
    """Verdicts of the suite's gate rules; None when no gate ran."""
    flip_examples: list[PairText] = []
    """Text of the flipped pairs the reports show (`evalkit.metrics.flips.flips_to_show`); every flipped id is in
    `comparisons`. Empty in results written before it existed: reports then show the ids only."""
    command: str | None = None
    """The command line that produced the run, for provenance; None when not recorded."""

    @model_validator(mode="after")
    def _datasets_once(self) -> RunResult:
        # Each dataset's metrics, pairs and per-pair file are looked up by its name: a name given twice would let a
        # second entry take the first one's rows somewhere else.
        names = [d.name for d in self.datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"datasets: {repeated[0]!r} is listed twice; each dataset once")
        records_by_kind = (
            ("metrics", self.metrics),
            ("comparisons", self.comparisons),
            ("baseline_comparisons", self.baseline_comparisons),
        )
        for kind, records in records_by_kind:
            unknown = next((r.metric for r in records if r.metric not in REGISTRY), None)
            if unknown is not None:  # every reader looks a metric up in the registry (its title, its direction)
                raise ValueError(f"{kind}: unknown metric {unknown!r}; known: {', '.join(REGISTRY)}")
        return self

    @property
    def training_runs(self) -> list[TrainingInfo]:
        """Every training run of the suite, in order, whichever field records them (one run: `training`)."""
        return self.trainings or ([self.training] if self.training is not None else [])

    @property
    def effective_statistics(self) -> Statistics:
        """The statistics settings the numbers were made with: a file from before intervals (1.0) records none, and
        reads with the defaults (its numbers, which have no intervals, depend on none of them)."""
        return self.statistics or Statistics()

    def metric(self, dataset: str, model: str, metric: str, subset: str = "all") -> Metric | None:
        """One metric record, or None when it was not computed."""
        for m in self.metrics:
            if (m.dataset, m.model, m.metric, m.subset) == (dataset, model, metric, subset):
                return m
        return None

    def value(self, dataset: str, model: str, metric: str, subset: str = "all") -> float | None:
        """The value of one metric, or None when it was not computed."""
        found = self.metric(dataset, model, metric, subset)
        return found.value if found is not None else None

    def comparison(
        self, dataset: str, model: str, baseline: str, metric: str, subset: str = "all"
    ) -> Comparison | None:
        """`model` against `baseline` on one metric, or None when it was not compared."""
        for c in self.comparisons:
            if (c.dataset, c.model, c.baseline, c.metric, c.subset) == (dataset, model, baseline, metric, subset):
                return c
        return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `results.json`, as shipped in the package."""
    schema = RunResult.model_json_schema()
    schema["title"] = f"evalkit results, schema {SCHEMA_VERSION}"
    return schema
