"""Models scored on a serving engine, in both reports and on the terminal: which engine and version, how the
log-probs were asked for, whether the numbers can depend on the server's batching, and the parity check."""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.report.formats import MISSING
from evalkit.report.tables import Table
from evalkit.results.schema import ModelInfo, ParityResult, ServedScoring


def served_table(models: Sequence[ModelInfo]) -> Table | None:
    """One row per served model; None when every model was scored in process."""
    rows = [[m.name, *_cells(m.served)] for m in models if m.served is not None]
    if not rows:
        return None
    header = ["model", "engine", "where", "log-probs", "batch-invariant", "why", "requests sent", "parity"]
    return Table(header, rows, align="llllllrl")


def _cells(served: ServedScoring) -> list[str]:
    return [
        f"{served.engine} {served.engine_version or '(version not given)'}",
        f"{served.base_url} · {served.served_model}",
        served.logprob_mode,
        _invariant(served.batch_invariant),
        served.batching_reason,
        str(served.requests_sent),
        parity_line(served.parity) if served.parity is not None else "not run",
    ]


def _invariant(value: bool | None) -> str:
    return MISSING if value is None else "yes" if value else "no"


def parity_line(parity: ParityResult) -> str:
    """The parity check in one line: absolute differences, server against this process, in nats."""
    return (
        f"{parity.n_pairs} pairs ({parity.dtype} here): per token max {parity.token_max:.1e}, median "
        f"{parity.token_median:.1e} over {parity.n_tokens} tokens; per sequence max {parity.sequence_max:.1e}, "
        f"median {parity.sequence_median:.1e} over {parity.n_sequences} sequences"
    )


def served_lines(models: Sequence[ModelInfo]) -> list[str]:
    """What the terminal and the reports say under the table: one line per served model."""
    lines = []
    for m in models:
        if m.served is None:
            continue
        s = m.served
        engine = f"{s.engine} {s.engine_version or ''}".strip()
        line = f"{m.name} scored on {engine} at {s.base_url} (served as {s.served_model!r}, {s.logprob_mode})"
        line += (
            f"; batch-invariant: {_invariant(s.batch_invariant)} ({s.batching_reason}); {s.requests_sent} requests sent"
        )
        if s.parity is not None:
            line += f"; parity: {parity_line(s.parity)}"
        lines.append(line)
    return lines
