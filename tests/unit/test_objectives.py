"""The objectives' formulas on hand-worked pairs, and how their metrics are pooled, compared and reported.

Pair `a` throughout: ℓ(chosen) = −4 over T = 2 tokens, ℓ(rejected) = −6 over T = 3, both −5 under the reference.
So the log-ratios are u_c = 1, u_r = −1, the mean log-probs −2 and −2, and Δ̄ = 1/2 − (−1/3) = 5/6.
Pair `b`: ℓ(chosen) = −2 over 2 tokens, ℓ(rejected) = −6 over 3: mean log-probs −1 and −2.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from evalkit.config.objectives import (
    AlphapoObjective,
    CpoObjective,
    DpoObjective,
    KtoObjective,
    OrpoObjective,
    SimpoObjective,
    objective_from,
    objective_info,
)
from evalkit.config.rules import GateSpec
from evalkit.config.suite import parse_suite
from evalkit.errors import EvalkitError
from evalkit.gate.judge import evaluate_gate
from evalkit.metrics.cells import Cell
from evalkit.metrics.compute import compute_metrics
from evalkit.metrics.names import REGISTRY
from evalkit.metrics.objectives import objective_pairs
from evalkit.metrics.paired import compare_models
from evalkit.results.files import read_results, write_results
from evalkit.results.pairs import PairScore
from evalkit.results.schema import RunResult
from tests.unit.test_gate import pairs_run

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"

A = PairScore("a", "all", "m", -4.0, -6.0, 2, 3, False, -5.0, -5.0)
B = PairScore("b", "all", "m", -2.0, -6.0, 2, 3, False, -5.0, -5.0)


def dpo(**options: object) -> DpoObjective:
    return DpoObjective(name="dpo", **{"beta": 0.5, **options})  # type: ignore[arg-type]


def loss_of(objective: object, row: PairScore = A) -> float:
    pairs = objective_pairs(Cell.from_rows([row]), objective)  # type: ignore[arg-type]
    assert pairs is not None
    return float(pairs.loss[0])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # β = 0.5, βΔ = 0.5·(1 − (−1)) = 1: −log σ(1) = log(1 + e^−1)
        ({"loss_type": "sigmoid"}, 0.31326168751822286),
        ({"loss_type": "hinge"}, 0.0),  # max(0, 1 − 1)
        ({"loss_type": "ipo"}, (5 / 6 - 1.0) ** 2),  # (Δ̄ − 1/(2β))²
        ({"loss_type": "sigmoid_norm"}, 0.5063600460190294),  # −log σ(0.5·5/6)
        ({"loss_type": "sppo_hard"}, 0.0),  # (1 − 1)² + (−1 + 1)²
        ({"loss_type": "bco_pair"}, 0.9481539683602134),  # −log σ(0.5) − log σ(0.5)
        ({"loss_type": "nca_pair"}, 1.1981539683602134),  # −log σ(.5) − ½ log σ(−.5) − ½ log σ(.5)
        ({"loss_type": "apo_zero"}, 0.7550813375962908),  # 1 − σ(0.5) + σ(−0.5)
        ({"loss_type": "apo_down"}, 0.8914007525718496),  # σ(0.5) + 1 − σ(1)
        ({"loss_type": "robust", "label_smoothing": 0.1}, 0.1882616875182229),  # (0.9·0.3133 − 0.1·1.3133)/0.8
        # discopop at βΔ = 1, τ = 1: −log σ(1)·(1 − σ(1)) + e^−1·σ(1)
        (
            {"loss_type": "discopop", "discopop_tau": 1.0},
            0.31326168751822286 * (1 - 0.7310585786300049) + math.exp(-1) * 0.7310585786300049,
        ),
        # forward KL scores 1 − e^−u: 1 − e^−1 and 1 − e: βΔ = 0.5·(0.6321 + 1.7183) = 1.1752
        ({"loss_type": "sigmoid", "f_divergence_type": "forward_kl"}, math.log1p(math.exp(-1.1752011936438014))),
        # weighted: 0.8·sigmoid + 0.2·bco_pair
        (
            {"loss_type": ["sigmoid", "bco_pair"], "loss_weights": [0.8, 0.2]},
            0.8 * 0.31326168751822286 + 0.2 * 0.9481539683602134,
        ),
    ],
)
def test_every_dpo_loss_type_on_a_hand_worked_pair(options: dict[str, object], expected: float) -> None:
    assert loss_of(dpo(**options)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_dpo_logs_beta_log_ratio_rewards_whatever_the_loss_and_ipo_prefers_on_the_per_token_ratio() -> None:
    pairs = objective_pairs(Cell.from_rows([A]), dpo(loss_type="ipo"))
    assert pairs is not None
    assert pairs.logged["rewards/chosen"][0] == 0.5 and pairs.logged["rewards/rejected"][0] == -0.5
    assert pairs.logged["rewards/margins"][0] == 1.0 and pairs.logged["rewards/accuracies"][0] == 1.0
    assert pairs.logged["logps/chosen"][0] == -4.0
    assert pairs.margin[0] == pytest.approx(5 / 6)  # Δ̄, in nats per token: its target is 1/(2β) = 1
    norm = objective_pairs(Cell.from_rows([A]), dpo(loss_type="sigmoid_norm"))
    assert norm is not None and norm.margin[0] == pytest.approx(0.5 * 5 / 6)


def test_a_reference_based_objective_says_nothing_of_the_references_own_pairs() -> None:
    reference = PairScore("a", "all", "ref", -5.0, -5.0, 2, 3, False)
    assert objective_pairs(Cell.from_rows([reference]), dpo()) is None
    assert objective_pairs(Cell.from_rows([reference]), SimpoObjective(name="simpo")) is not None
    assert objective_pairs(Cell.from_rows([reference]), KtoObjective(name="kto")) is None


def test_kto_on_pairs_rewards_each_answer_and_has_no_loss_without_its_kl_point() -> None:
    """Pair a at β = 0.1: u_c = 1, u_r = −1, so rewards 0.1 and −0.1, margin 0.2 (the pair preferred right); TRL
    logs no reward accuracy for KTO, and KTO's loss needs the KL point only unpaired scoring estimates."""
    pairs = objective_pairs(Cell.from_rows([A]), KtoObjective(name="kto"))
    assert pairs is not None and pairs.loss is None
    assert pairs.logged["rewards/chosen"][0] == pytest.approx(0.1) and pairs.margin[0] == pytest.approx(0.2)
    assert "rewards/accuracies" not in pairs.logged
    found = {m.metric for m in compute_metrics("d", [A, B], 0.1, objectives={"m": KtoObjective(name="kto")})}
    assert {"trl/rewards/margins", "objective/accuracy", "objective/margins"} <= found
    assert not {"trl/rewards/accuracies", "objective/loss", "trl/kl"} & found
    kto = {**SUITE, "method": {"name": "kto"}}
    with pytest.raises(EvalkitError, match="'objective/loss' is not computed for 'tuned': KTO's loss needs its KL"):
        parse_suite({**kto, **rule("objective/loss")})
    with pytest.raises(EvalkitError, match="'trl/rewards/accuracies' is not computed .*logs no reward accuracy"):
        parse_suite({**kto, **rule("trl/rewards/accuracies")})
    assert parse_suite({**kto, **rule("objective/accuracy")}).named_objectives()["tuned"].name == "kto"


