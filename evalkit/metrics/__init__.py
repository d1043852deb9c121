"""Stage 6, numbers from log-probs: per-model metrics, paired comparisons and the statistics behind their intervals."""
