"""The `evalkit` command line.

Exit codes are a contract for CI: 0 = ran (and no gate rule failed: rules waiting for a first baseline
are skipped), 1 = a gate rule failed, 2 = bad input or usage, reported as one line naming the file and
the key or line, or a gate rule that could not be decided (after every output is written), or a
refusal of the machine (disk full, read-only directory); 3 = an internal error (a bug: one line, and the
traceback in `.evalkit/logs/`; a native library's panic too), so CI never mistakes a crash for a rejected
release; 130 = interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from evalkit import __version__
from evalkit.console import console, quiet_libraries, stdout
from evalkit.errors import EvalkitError
from evalkit.report.links import REPORT_URL

if TYPE_CHECKING:
    from evalkit.results.schema import RunResult

EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 through the same one-line path as every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise EvalkitError(f"usage: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evalkit", description="Preference evaluation for DPO checkpoints.")
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    bench = commands.add_parser("bench", help="run a suite: build, train, score, write results and reports")
    bench.add_argument("--report-url", help=REPORT_URL_HELP)
    bench.add_argument(
        "suite", nargs="?", type=Path, help="suite file (default: the packaged default suite, as `evalkit demo` runs)"
    )
    bench.add_argument("--out", type=Path, help="output directory (default: the suite's output_dir)")
    bench.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a suite key, e.g. --set scoring.batch_size=4 (repeatable)",
    )
    bench.add_argument("--baseline", type=Path, help="results.json of the last release, for non-inferiority rules")
    bench.add_argument("--model", help="score this checkpoint (directory or hub id) instead of the suite's models")
    bench.add_argument("--ref", help="with --model: the reference (default: an adapter's base, else none)")
    bench.add_argument("--data", help="with --model: the preference pairs (default: the suite's datasets)")
    bench.add_argument("--allow-pickle", action="store_true", help="with --model: allow pickled (.bin) weights")
    bench.add_argument(
        "--trust-remote-code", action="store_true", help="with --model: run modelling code the checkpoint ships"
    )

    demo = commands.add_parser(
        "demo",
        help="run the packaged default suite (tiny world, DPO, scoring, report, gate) from any directory",
        description="Run the packaged default suite: build the tiny world in ./.evalkit/world (once, then reused), "
        "train a DPO model on it, score, report and gate, all on CPU and offline. Everything else it writes goes "
        "under --out.",
    )
    demo.add_argument(
        "--out", type=Path, help="directory for the results, reports and trained model (default ./evalkit-demo)"
    )
    demo.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a key of the default suite, e.g. --set world.pretrain_steps=200 (repeatable)",
    )

    init = commands.add_parser(
        "init",
        help="write a commented starter suite for your own models and data",
        description="Write a commented starter suite. With --data, its first rows are read and the columns found "
        "are written as the dataset's columns, id_column and subset_column. An existing file is never replaced.",
    )
    init.add_argument("--data", help="your preference pairs (JSONL/JSON/Parquet/CSV file, folder or hub id)")
    init.add_argument("--model", help="the checkpoint to evaluate (directory, adapter directory or hub id)")
    init.add_argument("--ref", help="the reference model implicit rewards are measured against (e.g. the SFT model)")
    init.add_argument("--out", type=Path, help="where the suite is written (default suites/mine.yaml)")

    gate = commands.add_parser("gate", help="judge a results.json against gate rules; exit 1 when a rule fails")
    gate.add_argument("--report-url", help=REPORT_URL_HELP)
    gate.add_argument("results", type=Path, help="a results.json written by `evalkit bench`")
    gate.add_argument("--baseline", type=Path, help="results.json of the last release, for non-inferiority rules")
    gate.add_argument("--suite", type=Path, help="take the rules from this suite (default: those in the results)")
    gate.add_argument("--out", type=Path, help="where junit.xml and summary.md go (default: beside the results)")

    train = commands.add_parser("train", help="train the suite's DPO model (its `train` section) and save it")
    train.add_argument("suite", type=Path, help="suite file with a `train` section")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a suite key, e.g. --set train.args.max_steps=10 (repeatable)",
    )
    train.add_argument("--out", type=Path, help="output directory (default: the trained model's path in the suite)")

    score = commands.add_parser(
        "score", help="score one model (and a reference) on one dataset, pair by pair or completion by completion"
    )
    score.add_argument("--model", required=True, help="model or adapter directory, or hub id")
    score.add_argument(
        "--data",
        required=True,
        help="preference pairs, or labelled completions (prompt, completion, label): JSONL/JSON/Parquet/CSV file, "
        "folder or hub id",
    )
    score.add_argument("--base", help="base model for an adapter (default: the one in adapter_config.json)")
    score.add_argument("--ref", help="reference model for implicit rewards (default: none)")
    score.add_argument("--beta", type=float, default=0.1, help="β of the implicit reward (default 0.1)")
    score.add_argument("--max-length", type=int, default=1024, help="tokens kept per sequence (default 1024)")
    score.add_argument("--batch-size", type=int, default=8, help="pairs per forward pass (default 8)")
    score.add_argument("--token-budget", type=int, help="tokens per forward pass instead of --batch-size pairs")
    score.add_argument(
        "--dtype", choices=["float32", "bfloat16"], default="float32", help="compute dtype (default float32)"
    )
    score.add_argument(
        "--no-reference-cache",
        action="store_true",
        help="do not keep or reuse reference log-probs in .evalkit/cache/reference",
    )
    score.add_argument(
        "--chat-template-kwargs",
        type=_json_object,
        default={},
        metavar="JSON",
        help="""options for the chat template, e.g. '{"enable_thinking": false}'""",
    )
    score.add_argument(
        "--template-date",
        metavar="YYYY-MM-DD",
        help="date written by a template that reads the clock (default: the training date, else 2025-01-01)",
    )
    score.add_argument(
        "--method",
        type=_method,
        metavar="NAME|JSON",
        help="the objective --model was trained with, as a suite's `method`: a name (simpo, orpo, kto, ...) or "
        """its options, e.g. '{"name": "simpo", "beta": 2.0, "gamma": 0.5}' (default: the one its training """
        "record states, else none)",
    )
    score.add_argument(
        "--format",
        choices=["auto", "explicit", "conversational", "implicit", "unpaired"],
        default="auto",
        help="the data's layout (default auto: told by its columns); unpaired scores pairs as labelled completions",
    )
    score.add_argument(
        "--columns",
        type=_column_map,
        default={},
        metavar="KEY=COLUMN,...",
        help="the data's columns for prompt, chosen and rejected (or completion and label), as a suite's "
        "`columns:` names them, e.g. prompt=question,chosen=good,rejected=bad",
    )
    score.add_argument("--id-column", help="column holding each pair's id (default: `id` when the data has one)")
    score.add_argument(
        "--subset-column", help="column naming each pair's subset (default: `subset` when the data has one)"
    )
    score.add_argument("--split", default="train", help="split of a folder or hub dataset (default train)")
    score.add_argument("--limit", type=int, help="score only the first N rows")
    score.add_argument(
        "--out", type=Path, required=True, help="JSON Lines file for the per-pair (or per-completion) scores"
    )
    score.add_argument(
        "--reward-model",
        action="store_true",
        help="--model is a classifier reward model (one label), scored by its logit as RewardTrainer does",
    )
    score.add_argument("--allow-pickle", action="store_true", help="allow pickled (.bin) weights: they can run code")
    score.add_argument(
        "--trust-remote-code", action="store_true", help="run modelling code the checkpoints ship (off by default)"
    )
    score.add_argument(
        "--endpoint",
        metavar="URL",
        help="score on this vLLM server (its API root, e.g. http://gpu-box:8000/v1), which serves --model by its path",
    )
    score.add_argument("--ref-endpoint", metavar="URL", help="the reference's own vLLM server (default: --endpoint)")
    score.add_argument("--concurrency", type=int, default=4, help="requests in flight per server (default 4)")
    score.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the servers' API key")
    score.add_argument(
        "--parity", type=int, metavar="N", help="also score N seeded pairs in this process and report the differences"
    )

    report = commands.add_parser("report", help="render the reports of a results.json (no model needed)")
    report.add_argument("--report-url", help=REPORT_URL_HELP)
    report.add_argument("results", type=Path, help="a results.json written by `evalkit bench`")
    report.add_argument("--out", type=Path, help="output directory (default: next to the results file)")

    compare = commands.add_parser("compare", help="compare two runs, e.g. a candidate against the last release")
    compare.add_argument("baseline", type=Path, help="results.json of the run to compare against")
    compare.add_argument("candidate", type=Path, help="results.json of the new run")
    compare.add_argument("--out", type=Path, help="output directory (default: next to the candidate's results)")
    return parser


REPORT_URL_HELP = (
    "https:// address where the uploaded report.html can be opened (e.g. the CI run's artifact): report.md and "
    "summary.md link there (default: $EVALKIT_REPORT_URL, else report.html beside them)"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        args.command_line = shlex.join(["evalkit", *argv])
        if getattr(args, "report_url", None):  # the option wins over the environment; every writer reads it there
            os.environ[REPORT_URL] = args.report_url
        return _dispatch(args)
    except EvalkitError as error:
        for line in str(error).splitlines() or [""]:  # several problems: one line each, each one named
            console.print(f"[red]evalkit: error:[/red] {escape(line)}", soft_wrap=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("evalkit: interrupted; earlier outputs are left as they were")
        return 130
    except OSError as error:  # the machine's refusal (disk full, read-only, a file where a directory goes): no bug
        where = f" {error.filename}" if error.filename else ""
        message = f"cannot use{where}: {error.strerror or error}"
        console.print(f"[red]evalkit: error:[/red] {escape(message)}", soft_wrap=True)
        return EXIT_BAD_INPUT
    except SystemExit:  # --help, --version
        raise
    except BaseException as error:  # a bug in evalkit or a library; a native library's panic
        # (pyo3's PanicException) is a BaseException: still a crash, never exit 1 ("a gate failed")
        log = _keep_traceback()
        console.print(
            f"[red]evalkit: internal error:[/red] {escape(type(error).__name__)}: {escape(_first_line(error))} "
            f"(traceback in {escape(str(log))}; please report it)",
            soft_wrap=True,
        )
        return EXIT_INTERNAL_ERROR


def _dispatch(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; what each one does lives in its own function (and in `pipeline/`)."""
    if args.command == "bench":
        return _bench(args)
    if args.command == "demo":
        return _demo(args.out, args.overrides, args.command_line)
    if args.command == "init":
        return _init(args)
    if args.command == "gate":
        return _gate(args.results, args.baseline, args.suite, args.out)
    if args.command == "train":
        return _train(args.suite, args.out, args.overrides)
    if args.command == "score":
        return _score(args)
    if args.command == "compare":
        return _compare(args.baseline, args.candidate, args.out)
    return _report(args.results, args.out)


def _keep_traceback() -> Path:
    """The current exception's traceback, written to `.evalkit/logs/` (the temporary directory when that fails)."""
    import datetime
    import tempfile
    import traceback

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = traceback.format_exc()
    for directory in (Path(".evalkit") / "logs", Path(tempfile.gettempdir())):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"evalkit-error-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("(not written: no writable directory)")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


def _bench(args: argparse.Namespace) -> int:
    if (args.ref or args.data) and not args.model:
        raise EvalkitError("usage: --ref and --data go with --model (see `evalkit bench --help`)")
    quiet_libraries()
    from evalkit.config.suite import DEFAULT_SUITE
    from evalkit.pipeline.bench import run_bench  # imports torch; `report` and `gate` must not
    from evalkit.pipeline.candidate import Candidate

    trust = {"allow_pickle": args.allow_pickle, "trust_remote_code": args.trust_remote_code}
    candidate = Candidate(args.model, args.ref, args.data, **trust) if args.model else None
    result = run_bench(
        args.suite or DEFAULT_SUITE, args.out, args.overrides, args.baseline, candidate, args.command_line
    )
    return _gate_exit(result)


def _demo(out: Path | None, overrides: list[str], command_line: str) -> int:
    quiet_libraries()
    from evalkit.pipeline.demo import DEMO_OUT, run_demo  # imports torch

    return _gate_exit(run_demo(out or DEMO_OUT, overrides, command_line))


def _gate_exit(result: RunResult | None) -> int:
    if result is None or result.gate is None:  # no gate, or another process of a torchrun run
        return EXIT_OK
    from evalkit.gate.judge import exit_code

    return exit_code(result.gate)


def _init(args: argparse.Namespace) -> int:
    if args.data is not None:
        quiet_libraries()  # reading the data goes through `datasets`
    from evalkit.pipeline.starter import DEFAULT_OUT, StarterOptions, write_starter_suite

    path = write_starter_suite(StarterOptions(args.out or DEFAULT_OUT, args.data, args.model, args.ref))
    stdout.print(f"wrote {path}; run it with: evalkit bench {shlex.quote(str(path))}", markup=False)
    return EXIT_OK


def _gate(results_path: Path, baseline_path: Path | None, suite_path: Path | None, out: Path | None) -> int:
    from evalkit.config.suite import load_suite, parse_gate
    from evalkit.gate.judge import evaluate_gate, exit_code
    from evalkit.gate.roles import rules_for_run
    from evalkit.gate.summary import append_step_summary, gate_outputs
    from evalkit.gate.terminal import verdict_lines
    from evalkit.report.document import render_reports
    from evalkit.results.files import check_writable, claim_output, read_results, results_text, write_texts

    result = read_results(results_path)
    baseline = read_results(baseline_path) if baseline_path is not None else None
    out_dir = out or results_path.parent
    check_writable(out_dir, "--out", "writing reports")
    for name, path in (("--baseline", baseline_path), ("--suite", suite_path)):
        if path is not None and (out_dir / "results.json").resolve() == path.resolve():
            raise EvalkitError(f"--out: {out_dir} would replace {name} {path}; choose another directory")
    if suite_path is not None:
        suite = load_suite(suite_path, train_options=False)  # its rules only: TRL and PEFT stay unimported
        if suite.gate is None:
            raise EvalkitError(f"{suite_path}: no `gate` section; expected the rules to judge by")
        spec = rules_for_run(suite.gate, suite.candidate_model, suite.reference, result)
    elif result.suite.gate is not None:
        spec = parse_gate(result.suite.gate, str(results_path))
        console.print(
            f"[yellow]judging with the rules recorded in {escape(str(results_path))}; for a results file you did not "
            "produce (a fork's CI artifact), pass --suite SUITE to judge with your own[/yellow]",
            soft_wrap=True,
        )
    else:
        raise EvalkitError(f"{results_path}: the run had no gate rules; pass --suite SUITE with a `gate` section")
    baseline_dir = baseline_path.parent if baseline_path is not None else None
    verdicts = evaluate_gate(spec, result, results_path.parent, baseline, baseline_dir)
    judged = result.model_copy(update={"gate": verdicts})
    # A reader never modifies what it reads: everything goes to --out (default: beside the results), and the
    # judged results.json only where it would not replace its input. Every output is rendered before the first is
    # written, and only into a directory of this same run: a failure leaves none, and no two runs' outputs mix.
    outputs = {}
    if (out_dir / "results.json").resolve() != results_path.resolve():
        outputs["results.json"] = results_text(judged)
    outputs |= render_reports(judged, results_path.parent) | gate_outputs(verdicts, judged)
    claim_output(out_dir, result)
    written = write_texts(out_dir, outputs)
    stdout.print(verdict_lines(verdicts), soft_wrap=True)
    stdout.print("wrote " + ", ".join(str(path) for path in written), markup=False)
    append_step_summary(outputs["summary.md"])
    return exit_code(verdicts)


def _train(suite_path: Path, out: Path | None, overrides: list[str]) -> int:
    from evalkit.config.suite import load_suite

    suite = load_suite(suite_path, overrides)
    if not suite.train:
        raise EvalkitError(f"{suite_path}: no `train` section; expected one to train from")
    quiet_libraries()
    from evalkit.pipeline.checks import check_inputs
    from evalkit.pipeline.training import run_training
    from evalkit.world import build_world

    if suite.world is not None:
        build_world(suite.world)
    check_inputs(suite)
    for spec, run in zip(suite.train, run_training(suite, out), strict=True):
        stdout.print(f"trained {spec.output!r}: {run.steps} steps in {run.seconds:.0f}s, saved to {run.output_dir}")
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    from evalkit.config.specs import plain_name
    from evalkit.config.suite import parse_suite

    trust = {"allow_pickle": args.allow_pickle, "trust_remote_code": args.trust_remote_code}
    kind = "reward_model" if args.reward_model else "policy"
    models = [{"name": "policy", "path": args.model, "base": args.base, "kind": kind, **trust}]
    if args.method is not None:
        models[0]["method"] = args.method
    if args.ref and args.reward_model:
        raise EvalkitError("--ref: a reward model (--reward-model) is scored by its logit and has no reference")
    if args.method is not None and args.reward_model:
        raise EvalkitError("--method: a reward model (--reward-model) is scored by its logit, not by an objective")
    if args.ref:
        models.append({"name": "reference", "path": args.ref, **trust})
    # The user never wrote this name (it is the data's file name): made plain rather than refused.
    name = plain_name(Path(args.data).stem, "data", "_")
    dataset = {"name": name, "path": args.data, "format": args.format, "split": args.split}
    dataset |= {"columns": args.columns, "id_column": args.id_column, "subset_column": args.subset_column}
    if args.limit is not None:
        dataset["limit"] = args.limit
    if (args.ref_endpoint or args.parity) and not args.endpoint:
        raise EvalkitError("--ref-endpoint and --parity score on a server: give --endpoint URL too")
    try:
        suite = parse_suite(
            {
                "name": "score",
                "output_dir": str(args.out.parent),
                "datasets": [dataset],
                "models": models,
                "reference": "reference" if args.ref else None,
                "rendering": {"chat_template_kwargs": args.chat_template_kwargs, "date": args.template_date},
                "scoring": {
                    "beta": args.beta,
                    "max_length": args.max_length,
                    "batch_size": args.batch_size,
                    "token_budget": args.token_budget,
                    "dtype": args.dtype,
                    **({"reference_cache": None} if args.no_reference_cache else {}),
                    **(_served_scoring(args) if args.endpoint else {}),
                },
            },
            source="evalkit score",
        )
        quiet_libraries()
        from evalkit.pipeline.score import run_score  # imports torch; `report` must not

        run_score(suite, args.out)
    except EvalkitError as exc:  # the suite's checks and the models' path checks name the keys built from the flags
        raise EvalkitError(_as_flags(str(exc))) from None
    return EXIT_OK


SCORE_FLAGS = {
    "models.0.method": "--method",
    "models.0.base": "--base",
    "models.0.path": "--model",
    "models.0": "--model",
    "models.1.path": "--ref",
    "models.1": "--ref",
    "models.policy.base": "--base",
    "models.policy.path": "--model",
    "models.policy": "--model",
    "models.reference.path": "--ref",
    "models.reference": "--ref",
    "datasets.0.columns": "--columns",
    "datasets.0.id_column": "--id-column",
    "datasets.0.subset_column": "--subset-column",
    "datasets.0.limit": "--limit",
    "datasets.0.split": "--split",
    "datasets.0": "--data",
    "rendering.chat_template_kwargs": "--chat-template-kwargs",
    "rendering.date": "--template-date",
    "scoring.endpoint.concurrency": "--concurrency",
    "scoring.endpoint.base_urls.reference": "--ref-endpoint",
    "scoring.endpoint.api_key_env": "--api-key-env",
    "scoring.endpoint.base_url": "--endpoint",
    "scoring.endpoint": "--endpoint",
    "scoring.parity": "--parity",
    "scoring.beta": "--beta",
    "scoring.max_length": "--max-length",
    "scoring.batch_size": "--batch-size",
    "scoring.token_budget": "--token-budget",
}
"""The suite keys `evalkit score` builds from its flags (longest first where one key holds another), so that a
bad value is named by the flag the user typed."""


def _as_flags(message: str) -> str:
    """`evalkit score: scoring.batch_size: ...` as `--batch-size: ...`, line by line."""
    lines = []
    for line in message.splitlines():
        where, _, rest = line.removeprefix("evalkit score: ").partition(": ")
        key = next((k for k in SCORE_FLAGS if where == k or where.startswith(k + ".")), None)
        if key is None or not rest:
            lines.append(line)
            continue
        detail = where.removeprefix(key).lstrip(".")
        lines.append(f"{SCORE_FLAGS[key]}{' ' + detail if detail else ''}: {rest}")
    return "\n".join(lines)


def _served_scoring(args: argparse.Namespace) -> dict[str, object]:
    """`scoring.backend: vllm` from `evalkit score`'s flags: the reference on its own server when one is named."""
    endpoint: dict[str, object] = {"base_url": args.endpoint, "concurrency": args.concurrency}
    endpoint |= {"api_key_env": args.api_key_env} if args.api_key_env else {}
    endpoint |= {"base_urls": {"reference": args.ref_endpoint}} if args.ref_endpoint else {}
    parity = {"parity": {"pairs": args.parity}} if args.parity is not None else {}
    return {"backend": "vllm", "endpoint": endpoint, **parity}


def _json_object(text: str) -> dict[str, object]:
    """A JSON object given on the command line (argparse reports the error as a usage error, exit 2)."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"enable_thinking\": false}'")
    return value


def _method(text: str) -> dict[str, object]:
    """`--method`: an objective's name, or its options as a JSON object (checked as a suite's `method`)."""
    if text.lstrip().startswith("{"):
        return _json_object(text)
    return {"name": text.strip()}


def _column_map(text: str) -> dict[str, str]:
    """`prompt=question,chosen=good`: the suite's `columns:` on the command line (its keys are checked there)."""
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    if not pairs or any(not key.strip() or not sep or not column.strip() for key, sep, column in pairs):
        raise argparse.ArgumentTypeError(
            f"expected KEY=COLUMN pairs separated by commas, e.g. chosen=good; got {text!r}"
        )
    return {key.strip(): column.strip() for key, _, column in pairs}


def _report(results_path: Path, out: Path | None) -> int:
    from evalkit.report.document import render_reports
    from evalkit.results.files import check_writable, claim_output, read_results, write_texts

    result = read_results(results_path)
    out_dir = out or results_path.parent
    check_writable(out_dir, "--out", "writing reports")  # before the rendering, which reads every per-pair file
    outputs = render_reports(result, results_path.parent)
    claim_output(out_dir, result)
    for path in write_texts(out_dir, outputs):
        stdout.print(f"wrote {path}", markup=False)
    return EXIT_OK


def _compare(baseline: Path, candidate: Path, out: Path | None) -> int:
    from evalkit.pipeline.compare import run_compare

    run_compare(baseline, candidate, out)
    return EXIT_OK


def entrypoint() -> None:
    sys.exit(main())
