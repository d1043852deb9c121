"""Stage 11, what people read: one view of a run, rendered as report.md, report.html, the terminal and comparisons."""
