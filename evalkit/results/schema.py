"""`results.json`: the one contract between running an evaluation and reading it.

Everything the reports and gates need is here, so they work on a copied file with no model and no
torch. The file is versioned (`schema_version`, major.minor: readers accept any minor of their
major) and its JSON Schema ships in `evalkit/results/schemas/results.schema.json`. Writes are atomic: a
temporary file renamed into place, so a killed run never leaves a half-written result.

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
Older files are migrated once, where they are read (`migrate`): their bootstrap settings dropped,
their methods left unrecorded (None), their verdicts given the status their `passed` implies, so readers
never branch on a version.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evalkit.errors import EvalkitError

if TYPE_CHECKING:
    import numpy as np

    from evalkit.metrics.stats import Sampling

SCHEMA_VERSION = "1.6"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "results.schema.json"


class Record(BaseModel):
    # NaN and infinities (a diverged model's log-probs) are written as the strings "NaN", "Infinity", "-Infinity"
    # and read back as floats: strict JSON that every reader parses, and a file evalkit can read again.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, ser_json_inf_nan="strings")


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


class ScoringMode(Record):
    """How one model's forward passes run on one dataset, as the probes decide (the numbers are the same either
    way; recorded alike when its scores come from a cache)."""

    dataset: str
    mode: Literal["prompt-shared", "whole sequences", "one sequence per pass"]
    """`prompt-shared`: each pair one row, its prompt once; `whole sequences`: prompt+answer rows, batched;
    `one sequence per pass`: each sequence alone (a model whose numbers depend on the longest in a batch)."""
    reason: str
    """Why this mode: what the probes found, or the setting that chose it."""


ModelRole = Literal["candidate", "reference"]


class ModelInfo(Record):
    name: str
    path: str
    kind: Literal["model", "adapter"]
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
    role: ModelRole | None = None
    """What the model is in the run: the `candidate` (the suite's trained model, else its last model; or the
    checkpoint of `bench --model`), the `reference`, or None for the others (e.g. checkpoints of a sweep).
    Runs are matched by role and fingerprint, since display names differ between a suite run and a
    candidate run."""


class DatasetInfo(Record):
    name: str
    path: str
    fingerprint: str
    """sha256 of the data file."""
    n_pairs: int
    subsets: list[str]
    pairs_file: str
    """Per-pair scores, relative to the results file (read only from inside its directory: `pairs_path`)."""


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


class Metric(Record):
    """One number of one (dataset, subset, model) cell, with its interval."""

    dataset: str
    subset: str
    model: str
    metric: str
    value: float
    ci_low: float | None = None
    """Lower end of the interval (see `Statistics`); None where undefined: one pair, or no spread."""
    ci_high: float | None = None
    n: int
    """Pairs the number was computed on (for a length bin: the pairs in that bin)."""
    higher_is_better: bool | None
    """None where neither direction is good in itself (log-probs, correlations)."""
    method: str | None = None
    """How the interval was made (`evalkit.metrics.stats`: wilson, wilson_clustered, student_t, cluster_t, fisher_z,
    order_statistics, none); None in files older than schema 1.4."""
    se: float | None = None
    """Standard error, for t methods (and of atanh ρ for fisher_z): what a gate's one-sided test reads."""
    df: float | None = None
    """Degrees of freedom of a t method: n − 1, or prompts − 1 when clustered."""
    n_effective: float | None = None
    """For shares: the sample size Wilson's interval and the gate's test run on (n for 0/1 outcomes of
    independent pairs; less where pairs share prompts, more where ties count half)."""
    skewness: float | None = None
    """For student_t: the sample skewness G₁, which a gate's one-sided test corrects for (Hall 1992)."""


class Flips(Record):
    """Pairs an accuracy comparison turned around, from the baseline's verdict to the model's."""

    wrong_to_right: int
    right_to_wrong: int
    wrong_to_right_ids: list[str]
    right_to_wrong_ids: list[str]

    def reversed(self) -> Flips:
        """The same pairs seen from the other side: what went wrong→right for one went right→wrong for the other."""
        return Flips(
            wrong_to_right=self.right_to_wrong,
            right_to_wrong=self.wrong_to_right,
            wrong_to_right_ids=self.right_to_wrong_ids,
            right_to_wrong_ids=self.wrong_to_right_ids,
        )