def test_simpo_rewards_are_beta_mean_logps_and_its_margin_takes_gamma_off() -> None:
    """β = 2, γ = 0.5 on pair a: both means are −2, so rewards −4 and −4 (a tie: TRL's accuracy 0) and the
    objective's margin is β·0 − γ = −0.5, loss −log σ(−0.5) = log(1 + e^0.5)."""
    pairs = objective_pairs(Cell.from_rows([A]), SimpoObjective(name="simpo", beta=2.0, gamma=0.5))
    assert pairs is not None
    assert pairs.logged["rewards/chosen"][0] == -4.0 and pairs.logged["rewards/rejected"][0] == -4.0
    assert pairs.logged["rewards/accuracies"][0] == 0.0 and "nll_loss" not in pairs.logged
    assert pairs.margin[0] == pytest.approx(-0.5)
    assert pairs.loss[0] == pytest.approx(0.9740769841801067)


def test_cpo_sums_log_probs_and_adds_the_nll_of_chosen() -> None:
    """CPO's sigmoid at β = 0.1 on pair a: z = −4 − (−6) = 2, −log σ(0.2) = 0.598139; NLL = 4/2 = 2, weight 1."""
    pairs = objective_pairs(Cell.from_rows([A]), CpoObjective(name="cpo"))
    assert pairs is not None
    assert pairs.logged["nll_loss"][0] == 2.0 and pairs.logged["logps/chosen"][0] == -4.0
    assert pairs.loss[0] == pytest.approx(math.log1p(math.exp(-0.2)) + 2.0)
    assert pairs.margin[0] == pytest.approx(0.2)


