"""Release gates: every rule a one-sided hypothesis test, the rules corrected together.

A gate reads `results.json` (and, for rules against a baseline run, the per-pair files beside
both results), never a model. Each rule's null hypothesis is "the release is bad" (the metric
below its threshold, the candidate worse than the baseline by more than the margin, the drift at
or above its budget); the rule passes only when the data reject it at `gate.alpha`, one-sided,
with the test recorded beside the numbers (`evalkit.metrics.stats`: the same method as the metric's
interval, so the rule passes exactly when its one-sided (1 − α) bound clears the threshold).
With `correction: holm` (the default) the p-values of all tested rules are adjusted together
by Holm's step-down, so the chance that any rule passes while its null holds is at most α.
(A release needs every rule, so the overall decision is level α even uncorrected, by the
intersection-union principle; Holm makes each rule's own verdict trustworthy too.)

Each verdict has a status. `passed` and `failed` are decisions. A rule that cannot be decided (a
metric the run did not compute, fewer pairs than `min_pairs`, an undefined interval, a baseline
without the model) is `undecidable`: a problem to fix, exit code 2, never a pass. A rule that needs
a baseline run when none is recorded yet (the first run of a suite) is `skipped`: reported as such
everywhere, never as a pass, and it does not stop the run that records the first baseline. The
baseline run's models are found by role and fingerprint (`evalkit.results.matching`), so a suite run and a
`bench --model` run gate against each other although their models have other names.

This module decides; each kind's evidence comes from `evalkit.gate.kinds`. The verdicts are then written by
`evalkit.gate.junit` (`junit.xml`), `evalkit.gate.summary` (`summary.md`, `$GITHUB_STEP_SUMMARY`),
`evalkit.gate.terminal`, the reports, and `results.json` (the run's own for `bench`; for `evalkit gate`, the
judged copy in `--out`, never over the file it read).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.config.rules import CapabilityRule, GateRule, GateSpec, PreferenceRule, check_rule_names
from evalkit.gate.evidence import (
    NOT_A_NUMBER,
    Judged,
    NoBaselineYet,
    Run,
    Undecidable,
    check_numbers,
    nan_in,
    open_verdict,
)
from evalkit.gate.kinds import judge_rule
from evalkit.metrics import hypotheses
from evalkit.report import verdicts as verdict_words
from evalkit.results.schema import GateStatus, GateVerdict, RunResult


def evaluate_gate(
    spec: GateSpec,
    result: RunResult,
    results_dir: Path,
    baseline: RunResult | None = None,
    baseline_dir: Path | None = None,
) -> list[GateVerdict]:
    """The verdict of every rule of `spec` on `result` (and the baseline run, for rules that need one)."""
    models = [m.name for m in result.models]
    datasets = [d.name for d in result.datasets]
    run = Run(spec, result, results_dir, baseline, baseline_dir)
    judged: list[Judged | GateVerdict] = []
    for index, rule in enumerate(spec.rules):
        where = f"gate.rules.{index} ({rule.title})"
        try:
            check_rule_names(rule, where, models, datasets)
            judged.append(check_numbers(judge_rule(_with_minimum(rule, spec), run, where), where))
        except (Undecidable, ValueError) as problem:
            judged.append(_unjudged(rule, "undecidable", str(problem), spec))
        except NoBaselineYet as waiting:
            judged.append(_unjudged(rule, "skipped", str(waiting), spec))
    return decide(judged, spec)


def exit_code(verdicts: Sequence[GateVerdict]) -> int:
    """0 when no rule failed or was undecidable (skipped rules wait for a baseline), 1 when a rule failed, 2 when a
    rule could not be decided: fix that first, it may hide a failure."""
    return {"undecidable": 2, "failed": 1}.get(verdict_words.outcome(verdicts), 0)


def _unjudged(rule: GateRule, status: GateStatus, why: str, spec: GateSpec) -> GateVerdict:
    where: dict[str, Any] = {"model": rule.model, "subset": "all"}  # a rule on no subset reads all of its data
    if isinstance(rule, PreferenceRule):
        where |= {"dataset": rule.dataset, "subset": rule.subset, "metric": rule.metric}
    elif isinstance(rule, CapabilityRule):
        where |= {"dataset": rule.task, "metric": rule.metric}
    return open_verdict(rule, why, status, alpha=spec.alpha, **where)


def decide(judged: Sequence[Judged | GateVerdict], spec: GateSpec) -> list[GateVerdict]:
    """Verdicts: each tested rule's one-sided p, corrected together (Holm), compared with α.

    A rule already settled (undecidable, skipped) is passed through; an undecidable rule counts in Holm's
    family as p = 1, as it would have been tested, so fixing it never makes the other verdicts laxer."""
    raw = [_p_value(j) if isinstance(j, Judged) else None for j in judged]
    tested = [
        i
        for i, j in enumerate(judged)
        if (j.sampling is not None if isinstance(j, Judged) else j.status == "undecidable")
    ]
    family = [1.0 if p is None else p for p in (raw[i] for i in tested)]
    adjusted = dict(zip(tested, hypotheses.holm(family) if spec.correction == "holm" else family, strict=True))
    return [_verdict(j, raw[i], adjusted.get(i), spec) if isinstance(j, Judged) else j for i, j in enumerate(judged)]


def _p_value(j: Judged) -> float | None:
    if j.sampling is None or _too_few(j) is not None:
        return None
    test = hypotheses.p_greater if j.higher_passes else hypotheses.p_less
    p = test(j.sampling, j.null)
    return None if nan_in(p) else p  # counted in Holm's family as p = 1, as an undecidable rule is


def _too_few(j: Judged) -> str | None:
    minimum = j.rule.min_pairs
    auc = j.sampling is not None and j.sampling.method in ("newcombe_auc", "mover_auc")
    groups = j.sampling if auc else None
    if groups is not None and minimum is not None:  # an AUC or two: the minimum holds for each label's completions
        smaller = min(groups.n_positive or 0, groups.n_negative or 0)
        if smaller < minimum:
            return f"needs at least {minimum} desirable and {minimum} undesirable completions, has {smaller} in one"
        return None
    n = j.verdict.n or 0
    if minimum is not None and n < minimum:
        return f"needs at least {minimum} {j.rule.unit}, has {n}"
    return None


def _verdict(j: Judged, p: float | None, adjusted: float | None, spec: GateSpec) -> GateVerdict:
    alpha, verdict = spec.alpha, j.verdict
    if j.sampling is None:
        too_few = _too_few(j)
        status: GateStatus = "undecidable" if too_few else "passed" if j.passes_on_value else "failed"
        why = too_few or "judged on the value alone (not a test: no error-rate guarantee)"
        settled = {"passed": status == "passed", "status": status, "reason": f"{verdict.reason}: {why}", "alpha": alpha}
        return verdict.model_copy(update=settled)
    bound_of = hypotheses.lower_bound if j.higher_passes else hypotheses.upper_bound
    bound = bound_of(j.sampling, alpha)
    problem = _too_few(j)
    if problem is None and (nan_in(bound, j.sampling.value) or (p is None and nan_in(j.sampling.se))):
        problem = NOT_A_NUMBER
    if problem is None and (p is None or bound is None):
        problem = "its interval is undefined (too few pairs, or no spread at all)"
    if problem is not None:
        update: dict[str, object] = {
            "passed": False,
            "status": "undecidable",
            "reason": f"{verdict.reason}: {problem}",
            "alpha": alpha,
        }
        return verdict.model_copy(update=update)
    assert p is not None and adjusted is not None and bound is not None
    passed = adjusted <= alpha
    side, holds, fails = ("lower", ">", "<=") if j.higher_passes else ("upper", "<", ">=")
    clears = bound > j.null if j.higher_passes else bound < j.null
    corrected = f" (Holm {_p(adjusted)})" if spec.correction == "holm" else ""
    why = (
        f"one-sided {1 - alpha:.0%} {side} bound {bound:+.4g} {holds if clears else fails} {j.null:+.4g}; "
        f"p = {_p(p)}{corrected} {'<=' if passed else '>'} α = {alpha:g}"
    )
    return verdict.model_copy(
        update={
            "passed": passed,
            "status": "passed" if passed else "failed",
            "reason": f"{verdict.reason}: {why}",
            "p_value": p,
            "p_adjusted": adjusted,
            "bound": bound,
            "alpha": alpha,
        }
    )


def _p(p: float) -> str:
    return f"{p:.2g}"


def _with_minimum(rule: GateRule, spec: GateSpec) -> GateRule:
    return rule if rule.min_pairs is not None else rule.model_copy(update={"min_pairs": spec.min_pairs})