class Comparison(Record):
    """`model` against `baseline` on one metric, on the pairs both scored: a paired difference."""

    dataset: str
    subset: str
    model: str
    baseline: str
    metric: str
    model_value: float
    baseline_value: float
    value: float
    """The difference model − baseline (the mean of the per-pair differences)."""
    ci_low: float | None
    """Paired interval of the difference (see `method`); None where undefined (one pair, or no spread)."""
    ci_high: float | None
    n: int
    """Pairs both models scored."""
    higher_is_better: bool | None
    test: Literal["tango_score", "paired_t", "cluster_t", "mcnemar_exact"]
    """Tango's score test for accuracies (McNemar's z at Δ = 0); a paired t-test of the mean difference for
    per-pair values; a cluster-robust t where pairs share prompts. `mcnemar_exact` only in files before 1.4."""
    p_value: float
    """Two-sided, from the same method as the interval; 1.0 when the models agree on every pair."""
    p_adjusted: float | None = None
    """Benjamini–Hochberg adjusted over every comparison of the run: what the reports' significance marks read."""
    method: str | None = None
    """How the interval was made: tango, student_t or cluster_t; None in files older than schema 1.4."""
    se: float | None = None
    df: float | None = None
    skewness: float | None = None
    wilcoxon_p_value: float | None = None
    """For per-pair values: Wilcoxon's signed-rank test (do most pairs move one way?), beside the t-test."""
    mde: float | None
    """Minimum detectable effect: the smallest true difference this test finds with the stated power."""
    flips: Flips | None = None
    """For accuracies: the pairs that went wrong→right and right→wrong."""

    def reversed(self) -> Comparison:
        """`baseline` against `model`: values swapped; Δ, its interval and skewness negated; flips reversed.
        The test's p-values and its standard error read the same either way round."""
        return self.model_copy(
            update={
                "model": self.baseline,
                "baseline": self.model,
                "model_value": self.baseline_value,
                "baseline_value": self.model_value,
                "value": -self.value,
                "ci_low": None if self.ci_high is None else -self.ci_high,
                "ci_high": None if self.ci_low is None else -self.ci_low,
                "skewness": None if self.skewness is None else -self.skewness,
                "flips": None if self.flips is None else self.flips.reversed(),
            }
        )


class ReliabilityBin(Record):
    """One point of a reliability curve: the pairs whose confidence falls in [low, high).

    The confidence of a pair is σ(|margin|), the probability the model gives the answer it
    prefers; the pair counts as right when that answer is the chosen one (a tie, margin 0, is
    half right: the model predicts a coin flip).
    """

    dataset: str
    subset: str
    model: str
    low: float
    high: float
    n: int
    confidence: float
    """Mean confidence of the pairs in the bin."""
    accuracy: float
    ci_low: float | None
    """Wilson interval of the accuracy."""
    ci_high: float | None


class Statistics(Record):
    """How intervals, tests and power were computed; recorded so that a result can be reproduced."""

    confidence_level: float = Field(0.95, gt=0, lt=1)
    """Of every two-sided interval; the reports' tests use α = 1 − confidence_level (gate rules use `gate.alpha`)."""
    power: float = Field(0.8, gt=0, lt=1)
    """Of the minimum detectable effect."""
    calibration_bins: int = Field(10, ge=1)
    """Equal-width bins of confidence over [0.5, 1], for ECE and the reliability curve."""


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


class GenerationPrompt(Record):
    id: str
    text: str
    """The prompt as plain text (a message prompt: its last message)."""


class GenerationSample(Record):
    """One completion of one panel prompt by one model."""

    prompt_id: str
    model: str
    index: int
    """0 for the greedy (or first sampled) completion; further samples count up."""
    completion: str
    n_tokens: int
    ended: bool
    """True when the model stopped with EOS rather than at `max_new_tokens`."""
    scores: dict[str, float] = {}
    """Judge name → score."""


class GenerationStats(Record):
    """Shape of one model's completions (over token ids, EOS excluded)."""

    model: str
    mean_tokens: float
    eos_rate: float
    distinct_1: float
    distinct_2: float
    repetition_rate: float
    """Share of tokens repeating a 4-gram seen earlier in the same completion."""


