"""Do evalkit's intervals and gates keep their promises? Deterministic simulations that say.

Each check draws many datasets from a known truth, runs evalkit's own estimators and gate
decisions on them (`evalkit.metrics.stats`, `evalkit.metrics.paired.paired_test`, `evalkit.gate.judge.decide`), and
counts how often the promise held:
- coverage: the share of 95% intervals that contain the true value (promised: 95%);
- false pass: the share of gate rules that pass when the truth sits exactly on the boundary of
  their null hypothesis, "the release is bad" (promised: at most α = 5%);
- family error: the share of suites in which any of four rules, all at their boundaries, passes
  (promised with Holm: at most α);
- false marks: the share of reports, with no real difference between any two of four models on
  three subsets, that mark any difference significant (promised with Benjamini–Hochberg: at most α,
  since with no true difference the false discovery rate is the chance of any mark);
- power at the MDE: how often a true difference of exactly the stated minimum detectable effect is
  detected (promised: at least 80%).

Discrete shares (accuracies) have a coverage that oscillates with the true value, so their checks
draw the true accuracy afresh for every dataset (uniform over a realistic range) and report the
average coverage, as the literature on these intervals does. `KNOWN_LIMITS` are reported, not
promised: they show where a method's guarantee runs out. Seeds are fixed, so a rerun gives the
same table. `python -m evalkit.gate.calibration` prints it (`make calibration`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evalkit.gate.boundary import CONFIDENCE, GATE_RULES, Rng, false_pass_rate, family_error_rate
from evalkit.metrics import hypotheses, stats
from evalkit.metrics.paired import paired_test
from evalkit.results.estimates import Statistics

ALPHA = 0.05
SIZES = (20, 60, 200, 1000)
GATE_SIZES = (30, 60, 200, 1000)


@dataclass(frozen=True)
class Check:
    """One promise measured at one sample size."""

    name: str
    kind: Literal["coverage", "false pass", "family error", "false marks", "power"]
    n: int
    rate: float
    replicates: int

    @property
    def target(self) -> float:
        return {"coverage": CONFIDENCE, "power": 0.8}.get(self.kind, ALPHA)

    @property
    def mc_error(self) -> float:
        """Monte Carlo standard error of the rate at its target."""
        return float(np.sqrt(self.target * (1 - self.target) / self.replicates))

    @property
    def holds(self) -> bool:
        """Coverage within [93.5%, 96.5%]; power at least 80% less 3 Monte Carlo errors (an MDE may err on the
        large side: "not measurable" must stay true); error rates at most α plus 3 Monte Carlo errors."""
        if self.kind == "coverage":
            return 0.935 <= self.rate <= 0.965
        if self.kind == "power":
            return self.rate >= self.target - 3 * self.mc_error
        return self.rate <= self.target + 3 * self.mc_error


# --- coverage of intervals ---------------------------------------------------------------------------------

Covered = Callable[[Rng, int, int], float]
"""(generator, n, replicates) → the share of intervals that covered the truth."""


def _covers(interval: stats.Interval | None, truth: float) -> bool:
    return interval is not None and interval.low <= truth <= interval.high


def share_coverage(rng: Rng, n: int, replicates: int) -> float:
    """Accuracies of independent pairs (Wilson); the true accuracy uniform on [0.55, 0.95]."""
    truths = rng.uniform(0.55, 0.95, replicates)
    draws = rng.random((replicates, n)) < truths[:, None]  # (R, n)
    hits = [_covers(stats.proportion(d, CONFIDENCE).interval, p) for d, p in zip(draws, truths, strict=True)]
    return float(np.mean(hits))


def tied_share_coverage(rng: Rng, n: int, replicates: int) -> float:
    """Win rates with ties counted half (Wilson on the effective n): ties 10–50%, wins 30–90% of the rest."""
    hits = []
    for _ in range(replicates):
        ties = rng.uniform(0.1, 0.5)
        wins = (1 - ties) * rng.uniform(0.3, 0.9)
        outcomes = rng.choice([1.0, 0.5, 0.0], size=n, p=[wins, ties, 1 - ties - wins])
        hits.append(_covers(stats.proportion(outcomes, CONFIDENCE).interval, wins + ties / 2))
    return float(np.mean(hits))


def clustered_share_coverage(rng: Rng, n: int, replicates: int) -> float:
    """Accuracies of pairs that share prompts, two per prompt, with a prompt effect (intra-class ρ = 0.3)."""
    hits = []
    clusters = np.repeat(np.arange(n // 2), 2)
    for _ in range(replicates):
        mean = rng.uniform(0.6, 0.9)
        concentration = 1 / 0.3 - 1  # Beta(a, b) with a + b = 1/ρ − 1
        per_prompt = rng.beta(mean * concentration, (1 - mean) * concentration, n // 2)
        outcomes = rng.random(n) < per_prompt[clusters]
        hits.append(_covers(stats.proportion(outcomes, CONFIDENCE, clusters).interval, mean))
    return float(np.mean(hits))


def mean_coverage(draw: Callable[[Rng, tuple[int, int]], np.ndarray], truth: float) -> Covered:
    def covered(rng: Rng, n: int, replicates: int) -> float:
        values = draw(rng, (replicates, n))
        return float(np.mean([_covers(stats.mean(v, CONFIDENCE).interval, truth) for v in values]))

    return covered


def clustered_mean_coverage(rng: Rng, n: int, replicates: int) -> float:
    """Margins of pairs sharing prompts: 1 to 3 pairs a prompt, a prompt effect as large as the noise."""
    hits = []
    for _ in range(replicates):
        sizes = rng.integers(1, 4, n)
        clusters = np.repeat(np.arange(n), sizes)[:n]
        values = rng.normal(0, 1, n) + rng.normal(0, 1, n)[clusters]
        hits.append(_covers(stats.mean(values, CONFIDENCE, clusters).interval, 0.0))
    return float(np.mean(hits))


def paired_share_coverage(rng: Rng, n: int, replicates: int) -> float:
    """Δ accuracy of two models on the same pairs (Tango): discordance 10–50%, Δ anywhere it can be."""
    discordant = rng.uniform(0.1, 0.5, replicates)
    delta = discordant * rng.uniform(-0.8, 0.8, replicates)
    gained_p, lost_p = (discordant + delta) / 2, (discordant - delta) / 2
    counts = np.array([rng.multinomial(n, [g, c, 1 - g - c]) for g, c in zip(gained_p, lost_p, strict=True)])  # (R, 3)
    low, high = stats.tango_bounds(counts[:, 0], counts[:, 1], np.full(replicates, n), stats.z_score(CONFIDENCE))
    return float(np.mean((low <= delta) & (delta <= high)))


def median_coverage(rng: Rng, n: int, replicates: int) -> float:
    """Medians of skewed margins (log-normal, σ = 0.75; true median 1)."""
    values = rng.lognormal(0.0, 0.75, (replicates, n))
    return float(np.mean([_covers(stats.median(v, CONFIDENCE).interval, 1.0) for v in values]))


def spearman_coverage(rng: Rng, n: int, replicates: int) -> float:
    """Spearman's ρ of margin and length on bivariate normal data (ρ = 0.4; ρ_s = (6/π)·asin(0.2))."""
    truth = 6 / np.pi * np.arcsin(0.2)
    hits = []
    for _ in range(replicates):
        x = rng.normal(size=n)
        y = 0.4 * x + np.sqrt(1 - 0.16) * rng.normal(size=n)
        estimate = stats.spearman(x, y, CONFIDENCE)
        hits.append(estimate is not None and _covers(estimate.interval, truth))
    return float(np.mean(hits))


