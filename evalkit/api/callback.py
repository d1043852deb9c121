"""evalkit inside a TRL `DPOTrainer`: held-out pairs scored properly at every evaluation.

TRL's own evaluation logs `eval_rewards/*` and `eval_logps/*` as means of per-batch means, so they
move with the eval batch size, and with no interval. `EvalkitCallback` scores a held-out set of pairs
on the live policy at each of the trainer's evaluations, against the trainer's own reference (its
`ref_model`; the policy with its adapter disabled when TRL trains a PEFT adapter with no `ref_model`;
the initial policy, scored when training begins, when TRL precomputes the reference), exactly as
`evalkit score` would score the checkpoint saved at that step. The metrics are pooled over pairs, with
their intervals, and go through the trainer's own `log`, so every logger `report_to` names
(TensorBoard, W&B, MLflow, ...) and `state.log_history` get them beside TRL's, keyed
`eval_<prefix>/<metric>` (`eval_evalkit/rewards/accuracies`, its interval as `.../ci_low` and
`.../ci_high`; TensorBoard shows them under `eval/evalkit/`). They are also put into the metrics
`evaluate()` returns, so `metric_for_best_model="evalkit/rewards/accuracies"` works.

With `output_dir`, each evaluation also writes `step-<N>/results.json` (the reference and the policy,
with per-pair scores: `evalkit compare step-10/results.json step-20/results.json` compares two steps
pair by pair) and a `results.json` holding every step so far as `<name>@<step>` (`evalkit report`
draws the curve).

    trainer = DPOTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer, ...)
    trainer.add_callback(evalkit.EvalkitCallback(trainer, heldout_pairs, output_dir="runs/evalkit"))
    trainer.train()

The DPO loss it logs is the sigmoid loss −log σ(margin), whatever `loss_type` trains the model. Under
a `KTOTrainer` (or with `objective` a KTO objective) it also logs KTO's own numbers on the held-out
pairs unpaired as TRL unpairs them (`evalkit.metrics.unpaired`): the pooled KL reference point `trl/kl`,
the KTO loss `objective/loss` and the separation `objective/auc`, with TRL's `per_device_train_batch_size` as
the KL groups.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PreTrainedTokenizerBase, TrainerCallback

from evalkit.api import inprocess
from evalkit.api.evaluation import Evaluation, check_metric
from evalkit.api.functions import DEFAULT_LAYOUT, Layout, Pairs, as_pairs, scoring_settings
from evalkit.config.messages import notice
from evalkit.config.objectives import KtoObjective, Objective, reads_prompt, tokenization_of
from evalkit.config.specs import ScoringSpec
from evalkit.console import is_main_process
from evalkit.data.rendering import DEFAULT_DATE, rendering_for
from evalkit.data.unpaired import unpair
from evalkit.errors import EvalkitError
from evalkit.metrics.stats import Estimate
from evalkit.metrics.unpaired import unpaired_estimates
from evalkit.results.estimates import Statistics
from evalkit.results.pairs import PairScore
from evalkit.results.schema import DatasetInfo, ModelInfo, ModelKind
from evalkit.scoring.dataset import model_logps, pad_token_id, scored_dataset, tokenize_set
from evalkit.scoring.score import ModelLogps
from evalkit.scoring.unpaired import (
    KL_GROUP,
    TokenizedCompletions,
    completion_logps,
    completion_scores,
    tokenize_completions,
)
from evalkit.trainers import objective_of_trainer

if TYPE_CHECKING:
    from transformers import Trainer

UNBOUNDED = 1 << 31
"""`max_length` when TRL's is None (no truncation)."""
LOGGED = (
    "rewards/accuracies",
    "rewards/ties",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "loss",
    "logps/chosen",
    "logps/rejected",
    "preference/accuracy",
    "objective/accuracy",
    "objective/margins",
    "objective/loss",
)
"""The metrics logged by default: TRL's vocabulary, the policy's own preference accuracy, and the objective's own
accuracy, margin and loss (results files written with `output_dir` hold them all)."""


