"""A suite run end to end, the composition root: checks, training, scoring every model, summaries, results, reports
and the gate, each a call into the stage that owns it."""
