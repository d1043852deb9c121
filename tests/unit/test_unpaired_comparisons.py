"""Two models compared on the AUC of their rewards on the same labelled completions (`compare_unpaired`), and the
gate's superiority and non-inferiority rules on them, on data worked by hand.

Five completions, three desirable (d0, d1, d2) and two undesirable (u0, u1). The KTO model's rewards (β = ½ times
log π − log π_ref) are d = (4, 3, 1), u = (2, 0); the DPO-style model's (β = 0.1) d = (1, 3, 2), u = (2, 0): AUCs
5/6 and 3/4 (tests/unit/test_auc_difference.py works DeLong's components: r = 0.612372). In the subset `mixed`
(d0, d1, u0, u1) the KTO model's 4 and 3 beat both undesirable rewards (AUC 1); the other's 1 beats 0 only and 3
beats both (AUC ¾). The subset `good` holds only d2: no AUC, no comparison.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from evalkit.config.objectives import KtoObjective
from evalkit.config.rules import GateSpec
from evalkit.gate.judge import evaluate_gate
from evalkit.metrics.auc import mover_bounds
from evalkit.metrics.unpaired import compare_unpaired
from evalkit.results.completions import CompletionScore, completion_records
from evalkit.results.files import read_results
from evalkit.results.schema import DatasetInfo, GateVerdict, RunResult

GOLDEN = Path(__file__).parents[1] / "golden" / "results.json"
ROWS = {
    "d0": (True, "mixed"),
    "d1": (True, "mixed"),
    "d2": (True, "good"),
    "u0": (False, "mixed"),
    "u1": (False, "mixed"),
}
KTO = dict(zip(ROWS, [4.0, 3.0, 1.0, 2.0, 0.0], strict=True))
DPO = dict(zip(ROWS, [1.0, 3.0, 2.0, 2.0, 0.0], strict=True))


def rows(model: str, rewards: dict[str, float] | None, beta: float = 1.0) -> list[CompletionScore]:
    """`model`'s rows with log π − log π_ref = reward/β; `rewards` None: the reference (no reference log-probs)."""
    return [
        CompletionScore(
            id=i,
            subset=subset,
            model=model,
            label=label,
            logp=-5.0 + (rewards[i] / beta if rewards else 0.0),
            n_tokens=3,
            truncated=False,
            kl_logp=-6.0,
            kl_n_tokens=3,
            ref_logp=-5.0 if rewards else None,
            ref_kl_logp=-6.0 if rewards else None,
        )
        for i, (label, subset) in ROWS.items()
    ]


def test_later_models_against_earlier_ones_with_rewards_only() -> None:
    scores = [*rows("base", None), *rows("aligned", DPO, 0.1), *rows("kto", KTO, 0.5)]
    comparisons = compare_unpaired("u", scores, {"kto": KtoObjective(name="kto", beta=0.5)}, beta=0.1)
    assert [(c.model, c.baseline, c.subset) for c in comparisons] == [
        ("kto", "aligned", "all"),
        ("kto", "aligned", "mixed"),
    ]
    overall, mixed = comparisons
    assert overall.metric == "objective/auc" and overall.test == "mover_auc" and overall.method == "mover_auc"
    assert overall.model_value == pytest.approx(5 / 6) and overall.baseline_value == pytest.approx(3 / 4)
    assert overall.value == pytest.approx(1 / 12) and overall.n == 5
    assert (overall.n_positive, overall.n_negative) == (3, 2)
    assert overall.correlation == pytest.approx(0.612372, abs=1e-6)
    assert overall.se == pytest.approx(np.sqrt(1 / 18))
    assert overall.ci_low is not None and overall.ci_low < 0 < overall.value < (overall.ci_high or 0)
    assert mixed.value == pytest.approx(1 / 4) and (mixed.model_value, mixed.baseline_value) == (1.0, 0.75)
    assert mixed.n == 4 and mixed.higher_is_better is True


def perfect_against_chance(m: int) -> tuple[list[CompletionScore], list[CompletionScore]]:
    """m desirable and m undesirable completions: `kto` rewards every desirable one above every undesirable one
    (AUC 1); `aligned` gives all of them the same reward (AUC ½, no variance, so r = 0)."""
    ids = [(f"d{i}", True) for i in range(m)] + [(f"u{i}", False) for i in range(m)]

    def model_rows(model: str, reward: dict[bool, float]) -> list[CompletionScore]:
        return [
            CompletionScore(i, "all", model, label, -5.0 + reward[label], 3, False, -6.0, 3, -5.0, -6.0)
            for i, label in ids
        ]

    return model_rows("aligned", {True: 0.0, False: 0.0}), model_rows("kto", {True: 1.0, False: -1.0})


def run_with_completions(tmp_path: Path, scores: list[CompletionScore], *, comparisons: bool) -> RunResult:
    """The golden run with one unpaired dataset `u` whose per-completion file holds `scores` (and, with
    `comparisons`, their comparisons in results.json, as a suite run records them)."""
    golden = read_results(GOLDEN)
    (tmp_path / "completions").mkdir(parents=True)
    with (tmp_path / "completions" / "u.jsonl").open("w") as f:
        for record in completion_records(scores, 1.0):
            f.write(json.dumps(record) + "\n")
    info = DatasetInfo(
        name="u",
        path="u.jsonl",
        fingerprint="f",
        n_pairs=len(scores) // 2,
        subsets=["all"],
        pairs_file="completions/u.jsonl",
        format="unpaired",
    )
    found = compare_unpaired("u", scores, {}, beta=1.0) if comparisons else []
    kto = golden.models[-1].model_copy(update={"name": "kto"})
    return golden.model_copy(
        update={"datasets": [*golden.datasets, info], "comparisons": found, "models": [*golden.models, kto]}
    )


