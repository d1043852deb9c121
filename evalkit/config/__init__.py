"""Stage 1, the suite: its schema, rules, overrides and the one-line messages for what is wrong in it."""
