"""Gate rules as a union tagged by `kind`: each kind parses to its own class holding only its keys, and every
mistake reads as one line naming the rule's key path as the user wrote it (no union tag in it)."""

from typing import Any

import pytest

from evalkit.config.rules import (
    AbsoluteRule,
    CapabilityRule,
    DriftBudgetRule,
    GateSpec,
    LengthBudgetRule,
    NonInferiorityRule,
    SuperiorityRule,
)
from evalkit.config.suite import parse_gate, parse_suite
from evalkit.errors import EvalkitError

SUITE: dict[str, Any] = {
    "name": "s",
    "output_dir": "out",
    "datasets": [{"name": "d", "path": "d.jsonl"}],
    "models": [{"name": "base", "path": "b"}, {"name": "aligned", "path": "a"}],
    "reference": "base",
    "generation": {"prompts": ["hi"], "drift": {"samples": 2}},
    "capabilities": {"tasks": ["facts"]},
}

RULES: list[tuple[dict[str, Any], type, str]] = [
    (
        {"kind": "absolute", "model": "aligned", "metric": "rewards/accuracies", "at_least": 0.8},
        AbsoluteRule,
        "aligned rewards/accuracies >= 0.8",
    ),
    (
        {"kind": "superiority", "model": "aligned", "baseline": "base", "metric": "preference/accuracy"},
        SuperiorityRule,
        "aligned beats base on preference/accuracy",
    ),
    (
        {"kind": "non_inferiority", "model": "aligned", "metric": "loss", "margin": 0.05, "subset": "format"},
        NonInferiorityRule,
        "aligned no worse than the baseline run on loss (margin 0.05)/format",
    ),
    ({"kind": "drift_budget", "model": "aligned", "max_kl": 10}, DriftBudgetRule, "aligned KL drift <= 10.0"),
    (
        {"kind": "length_budget", "model": "aligned", "max_growth": 0.25},
        LengthBudgetRule,
        "aligned mean generation length grows <= 25%",
    ),
    (
        {"kind": "capability_non_inferiority", "model": "aligned", "baseline": "base", "task": "facts", "margin": 0.1},
        CapabilityRule,
        "aligned no worse than base on facts (margin 0.1)",
    ),
]


@pytest.mark.parametrize(("raw", "kind", "title"), RULES, ids=[raw["kind"] for raw, _, _ in RULES])
def test_each_kind_parses_to_its_own_class_with_only_its_keys(raw: dict[str, Any], kind: type, title: str) -> None:
    suite = parse_suite({**SUITE, "gate": {"rules": [raw]}}, "s.yaml")
    assert suite.gate is not None
    (rule,) = suite.gate.rules
    assert type(rule) is kind and rule.title == title
    # What results.json records of the rule (exclude_defaults) is what the user wrote, with YAML's ints as floats.
    assert suite.gate.model_dump(mode="json", exclude_defaults=True)["rules"] == [raw]
    assert set(kind.model_fields) >= set(raw)
    # ... and none of the keys only other kinds take: a kind's class holds its own fields.
    shared = {"kind", "model", "metric", "subset", "dataset", "baseline"}
    foreign = {key for other, _, _ in RULES for key in other} - set(raw) - shared
    assert not foreign & set(kind.model_fields), foreign & set(kind.model_fields)


def test_rules_name_the_models_of_the_run_they_compare() -> None:
    """`baseline` names a model of the same run for superiority and capability rules, of the baseline run for
    non-inferiority and length budgets (so it is no model name of this run's)."""
    spec = GateSpec.model_validate({"rules": [raw for raw, _, _ in RULES]})
    assert [rule.run_models for rule in spec.rules] == [
        {"model": "aligned"},
        {"model": "aligned", "baseline": "base"},
        {"model": "aligned"},
        {"model": "aligned"},
        {"model": "aligned"},
        {"model": "aligned", "baseline": "base"},
    ]
    assert [rule.unit for rule in spec.rules] == ["pairs", "pairs", "pairs", "prompts", "prompts", "documents"]


def problems(rule: dict[str, Any]) -> list[str]:
    with pytest.raises(EvalkitError) as error:
        parse_suite({**SUITE, "gate": {"rules": [{"kind": "absolute", "model": "aligned", **rule}]}}, "s.yaml")
    return str(error.value).splitlines()


def test_a_key_of_another_kind_is_named_with_the_kind_that_does_not_use_it() -> None:
    assert problems({"metric": "loss", "at_most": 1, "margin": 0.1}) == [
        "s.yaml: gate.rules.0: `margin` is not used by kind 'absolute'"
    ]
    named = {"name": "low loss", "metric": "loss", "at_most": 1, "max_kl": 3}
    assert problems(named) == ["s.yaml: gate.rules.0: rule 'low loss': `max_kl` is not used by kind 'absolute'"]


