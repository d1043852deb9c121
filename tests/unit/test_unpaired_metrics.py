"""KTO metrics of labelled completions, worked by hand (β = 1)."""

import dataclasses

import pytest

from evalkit.config.objectives import DpoObjective, KtoObjective
from evalkit.metrics.unpaired import compute_unpaired_metrics, reward_beta, suite_unpaired_metrics
from evalkit.results.completions import CompletionScore


def row(key: str, label: bool, ratio: float, shift: float) -> CompletionScore:
    """A completion whose log-ratio ℓ − ℓ_ref is `ratio` and whose KL partner's is `shift`."""
    return CompletionScore(
        id=key,
        subset="all",
        model="m",
        label=label,
        logp=-2.0 + ratio,
        n_tokens=3,
        truncated=False,
        kl_logp=-3.0 + shift,
        kl_n_tokens=3,
        ref_logp=-2.0,
        ref_kl_logp=-3.0,
        prompt_key=key,
    )


ROWS = [row("a", True, 1.0, 0.5), row("b", True, 0.0, 0.5), row("c", False, -1.0, -0.2), row("d", False, 0.0, 0.2)]


def metrics(objective: KtoObjective) -> dict[str, float]:
    return {m.metric: m.value for m in compute_unpaired_metrics("u", ROWS, objective)}


def test_kto_metrics_by_hand() -> None:
    """z = max(0, mean(.5, .5, −.2, .2)) = .25. Losses: 1 − σ(1 − .25) = .320821, 1 − σ(0 − .25) = .562177,
    1 − σ(.25 + 1) = .222700, 1 − σ(.25 − 0) = .437823; mean .385880. AUC: 1 > −1, 1 > 0, 0 > −1, 0 = 0 (½):
    3.5/4."""
    got = metrics(KtoObjective(name="kto", beta=1.0))
    assert got["trl/kl"] == pytest.approx(0.25)
    assert got["trl/rewards/chosen"] == pytest.approx(0.5) and got["trl/rewards/rejected"] == pytest.approx(-0.5)
    assert got["trl/rewards/margins"] == pytest.approx(1.0)
    assert got["trl/logps/chosen"] == pytest.approx(-1.5) and got["trl/logps/rejected"] == pytest.approx(-2.5)
    assert got["objective/auc"] == pytest.approx(0.875)
    assert got["objective/loss"] == pytest.approx(0.385880, abs=1e-6)


def test_weights_and_the_t_interval_of_a_label_mean() -> None:
    """Desirable rewards 1 and 0: mean .5, se = .5, t₀.₉₇₅(1) = 12.706: [−5.853, 6.853]."""
    records = compute_unpaired_metrics("u", ROWS, KtoObjective(name="kto", beta=1.0, undesirable_weight=2.0))
    (chosen,) = [m for m in records if m.metric == "trl/rewards/chosen"]
    assert (chosen.ci_low, chosen.ci_high, chosen.n, chosen.method) == (
        pytest.approx(-5.853, abs=1e-3),
        pytest.approx(6.853, abs=1e-3),
        2,
        "student_t",
    )
    (loss,) = [m.value for m in records if m.metric == "objective/loss"]
    assert loss == pytest.approx((0.320821 + 0.562177 + 2 * 0.222700 + 2 * 0.437823) / 4, abs=1e-6)


def test_apo_zero_unpaired_has_no_kl_point() -> None:
    """1 − σ(1) = .268941, 1 − σ(0) = .5, σ(−1) = .268941, σ(0) = .5: mean .384471."""
    got = metrics(KtoObjective(name="kto", beta=1.0, loss_type="apo_zero_unpaired"))
    assert "trl/kl" not in got
    assert got["objective/loss"] == pytest.approx(0.384471, abs=1e-6)


def test_the_reference_model_itself_has_log_probs_only() -> None:
    rows = [CompletionScore(r.id, r.subset, "ref", r.label, r.logp, 3, False, r.kl_logp, 3) for r in ROWS]
    got = {m.metric for m in compute_unpaired_metrics("u", rows, KtoObjective(name="kto"))}
    assert got == {"trl/logps/chosen", "trl/logps/rejected"}


def test_a_suite_gives_each_model_the_reward_of_its_objective() -> None:
    """The same four rows under three models: a KTO model at its β = 2 (desirable rewards 2·(1, 0), mean 1; its KL
    point z = .25 is of log-ratios, unscaled), a DPO model at its β = .5, a model of no objective at `scoring.beta`
    = .1; the AUC is the same for all (a rank statistic: 3.5/4), and only KTO has a KL point and a loss."""
    rows = [dataclasses.replace(r, model=model) for model in ("kto", "dpo", "plain") for r in ROWS]
    objectives = {"kto": KtoObjective(name="kto", beta=2.0), "dpo": DpoObjective(name="dpo", beta=0.5)}
    records = suite_unpaired_metrics("u", rows, objectives, beta=0.1)
    got = {(m.model, m.metric): m for m in records if m.subset == "all"}
    for model, beta in (("kto", 2.0), ("dpo", 0.5), ("plain", 0.1)):
        assert got[(model, "trl/rewards/chosen")].value == pytest.approx(0.5 * beta)
        assert got[(model, "trl/rewards/rejected")].value == pytest.approx(-0.5 * beta)
        auc = got[(model, "objective/auc")]
        assert (auc.value, auc.n_positive, auc.n_negative, auc.method) == (pytest.approx(0.875), 2, 2, "newcombe_auc")
    assert got[("kto", "trl/kl")].value == pytest.approx(0.25) and ("kto", "objective/loss") in got
    assert (
        not {("dpo", "trl/kl"), ("dpo", "objective/loss"), ("plain", "trl/kl"), ("plain", "objective/loss")}
        & got.keys()
    )
    assert (reward_beta(None, 0.1), reward_beta(DpoObjective(name="dpo"), 0.1)) == (0.1, 0.1)
