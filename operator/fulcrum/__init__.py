"""Fulcrum: serve models on NVIDIA Triton at the lowest cost that meets a latency SLO.

Importing this package is cheap on purpose: it imports neither torch nor the Kubernetes client.
Sub-packages: ``api`` (the ModelDeployment schema), ``resources`` (pure manifest builders),
``policy`` (pure control logic), ``metrics`` (reading Triton metrics), ``simulate`` (the fleet
simulator), ``handlers`` (Kopf glue), ``commands`` (the ``fulcrum`` CLI's sub-commands).
"""

__version__ = "0.1.0"
