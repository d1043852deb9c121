"""How long rendering the reports takes, and how large they get, at the scale of a real release run:
10 models (a reference, 8 checkpoints of one training run and its final model) × 5 datasets ×
2,000 pairs, 3 subsets each, every comparison between every two models with its flipped ids, a
32-prompt generation panel and a 1,000-step training curve. The results are synthetic but
shaped and sized like `evalkit bench` output (metrics and flips computed from the per-pair rows).

Timings go to pytest-benchmark's table; sizes to its `extra_info` and to stdout. No assertion is
on time: a slow CI machine must not fail the build.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from evalkit.metrics.flips import flips_to_show
from evalkit.report.compare import write_comparison
from evalkit.report.document import write_reports
from evalkit.report.views import read_pairs
from evalkit.results.estimates import Comparison, Flips, Metric, ReliabilityBin, Statistics
from evalkit.results.files import read_results, write_jsonl, write_results
from evalkit.results.generation import (
    GenerationPrompt,
    GenerationResult,
    GenerationSample,
    GenerationStats,
    JudgeSummary,
    WinRate,
)
from evalkit.results.schema import (
    SCHEMA_VERSION,
    CurvePoint,
    DatasetInfo,
    Environment,
    ModelInfo,
    PairText,
    RunResult,
    ScoringInfo,
    SuiteInfo,
    TokenizationAudit,
    TrainingInfo,
)

MODELS = ["sft", *(f"dpo@{step}" for step in range(200, 1800, 200)), "dpo"]
DATASETS, PAIRS, SUBSETS, BETA = 5, 2000, ["code", "chat", "safety"], 0.1


def _cell(dataset: str, subset: str, model: str, metric: str, values: np.ndarray, higher: bool | None) -> Metric:
    mean, half = float(values.mean()), 1.96 * float(values.std()) / np.sqrt(values.size)
    return Metric(
        dataset=dataset,
        subset=subset,
        model=model,
        metric=metric,
        value=mean,
        ci_low=mean - half,
        ci_high=mean + half,
        n=int(values.size),
        higher_is_better=higher,
    )


def synthetic_run(out: Path, seed: int = 0) -> Path:
    """Write results.json and the per-pair files of a run of the benchmark's size into `out`."""
    rng = np.random.default_rng(seed)
    metrics, comparisons, reliability, infos, audits, texts = [], [], [], [], [], []
    for d in range(DATASETS):
        dataset = f"data{d}"
        ids = [f"{SUBSETS[i % 3]}-{i:05d}" for i in range(PAIRS)]
        subset_of = np.array([SUBSETS[i % 3] for i in range(PAIRS)])
        ref_c, ref_r = rng.normal(-60, 15, PAIRS), rng.normal(-60, 15, PAIRS)
        tokens_c, tokens_r = rng.integers(20, 400, PAIRS), rng.integers(20, 400, PAIRS)
        rows, correct, margins = [], {}, {}
        for k, model in enumerate(MODELS):
            shift = 0.0 if model == "sft" else 2.0 * k
            logp_c = ref_c + rng.normal(shift * 0.2, 3, PAIRS)
            logp_r = ref_r + rng.normal(-shift, 3, PAIRS)
            correct[model] = (logp_c > logp_r).astype(float)
            if model != "sft":
                margins[model] = BETA * ((logp_c - ref_c) - (logp_r - ref_r))
            for i in range(PAIRS):
                row = {
                    "id": ids[i],
                    "subset": subset_of[i],
                    "model": model,
                    "logp_chosen": float(logp_c[i]),
                    "logp_rejected": float(logp_r[i]),
                    "n_tokens_chosen": int(tokens_c[i]),
                    "n_tokens_rejected": int(tokens_r[i]),
                    "truncated": False,
                    "ref_logp_chosen": None if model == "sft" else float(ref_c[i]),
                    "ref_logp_rejected": None if model == "sft" else float(ref_r[i]),
                }
                rows.append(row)
        write_jsonl(rows, out / "pairs" / f"{dataset}.jsonl")
        for subset in ["all", *SUBSETS]:
            mask = np.ones(PAIRS, bool) if subset == "all" else subset_of == subset
            for model in MODELS:
                metrics.append(_cell(dataset, subset, model, "preference/accuracy", correct[model][mask], True))
                metrics.append(_cell(dataset, subset, model, "logps/margins", correct[model][mask] * 3, True))
                if model in margins:
                    m = margins[model][mask]
                    metrics += [
                        _cell(dataset, subset, model, "rewards/accuracies", (m > 0).astype(float), True),
                        _cell(dataset, subset, model, "rewards/ties", (m == 0).astype(float), False),
                        _cell(dataset, subset, model, "rewards/margins", m, True),
                        _cell(dataset, subset, model, "loss", np.log1p(np.exp(-m)), False),
                        _cell(dataset, subset, model, "displacement/chosen", (m < 0).astype(float), False),
                    ]
                    for key in ("chosen_shorter", "same_length", "chosen_longer"):
                        metrics.append(_cell(dataset, subset, model, f"length/rewards_accuracy/{key}", m > 0, True))
                    if subset == "all":
                        for b in range(10):
                            reliability.append(
                                ReliabilityBin(
                                    dataset=dataset,
                                    subset=subset,
                                    model=model,
                                    low=0.5 + b / 20,
                                    high=0.55 + b / 20,
                                    n=PAIRS // 10,
                                    confidence=0.52 + b / 20,
                                    accuracy=min(1.0, 0.5 + b / 18),
                                    ci_low=0.45 + b / 20,
                                    ci_high=min(1.0, 0.6 + b / 18),
                                )
                            )
            for position, model in enumerate(MODELS):
                for baseline in MODELS[:position]:
                    pairs = [("preference/accuracy", correct[model], correct[baseline])]
                    if model in margins and baseline in margins:
                        pairs.append(("rewards/accuracies", margins[model] > 0, margins[baseline] > 0))
                    for metric, ours, theirs in pairs:
                        ours, theirs = np.asarray(ours, bool)[mask], np.asarray(theirs, bool)[mask]
                        here = [ids[i] for i in np.flatnonzero(mask)]
                        gained = [here[i] for i in np.flatnonzero(ours & ~theirs)]
                        lost = [here[i] for i in np.flatnonzero(~ours & theirs)]
                        delta = float(ours.mean() - theirs.mean())
                        comparisons.append(
                            Comparison(
                                dataset=dataset,
                                subset=subset,
                                model=model,
                                baseline=baseline,
                                metric=metric,
                                model_value=float(ours.mean()),
                                baseline_value=float(theirs.mean()),
                                value=delta,
                                ci_low=delta - 0.03,
                                ci_high=delta + 0.03,
                                n=int(mask.sum()),
                                higher_is_better=True,
                                test="tango_score",
                                method="tango",
                                p_value=float(np.exp(-abs(delta) * 100)),
                                mde=0.04,
                                flips=Flips(
                                    wrong_to_right=len(gained),
                                    right_to_wrong=len(lost),
                                    wrong_to_right_ids=gained,
                                    right_to_wrong_ids=lost,
                                ),
                            )
                        )
        infos.append(
            DatasetInfo(
                name=dataset,
                path=f"data/{dataset}.jsonl",
                fingerprint=f"{d:064x}",
                n_pairs=PAIRS,
                subsets=SUBSETS,
                pairs_file=f"pairs/{dataset}.jsonl",
            )
        )
        audits += [
            TokenizationAudit(
                dataset=dataset,
                model=m,
                n_pairs=PAIRS,
                n_scored=PAIRS,
                truncated=3,
                prompt_too_long=[],
                prompt_not_prefix=0,
            )
            for m in MODELS
        ]
    shown = flips_to_show(comparisons, "sft")
    words = ["the", "model", "should", "answer", "the", "question", "politely", "and", "correctly"]
    texts = [
        PairText(
            dataset=dataset,
            id=i,
            subset=i.split("-")[0],
            prompt=" ".join(rng.choice(words, 60)),
            chosen=" ".join(rng.choice(words, 40)),
            rejected=" ".join(rng.choice(words, 40)),
        )
        for dataset, chosen_ids in shown.items()
        for i in chosen_ids
    ]
    prompts = [GenerationPrompt(id=f"prompt-{i}", text=" ".join(rng.choice(words, 30))) for i in range(32)]
    samples = [
        GenerationSample(
            prompt_id=p.id,
            model=m,
            index=0,
            completion=" ".join(rng.choice(words, 50)),
            n_tokens=60,
            ended=True,
            scores={"judge": float(rng.random())},
        )
        for p in prompts
        for m in MODELS
    ]
    generation = GenerationResult(
        decoding="greedy",
        max_new_tokens=64,
        prompts=prompts,
        samples=samples,
        stats=[
            GenerationStats(model=m, mean_tokens=60, eos_rate=1, distinct_1=0.3, distinct_2=0.7, repetition_rate=0.01)
            for m in MODELS
        ],
        judges=[JudgeSummary(judge="judge", model=m, mean=0.5, ci_low=0.4, ci_high=0.6, n=32) for m in MODELS],
        win_rates=[
            WinRate(
                judge="judge",
                model=m,
                baseline="sft",
                win_rate=0.6,
                ci_low=0.5,
                ci_high=0.7,
                wins=16,
                ties=6,
                losses=10,
                score_delta=0.1,
                delta_ci_low=0.0,
                delta_ci_high=0.2,
                n=32,
            )
            for m in MODELS[1:]
        ],
    )
    curve = [
        CurvePoint(
            step=s, loss=0.7 - s / 3000 + rng.normal(0, 0.05), reward_accuracy=min(1, 0.5 + s / 2000), margin=s / 500
        )
        for s in range(1, 1001)
    ]
    result = RunResult(
        schema_version=SCHEMA_VERSION,
        evalkit_version="0.1.0",
        created_at="2026-01-01T00:00:00+00:00",
        duration_s=3600.0,
        suite=SuiteInfo(name="release", description="", path="suites/release.yaml", sha256="0" * 64),
        environment=Environment(python="3.11", platform="linux", packages={}, device="cuda", git_sha=None),
        reference="sft",
        scoring=ScoringInfo(beta=BETA, max_length=1024, batch_size=8),
        statistics=Statistics(),
        models=[
            ModelInfo(name=m, path=f"ckpt/{m}", kind="model", base=None, dtype="bfloat16", fingerprint="f" * 64)
            for m in MODELS
        ],
        datasets=infos,
        audit=audits,
        metrics=metrics,
        comparisons=comparisons,
        reliability=reliability,
        training=TrainingInfo(
            model="dpo",
            steps=1800,
            seconds=3000,
            final_loss=0.4,
            final_reward_accuracy=0.8,
            log_history="ckpt/dpo/log_history.json",
            curve=curve,
        ),
        generation=generation,
        flip_examples=texts,
        command="evalkit bench suites/release.yaml",
    )
    write_results(result, out / "results.json")
    return out / "results.json"


