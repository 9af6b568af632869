"""The simulated fleet: the policy's fleet model (``fulcrum.policy.fleet``), stepped by the simulator.

The model is one module for both sides, so a policy projects exactly what the simulator then does: start-up
delays, rolling (cold) switches, hot switches. See :mod:`fulcrum.policy.fleet` for the rules.
"""

from __future__ import annotations

from fulcrum.policy.fleet import FleetModel, FleetRow, Part

SimFleet = FleetModel

__all__ = ["FleetRow", "Part", "SimFleet"]
