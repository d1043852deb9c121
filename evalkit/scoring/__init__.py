"""Sequence log-probs of every pair: tokenizing as TRL does, batching, the forward passes, one dataset under one
model, and the caches that keep scores across runs."""
