"""Stage 5, sequence log-probs of every pair: tokenizing, batching, the forward passes and the reference cache."""
