"""Builds precision tiers of a model into a Triton model repository (torch imported lazily)."""