def _gamma(shape: float) -> Callable[[Rng, tuple[int, int]], np.ndarray]:
    return lambda rng, size: rng.gamma(shape, 1 / shape, size)  # mean 1


COVERAGE: dict[str, Covered] = {
    "share of independent pairs (wilson)": share_coverage,
    "share with ties counted half (wilson, effective n)": tied_share_coverage,
    "share of pairs sharing prompts (wilson, clustered)": clustered_share_coverage,
    "mean, normal (student t)": mean_coverage(lambda rng, size: rng.normal(1.0, 2.0, size), 1.0),
    "mean, skewed: gamma(4), skewness 1 (student t)": mean_coverage(_gamma(4.0), 1.0),
    "mean, tied: rounded normal (student t)": mean_coverage(
        lambda rng, size: np.round(rng.normal(0.3, 1.5, size)), 0.3
    ),
    "mean of pairs sharing prompts (cluster t)": clustered_mean_coverage,
    "Δ of paired accuracies (tango)": paired_share_coverage,
    "median, log-normal (order statistics)": median_coverage,
    "spearman ρ (fisher z)": spearman_coverage,
}

KNOWN_LIMITS: dict[str, Covered] = {
    "mean, strongly skewed: exponential, skewness 2 (student t)": mean_coverage(_gamma(1.0), 1.0),
}
"""Reported, not promised: Student t needs more pairs as skewness grows (about 60 at skewness 2)."""


# --- report-wide significance marks -------------------------------------------------------------------------


