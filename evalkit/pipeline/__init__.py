"""Stage 12, a suite run end to end: training, scoring, generation, capabilities, results, reports, gate."""
