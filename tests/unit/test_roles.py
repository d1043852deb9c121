"""A trusted suite's typed rules turned to a candidate run's model names by role (`evalkit.gate.roles`)."""

from typing import Any

from evalkit.config.rules import GateSpec
from evalkit.gate.roles import rules_for_candidate, turned

RENAMED = {"aligned": "candidate", "base": "reference"}


def spec(*rules: dict[str, Any]) -> GateSpec:
    return GateSpec.model_validate({"rules": list(rules)})


def test_only_the_models_of_the_judged_run_are_renamed() -> None:
    """A superiority rule's `baseline` is a model of the run; a non-inferiority rule's is the baseline run's
    (named as recorded there), so it stays; a name the mapping does not know stays too."""
    superiority, non_inferiority, stranger = spec(
        {"kind": "superiority", "model": "aligned", "baseline": "base", "metric": "preference/accuracy"},
        {"kind": "non_inferiority", "model": "aligned", "baseline": "base", "metric": "loss", "margin": 0.1},
        {"kind": "drift_budget", "model": "other", "max_kl": 3},
    ).rules
    assert turned(superiority, RENAMED).run_models == {"model": "candidate", "baseline": "reference"}
    kept = turned(non_inferiority, RENAMED)
    assert (kept.model, kept.baseline) == ("candidate", "base")
    assert turned(stranger, RENAMED) is stranger
    assert superiority.model == "aligned"  # the suite's own rule is left as it was


def test_a_candidate_run_keeps_the_rules_it_can_judge() -> None:
    """Without a reference, reward metrics and drift cannot be judged; a rule about a third model is about no
    model of the candidate run; capability rules go with the capability tasks; own data is every rule's dataset."""
    rules = spec(
        {"kind": "absolute", "model": "aligned", "metric": "rewards/accuracies", "at_least": 0.8, "dataset": "d"},
        {"kind": "absolute", "model": "aligned", "metric": "preference/accuracy", "at_least": 0.6, "dataset": "d"},
        {"kind": "drift_budget", "model": "aligned", "max_kl": 3},
        {"kind": "superiority", "model": "aligned", "baseline": "sft", "metric": "preference/accuracy"},
        {"kind": "capability_non_inferiority", "model": "aligned", "baseline": "base", "task": "t", "margin": 0.1},
        {"kind": "length_budget", "model": "aligned", "max_growth": 0.2},
    ).rules
    alone = rules_for_candidate(rules, {"aligned": "candidate"}, reference=False, capabilities=False, own_data=True)
    assert [(r.kind, r.model) for r in alone.kept] == [("absolute", "candidate"), ("length_budget", "candidate")]
    assert alone.kept[0].title == "candidate preference/accuracy >= 0.6"  # its dataset is now the candidate's data
    assert [r.title for r in alone.left_out] == [
        "aligned rewards/accuracies >= 0.8 on d",
        "aligned KL drift <= 3.0",
        "aligned beats sft on preference/accuracy",
    ]
    paired = rules_for_candidate(rules, RENAMED, reference=True, capabilities=True, own_data=False)
    assert [r.run_models for r in paired.kept] == [
        {"model": "candidate"},
        {"model": "candidate"},
        {"model": "candidate"},
        {"model": "candidate", "baseline": "reference"},
        {"model": "candidate"},
    ]
    assert paired.kept[0].title == "candidate rewards/accuracies >= 0.8 on d"
    assert [r.title for r in paired.left_out] == ["aligned beats sft on preference/accuracy"]