def false_mark_rate(rng: Rng, n: int, replicates: int, adjusted: bool) -> float:
    """Four models alike (no true difference) on three subsets of `n` pairs: the share of reports with any
    significance mark, from every pair of models on accuracy and margin, over all pairs and per subset."""
    statistics = Statistics()
    marked = 0
    for _ in range(replicates):
        correct = rng.random((4, 3 * n)) < 0.7  # (models, pairs): each pair right with 70% for every model
        margins = rng.normal(0.5, 1.0, (4, 3 * n))
        p_values = []
        groups = [np.arange(3 * n), *(np.arange(s * n, (s + 1) * n) for s in range(3))]
        for a in range(4):
            for b in range(a):
                for index in groups:
                    for metric, values in (("preference/accuracy", correct.astype(float)), ("logps/margins", margins)):
                        test = paired_test(metric, values[a, index], values[b, index], None, statistics)
                        p_values.append(test.p_value)
        ps = hypotheses.benjamini_hochberg(p_values) if adjusted else p_values
        marked += any(p < ALPHA for p in ps)
    return marked / replicates


# --- power at the minimum detectable effect ------------------------------------------------------------------


def mde_power_of_a_mean(rng: Rng, n: int, replicates: int) -> float:
    """Normal paired differences (sd 1) whose true mean is the MDE for this n: how often the t-test rejects."""
    effect = hypotheses.mde_mean(1 / np.sqrt(n), float(n - 1), ALPHA, 0.8)
    assert effect is not None
    rejected = 0
    for values in rng.normal(effect, 1.0, (replicates, n)):
        rejected += hypotheses.two_sided_p(stats.mean(values, CONFIDENCE).sampling) < ALPHA
    return rejected / replicates


def mde_power_of_paired_shares(rng: Rng, n: int, replicates: int) -> float:
    """30% discordant pairs, Δ equal to McNemar's MDE for this n: how often Tango's test rejects."""
    discordant = 0.3
    effect = hypotheses.mde_paired_shares(discordant * n, n, ALPHA, 0.8)
    assert effect is not None
    counts = rng.multinomial(n, [(discordant + effect) / 2, (discordant - effect) / 2, 1 - discordant], replicates)
    z = stats.tango_statistic(counts[:, 0], counts[:, 1], np.full(replicates, n), np.zeros(replicates))  # (R,)
    return float(np.mean(np.abs(z) > stats.z_score(1 - ALPHA)))


# --- the table ---------------------------------------------------------------------------------------------------


def run_checks(coverage: int, gates: int, marks: int, seed: int = 0) -> list[Check]:
    """Every check at every size with `coverage`, `gates` and `marks` replicates for the three kinds of
    check; each check has its own seeded generator (so one check's draws never move another's)."""
    checks: list[Check] = []

    def generator(*key: int) -> Rng:
        return np.random.default_rng([seed, *key])

    for i, (name, covered) in enumerate({**COVERAGE, **KNOWN_LIMITS}.items()):
        for n in SIZES:
            checks.append(Check(name, "coverage", n, covered(generator(1, i, n), n, coverage), coverage))
    for i, (name, sampler) in enumerate(GATE_RULES.items()):
        for n in GATE_SIZES:
            checks.append(Check(name, "false pass", n, false_pass_rate(sampler, generator(2, i, n), n, gates), gates))
    for n in GATE_SIZES[:2]:
        for j, correction in enumerate(("holm", "none")):
            rate = family_error_rate(generator(3, j, n), n, gates, correction)  # type: ignore[arg-type]
            checks.append(
                Check(f"four rules at their boundaries, correction {correction}", "family error", n, rate, gates)
            )
        checks.append(
            Check("MDE of a mean (noncentral t)", "power", n, mde_power_of_a_mean(generator(5, n), n, gates), gates)
        )
        rate = mde_power_of_paired_shares(generator(6, n), n, gates)
        checks.append(Check("MDE of paired accuracies (Connor)", "power", n, rate, gates))
    for j, adjusted in enumerate((True, False)):
        rate = false_mark_rate(generator(4, j), 60, marks, adjusted)
        label = "Benjamini–Hochberg" if adjusted else "raw p"
        checks.append(Check(f"4 alike models × 3 subsets, 48 tests, marks on {label}", "false marks", 60, rate, marks))
    return checks


def is_promised(check: Check) -> bool:
    """Known limits and the uncorrected baselines are shown for contrast, not promised."""
    return check.name not in KNOWN_LIMITS and "correction none" not in check.name and "raw p" not in check.name


def render_table(checks: list[Check]) -> str:
    lines = ["| check | promise | n | observed | MC error | holds |", "|---|---|---:|---:|---:|---|"]
    for c in checks:
        promise = {"coverage": "93.5–96.5%", "power": "≥ 80%"}.get(c.kind, f"≤ {ALPHA:.0%}")
        held = ("yes" if c.holds else "**no**") if is_promised(c) else "(shown for contrast)"
        lines.append(f"| {c.kind}: {c.name} | {promise} | {c.n} | {c.rate:.1%} | {c.mc_error:.1%} | {held} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit.gate.calibration", description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=2000, help="datasets drawn per check (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    checks = run_checks(args.replicates, args.replicates, max(args.replicates // 10, 50), args.seed)
    print(render_table(checks))
    broken = [c for c in checks if is_promised(c) and not c.holds]
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