@pytest.fixture(scope="module")
def large_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_run(tmp_path_factory.mktemp("large"))


def _megabytes(path: Path) -> float:
    return path.stat().st_size / 1e6


def test_report_of_10_models_5_datasets_2000_pairs(benchmark: BenchmarkFixture, large_run: Path) -> None:
    out = large_run.parent / "out"

    def render() -> list[Path]:  # what `evalkit report` does
        result = read_results(large_run)
        return write_reports(result, out, results_dir=large_run.parent)

    markdown, html = benchmark.pedantic(render, rounds=3, iterations=1)
    started = time.perf_counter()
    result = read_results(large_run)
    pairs = read_pairs(result, large_run.parent)
    loaded = time.perf_counter() - started
    benchmark.extra_info |= {
        "results_mb": _megabytes(large_run),
        "pairs_mb": sum(_megabytes(large_run.parent / d.pairs_file) for d in result.datasets),
        "html_mb": _megabytes(html),
        "markdown_kb": markdown.stat().st_size / 1e3,
        "load_s": loaded,
        "pair_rows": sum(len(rows) for rows in pairs.values()),
    }
    print(benchmark.extra_info)
    assert markdown.stat().st_size <= 65_536, "report.md must fit a GitHub PR comment"


def test_compare_of_two_such_runs(benchmark: BenchmarkFixture, large_run: Path, tmp_path: Path) -> None:
    markdown, html = benchmark.pedantic(lambda: write_comparison(large_run, large_run, tmp_path), rounds=2)
    benchmark.extra_info |= {"html_mb": _megabytes(html), "markdown_kb": markdown.stat().st_size / 1e3}
    print(benchmark.extra_info)


