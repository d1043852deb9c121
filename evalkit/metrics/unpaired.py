"""Metrics of labelled completions (KTO style), pooled over completions, never over batches.

For a completion with summed log-prob ℓ under the model and ℓ_ref under the reference, and its KL
partner (the same prompt with another row's completion, `evalkit.scoring.unpaired`) with ℓ' and ℓ'_ref:
  reward r      = β·(ℓ − ℓ_ref)
  KL point z    = max(0, mean over every row of (ℓ' − ℓ'_ref))         (TRL's `kl`; pooled, see below)
  KTO loss      = w_D·(1 − σ(β·((ℓ − ℓ_ref) − z)))  for a desirable completion,
                  w_U·(1 − σ(β·(z − (ℓ − ℓ_ref))))  for an undesirable one
  (`apo_zero_unpaired`: w_D·(1 − σ(β·(ℓ − ℓ_ref))) and w_U·σ(β·(ℓ − ℓ_ref)), with no KL point).

What TRL's KTOTrainer logs, pooled (rows labelled desirable are its "chosen", undesirable its "rejected"):
  trl/rewards/chosen, trl/rewards/rejected   mean r per label, Student t intervals (cluster-robust where rows
                                             share a prompt)
  trl/logps/chosen, trl/logps/rejected       mean ℓ per label, the same intervals
  trl/rewards/margins                        trl/rewards/chosen − trl/rewards/rejected: a difference of two
                                             means, stated without an interval
  trl/kl                                     z, stated without an interval (a clamp of a mean)
What the objective optimises, and what evalkit adds:
  objective/loss                             mean KTO loss over every row at the pooled z (TRL's eval_loss with
                                             one batch holding the dataset), Student t interval given z
  objective/auc                              the separation of desirable from undesirable rewards: P(r_D > r_U),
                                             ties half, with Newcombe's interval (`evalkit.metrics.auc`): scale-
                                             free, so models of different objectives compare on it

Two models are compared on the same completions (`compare_unpaired`) by their AUCs alone: the difference with MOVER's
interval and test (`evalkit.metrics.auc.auc_difference`), whatever the two objectives, since the AUC is scale-free.

TRL's own eval log of rewards/* and logps/* is a mean of per-batch means; it equals these with an eval
batch of one completion. Its `kl` and loss are per batch; they equal these with one batch of all rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from scipy.special import expit

from evalkit.config.objectives import KTO_METRICS, DpoObjective, KtoObjective, Objective
from evalkit.errors import EvalkitError
from evalkit.metrics import auc, hypotheses, stats
from evalkit.metrics.compute import DEFAULT_STATISTICS
from evalkit.metrics.names import ALL_SUBSETS, REGISTRY
from evalkit.metrics.stats import sampling_fields
from evalkit.results.completions import CompletionScore
from evalkit.results.estimates import Comparison, Metric, Statistics


def compute_unpaired_metrics(
    dataset: str,
    scores: Sequence[CompletionScore],
    objective: KtoObjective,
    statistics: Statistics = DEFAULT_STATISTICS,
) -> list[Metric]:
    """Metrics of every model in `scores`, over all completions and per subset, with intervals."""
    out: list[Metric] = []
    for model, subset, rows in _cells(dataset, scores):
        for name, estimate in unpaired_estimates(rows, objective, statistics.confidence_level).items():
            out.append(
                Metric(
                    dataset=dataset,
                    subset=subset,
                    model=model,
                    metric=name,
                    value=estimate.value,
                    n=estimate.n,
                    higher_is_better=REGISTRY[name].higher_is_better,
                    **estimate.bounds,
                    **sampling_fields(estimate.sampling),
                )
            )
    return out


def suite_unpaired_metrics(
    dataset: str,
    scores: Sequence[CompletionScore],
    objectives: Mapping[str, Objective],
    beta: float,
    statistics: Statistics = DEFAULT_STATISTICS,
) -> list[Metric]:
    """The metrics of every model of a suite run on one unpaired dataset, each by its objective: a KTO model's with
    its own β, KL point and loss; any other model's with the DPO-style implicit reward β·(ℓ − ℓ_ref) at its DPO β
    (else `beta`, the suite's `scoring.beta`), and no KL point or loss, which belong to KTO's objective alone."""
    out: list[Metric] = []
    for model in dict.fromkeys(s.model for s in scores):
        rows = [s for s in scores if s.model == model]
        objective = objectives.get(model)
        if isinstance(objective, KtoObjective):
            out += compute_unpaired_metrics(dataset, rows, objective, statistics)
            continue
        implicit = KtoObjective(name="kto", beta=reward_beta(objective, beta))
        out += [m for m in compute_unpaired_metrics(dataset, rows, implicit, statistics) if m.metric not in KTO_METRICS]
    return out


def compare_unpaired(
    dataset: str,
    scores: Sequence[CompletionScore],
    objectives: Mapping[str, Objective],
    beta: float,
    statistics: Statistics = DEFAULT_STATISTICS,
) -> list[Comparison]:
    """`objective/auc` of every later-listed model against every earlier-listed one (the order of `compare_models`),
    on the completions both scored (matched by id), over all rows and per subset. Only models with rewards are
    compared: the reference's are 0 by definition, so its AUC says nothing. Each model's rewards are those of its
    `objective/auc` metric (`reward_beta`; the AUC does not change with a positive β)."""
    rewards: dict[str, dict[str, tuple[CompletionScore, float]]] = {}
    for model, _, rows in _cells(dataset, scores):
        if model in rewards or any(r.ref_logp is None for r in rows):
            continue
        scale = reward_beta(objectives.get(model), beta)
        rewards[model] = {r.id: (r, scale * (r.logp - r.ref_logp)) for r in rows if r.ref_logp is not None}
    models, out = list(rewards), []
    for position, model in enumerate(models):
        for baseline in models[:position]:
            shared = sorted(rewards[model].keys() & rewards[baseline].keys())
            rows = [rewards[model][i][0] for i in shared]
            groups = {ALL_SUBSETS: shared} | {
                subset: [r.id for r in rows if r.subset == subset]
                for subset in sorted({r.subset for r in rows} - {ALL_SUBSETS})
            }
            for subset, ids in groups.items():
                ours = np.array([rewards[model][i][1] for i in ids])
                theirs = np.array([rewards[baseline][i][1] for i in ids])
                label = np.array([rewards[model][i][0].label for i in ids], dtype=bool)
                if label.any() and (~label).any():
                    where = (dataset, subset, model, baseline)
                    out.append(_auc_comparison(where, ours, theirs, label, statistics.confidence_level))
    return out


def compare_with_earlier_run(
    dataset: str,
    rows: Sequence[CompletionScore],
    earlier_rows: Sequence[CompletionScore],
    earlier_name: str,
    objectives: tuple[Objective | None, Objective | None],
    beta: float,
    statistics: Statistics = DEFAULT_STATISTICS,
) -> list[Comparison]:
    """One model's `objective/auc` (its `rows` in this run) against a model's in an earlier run (`earlier_rows`), on
    the completions both scored, over all rows and per subset, as `compare_unpaired` compares two models of one run:
    `baseline` is `earlier_name`, under which the earlier rows are told apart from this run's (whatever the two
    models' own names). `objectives`: the earlier model's, this one's, each as its run recorded it."""
    names = {r.model for r in rows}
    assert len(names) == 1 and earlier_name not in names, "one model of this run, and a name of its own for the other"
    (model,) = names
    both = [*(dataclasses.replace(r, model=earlier_name) for r in earlier_rows), *rows]
    recorded = {earlier_name: objectives[0], model: objectives[1]}
    known = {name: objective for name, objective in recorded.items() if objective is not None}
    return [c for c in compare_unpaired(dataset, both, known, beta, statistics) if c.baseline == earlier_name]


def _auc_comparison(
    where: tuple[str, str, str, str], ours: np.ndarray, theirs: np.ndarray, label: np.ndarray, confidence: float
) -> Comparison:
    """The record of Δ objective/auc of `ours` over `theirs` (rewards on the same rows, `label` true: desirable)."""
    dataset, subset, model, baseline = where
    delta = auc.auc_difference(ours[label], ours[~label], theirs[label], theirs[~label], confidence)
    s = delta.sampling
    testable = s.method == "mover_auc"
    return Comparison(
        dataset=dataset,
        subset=subset,
        model=model,
        baseline=baseline,
        metric="objective/auc",
        model_value=auc.mann_whitney_auc(ours[label], ours[~label]),
        baseline_value=auc.mann_whitney_auc(theirs[label], theirs[~label]),
        value=delta.value,
        n=delta.n,
        higher_is_better=REGISTRY["objective/auc"].higher_is_better,
        test="mover_auc",
        p_value=hypotheses.two_sided_p(s) if testable else 1.0,
        method=s.method,
        se=s.se,
        mde=None,
        n_positive=int(label.sum()),
        n_negative=int((~label).sum()),
        correlation=s.correlation,
        **delta.bounds,
    )


def reward_beta(objective: Objective | None, beta: float) -> float:
    """The β of a model's reward on labelled completions: KTO's or DPO's own, else `beta` (`scoring.beta`)."""
    if isinstance(objective, KtoObjective) or (isinstance(objective, DpoObjective) and objective.beta is not None):
        assert objective.beta is not None
        return objective.beta
    return beta


def unpaired_estimates(
    rows: Sequence[CompletionScore], objective: KtoObjective, confidence: float
) -> dict[str, stats.Estimate]:
    """Metric name → estimate over `rows` (one model); the reward metrics only where every row has a reference."""
    rows = sorted(rows, key=lambda r: r.id)  # the same arrays whatever order the rows were scored in
    label = np.array([r.label for r in rows], dtype=bool)
    logp = np.array([r.logp for r in rows])
    prompts = np.array([r.prompt_key for r in rows]) if all(r.prompt_key for r in rows) else None

    def mean(values: np.ndarray, where: np.ndarray) -> stats.Estimate:
        return stats.mean(values[where], confidence, prompts[where] if prompts is not None else None)

    out: dict[str, stats.Estimate] = {}
    for side, where in (("chosen", label), ("rejected", ~label)):
        if where.any():
            out[f"trl/logps/{side}"] = mean(logp, where)
    if any(r.ref_logp is None or r.ref_kl_logp is None for r in rows):
        return out
    ratio = logp - np.array([r.ref_logp for r in rows])
    reward = objective.beta * ratio
    for side, where in (("chosen", label), ("rejected", ~label)):
        if where.any():
            out[f"trl/rewards/{side}"] = mean(reward, where)
    if label.any() and (~label).any():
        margin = out["trl/rewards/chosen"].value - out["trl/rewards/rejected"].value
        out["trl/rewards/margins"] = stats.descriptive(margin, len(rows))
        out["objective/auc"] = auc.auc(reward[label], reward[~label], confidence)
    point = kl_point(rows) if objective.loss_type == "kto" else 0.0
    if objective.loss_type == "kto":
        out["trl/kl"] = stats.descriptive(point, len(rows))
    out["objective/loss"] = mean(kto_losses(ratio, label, point, objective), np.ones_like(label))
    return out


def kl_point(rows: Sequence[CompletionScore]) -> float:
    """KTO's reference point z = max(0, mean of ℓ' − ℓ'_ref over the KL partners of `rows`), pooled."""
    shifts = [r.kl_logp - r.ref_kl_logp for r in rows if r.ref_kl_logp is not None]
    assert len(shifts) == len(rows), "every row needs the reference's log-prob of its KL partner"
    return max(0.0, float(np.mean(shifts)))


def kto_losses(ratio: np.ndarray, label: np.ndarray, point: float, objective: KtoObjective) -> np.ndarray:
    """Each row's weighted loss (the module doc), from its log-ratio ℓ − ℓ_ref, label and the KL point z."""
    beta = objective.beta
    if objective.loss_type == "kto":
        desirable, undesirable = 1 - expit(beta * (ratio - point)), 1 - expit(beta * (point - ratio))
    else:  # apo_zero_unpaired
        desirable, undesirable = 1 - expit(beta * ratio), expit(beta * ratio)
    return np.asarray(
        np.where(label, objective.desirable_weight * desirable, objective.undesirable_weight * undesirable)
    )


def _cells(dataset: str, scores: Sequence[CompletionScore]) -> Iterator[tuple[str, str, list[CompletionScore]]]:
    """(model, subset, rows) for every model in order of appearance, over all rows, then per subset; non-finite
    log-probs are refused, as for pairs (`evalkit.metrics.cells.check_scores`)."""
    for model in dict.fromkeys(s.model for s in scores):
        rows = [s for s in scores if s.model == model]
        values = [(r.id, v) for r in rows for v in (r.logp, r.kl_logp, r.ref_logp, r.ref_kl_logp) if v is not None]
        bad = sorted({row_id for row_id, v in values if not np.isfinite(v)})
        if bad:
            raise EvalkitError(
                f"dataset {dataset!r}, model {model!r}: non-finite log-probs for completions {bad[:10]}; "
                "evalkit refuses to average them (check the model's dtype)"
            )
        yield model, ALL_SUBSETS, rows
        for subset in sorted({r.subset for r in rows} - {ALL_SUBSETS}):
            yield model, subset, [r for r in rows if r.subset == subset]
