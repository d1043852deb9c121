"""Judging generation samples: pointwise judges (callables, reward models) and their summaries."""
