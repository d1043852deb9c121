"""Capability tasks through lm-evaluation-harness: what alignment cost, document by document.

A DPO checkpoint that wins on preference pairs can lose what its base could do: the alignment tax.
lm-eval's table gives each model's score with a standard error; two models on the same documents
need a paired comparison instead, which sees a drop the two standard errors hide. This stage runs
the suite's tasks with lm-eval's own Python API (`simple_evaluate` on an `HFLM` wrapped around the
model evalkit loaded, adapters included, every document's result logged), then:

- each task's score per model with an interval: Wilson's for 0/1 scores (accuracies), Student t for
  continuous ones;
- every later-listed model against every earlier-listed one on the documents both scored: Tango's
  score interval and test for 0/1 scores (McNemar's z at Δ = 0), with the documents that flipped, and
  a paired t interval and test of the mean difference otherwise (`evalkit.metrics.stats`), so a gate rule
  replays exactly the recorded test.

A document is matched across models by its id (the document's own `id` field where it has one, else
lm-eval's index) and lm-eval's hash of the document, so a changed document is never paired with the
old one. A model's results per task are kept (`capabilities.cache`) while the model's fingerprint,
the task's files, the settings and the lm-eval version stay the same. lm-eval is an optional extra:
nothing here imports it until a suite asks for tasks.
"""
