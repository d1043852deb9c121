"""Suite files: load a YAML suite and validate it completely before any model is touched.

A suite names the datasets to score, the models to compare, the reference that turns log-probs
into implicit rewards, and optionally a tiny world to build and a DPO run to train. Every key is
checked when the file loads: a typo is an error naming the file and the key path, with a
suggestion, never a silently ignored option. The sections are specs of their own modules
(`specs`, `training`, `rules`); this one checks what crosses sections (the names a rule or the
training uses are models and datasets of the suite) and reads the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, model_validator

from evalkit.config.messages import every_problem, suggestion
from evalkit.config.objectives import Objective, default_objective, needs_reference, unscored_reason, with_beta
from evalkit.config.overrides import MAX_SUITE_VALUES, apply_override, expanded_size
from evalkit.config.recorded import holds_trl_config, recorded_objective
from evalkit.config.rules import (
    CapabilityRule,
    DriftBudgetRule,
    GateRule,
    GateSpec,
    LengthBudgetRule,
    PreferenceRule,
    SuperiorityRule,
    WinRateRule,
    check_rule_names,
)
from evalkit.config.specs import (
    CapabilitiesSpec,
    DatasetSpec,
    GenerationSpec,
    ModelSpec,
    RenderingSpec,
    ScoringSpec,
    Spec,
    Text,
    WorldSpec,
)
from evalkit.config.training import Trainer, TrainRuns, TrainSpec, check_trainer_options, checks_libraries
from evalkit.errors import EvalkitError
from evalkit.metrics.names import REGISTRY
from evalkit.results.estimates import Statistics


class Suite(Spec):
    """One evaluation: what to build, train and score, and where to write the results."""

    version: Literal[1] = 1
    """The suite format's version."""
    name: Text
    """The suite's name, in results.json and every report."""
    description: Text = ""
    """What the suite evaluates, in a sentence or two; shown in the reports."""
    output_dir: Path
    """Where results.json, per-pair scores and the reports are written."""
    world: WorldSpec | None = None
    """Build the embedded tiny world first (the default suite's); null for your own models and data."""
    train: TrainRuns = Field(default=[])  # a pydantic default: copied for every instance
    """Train models before scoring: one run (a mapping), or a list of runs that train in order, each its own
    `output` from its own `base` (which may be an earlier run's output) with its own objective, data, LoRA and
    options; null to score the models as they are."""
    candidate: str | None = None
    """The model a release decision is about (its role in results.json is `candidate`). Default: the last training
    run's output, else the last model that is not the reference."""
    datasets: list[DatasetSpec] = Field(min_length=1)
    """The preference pairs to score every model on."""
    models: list[ModelSpec] = Field(min_length=1)
    """The checkpoints to score; each later model is compared with each earlier one on the same pairs."""
    reference: str | None = None
    """Name of the reference model for implicit rewards; without one only policy metrics are reported."""
    method: Objective | None = None
    """The preference objective of every model that names none: its parameters and the quantity it optimises
    (`evalkit.config.objectives`). Default: sigmoid DPO at `scoring.beta`."""
    scoring: ScoringSpec = ScoringSpec()
    rendering: RenderingSpec = RenderingSpec()
    statistics: Statistics = Statistics()
    """Intervals and tests: confidence level, power, calibration bins."""
    generation: GenerationSpec | None = None
    capabilities: CapabilitiesSpec | None = None
    gate: GateSpec | None = None

    @model_validator(mode="after")
    def _check_names(self) -> Suite:
        problems = list(self._name_problems())
        if problems:  # all of them at once, one per line: a suite is fixed in one pass, not one error per run
            raise ValueError("\n".join(problems))
        return self

    def _name_problems(self) -> Iterator[str]:
        for kind, names in (("datasets", self.dataset_names), ("models", self.model_names)):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                yield f"{kind}: duplicate name {duplicates[0]!r}; names must be unique"
        required = [(self.reference, "reference")] if self.reference is not None else []
        required += [(self.candidate, "candidate")] if self.candidate is not None else []
        for index, run in enumerate(self.train):
            where = self.train_key(index)
            required += [(run.base, f"{where}.base"), (run.output, f"{where}.output")]
        for name, key in required:
            yield from _problem(_require_model, name, self.model_names, key)
        yield from self._run_problems()
        yield from self._reward_model_problems()
        source = self.generation.from_dataset if self.generation is not None else None
        if source is not None and source.dataset not in self.dataset_names:
            hint = suggestion(source.dataset, self.dataset_names)
            yield f"generation.from_dataset.dataset: no dataset named {source.dataset!r}{hint}"
        if self.generation is not None:
            yield from self._generation_problems(self.generation)
        if self.scoring.backend == "vllm":
            yield from self._served_problems()
        datasets = self.dataset_names
        for index, rule in enumerate(self.gate.rules if self.gate is not None else []):
            where = f"gate.rules.{index}"
            yield from _problem(check_rule_names, rule, where, self.model_names, datasets)
            yield from self._rule_problems(rule, where)

    def _run_problems(self) -> Iterator[str]:
        """Runs in order: each trains a model of its own, from a model that exists by the time it starts, and runs
        that share a hold-out split the same pairs alike (else each would write different pairs to one file)."""
        trained_by = {run.output: index for index, run in enumerate(self.train)}
        for index, run in enumerate(self.train):
            where = self.train_key(index)
            if run.base == run.output:
                yield f"{where}.output must differ from {where}.base"
            earlier = next((i for i, r in enumerate(self.train[:index]) if r.output == run.output), None)
            if earlier is not None:
                yield f"{where}.output: {run.output!r} is trained by train.{earlier} too; each run trains its own model"
            producer = trained_by.get(run.base)
            if producer is not None and producer > index:
                yield (
                    f"{where}.base: {run.base!r} is trained by train.{producer}, which runs later; list the runs in "
                    "the order they train"
                )
            sharing = next((i for i, r in enumerate(self.train[:index]) if _same_file(r.heldout, run.heldout)), None)
            if sharing is not None and _split_of(self.train[sharing]) != _split_of(run):
                yield (
                    f"{where}.heldout: train.{sharing} writes {run.heldout} too, from another split; runs that share "
                    "a hold-out give the same `data`, `eval_fraction` and `split_seed`"
                )

    def _reward_model_problems(self) -> Iterator[str]:
        """A reward model is scored by its logit: it is no reference, and it trains with RewardTrainer's options."""
        kinds = {m.name: m.kind for m in self.models}
        if self.reference is not None and kinds.get(self.reference) == "reward_model":
            yield f"reference: {self.reference!r} is a reward model; the reference of implicit rewards is a policy"
        for index, run in enumerate(self.train):
            if kinds.get(run.output) == "reward_model" and kinds.get(run.base) == "reward_model":
                yield (
                    f"{self.train_key(index)}.base: {run.base!r} is a reward model; a reward model trains from a "
                    "policy's weights"
                )

    @model_validator(mode="after")
    def _check_trainer(self, info: ValidationInfo) -> Suite:
        """Each run's `args` are the options of the trainer its output's kind and method pick (DPOConfig,
        RewardConfig, ...)."""
        if checks_libraries(info):
            for index, run in enumerate(self.train):
                check_trainer_options(run, self.trainer_of(run), self.train_key(index))
        return self

    def trainer_of(self, run: TrainSpec) -> Trainer:
        """The TRL trainer family `run` trains with: RewardTrainer for a reward model, else a preference trainer."""
        return "reward" if self.model(run.output).kind == "reward_model" else "dpo"

    def train_key(self, index: int) -> str:
        """The key path of the run at `index` in messages: `train` when the suite has one run, else `train.<i>`."""
        return "train" if len(self.train) == 1 else f"train.{index}"

    def run_of(self, model: str) -> TrainSpec | None:
        """The training run that writes `model`, if one does."""
        return next((run for run in self.train if run.output == model), None)

    def _trained_method(self, model: str) -> Objective | None:
        run = self.run_of(model)
        return run.method if run is not None else None

    def _generation_problems(self, generation: GenerationSpec) -> Iterator[str]:
        """The models an endpoint or a pairwise judge names are the suite's; a judging template is read now."""
        from evalkit.config.judge_template import template_problem

        served = generation.endpoint.models if generation.endpoint is not None else {}
        for name in served:  # a sweep's checkpoint is named `<model>@<step>`
            where = f"generation.endpoint.models.{name}"
            yield from _problem(_require_model, name.split("@")[0], self.model_names, where)
        for judge in generation.judges:
            if not judge.pairwise:
                continue
            where = f"generation.judges.{judge.name}"
            if judge.baseline is not None:
                yield from _problem(_require_model, judge.baseline, self.model_names, f"{where}.baseline")
            elif self.reference is None:
                yield f"{where}.baseline: a pairwise judge needs a model to judge against; name one or set `reference`"
            if judge.template is not None:
                problem = template_problem(judge.template)
                if problem is not None:
                    yield f"{where}.template: {judge.template}: {problem}"

    def _served_problems(self) -> Iterator[str]:
        """Scoring on a server loads no model here: what needs one in process is refused now, not midway."""
        endpoint = self.scoring.endpoint
        named = {**(endpoint.models if endpoint else {}), **(endpoint.base_urls if endpoint else {})}
        for name in named:
            yield from _problem(_require_model, name.split("@")[0], self.model_names, "scoring.endpoint")
        if self.generation is not None and self.generation.backend == "hf":
            yield "generation.backend: `scoring.backend: vllm` loads no model here; decode with `backend: openai`"
        if self.generation is not None and self.generation.drift is not None:
            yield "generation.drift: needs the models in process; drop it with `scoring.backend: vllm`"
        if self.capabilities is not None and self.capabilities.endpoint is None:
            yield "capabilities: needs the models in process; give it an `endpoint` with `scoring.backend: vllm`"
        if self.train:
            yield "train: `scoring.backend: vllm` scores served models; train first, serve the result, then score"
        for model in self.models:
            if model.kind == "reward_model":
                yield (
                    f"models.{model.name}: a reward model is scored in this process; "
                    "`scoring.backend: vllm` scores policies"
                )

    def _rule_problems(self, rule: GateRule, where: str) -> Iterator[str]:
        """What a rule needs of the rest of the suite: a reference for reward metrics, the sections it reads."""
        classifier = any(m.name == getattr(rule, "model", None) and m.kind == "reward_model" for m in self.models)
        if isinstance(rule, PreferenceRule) and classifier and not REGISTRY[rule.metric].needs_reference:
            yield (
                f"{where}.metric: {rule.metric!r} is a policy's log-prob metric; the reward model "
                f"{getattr(rule, 'model', '')!r} has the rewards/* metrics"
            )
        if isinstance(rule, PreferenceRule) and REGISTRY[rule.metric].needs_reference and not classifier:
            if rule.model == self.reference:
                yield (
                    f"{where}.metric: {rule.metric!r} is not computed for the reference model "
                    f"{rule.model!r} (its rewards are 0 by definition)"
                )
            elif self.reference is None:
                yield f"{where}.metric: {rule.metric!r} needs a `reference` model"
        if isinstance(rule, PreferenceRule) and REGISTRY[rule.metric].quantity is not None:
            yield from self._objective_rule_problems(rule, where)
        if isinstance(rule, DriftBudgetRule) and (
            self.reference is None or not self.generation or not self.generation.drift
        ):
            yield f"{where}: a drift budget needs a `reference` and `generation.drift`"
        if isinstance(rule, LengthBudgetRule) and self.generation is None:
            yield f"{where}: a length budget needs a `generation` section"
        if isinstance(rule, WinRateRule):
            judges = [j.name for j in self.generation.judges if j.pairwise] if self.generation is not None else []
            if rule.judge not in judges:
                hint = suggestion(rule.judge, judges)
                yield f"{where}.judge: no pairwise judge {rule.judge!r}{hint}; pairwise judges are {judges}"
        if isinstance(rule, CapabilityRule):
            tasks = self.capabilities.tasks if self.capabilities is not None else []
            if rule.task not in tasks:
                hint = suggestion(rule.task, tasks)
                yield f"{where}.task: no capability task {rule.task!r}{hint}; capabilities.tasks are {tasks}"

    def _objective_rule_problems(self, rule: PreferenceRule, where: str) -> Iterator[str]:
        """A rule on an objective's metric, checked now against the objective the model will be scored with (the
        suite's word, else evalkit's training record beside it), unless only the run can know it: a model the suite
        names no objective for that this run trains or builds (its record is written then; one there now may be an
        earlier run's), or whose TRL config is read from its pickle. Those are checked when the run starts, by the
        same rules (`evalkit.pipeline.checks.check_objective_rules`)."""
        model = next((m for m in self.models if m.name == rule.model), None)
        if model is None:
            return  # an unknown model has its own message (`check_rule_names`)
        objective = self.stated_objective(model)
        world = self.world.dir.resolve() if self.world is not None else None
        written_later = self.run_of(model.name) is not None or (
            world is not None and Path(model.path).resolve().is_relative_to(world)
        )
        read_later = objective is None and model.allow_pickle and holds_trl_config(model.path)
        if model.name in self.named_objectives() or not (written_later or read_later):
            yield from self.objective_rule_problems(rule, where, objective)

    def objective_rule_problems(self, rule: PreferenceRule, where: str, objective: Objective | None) -> Iterator[str]:
        """What is wrong with a rule on an objective's metric for a model scored with `objective` (None: none is
        known, so the model has only the metrics it always had)."""
        known = REGISTRY[rule.metric]
        if known.unpaired:
            yield from self._unpaired_rule_problems(rule, where, objective)
            return
        if objective is None:
            yield (
                f"{where}.metric: {rule.metric!r} is a metric of the model's objective; give {rule.model!r} a `method` "
                f"(or the suite one){self._unstated_hint(rule.model)}"
            )
        elif known.objectives is not None and objective.name not in known.objectives:
            yield (
                f"{where}.metric: {rule.metric!r} is logged by {' and '.join(known.objectives)} only; "
                f"{rule.model!r} is scored with {objective.name!r}"
            )
        elif (reason := unscored_reason(objective, rule.metric, self._is_unpaired(rule.dataset))) is not None:
            yield f"{where}.metric: {rule.metric!r} is not computed for {rule.model!r}: {reason}"
        elif needs_reference(objective) and rule.model == self.reference:
            yield f"{where}.metric: {rule.metric!r} is not computed for the reference model {rule.model!r}"
        elif needs_reference(objective) and self.reference is None:
            yield f"{where}.metric: {rule.metric!r} of objective {objective.name!r} needs a `reference` model"

    def _is_unpaired(self, dataset: str | None) -> bool:
        """Whether a rule's dataset (default: the first) holds labelled completions (`format: unpaired`)."""
        spec = next((d for d in self.datasets if d.name == dataset), self.datasets[0])
        return spec.format == "unpaired"

    def _unstated_hint(self, name: str) -> str:
        """Where a model's objective could come from instead, when neither the suite nor a record states it."""
        model = self.model(name)
        if model.kind != "reward_model" and not model.allow_pickle and holds_trl_config(model.path):
            return f", or `allow_pickle: true` to read it from the TRL config in {model.path}"
        return ""

    def _unpaired_rule_problems(self, rule: PreferenceRule, where: str, objective: Objective | None) -> Iterator[str]:
        """A rule on a metric of labelled completions (`objective/auc`, KTO's `trl/kl`): a dataset that can hold
        them, a model with rewards, and the objective the metric belongs to where it belongs to one."""
        dataset = next((d for d in self.datasets if d.name == rule.dataset), self.datasets[0])
        known = REGISTRY[rule.metric]
        if dataset.format not in ("auto", "unpaired"):
            yield (
                f"{where}.metric: {rule.metric!r} is computed on unpaired data; {dataset.name!r} has format "
                f"{dataset.format!r}"
            )
        elif known.objectives is not None and (objective is None or objective.name not in known.objectives):
            scored = (
                f"give {rule.model!r} that `method`{self._unstated_hint(rule.model)}"
                if objective is None
                else f"{rule.model!r} is scored with {objective.name!r}"
            )
            owners = " and ".join(known.objectives)
            yield f"{where}.metric: {rule.metric!r} is computed for {owners} models only; {scored}"
        elif rule.model == self.reference:
            yield f"{where}.metric: {rule.metric!r} is not computed for the reference model {rule.model!r}"
        elif self.reference is None:
            yield f"{where}.metric: {rule.metric!r} needs a `reference` model (rewards are β·(log π − log π_ref))"
        elif isinstance(rule, SuperiorityRule) and rule.baseline == self.reference:
            yield (
                f"{where}.baseline: {rule.metric!r} is not computed for the reference model {rule.baseline!r} (its "
                "rewards are 0); compare two models with rewards, or gate the model's AUC with an `absolute` rule"
            )

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def dataset_names(self) -> list[str]:
        return [d.name for d in self.datasets]

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    @property
    def candidate_model(self) -> str | None:
        """The model a release decision is about: `candidate`, else the last training run's output, else the last
        model that is not the reference (None when the reference is the only model)."""
        if self.candidate is not None:
            return self.candidate
        if self.train:
            return self.train[-1].output
        others = [name for name in self.model_names if name != self.reference]
        return others[-1] if others else None

    def objective(self, model: ModelSpec) -> Objective:
        """The objective `model` is scored with: its own `method`, else the training's when it is the trained
        model (the method of the run that trains it), else the suite's `method`, else sigmoid DPO; a DPO β left unset
        is `scoring.beta`."""
        chosen = model.method or self._trained_method(model.name) or self.method or default_objective(self.scoring.beta)
        return with_beta(chosen, self.scoring.beta)

    def stated_objective(self, model: ModelSpec) -> Objective | None:
        """The objective `model` (or a sweep's checkpoint, `<model>@<step>`) is scored with as far as it can be known
        without unpickling anything: the suite's word, else what evalkit's training recorded beside the checkpoint. A
        reward model has none (it is scored by its logit). `evalkit.pipeline.score.resolved_objective` adds TRL's
        saved config."""
        if model.kind == "reward_model":
            return None
        return self.named_objectives([model.name]).get(model.name) or recorded_objective(model.path)

    def named_objectives(self, names: Sequence[str] | None = None) -> dict[str, Objective]:
        """Model name → its objective, for the models scored on one: those whose objective the suite names (their
        own `method`, the training's, the suite's). A model of none keeps the metrics it always had. `names` may
        hold a sweep's checkpoints (`<model>@<step>`, scored with their model's objective); default: the models."""
        named = {
            m.name: self.objective(m)
            for m in self.models
            if m.kind != "reward_model"  # scored by its logit: no objective has its numbers
            and (m.method is not None or self.method is not None or self._trained_method(m.name) is not None)
        }
        return {n: named[n.split("@")[0]] for n in (names or self.model_names) if n.split("@")[0] in named}

    def template_options(self, model: ModelSpec) -> dict[str, Any]:
        """`model`'s chat template options: the suite's, overridden key by key by the model's own."""
        return {**self.rendering.chat_template_kwargs, **(model.chat_template_kwargs or {})}


