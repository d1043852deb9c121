"""The suite: its schema (specs, training options, gate rules as one class per kind), `--set` overrides, and the
one-line messages that name the file and key of every problem."""