def explorer_run(out: Path, pairs: int, seed: int = 0) -> Path:
    """One dataset of `pairs` pairs scored by a reference and an aligned model, with a texts file (a 200-character
    prompt and 300-character answers), and the metrics, comparisons and reliability `evalkit bench` computes."""
    from evalkit.metrics.compute import compute_metrics, reliability_curves
    from evalkit.metrics.paired import compare_models, with_false_discovery_rate
    from evalkit.results.pairs import PairScore, row_record
    from evalkit.results.texts import texts_file, write_pair_texts

    rng = np.random.default_rng(seed)
    ids = [f"{SUBSETS[i % 3]}-{i:05d}" for i in range(pairs)]
    ref_c, ref_r = rng.normal(-60, 15, pairs), rng.normal(-60, 15, pairs)
    tokens_c, tokens_r = rng.integers(20, 400, pairs), rng.integers(20, 400, pairs)
    scores = []
    for model, shift in (("base", 0.0), ("aligned", 6.0)):
        logp_c, logp_r = ref_c + rng.normal(shift * 0.2, 3, pairs), ref_r + rng.normal(-shift, 3, pairs)
        reference = model != "base"
        scores += [
            PairScore(
                id=ids[i],
                subset=SUBSETS[i % 3],
                model=model,
                logp_chosen=float(logp_c[i]),
                logp_rejected=float(logp_r[i]),
                n_tokens_chosen=int(tokens_c[i]),
                n_tokens_rejected=int(tokens_r[i]),
                truncated=False,
                ref_logp_chosen=float(ref_c[i]) if reference else None,
                ref_logp_rejected=float(ref_r[i]) if reference else None,
            )
            for i in range(pairs)
        ]
    info = DatasetInfo(
        name="heldout",
        path="heldout.jsonl",
        n_pairs=pairs,
        subsets=SUBSETS,
        fingerprint="0" * 64,
        pairs_file="pairs/heldout.jsonl",
    )
    write_jsonl([row_record(s) for s in scores], out / info.pairs_file)
    text = [
        PairText(
            dataset="heldout",
            id=i,
            subset=i.split("-")[0],
            prompt=f"Question {i}: " + "word " * 38,
            chosen="A helpful answer. " * 17,
            rejected="An unhelpful reply. " * 15,
        )
        for i in ids
    ]
    write_pair_texts("heldout", text, out / texts_file(info.pairs_file))
    result = RunResult(
        schema_version=SCHEMA_VERSION,
        evalkit_version="0.1.0",
        created_at="2026-01-01T00:00:00+00:00",
        duration_s=60.0,
        suite=SuiteInfo(name="explorer", description="", path="suites/x.yaml", sha256="0" * 64),
        environment=Environment(python="3.11", platform="linux", packages={}, device="cpu", git_sha=None),
        reference="base",
        scoring=ScoringInfo(beta=BETA, max_length=1024, batch_size=8),
        statistics=Statistics(),
        models=[
            ModelInfo(name=m, path=f"ckpt/{m}", kind="model", base=None, dtype="float32", fingerprint="f" * 64)
            for m in ("base", "aligned")
        ],
        datasets=[info],
        audit=[],
        metrics=compute_metrics("heldout", scores, BETA),
        comparisons=with_false_discovery_rate(compare_models("heldout", scores, BETA)),
        reliability=reliability_curves("heldout", scores, BETA),
        training=None,
        generation=None,
    )
    write_results(result, out / "results.json")
    return out / "results.json"