class JudgeSummary(Record):
    """A judge's mean score for one model over the panel (per-prompt means; over prompts, Wilson's interval on
    the effective n for scores in [0, 1], Student t for any other scale)."""

    judge: str
    model: str
    mean: float
    ci_low: float | None
    ci_high: float | None
    n: int


class WinRate(Record):
    """One model against the reference on a judge, prompt by prompt, on the prompts both answered.

    The win rate counts a tie as half a win (a judged comparison of two answers has three outcomes, and
    half is what a coin flip between them scores), with a Wilson interval; the sign test beside it asks
    whether wins outnumber losses, ties aside.
    """

    judge: str
    model: str
    baseline: str
    win_rate: float
    ci_low: float | None
    ci_high: float | None
    sign_test_p: float | None = None
    """Two-sided exact sign test of wins against losses; None in files older than schema 1.4."""
    wins: int
    ties: int
    losses: int
    score_delta: float
    """Mean of the per-prompt score differences, model − baseline."""
    delta_ci_low: float | None
    delta_ci_high: float | None
    n: int


class Drift(Record):
    """KL(π‖π_ref) of the first `max_new_tokens` tokens, in nats per completion.

    For each completion y sampled from π (its own distribution: temperature 1, every sampling filter of
    the checkpoint's generation config off), the sum over its positions of the full next-token
    KL(π(·|x, y<t) ‖ π_ref(·|x, y<t)): an unbiased, never negative estimate with less variance than the
    log-ratio log π(y|x) − log π_ref(y|x). Mean per prompt, then over prompts with a Student t
    interval (its lower end clipped at 0, where the KL cannot go). Completions are cut at
    `max_new_tokens`, so this is the KL of the first that many tokens: a lower bound on the KL of
    whole answers when `truncated` > 0.
    """

    model: str
    reference: str
    kl: float
    ci_low: float | None
    ci_high: float | None
    n: int
    samples_per_prompt: int
    estimator: str | None = None
    """`per_token` (as above); None in files older than schema 1.4, which used the sampled log-ratio."""
    se: float | None = None
    df: float | None = None
    skewness: float | None = None
    max_new_tokens: int | None = None
    truncated: float | None = None
    """Share of the sampled completions cut at `max_new_tokens` rather than ended with EOS."""


class GenerationResult(Record):
    decoding: str
    """`greedy`, or `sampling (k=..., temperature=..., top_p=..., seed=...)`."""
    max_new_tokens: int
    prompts: list[GenerationPrompt]
    samples: list[GenerationSample]
    stats: list[GenerationStats]
    judges: list[JudgeSummary] = []
    win_rates: list[WinRate] = []
    drift: list[Drift] = []


