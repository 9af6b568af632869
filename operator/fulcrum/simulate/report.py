"""Summaries of runs: the ``--json`` document, the ``--timeline`` CSV and table rows."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fulcrum.simulate.engine import Run
from fulcrum.simulate.misses import misses_of
from fulcrum.simulate.policies import Setting


def oracle_of(runs: Mapping[str, Run]) -> Run | None:
    return runs.get("oracle") or runs.get("_oracle")


def summary(run: Run, oracle: Run | None, setting: Setting | None = None) -> dict[str, Any]:
    """One policy's entry of ``fulcrum simulate --json``; with the ``setting`` it ran in, ``lateRequests`` too
    (:mod:`fulcrum.simulate.misses`: why its late requests were late, each class a share of all requests)."""
    cost_vs_oracle = run.cost / oracle.cost if oracle is not None and oracle.cost > 0 else 1.0
    row: dict[str, Any] = {
        "sloAttainment": round(run.slo_attainment, 6),
        "cost": round(run.cost, 4),
        "costVsOracle": round(cost_vs_oracle, 4),
        "topTierShare": round(run.top_tier_share, 6),
        "budgetViolationSeconds": float(run.budget_violation_seconds),
        "tierSwitches": run.tier_switches,
        "scaleEvents": run.scale_events,
    }
    if setting is not None:
        row["lateRequests"] = misses_of(run, setting).to_dict()
    return row


def json_document(runs: Mapping[str, Run], setting: Setting | None = None) -> dict[str, Any]:
    oracle = oracle_of(runs)
    return {"policies": {name: summary(run, oracle, setting) for name, run in runs.items() if not name.startswith("_")}}


def write_timeline(path: Path, runs: Mapping[str, Run]) -> None:
    """Every decision as ``t_seconds,policy,tier,node_pool,replicas`` (the desired configuration from then on)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_seconds", "policy", "tier", "node_pool", "replicas"])
        for name, run in runs.items():
            if name.startswith("_"):
                continue
            for t, tier, pool, replicas in run.timeline:
                writer.writerow([f"{t:g}", name, tier, pool, replicas])


FLEET_HEADER = ("t_seconds", "policy", "tier", "node_pool", "ready_replicas", "starting_replicas", "serving_tier")


def write_fleet(path: Path, runs: Mapping[str, Run]) -> None:
    """What ran: per step and policy, one row per placement that exists (rolls and hot switches included).

    ``tier`` is the tier its replicas were created for, ``serving_tier`` the one its requests go to (they differ
    after a hot switch). Each row holds from ``t_seconds`` for one step: cost is ``(ready + starting) x the
    pool's cost per hour`` over the step, capacity ``ready x`` the serving tier's capacity on that pool.
    """
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FLEET_HEADER)
        for name, run in runs.items():
            if name.startswith("_"):
                continue
            for t, row in run.fleet:
                writer.writerow([f"{t:g}", name, row.tier, row.node_pool, row.ready, row.starting, row.serving_tier])