def judge(
    rule: dict[str, object], result: RunResult, tmp_path: Path, baseline: RunResult | None = None, swap: bool = False
) -> GateVerdict:
    """`rule` judged on `result` (in tmp_path/now, or with `swap` tmp_path/before) against `baseline` (the other)."""
    spec = GateSpec.model_validate({"rules": [{"metric": "objective/auc", "dataset": "u", **rule}]})
    here, there = (tmp_path / "before", tmp_path / "now") if swap else (tmp_path / "now", tmp_path / "before")
    (verdict,) = evaluate_gate(spec, result, here, baseline, there if baseline is not None else None)
    return verdict


def test_superiority_on_the_auc_passes_and_fails_by_mover(tmp_path: Path) -> None:
    """30 + 30 completions, AUC 1 against ½ (r = 0): MOVER's one-sided 95% lower limit is
    ½ − √((1 − l_A)² + (u_B − ½)²) with Newcombe's one-sided limits, well above 0: the rule passes; the other way
    round it fails (Δ = −½)."""
    scores = [*perfect_against_chance(30)[0], *perfect_against_chance(30)[1]]
    result = run_with_completions(tmp_path / "now", scores, comparisons=True)
    passed = judge({"kind": "superiority", "model": "kto", "baseline": "aligned"}, result, tmp_path)
    low, _ = mover_bounds(np.array(1.0), np.array(0.5), np.array(0.0), 30, 30, 1.6448536269514722)
    assert passed.status == "passed" and passed.bound == pytest.approx(float(low), abs=1e-9) and float(low) > 0.2
    assert passed.test is not None and "MOVER" in passed.test and passed.value == pytest.approx(0.5)
    failed = judge({"kind": "superiority", "model": "aligned", "baseline": "kto"}, result, tmp_path)
    assert failed.status == "failed" and failed.value == pytest.approx(-0.5)
    few = judge({"kind": "superiority", "model": "kto", "baseline": "aligned", "min_pairs": 31}, result, tmp_path)
    assert few.status == "undecidable" and "needs at least 31 desirable and 31 undesirable" in few.reason


def test_non_inferiority_on_the_auc_against_the_baseline_run(tmp_path: Path) -> None:
    """The baseline run's `aligned` (AUC ½) against this run's `kto` (AUC 1), matched by completion id from both
    runs' per-completion files: Δ = ½ clears a margin of 0.05. Against a baseline whose model was perfect too, a
    model at AUC ½ is worse by ½ and fails."""
    chance, perfect = perfect_against_chance(30)
    before = run_with_completions(tmp_path / "before", chance, comparisons=False)
    now = run_with_completions(tmp_path / "now", perfect, comparisons=False)
    rule = {"kind": "non_inferiority", "model": "kto", "baseline": "aligned", "margin": 0.05}
    verdict = judge(rule, now, tmp_path, before)
    assert verdict.status == "passed" and verdict.value == pytest.approx(0.5) and verdict.n == 60
    assert verdict.threshold == pytest.approx(-0.05)
    worse = judge({**rule, "model": "aligned", "baseline": "kto"}, before, tmp_path, now, swap=True)
    assert worse.status == "failed" and worse.value == pytest.approx(-0.5)
    assert "over 60 completions" in worse.reason


def test_compare_two_runs_on_the_same_completions_by_their_aucs(tmp_path: Path) -> None:
    """`evalkit compare`: this module's two reward sets as one model `kto` in a baseline run (the DPO-style rewards,
    AUC ¾) and in a candidate run (KTO's, AUC 5/6), matched by completion id from both runs' per-completion files:
    Δ = 1/12 with r = 0.612372, as between two models of one run; the headline row is the AUC, and the conclusion
    says it completion by completion."""
    from evalkit.metrics.unpaired import compute_unpaired_metrics
    from evalkit.report.compare import conclusion, read_comparison, render_comparison_markdown
    from evalkit.results.files import write_results

    runs = {}
    for name, rewards in (("before", DPO), ("now", KTO)):
        scores = rows("kto", rewards)
        result = run_with_completions(tmp_path / name, scores, comparisons=False)
        kto = KtoObjective(name="kto", beta=1.0)
        metrics = compute_unpaired_metrics("u", scores, kto)
        result = result.model_copy(update={"metrics": [*result.metrics, *metrics]})
        write_results(result, tmp_path / name / "results.json")
        runs[name] = tmp_path / name / "results.json"
    comparison = read_comparison(runs["before"], runs["now"])
    (paired,) = [p for p in comparison.paired if p.dataset == "u"]
    assert (paired.model, paired.baseline, paired.metric, paired.test) == ("kto", "kto", "objective/auc", "mover_auc")
    assert (paired.baseline_value, paired.model_value) == (pytest.approx(3 / 4), pytest.approx(5 / 6))
    assert paired.value == pytest.approx(1 / 12) and paired.n == 5
    assert paired.correlation == pytest.approx(0.612372, abs=1e-6)
    markdown = render_comparison_markdown(comparison)
    section = markdown.split("## u\n", 1)[1].split("##", 1)[0]
    first_row = section.strip().splitlines()[2].replace("\xa0", " ")  # under the header and its rule: the AUC
    assert first_row == "| kto | reward AUC ↑ | 0.750 [0.26, 0.96] | 0.833 [0.31, 0.98] | +0.083 | overlap |"
    assert "| u | kto | reward AUC ↑ | 0.750 | 0.833 | +0.083\xa0[" in markdown
    assert "kto on u: reward AUC 0.750 → 0.833, Δ +0.083 [" in conclusion(comparison)
    assert "completion by completion, p = " in conclusion(comparison)
