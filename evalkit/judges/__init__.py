"""Judges of generated answers: pairwise LLM judges asked in both orders, and the length-controlled win rate."""
