"""A trusted suite's rules, turned to the models of a run made for a candidate, by role.

`evalkit bench --model M` scores your checkpoint as `candidate` (and its reference as `reference`)
with a suite written about other names (`aligned`, `base`). Its rules about the suite's candidate
and reference apply to those by role; so do they when `evalkit gate --suite` judges the artifact of
such a run. Both go through `turned`, on typed rules: only the keys that name a model of the judged
run change (`model`, and the `baseline` of a rule comparing two models of one run; a non-inferiority
rule's `baseline` names a model of the baseline run and stays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evalkit.config.rules import CapabilityRule, DriftBudgetRule, GateRule, GateSpec, PreferenceRule
from evalkit.metrics.names import REGISTRY
from evalkit.results.schema import RunResult


def turned(rule: GateRule, renamed: Mapping[str, str]) -> GateRule:
    """`rule`, its models of the judged run named as `renamed` says (names not in it stay)."""
    update = {key: renamed[name] for key, name in rule.run_models.items() if name in renamed}
    return rule.model_copy(update=update) if update else rule


def rules_for_run(spec: GateSpec, candidate: str | None, reference: str | None, result: RunResult) -> GateSpec:
    """A suite's rules, speaking of the run's models: in a `bench --model` run the suite's candidate and reference
    are called `candidate` and `reference`, so rules about them are turned to those names by role."""
    names = {m.name for m in result.models}
    by_role = {m.role: m.name for m in result.models if m.role is not None}
    renamed = {
        suite_name: by_role[role]
        for suite_name, role in ((candidate, "candidate"), (reference, "reference"))
        if suite_name is not None and suite_name not in names and role in by_role
    }
    if not renamed:
        return spec
    return spec.model_copy(update={"rules": [turned(rule, renamed) for rule in spec.rules]})


@dataclass(frozen=True)
class CandidateRules:
    """The suite's rules for a `bench --model` run."""

    kept: list[GateRule]
    """Turned to the candidate run's names."""
    left_out: list[GateRule]
    """About other models of the suite, or needing a reference the candidate run does not have."""


def rules_for_candidate(
    rules: Sequence[GateRule], renamed: Mapping[str, str], *, reference: bool, capabilities: bool, own_data: bool
) -> CandidateRules:
    """The rules of a suite whose models `renamed` maps to the candidate run's (`reference`: whether that run has
    one). Capability rules go with the run's capability tasks when it has none (`capabilities`); with the
    candidate's own data (`own_data`), its one dataset is every rule's."""
    kept: list[GateRule] = []
    left_out: list[GateRule] = []
    for rule in rules:
        if isinstance(rule, CapabilityRule) and not capabilities:
            continue
        needs_reference = isinstance(rule, DriftBudgetRule) or (
            isinstance(rule, PreferenceRule) and REGISTRY[rule.metric].needs_reference
        )
        if not all(name in renamed for name in rule.run_models.values()) or (needs_reference and not reference):
            left_out.append(rule)
            continue
        rule = turned(rule, renamed)
        if own_data and isinstance(rule, PreferenceRule) and rule.dataset is not None:
            rule = rule.model_copy(update={"dataset": None})
        kept.append(rule)
    return CandidateRules(kept, left_out)
