"""What people read: one view of a run, rendered as report.md, report.html and the terminal, and comparisons of two
runs (`evalkit compare`)."""