GateKind = Literal[
    "absolute", "superiority", "non_inferiority", "drift_budget", "length_budget", "capability_non_inferiority"
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


class CapabilityTask(Record):
    """One lm-evaluation-harness task as it ran: what it is, so two runs of "the same task" can be told apart."""

    name: str
    version: str | None
    """The task's own `metadata.version`, as lm-eval reports it."""
    source: str
    """The task's YAML file (lm-eval's own for its tasks); `python` for a task defined in code."""
    fingerprint: str | None
    """sha256 over the task's YAML file and the local data files it names, by content, not by where they lie (for a
    group, over its tasks' too);
    None for a task defined in Python. Data a task downloads from the hub is not covered: its version is."""
    num_fewshot: int | None
    limit: int | None
    n_documents: int
    """Documents every model was scored on (for a group, those of all its tasks)."""
    metrics: list[str]
    """Per-document metrics the task reports (`acc`, `acc_norm`, `exact_match`, ...); the first is its primary."""


class CapabilityResult(Record):
    """Capability tasks run through lm-evaluation-harness on every model: each task's score with an interval,
    and between models a paired comparison on the same documents, with the flipped documents."""

    lm_eval_version: str
    apply_chat_template: bool
    tasks: list[CapabilityTask]
    scores: list[Metric]
    """Per (task, model, metric): `dataset` is the task, `subset` `all`, `n` the documents; Wilson's interval for
    0/1 scores, Student t for others."""
    comparisons: list[Comparison]
    """Every later-listed model against every earlier-listed one per task and metric (`dataset` is the task):
    Tango's score interval and test for 0/1 scores, with the flipped document ids; a paired t otherwise.
    `p_adjusted` is Benjamini–Hochberg over these comparisons."""


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
        if isinstance(value, list):
            return "\n\n".join(f"{message['role']}: {message['content']}" for message in value)
        return value


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
    models: list[ModelInfo]
    datasets: list[DatasetInfo]
    audit: list[TokenizationAudit]
    training: TrainingInfo | None
    metrics: list[Metric]
    comparisons: list[Comparison] = []
    """Every later-listed model against every earlier-listed one, per dataset and subset."""
    reliability: list[ReliabilityBin] = []
    """Reliability-curve points of the models with rewards."""
    generation: GenerationResult | None = None
    """Side-by-side samples, their statistics, judges and drift, when the suite asks for them."""
    capabilities: CapabilityResult | None = None
    """lm-evaluation-harness tasks on every model, when the suite has a `capabilities` section."""
    gate: list[GateVerdict] | None = None
    """Verdicts of the suite's gate rules; None when no gate ran."""
    flip_examples: list[PairText] = []
    """Text of the flipped pairs the reports show (`evalkit.report.views.flips_to_show`); every flipped id is in
    `comparisons`. Empty in results written before it existed: reports then show the ids only."""
    command: str | None = None
    """The command line that produced the run, for provenance; None when not recorded."""

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


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; results and reports are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class JsonStore:
    """One JSON file per key in a directory, written atomically. A missing or unreadable entry reads as
    None, so the caller computes it again and overwrites it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, key: str) -> Any:
        path = self.directory / f"{key}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (ValueError, UnicodeDecodeError):
            return None

    def save(self, key: str, value: Any) -> None:
        atomic_write_text(self.directory / f"{key}.json", json.dumps(value))


def write_results(result: RunResult, path: Path) -> None:
    atomic_write_text(path, result.model_dump_json(indent=2) + "\n")


def pair_records(rows: Iterable[PairScore], beta: float) -> list[dict[str, object]]:
    """Rows of a per-pair file: each `PairScore`, and with a reference its rewards and margin."""
    out = []
    for row in rows:
        record: dict[str, object] = dict(vars(row))
        if row.ref_logp_chosen is not None and row.ref_logp_rejected is not None:
            reward_chosen = implicit_reward(row.logp_chosen, row.ref_logp_chosen, beta)
            reward_rejected = implicit_reward(row.logp_rejected, row.ref_logp_rejected, beta)
            record |= {"reward_chosen": reward_chosen, "reward_rejected": reward_rejected}
            record["margin"] = reward_chosen - reward_rejected
        out.append(record)
    return out


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def sampling_fields(sampling: Sampling) -> dict[str, Any]:
    """The record fields of a `stats.Sampling` a gate's test reads back (`method`, `se`, `df`, `n_effective`,
    `skewness`)."""
    fields = ("method", "se", "df", "n_effective", "skewness")
    return {name: getattr(sampling, name) for name in fields}


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A results file of any 1.x schema, as the current schema reads it (missing fields take their defaults).

    1.0–1.3 recorded the settings of a percentile bootstrap that 1.4 no longer uses; they are dropped, and
    intervals from those files keep `method` None ("not recorded") rather than a guess. Verdicts before 1.5
    take the status their `passed` says; models before 1.5 get the roles runs give them now (`_with_roles`).
    """
    statistics = raw.get("statistics")
    if isinstance(statistics, dict):
        raw = {**raw, "statistics": {k: v for k, v in statistics.items() if not k.startswith("bootstrap_")}}
    gate = raw.get("gate")
    if isinstance(gate, list):
        # Before 1.5 a verdict was passed or failed; every rule that could not be judged stopped the run.
        verdicts = [
            {"status": "passed" if v.get("passed") else "failed", **v} if isinstance(v, dict) else v for v in gate
        ]
        raw = {**raw, "gate": verdicts}
    models = raw.get("models")
    if isinstance(models, list) and all(isinstance(m, dict) and "role" not in m for m in models):
        raw = {**raw, "models": _with_roles(models, raw)}
    return raw


