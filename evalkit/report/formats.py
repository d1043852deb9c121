"""How every report writes a number: one family of formatters for values, intervals, differences and p.

Markdown, HTML, the terminal and `evalkit compare` all print through these, so a value reads the
same everywhere: three decimals (one above 100), intervals to two decimals or as many more as it
takes to tell their ends apart, differences signed.
"""

from __future__ import annotations

from evalkit.results.estimates import Comparison, Metric

MISSING = "—"


def format_number(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"


def format_signed(value: float) -> str:
    """'+0.476': a difference."""
    return f"{value:+.3f}" if abs(value) < 100 else f"{value:+.1f}"


def format_interval(low: float, high: float, signed: bool = False) -> str:
    """'0.87, 0.95': two decimals, or as many more as it takes to tell the ends apart."""
    sign = "+" if signed else ""
    if max(abs(low), abs(high)) >= 100:
        return f"{low:{sign}.0f}, {high:{sign}.0f}"
    for spec in (".2f", ".3f", ".3g"):
        ends = f"{low:{sign}{spec}}", f"{high:{sign}{spec}}"
        if ends[0] != ends[1]:
            break
    return ", ".join(ends)


def format_bracket(low: float | None, high: float | None, signed: bool = False) -> str:
    """'[0.87, 0.95]', or '' where the interval is undefined."""
    return "" if low is None or high is None else f"[{format_interval(low, high, signed)}]"


def format_estimate(metric: Metric | None) -> str:
    """'0.947 [0.91, 0.97]': the value to three decimals, the interval to two (or more, to tell its ends apart)."""
    if metric is None:
        return MISSING
    return " ".join(filter(None, [format_number(metric.value), format_bracket(metric.ci_low, metric.ci_high)]))


def format_delta(c: Comparison) -> str:
    """'+0.476 [+0.40, +0.55]'."""
    return " ".join(filter(None, [format_signed(c.value), format_bracket(c.ci_low, c.ci_high, signed=True)]))


def format_with_interval(value: float, low: float | None, high: float | None, signed: bool = False) -> str:
    """A judge's or a drift's figure: the interval always to two decimals (these are shares and scores)."""
    text = f"{value:+.3f}" if signed else format_number(value)
    if low is None or high is None:
        return text
    return f"{text} [{low:+.2f}, {high:+.2f}]" if signed else f"{text} [{low:.2f}, {high:.2f}]"


def format_p(p: float) -> str:
    return f"{p:.1e}" if p < 0.001 else f"{p:.3g}"


def adjusted_p(c: Comparison) -> float:
    """The p a significance mark reads: Benjamini–Hochberg adjusted over the run (raw in files before 1.4)."""
    return c.p_adjusted if c.p_adjusted is not None else c.p_value


def format_adjusted_p(c: Comparison) -> str:
    return format_p(c.p_adjusted) if c.p_adjusted is not None else MISSING


def format_count(value: int | None) -> str:
    return MISSING if value is None else str(value)
