"""``fulcrum load``: an open-loop load generator for Triton, following a trace's request rate."""