def test_alphapo_rewards_are_its_transform_of_the_mean_probability() -> None:
    """α = 0.5, β = 1, γ = 0.5 on pair b: r = (1 − e^(−α·m))/α, so r_c = 2(1 − e^0.5) = −1.29744 and
    r_r = 2(1 − e) = −3.43656; margin r_c − r_r − γ/β = 1.63912, loss −log σ(1.63912)."""
    objective = AlphapoObjective(name="alphapo", alpha=0.5, beta=1.0, gamma=0.5)
    pairs = objective_pairs(Cell.from_rows([B]), objective)
    assert pairs is not None
    assert pairs.logged["rewards/chosen"][0] == pytest.approx(-1.2974425414002564)
    assert pairs.logged["rewards/rejected"][0] == pytest.approx(-3.43656365691809)
    assert pairs.margin[0] == pytest.approx(2.139121115517834 - 0.5)
    assert pairs.loss[0] == pytest.approx(0.17743514041712938)


def test_orpo_log_odds_on_mean_log_probs() -> None:
    """Pair b: m_c = −1, m_r = −2; L = 1 − log((1 − e^−1)/(1 − e^−2)) = 1 + log(1 + e^−1) = 1.3132617; TRL logs
    `log_odds_chosen` = L and `log_odds_ratio` = log σ(L) = −0.2381830; loss = −m_c − λ·log σ(L) at λ = 0.1."""
    pairs = objective_pairs(Cell.from_rows([B]), OrpoObjective(name="orpo", beta=0.1))
    assert pairs is not None
    assert pairs.logged["log_odds_chosen"][0] == pytest.approx(1.3132616875182228)
    assert pairs.logged["log_odds_ratio"][0] == pytest.approx(-0.23818302641382824)
    assert pairs.logged["rewards/chosen"][0] == pytest.approx(-0.1) and pairs.logged["logps/rejected"][0] == -2.0
    assert pairs.margin[0] == pytest.approx(1.3132616875182228)
    assert pairs.loss[0] == pytest.approx(1.0238183026413827)


def test_ld_dpo_weights_the_tokens_past_the_shorter_answer() -> None:
    """Pair a with its shared parts: the chosen answer (2 tokens) is the shorter, so ℓ_shared(chosen) = ℓ = −4; the
    rejected one's first 2 tokens have −4.5 of its −6, the reference's −3 of its −5 (its chosen: −5 in all). At
    α = 0.5: ℓ(rejected) = −4.5 + 0.5·(−1.5) = −5.25, ℓ_ref(rejected) = −3 + 0.5·(−2) = −4, so u_c = 1, u_r = −1.25,
    TRL logs rewards 0.5 and −0.625 (β = 0.5) and logps −4 and −5.25, and the sigmoid loss is −log σ(1.125)."""
    row = dataclasses.replace(
        A,
        logp_chosen_shared=-4.0,
        logp_rejected_shared=-4.5,
        ref_logp_chosen_shared=-5.0,
        ref_logp_rejected_shared=-3.0,
    )
    pairs = objective_pairs(Cell.from_rows([row]), dpo(ld_alpha=0.5))
    assert pairs is not None
    assert pairs.logged["logps/rejected"][0] == pytest.approx(-5.25) and pairs.logged["logps/chosen"][0] == -4.0
    assert pairs.logged["rewards/rejected"][0] == pytest.approx(-0.625)
    assert pairs.margin[0] == pytest.approx(1.125)
    assert pairs.loss[0] == pytest.approx(math.log1p(math.exp(-1.125)))
    # α = 1 is plain DPO; rows without the shared parts (files written before them) give LD-DPO no numbers.
    assert loss_of(dpo(ld_alpha=1.0), row) == pytest.approx(loss_of(dpo(), A))
    assert objective_pairs(Cell.from_rows([A]), dpo(ld_alpha=0.5)) is None