def _problem(check: Callable[..., None], *args: Any) -> Iterator[str]:
    """The message of the `ValueError` `check(*args)` raises, if it does."""
    try:
        check(*args)
    except ValueError as exc:
        yield str(exc)


def _same_file(first: Path | None, second: Path | None) -> bool:
    return first is not None and second is not None and first.resolve() == second.resolve()


def _split_of(run: TrainSpec) -> tuple[object, ...]:
    """What decides a run's hold-out: its data and the seeded share held out."""
    return (run.data.model_dump(mode="json"), run.eval_fraction, run.split_seed)


def _require_model(name: str, known: list[str], key: str) -> None:
    if name not in known:
        raise ValueError(f"{key}: no model named {name!r}{suggestion(name, known)}; models are {known}")


DEFAULT_SUITE = Path(__file__).parents[1] / "suites" / "default.yaml"
"""The embedded default suite (the tiny world), shipped in the package: `evalkit bench` with no suite and
`evalkit demo` run it, from any directory."""


def load_suite(path: Path | str, overrides: Sequence[str] = (), *, train_options: bool = True) -> Suite:
    """Read and validate a suite file, after `key.path=value` overrides; every problem is an
    `EvalkitError` naming the file and key. `train_options=False` leaves the names of TRL and PEFT options
    in `train` unchecked (they need those libraries imported), for commands that never train."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalkitError(
            f"{path}: suite file not found (`evalkit init` writes a starter suite; `evalkit bench` with no suite, "
            "or `evalkit demo`, runs the packaged default)"
        ) from None
    except UnicodeDecodeError:
        raise EvalkitError(f"{path}: not UTF-8 text; expected a YAML suite") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise EvalkitError(f"{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise EvalkitError(f"{path}: nested too deeply to be a suite") from None
    if not isinstance(raw, dict):
        raise EvalkitError(f"{path}: expected a mapping of suite keys at the top level")
    try:
        size = expanded_size(raw)
    except RecursionError:  # also an alias that contains itself
        raise EvalkitError(f"{path}: nested too deeply to be a suite") from None
    if size > MAX_SUITE_VALUES:
        raise EvalkitError(
            f"{path}: expands to more than {MAX_SUITE_VALUES:,} values through YAML aliases; a suite is far smaller"
        )
    for override in overrides:
        apply_override(raw, override)
    return parse_suite(raw, source=str(path), train_options=train_options)


def parse_suite(raw: dict[str, Any], source: str = "<suite>", *, train_options: bool = True) -> Suite:
    """Validate an already-parsed suite mapping; `source` names it in error messages."""
    try:
        return Suite.model_validate(raw, context={"train_options": train_options})
    except ValidationError as exc:
        runs = raw.get("train")
        single = ("train",) if isinstance(runs, dict) or (isinstance(runs, list) and len(runs) == 1) else ()
        raise EvalkitError(every_problem(source, exc, Suite, raw, ("train",), single)) from None


def parse_gate(raw: Any, source: str) -> GateSpec:
    """Validate gate rules stored elsewhere (a results file); problems are one-line `EvalkitError`s."""
    try:
        return GateSpec.model_validate(raw)
    except ValidationError as exc:
        raise EvalkitError(every_problem(f"{source}: suite.gate", exc, GateSpec, raw)) from None