def _with_roles(models: list[dict[str, Any]], raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Roles for a file written before 1.5, by the rule runs use now: the reference, and as candidate the trained
    model, else the last other model. Without them a candidate with the reference's weights would be matched to
    the baseline's reference by fingerprint, and pass a rule against the last release it should fail."""
    reference = raw.get("reference")
    training = raw.get("training")
    trained = training.get("model") if isinstance(training, dict) else None
    others = [m.get("name") for m in models if m.get("name") != reference]
    candidate = trained if trained in others else (others[-1] if others else None)
    roles = {reference: "reference", candidate: "candidate"}
    return [{**m, "role": roles.get(m.get("name"))} for m in models]


def read_results(path: Path) -> RunResult:
    """Load and validate a results file; problems are `EvalkitError`s naming the file and key."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalkitError(f"{path}: results file not found") from None
    except json.JSONDecodeError as exc:
        raise EvalkitError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise EvalkitError(f"{path}: nested too deeply to be an evalkit results file") from None
    except UnicodeDecodeError:
        raise EvalkitError(f"{path}: not UTF-8 text; expected an evalkit results file") from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise EvalkitError(f"{path}: not an evalkit results file (no 'schema_version')")
    major = str(raw["schema_version"]).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise EvalkitError(
            f"{path}: schema_version {raw['schema_version']!r} is not readable by this evalkit "
            f"(expected {SCHEMA_VERSION.split('.')[0]}.x)"
        )
    try:
        return RunResult.model_validate(migrate(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise EvalkitError(f"{path}: {key}: {error['msg']}") from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `results.json`, as shipped in the package."""
    schema = RunResult.model_json_schema()
    schema["title"] = f"evalkit results, schema {SCHEMA_VERSION}"
    return schema


@dataclass(frozen=True)
class PairScore:
    """One pair under one model: a row of the per-pair file written beside `results.json`."""

    id: str
    subset: str
    model: str
    logp_chosen: float
    logp_rejected: float
    n_tokens_chosen: int
    n_tokens_rejected: int
    truncated: bool
    ref_logp_chosen: float | None = None
    ref_logp_rejected: float | None = None
    prompt_key: str | None = None
    """A hash of the prompt's token ids: pairs with the same key share a prompt and are clustered in every
    interval and test. None in files written before it existed."""


Logps = TypeVar("Logps", float, "np.ndarray")


def implicit_reward(logp: Logps, ref_logp: Logps, beta: float) -> Logps:
    """DPO's implicit reward of a completion, β·(ℓ − ℓ_ref): the one place it is computed."""
    return beta * (logp - ref_logp)


MAX_PAIRS_FILE_BYTES = 2 * 2**30
"""Largest per-pair file a reader opens: a few hundred bytes a row, so millions of pairs fit."""


def pairs_path(results_dir: Path, info: DatasetInfo) -> Path | None:
    """Where `info`'s per-pair file is, when it is a regular file of bounded size inside `results_dir`; None when
    there is none. A results file is untrusted (a fork's artifact): it may name `../`, an absolute path, a link
    out of its directory or `/dev/zero`, and none of them is read."""
    candidate = results_dir / info.pairs_file
    try:
        resolved, root = candidate.resolve(), results_dir.resolve()
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():  # is_file: regular files, not devices
        return None
    if resolved.stat().st_size > MAX_PAIRS_FILE_BYTES:
        raise EvalkitError(f"{candidate}: {resolved.stat().st_size:,} bytes, more than a per-pair file holds")
    return candidate


def read_pair_scores(path: Path) -> list[PairScore]:
    """The rows of a per-pair file (`pairs/<dataset>.jsonl`); extra columns (rewards, margin) are derived."""
    names = {f.name for f in dataclasses.fields(PairScore)}
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvalkitError(
            f"{path}: per-pair scores not found; expected the file written beside results.json"
        ) from None
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError(f"expected a JSON object, got {type(record).__name__}")
            rows.append(PairScore(**{k: v for k, v in record.items() if k in names}))
        except (json.JSONDecodeError, TypeError, RecursionError) as exc:
            raise EvalkitError(f"{path}:{number}: not a per-pair score row: {exc}") from None
    return rows
