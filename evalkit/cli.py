"""The `evalkit` command line.

Exit codes are a contract for CI: 0 = ran (and every gate passed), 1 = a gate failed,
2 = bad input or usage, reported as one line naming the file and the key or line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from evalkit import __version__
from evalkit.console import console
from evalkit.errors import EvalkitError

DEFAULT_SUITE = Path("suites/default.yaml")
EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 through the same one-line path as every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise EvalkitError(f"usage: {message} (see `evalkit {self.prog.split()[-1]} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evalkit", description="Preference evaluation for DPO checkpoints.")
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    bench = commands.add_parser("bench", help="run a suite: build, train, score, write results and reports")
    bench.add_argument(
        "suite", nargs="?", type=Path, default=DEFAULT_SUITE, help=f"suite file (default {DEFAULT_SUITE})"
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

    score = commands.add_parser("score", help="score one model (and a reference) on one dataset, pair by pair")
    score.add_argument("--model", required=True, help="model or adapter directory, or hub id")
    score.add_argument("--data", required=True, help="preference pairs: JSONL/JSON/Parquet/CSV file, folder or hub id")
    score.add_argument("--base", help="base model for an adapter (default: the one in adapter_config.json)")
    score.add_argument("--ref", help="reference model for implicit rewards (default: none)")
    score.add_argument("--beta", type=float, default=0.1, help="β of the implicit reward (default 0.1)")
    score.add_argument("--max-length", type=int, default=1024, help="tokens kept per sequence (default 1024)")
    score.add_argument("--batch-size", type=int, default=8, help="pairs per forward pass (default 8)")
    score.add_argument("--format", choices=["auto", "explicit", "conversational", "implicit"], default="auto")
    score.add_argument("--split", default="train", help="split of a folder or hub dataset (default train)")
    score.add_argument("--limit", type=int, help="score only the first N pairs")
    score.add_argument("--out", type=Path, required=True, help="JSON Lines file for the per-pair scores")

    report = commands.add_parser("report", help="render the reports of a results.json (no model needed)")
    report.add_argument("results", type=Path, help="a results.json written by `evalkit bench`")
    report.add_argument("--out", type=Path, help="output directory (default: next to the results file)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "bench":
            return _bench(args.suite, args.out, args.overrides)
        if args.command == "train":
            return _train(args.suite, args.out, args.overrides)
        if args.command == "score":
            return _score(args)
        return _report(args.results, args.out)
    except EvalkitError as error:
        console.print(f"[red]evalkit: error:[/red] {error}", soft_wrap=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("evalkit: interrupted; earlier outputs are left as they were")
        return 130


def _bench(suite: Path, out: Path | None, overrides: list[str]) -> int:
    _quiet_libraries()
    from evalkit.bench import run_bench  # imports torch; `report` must not

    run_bench(suite, out, overrides)
    return EXIT_OK


def _train(suite_path: Path, out: Path | None, overrides: list[str]) -> int:
    from evalkit.config import load_suite

    suite = load_suite(suite_path, overrides)
    if suite.train is None:
        raise EvalkitError(f"{suite_path}: no `train` section; expected one to train from")
    _quiet_libraries()
    from evalkit.bench import check_inputs, run_training
    from evalkit.world import build_world

    if suite.world is not None:
        build_world(suite.world)
    check_inputs(suite)
    run = run_training(suite, out)
    console.print(f"trained {suite.train.output!r}: {run.steps} steps in {run.seconds:.0f}s, saved to {run.output_dir}")
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    from evalkit.config import parse_suite

    models = [{"name": "policy", "path": args.model, "base": args.base}]
    if args.ref:
        models.append({"name": "reference", "path": args.ref})
    dataset = {"name": Path(args.data).stem or "data", "path": args.data, "format": args.format, "split": args.split}
    if args.limit:
        dataset["limit"] = args.limit
    suite = parse_suite(
        {
            "name": "score",
            "output_dir": str(args.out.parent),
            "datasets": [dataset],
            "models": models,
            "reference": "reference" if args.ref else None,
            "scoring": {"beta": args.beta, "max_length": args.max_length, "batch_size": args.batch_size},
        },
        source="evalkit score",
    )
    _quiet_libraries()
    from evalkit.bench import run_score  # imports torch; `report` must not

    run_score(suite, args.out)
    return EXIT_OK


def _report(results_path: Path, out: Path | None) -> int:
    from evalkit.report import write_reports
    from evalkit.results import read_results

    result = read_results(results_path)
    for path in write_reports(result, out or results_path.parent):
        console.print(f"wrote {path}")
    return EXIT_OK


def _quiet_libraries() -> None:
    """Keep the terminal for evalkit's own progress: library progress bars and info logs off."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    import transformers

    # Deprecation notices raised inside transformers by TRL's own calls: nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def entrypoint() -> None:
    sys.exit(main())
