"""Stage 7, generation samples: the prompt panel, decoding and the drift of the policy from its reference."""