def test_orpo_nll_covers_the_prompt_and_the_chosen_answer() -> None:
    """Pair b with a prompt of 4 tokens, whose last 3 have log-prob −3.5: TRL's NLL is the mean over those 3 and the
    chosen answer's 2, −(−3.5 − 2)/(3 + 2) = 1.1; the loss is 1.1 − λ·log σ(L) = 1.1 + 0.1·0.2381830."""
    row = dataclasses.replace(B, logp_prompt=-3.5, n_tokens_prompt=3)
    pairs = objective_pairs(Cell.from_rows([row]), OrpoObjective(name="orpo", beta=0.1))
    assert pairs is not None
    assert pairs.logged["nll_loss"][0] == pytest.approx(1.1)
    assert pairs.loss[0] == pytest.approx(1.1 + 0.023818302641382824)
    reported = {m.metric for m in compute_metrics("d", [row], 0.1, objectives={"m": OrpoObjective(name="orpo")})}
    assert "trl/nll_loss" in reported
    assert "nll_loss" not in objective_pairs(Cell.from_rows([B]), OrpoObjective(name="orpo")).logged  # type: ignore[union-attr]


def test_pooled_over_pairs_with_intervals_and_labelled_by_quantity() -> None:
    """SimPO at β = 2, γ = 0.5: margins −0.5 (pair a) and 2·1 − 0.5 = 1.5 (pair b): accuracy ½, mean 0.5."""
    objective = SimpoObjective(name="simpo", beta=2.0, gamma=0.5)
    found = {m.metric: m for m in compute_metrics("d", [A, B], 0.1, objectives={"m": objective})}
    assert found["objective/accuracy"].value == 0.5 and found["objective/accuracy"].n == 2
    assert found["objective/accuracy"].ci_low is not None and found["objective/accuracy"].ci_low < 0.5
    assert found["objective/margins"].value == pytest.approx(0.5)
    assert found["trl/rewards/accuracies"].value == 0.5  # b only: −2 > −4
    assert REGISTRY["objective/margins"].quantity == "objective" and not REGISTRY["objective/margins"].scale_free
    assert REGISTRY["trl/log_odds_ratio"].quantity == "trl_logged" and REGISTRY["trl/log_odds_ratio"].objectives
    assert "objective/accuracy" not in {m.metric for m in compute_metrics("d", [A, B], 0.1)}  # none named


def test_models_of_different_objectives_are_compared_on_scale_free_metrics_only() -> None:
    rows = [A, B, A.as_model("n"), B.as_model("n")]
    simpo = SimpoObjective(name="simpo", beta=2.0, gamma=0.5)
    mixed = {c.metric for c in compare_models("d", rows, 0.1, objectives={"m": dpo(), "n": simpo})}
    assert {"objective/accuracy", "trl/rewards/accuracies"} <= mixed
    assert not mixed & {"objective/margins", "objective/loss", "trl/rewards/margins"}
    same = {c.metric for c in compare_models("d", rows, 0.1, objectives={"m": simpo, "n": simpo})}
    assert {"objective/margins", "objective/loss", "trl/rewards/margins"} <= same


def test_the_objective_round_trips_through_its_results_record() -> None:
    objective = dpo(loss_type=["sigmoid", "bco_pair"], loss_weights=[0.8, 0.2])
    info = objective_info(objective)
    assert info.label == "dpo (sigmoid+bco_pair, β=0.5)" and not info.reference_free
    assert objective_from(info) == objective
    assert objective_from(info.model_copy(update={"settings": {"name": "later"}})) is None


SUITE = {
    "name": "s",
    "output_dir": "o",
    "datasets": [{"name": "d", "path": "p.jsonl"}],
    "models": [{"name": "base", "path": "b"}, {"name": "tuned", "path": "t"}],
    "reference": "base",
}


def rule(metric: str) -> dict[str, object]:
    return {"gate": {"rules": [{"kind": "absolute", "model": "tuned", "metric": metric, "at_least": 0.5}]}}