@pytest.mark.parametrize("pairs", [2000, 10000])
def test_report_html_with_the_pair_explorer(
    benchmark: BenchmarkFixture, tmp_path_factory: pytest.TempPathFactory, pairs: int
) -> None:
    """report.html's size and time to interactive (Chromium: from navigation until the explorer has drawn its
    first page) with every pair and its text in the explorer, and the time one text search takes there."""
    run = explorer_run(tmp_path_factory.mktemp(f"explorer{pairs}"), pairs)
    out = run.parent / "out"
    [_, html] = benchmark.pedantic(lambda: write_reports(read_results(run), out, results_dir=run.parent), rounds=2)
    benchmark.extra_info |= {"pairs": pairs, "html_mb": _megabytes(html)}
    from tests.integration.test_browser import CHROMIUM, DESKTOP, Page

    if CHROMIUM is not None:
        page = Page(out / "profile")
        try:
            ready = []
            for _ in range(3):
                page.open(html, DESKTOP)
                ready.append(float(page.evaluate("document.querySelector('#explorer').dataset.readyMs")))
            search = page.evaluate(
                "(() => { const s = document.querySelector('#ex-search'), t = performance.now();"
                " s.value = 'helpful'; s.dispatchEvent(new Event('input')); return performance.now() - t; })()"
            )
            assert page.problems(html) == []
        finally:
            page.close()
        benchmark.extra_info |= {"interactive_ms": sorted(ready)[1], "search_ms": round(search, 1)}
    print(benchmark.extra_info)