class EvalkitCallback(TrainerCallback):
    """Scores `pairs` on the trainer's live policy at each evaluation and logs evalkit's metrics.

    `trainer`: the `DPOTrainer` (or CPO, ORPO or KTO trainer) to evaluate (add the callback with
    `trainer.add_callback`). `pairs`: anything `evalkit.score` takes (a `datasets.Dataset`, a DataFrame, a list
    of dicts, a path), laid out by `layout`. `beta` and `max_length` default to the trainer's (`args.beta`,
    `args.max_length`); `scoring` holds the other scoring settings (dtype, batch size: by default the trainer's
    eval batch size; results do not depend on it).
    `prefix` names the logged keys and `logged` the metrics logged (None: all of them); `output_dir` is where
    results files go (none when None). `objective`: the objective the metrics `trl/*` and `objective/*` follow;
    default: the trainer's own, read from its config.
    """

    def __init__(  # noqa: PLR0913 (keyword options a user passes, as TrainerCallback subclasses take them)
        self,
        trainer: Trainer,
        pairs: Pairs,
        *,
        name: str = "policy",
        ref_name: str = "reference",
        dataset: str = "heldout",
        layout: Layout = DEFAULT_LAYOUT,
        beta: float | None = None,
        scoring: ScoringSpec | None = None,
        statistics: Statistics | None = None,
        prefix: str = "evalkit",
        logged: Sequence[str] | None = LOGGED,
        output_dir: str | Path | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        template_date: datetime.date | None = None,
        objective: Objective | None = None,
    ) -> None:
        self.trainer = trainer
        self.pairs = as_pairs(pairs, dataset, layout)
        self.name, self.ref_name, self.dataset, self.prefix = name, ref_name, dataset, prefix
        for metric in logged or ():
            check_metric(metric)  # a typo here would log nothing, silently
        self.logged = set(logged) if logged is not None else None
        args: Any = trainer.args  # a DPOConfig: its beta and max_length are TRL's
        max_length = args.max_length if getattr(args, "max_length", None) is not None else UNBOUNDED
        beta = beta if beta is not None else float(args.beta)
        self.scoring = scoring_settings(scoring, beta=beta, max_length=max_length)
        self._own_batch_size = scoring is None  # then it follows args.per_device_eval_batch_size
        self.statistics = statistics or Statistics()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        tokenizer = _tokenizer_of(trainer.processing_class)
        self.rendering = rendering_for(tokenizer, dict(chat_template_kwargs or {}), template_date or DEFAULT_DATE)
        self.objective = objective or objective_of_trainer(trainer)
        # As the trainer tokenizes them: a CPOTrainer's or ORPOTrainer's pairs the legacy way, so the numbers match.
        tokenization = tokenization_of(self.objective)
        self.tokens = tokenize_set(self.pairs, tokenizer, self.rendering, self.scoring.max_length, tokenization)
        self.pad_token_id = pad_token_id(tokenizer)
        self.kto = self.objective if isinstance(self.objective, KtoObjective) else None
        self.completions: TokenizedCompletions | None = None
        self._kto_estimates: dict[str, Estimate] = {}
        if self.kto is not None:
            group = int(getattr(args, "per_device_train_batch_size", KL_GROUP))
            self.completions = tokenize_completions(
                unpair(self.pairs), tokenizer, self.rendering, self.scoring.max_length, group
            )
        self._reference_completions: ModelLogps | None = None
        self._held_out = DatasetInfo(
            name=dataset,
            path="<in memory>",
            fingerprint=inprocess.pairs_fingerprint(self.pairs),
            n_pairs=len(self.pairs),
            subsets=sorted({p.subset for p in self.pairs}),
            pairs_file=f"pairs/{dataset}.jsonl",
        )
        self.evaluations: dict[int, Evaluation] = {}
        """Every evaluation so far, by global step."""
        self._reference: ModelLogps | None = None
        self._reference_info: ModelInfo | None = None
        self._reference_lost = False

    # -- the trainer's events -------------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._reference is not None or self._reference_model() is not None:
            return
        if state.global_step > 0:
            # Resumed from a checkpoint: the initial policy TRL precomputed its reference from is gone.
            self._reference_lost = True
            notice(
                "EvalkitCallback: training resumed with precompute_ref_log_probs, so the initial policy (the "
                "reference) is gone; logging the policy's own metrics only, no rewards"
            )
            return
        # TRL precomputed the reference from the initial policy: it is the policy now, before any step.
        self._score_reference(self._policy())

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **_: Any
    ) -> None:
        evaluation = self.evaluate(state.global_step)
        logs = self.logs(evaluation)
        if metrics is not None:
            metrics.update(logs)  # what `evaluate()` returns, and what `metric_for_best_model` reads
        model = self.trainer.model
        assert model is not None, "the trainer evaluates a model"
        was_training = model.training
        model.eval()  # DPOTrainer.log adds its own metrics of the mode the model is in: none left in eval
        try:
            self.trainer.log(dict(logs))
        finally:
            model.train(was_training)

    # -- what it does --------------------------------------------------------------------------------------

    def evaluate(self, step: int) -> Evaluation:
        """Score the pairs on the policy as it is now, against the reference; written out when `output_dir` is set."""
        started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
        policy = self._policy()
        reference = self._current_reference(policy)
        own = model_logps(
            policy,
            self.tokens,
            self.pad_token_id,
            self._settings(),
            f"{self.name}@{step}",
            with_prompt=reads_prompt(self.objective),
        )
        self._kto_estimates = self._kto(policy, step)
        scored = scored_dataset(self.dataset, self.name, self.tokens, own, reference)
        kind: ModelKind = "adapter" if inprocess.is_peft_model(policy) else "model"
        # The step names the weights: hashing every parameter at every evaluation would cost a copy of the model.
        fingerprint = hashlib.sha256(f"{self.trainer.args.output_dir}|{step}".encode()).hexdigest()
        info = inprocess.live_model_info(self.name, f"step {step}", kind, policy, self.rendering, fingerprint)
        rows, models, audits = scored.rows, [inprocess.with_mode(info, scored.mode, self.objective)], [scored.audit]
        if reference is not None and self._reference_info is not None:
            as_model = scored_dataset(self.dataset, self.ref_name, self.tokens, reference, None)
            rows, models, audits = as_model.rows + rows, [self._reference_info, *models], [as_model.audit, *audits]
        parts = inprocess.ResultParts(
            name=f"{self.name}@{step}",
            scores={self.dataset: rows},
            pairs={self.dataset: self.pairs},
            models=models,
            datasets=[self._held_out],
            audits=audits,
            reference=self.ref_name if reference is not None else None,
            scoring=self._settings(),
            statistics=self.statistics,
            description=f"{self.dataset} scored by evalkit at step {step} of training",
            objectives={self.name: self.objective} if self.objective is not None else None,
        )
        result = inprocess.assemble_result(parts, started, time.perf_counter() - clock)
        evaluation = Evaluation(result, {self.dataset: rows})
        self.evaluations[step] = evaluation
        if self.output_dir is not None and is_main_process():
            # The callback's own directory (a rerun of training replaces what the last run wrote there).
            evaluation.save(self.output_dir / f"step-{step}", reports=False, replace=True)
            self.curve().save(self.output_dir, reports=False, replace=True)  # the same curve, one step longer
        return evaluation

    def logs(self, evaluation: Evaluation) -> dict[str, float]:
        """The policy's metrics on all pairs, with their intervals, keyed `eval_<prefix>/<metric>`."""
        logs: dict[str, float] = {}
        for m in evaluation.result.metrics:
            if m.model != self.name or m.subset != "all" or (self.logged is not None and m.metric not in self.logged):
                continue
            key = f"eval_{self.prefix}/{m.metric}"
            logs[key] = m.value
            if m.ci_low is not None and m.ci_high is not None:
                logs[f"{key}/ci_low"], logs[f"{key}/ci_high"] = m.ci_low, m.ci_high
        logs[f"eval_{self.prefix}/n"] = float(len(self.tokens.scorable))
        for name, estimate in self._kto_estimates.items():
            logs[f"eval_{self.prefix}/{name}"] = estimate.value
            if estimate.interval is not None:
                logs[f"eval_{self.prefix}/{name}/ci_low"] = estimate.interval.low
                logs[f"eval_{self.prefix}/{name}/ci_high"] = estimate.interval.high
        return logs

    def curve(self) -> Evaluation:
        """Every evaluation so far as one run: the reference, then `<name>@<step>` in step order, each step compared
        with the reference (not with every other step: that would grow as the square of the evaluations)."""
        assert self.evaluations
        started = datetime.datetime.now(datetime.timezone.utc)
        steps = sorted(self.evaluations)
        first = self.evaluations[steps[0]]
        rows: list[PairScore] = [r for r in first.pairs[self.dataset] if r.model == self.ref_name]
        models = [m for m in first.result.models if m.name == self.ref_name]
        audits = [a for a in first.result.audit if a.model == self.ref_name]
        for step in steps:
            run = self.evaluations[step]
            label = f"{self.name}@{step}"
            rows += [r.as_model(label) for r in run.pairs[self.dataset] if r.model == self.name]
            models += [m.model_copy(update={"name": label}) for m in run.result.models if m.name == self.name]
            audits += [a.model_copy(update={"model": label}) for a in run.result.audit if a.model == self.name]
        parts = inprocess.ResultParts(
            name=f"{self.name} during training",
            scores={self.dataset: rows},
            pairs={self.dataset: self.pairs},
            models=models,
            datasets=[self._held_out],
            audits=audits,
            reference=self.ref_name if models[0].name == self.ref_name else None,
            scoring=self._settings(),
            statistics=self.statistics,
            description=f"{self.dataset} scored by evalkit at each evaluation of training",
            compared_with=self.ref_name if models[0].name == self.ref_name else None,
            objectives={f"{self.name}@{s}": self.objective for s in steps} if self.objective is not None else None,
        )
        return Evaluation(inprocess.assemble_result(parts, started, 0.0), {self.dataset: rows})

    # -- the trainer's models ------------------------------------------------------------------------------

    def _policy(self) -> Any:
        return self.trainer.accelerator.unwrap_model(self.trainer.model)

    def _current_reference(self, policy: Any) -> ModelLogps | None:
        """The reference's log-probs on the pairs: scored once (a reference does not change while DPO trains),
        again at each evaluation with `sync_ref_model`; None when it is gone (see `on_train_begin`)."""
        if self._reference_lost:
            return None
        reference = self._reference_model()
        if reference is not None and (self._reference is None or getattr(self.trainer.args, "sync_ref_model", False)):
            with reference() as model:
                self._score_reference(model)
        if self._reference is None:  # an evaluation before training began, with a precomputed reference
            self._score_reference(policy)
        return self._reference

    def _reference_model(self) -> inprocess.ReferenceModel | None:
        """The trainer's reference as TRL computes it; None when TRL precomputed it from the initial policy."""
        trainer, ref_model = self.trainer, getattr(self.trainer, "ref_model", None)
        if ref_model is not None:
            return inprocess.separate_model(trainer.accelerator.unwrap_model(ref_model))
        policy = self._policy()
        return inprocess.adapter_disabled(policy) if inprocess.is_peft_model(policy) else None

    def _settings(self) -> ScoringSpec:
        """The scoring settings now: with no `scoring` given, pairs per pass follow the trainer's eval batch size
        (its memory budget); the numbers do not depend on it."""
        if not self._own_batch_size:
            return self.scoring
        return self.scoring.model_copy(update={"batch_size": int(self.trainer.args.per_device_eval_batch_size)})

    def _kto(self, policy: Any, step: int) -> dict[str, Estimate]:
        """KTO's own estimates (`trl/kl`, `objective/loss`, `objective/auc`) on the unpaired held-out pairs; {} for
        another objective, or without a reference."""
        if self.kto is None or self.completions is None or self._reference_completions is None:
            return {}
        settings, label = self._settings(), f"{self.name}@{step} (unpaired)"
        own = completion_logps(policy, self.completions, self.pad_token_id, settings, label)
        rows = completion_scores(self.name, self.completions, own, self._reference_completions)
        estimates = unpaired_estimates(rows, self.kto, self.statistics.confidence_level)
        return {name: estimates[name] for name in KTO_LOGGED if name in estimates}

    def _score_reference(self, model: Any) -> None:
        label = f"reference for {self.name}"
        self._reference = model_logps(model, self.tokens, self.pad_token_id, self._settings(), label)
        if self.completions is not None:
            self._reference_completions = completion_logps(
                model, self.completions, self.pad_token_id, self._settings(), f"{label} (unpaired)"
            )
        fingerprint = inprocess.parameters_fingerprint(model, self.rendering, adapters=False)
        info = inprocess.live_model_info(
            self.ref_name, "the trainer's reference", "model", model, self.rendering, fingerprint
        )
        mode = self._reference.mode.model_copy(update={"dataset": self.dataset}) if self._reference.mode else None
        self._reference_info = inprocess.with_mode(info, mode)


KTO_LOGGED = ("trl/kl", "objective/loss", "objective/auc")
"""KTO's numbers logged beside the pairs' (its rewards and log-probs per label are the pairs' own means)."""


def _tokenizer_of(processing_class: object) -> PreTrainedTokenizerBase:
    """The trainer's tokenizer: its `processing_class`, or the tokenizer a processor holds."""
    for candidate in (processing_class, getattr(processing_class, "tokenizer", None)):
        if isinstance(candidate, PreTrainedTokenizerBase):
            return candidate
    raise EvalkitError(
        f"EvalkitCallback: the trainer's processing_class is a {type(processing_class).__name__}; "
        "expected a tokenizer (or a processor holding one)"
    )
