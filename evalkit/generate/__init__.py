"""Generation samples: the prompt panel, decoding in process or through an OpenAI-compatible endpoint, and the
drift of the policy from its reference."""
