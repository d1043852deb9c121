"""Judging generation samples: pointwise judges (callables, reward models) with their summaries, pairwise judges
in both orders, and the length-controlled win rate."""
