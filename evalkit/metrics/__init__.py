"""Numbers from per-pair log-probs: the metric registry, cells of per-pair arrays, per-model metrics, paired
comparisons (one test for pairs, documents, the gate and `evalkit compare`), intervals and one-sided tests."""