def test_a_rule_on_an_objectives_metric_needs_a_model_scored_on_one_that_has_it() -> None:
    with pytest.raises(EvalkitError, match="'objective/accuracy' is a metric of the model's objective"):
        parse_suite({**SUITE, **rule("objective/accuracy")})
    simpo = {**SUITE, "method": {"name": "simpo"}}
    with pytest.raises(EvalkitError, match="'trl/log_odds_ratio' is logged by orpo only; 'tuned' is scored with"):
        parse_suite({**simpo, **rule("trl/log_odds_ratio")})
    assert parse_suite({**simpo, **rule("objective/accuracy")}).named_objectives()["tuned"].name == "simpo"
    ld = {**SUITE, "method": {"name": "dpo", "ld_alpha": 0.5}}
    assert parse_suite({**ld, **rule("objective/accuracy")}).named_objectives()["tuned"].name == "dpo"


def test_cells_keep_the_per_pair_order_of_the_rows() -> None:
    pairs = objective_pairs(Cell.from_rows([B, A]), dpo())
    assert pairs is not None and np.allclose(pairs.logged["logps/chosen"], [-4.0, -2.0])  # sorted by id: a, b


def test_reports_name_each_models_objective_and_say_rewards_of_different_objectives_do_not_compare() -> None:
    from evalkit.report.document import render_markdown
    from evalkit.report.html import render_html
    from evalkit.report.objectives import objectives_note
    from evalkit.results.files import read_results

    golden = read_results(Path(__file__).parents[1] / "golden" / "results.json")
    assert objectives_note(golden) == "" and "objective" not in render_markdown(golden)  # no `method`: as before
    simpo = objective_info(SimpoObjective(name="simpo", beta=2.0, gamma=0.5))
    last = golden.models[-1].model_copy(update={"objective": simpo})
    result = golden.model_copy(update={"models": [*golden.models[:-1], last]})
    note = objectives_note(result)
    assert "different objectives (dpo (sigmoid, β=0.1), the default; simpo (β=2, γ=0.5))" in note
    assert "not comparable" in note and "scale-free" in note
    page = render_markdown(result)
    assert f"| {last.name} | simpo (β=2, γ=0.5) |" in page and note in page
    assert "simpo (β=2, γ=0.5)" in render_html(result)


def objective_run(tmp_path: Path, name: str, right: list[int], objective: object) -> tuple[RunResult, Path]:
    """A copy of the golden run whose model `aligned`, scored with `objective`, is right (1) or wrong (0) on
    q0..qn: ℓ(chosen) −1 (right) or −3 (wrong) against ℓ(rejected) −2, two tokens each, −2 under the reference
    (the per-pair file `pairs_run` writes)."""
    result, directory = pairs_run(tmp_path, name, right)
    recorded = objective_info(objective)  # type: ignore[arg-type]
    models = [m.model_copy(update={"objective": recorded}) if m.name == "aligned" else m for m in result.models]
    result = result.model_copy(update={"models": models})
    write_results(result, directory / "results.json")
    return result, directory


def test_a_simpo_candidate_is_gated_against_a_dpo_baseline_on_the_pairs_both_scored(tmp_path: Path) -> None:
    """The DPO baseline is right on q0..q7 of 8 by its objective's margin (β·(u_c − u_r) = 0.1 > 0), the SimPO
    candidate on q0..q5 (β·Δ mean log-prob = 2·0.5 > 0): Δ objective accuracy = −0.25. Non-inferior within 1.01,
    not within 0.1; their margins are on different scales, so a rule on them cannot be decided."""
    before, before_dir = objective_run(tmp_path, "baseline", [1] * 8, dpo(beta=0.1))
    simpo = SimpoObjective(name="simpo", beta=2.0, gamma=0.0)
    _, now_dir = objective_run(tmp_path, "now", [1] * 6 + [0] * 2, simpo)
    rules = [
        {"kind": "non_inferiority", "model": "aligned", "metric": metric, "margin": margin, "min_pairs": 2}
        for metric, margin in (("objective/accuracy", 0.1), ("objective/accuracy", 1.01), ("objective/margins", 1.0))
    ]
    spec = GateSpec.model_validate({"rules": rules})
    tight, loose, scaled = evaluate_gate(spec, read_results(now_dir / "results.json"), now_dir, before, before_dir)
    assert tight.value == pytest.approx(-0.25) and tight.n == 8 and not tight.passed
    assert loose.passed
    assert scaled.status == "undecidable"