def test_a_missing_key_is_what_the_kind_needs_and_every_problem_is_one_line() -> None:
    assert problems({"kind": "non_inferiority", "metric": "loss", "baseline": "x", "at_least": 1}) == [
        "s.yaml: gate.rules.0: kind 'non_inferiority' needs `margin`",
        "s.yaml: gate.rules.0: `at_least` is not used by kind 'non_inferiority'",
    ]
    assert problems({"metric": "loss"}) == ["s.yaml: gate.rules.0: give exactly one of `at_least` and `at_most`"]


def test_unknown_keys_and_kinds_get_a_suggestion_and_no_union_tag_in_the_key_path() -> None:
    assert problems({"metric": "loss", "at_most": 1, "at_mots": 2}) == [
        "s.yaml: gate.rules.0.at_mots: unknown key (did you mean 'at_most'?)"
    ]
    assert problems({"metric": "loss", "at_most": 1, "min_pairs": 1}) == [
        "s.yaml: gate.rules.0.min_pairs: Input should be greater than or equal to 2 (got 1)"
    ]
    kinds = (
        "['absolute', 'superiority', 'non_inferiority', 'drift_budget', 'length_budget', "
        "'capability_non_inferiority', 'win_rate', 'beats_baseline']"
    )
    assert problems({"kind": "superiorty"}) == [
        f"s.yaml: gate.rules.0.kind: unknown kind 'superiorty' (did you mean 'superiority'?); kinds are {kinds}"
    ]
    with pytest.raises(EvalkitError, match=r"^r\.json: suite\.gate: rules\.0\.kind: required key is missing$"):
        parse_gate({"rules": [{"model": "aligned"}]}, "r.json")
    # Rules recorded in a results file get the same suggestions as a suite's.
    with pytest.raises(EvalkitError, match=r"rules\.0\.datset: unknown key \(did you mean 'dataset'\?\)$"):
        parse_gate({"rules": [{"kind": "superiority", "model": "a", "baseline": "b", "datset": "d"}]}, "r.json")


def test_rules_on_the_metrics_of_labelled_completions() -> None:
    """`objective/auc` is every model's with rewards, whatever its objective; `trl/kl` a KTO model's only; both
    need a dataset that can hold labelled completions and a model other than the reference."""
    suite = parse_suite(
        {
            **SUITE,
            "gate": {"rules": [{"kind": "absolute", "model": "aligned", "metric": "objective/auc", "at_least": 0.6}]},
        },
        "s.yaml",
    )
    assert suite.gate is not None and suite.gate.rules[0].metric == "objective/auc"
    assert problems({"metric": "objective/auc", "at_least": 0.6, "model": "base"}) == [
        "s.yaml: gate.rules.0.metric: 'objective/auc' is not computed for the reference model 'base'"
    ]
    assert problems({"metric": "trl/kl", "at_most": 1.0}) == [
        "s.yaml: gate.rules.0.metric: 'trl/kl' is computed for kto models only; give 'aligned' that `method`"
    ]
    paired = {**SUITE, "datasets": [{"name": "d", "path": "d.jsonl", "format": "explicit"}]}
    with pytest.raises(EvalkitError, match="'objective/auc' is computed on unpaired data; 'd' has format 'explicit'"):
        parse_suite(
            {
                **paired,
                "gate": {
                    "rules": [{"kind": "absolute", "model": "aligned", "metric": "objective/auc", "at_least": 0.6}]
                },
            },
            "s.yaml",
        )


def test_comparing_two_models_on_their_auc() -> None:
    """Two models with rewards compare on `objective/auc` on labelled completions, whatever their objectives (it is
    scale-free): a superiority rule against another model with rewards loads; against the reference (rewards 0),
    or on a dataset of pairs, it is refused in one line."""
    suite = {
        **SUITE,
        "models": [*SUITE["models"], {"name": "kto", "path": "k", "method": {"name": "kto", "beta": 0.1}}],
    }
    rule = {"kind": "superiority", "model": "kto", "baseline": "aligned", "metric": "objective/auc"}
    loaded = parse_suite({**suite, "gate": {"rules": [rule]}}, "s.yaml")
    assert loaded.gate is not None and isinstance(loaded.gate.rules[0], SuperiorityRule)
    margin = {"kind": "non_inferiority", "model": "kto", "metric": "objective/auc", "margin": 0.05}
    assert parse_suite({**suite, "gate": {"rules": [margin]}}, "s.yaml").gate is not None
    with pytest.raises(
        EvalkitError,
        match=r"^s\.yaml: gate\.rules\.0\.baseline: 'objective/auc' is not computed for the reference model 'base' "
        r"\(its rewards are 0\); compare two models with rewards, or gate the model's AUC with an `absolute` rule$",
    ):
        parse_suite({**suite, "gate": {"rules": [{**rule, "baseline": "base"}]}}, "s.yaml")
    paired = {**suite, "datasets": [{"name": "d", "path": "d.jsonl", "format": "explicit"}]}
    with pytest.raises(
        EvalkitError,
        match=r"^s\.yaml: gate\.rules\.0\.metric: 'objective/auc' is computed on unpaired data; 'd' has format "
        r"'explicit'$",
    ):
        parse_suite({**paired, "gate": {"rules": [rule]}}, "s.yaml")
