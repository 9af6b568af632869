"""Pure reconciliation: from a ModelDeployment and what exists to what should exist and what status says.

``plan.plan()`` does no I/O; ``fulcrum.controller`` feeds it from its caches and applies the result.
"""
