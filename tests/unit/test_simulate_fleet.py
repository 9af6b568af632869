"""``fulcrum simulate --fleet``: cost, budget and capacity recomputed from what the CSV says ran."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fulcrum.api import ProfilesFile
from fulcrum.cli import main
from fulcrum.policy import ProfileTable
from fulcrum.simulate.report import FLEET_HEADER

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "ctr-ranker" / "simulate.yaml"
PROFILES = ROOT / "examples" / "profiles" / "ctr-ranker.json"
STEP = 10.0


def _trace(path: Path) -> None:
    """75 minutes: 8 000 rps, a jump to 45 000 within a minute for 20 minutes (past fp32's budget), back."""
    with path.open("w") as handle:
        handle.write("t_seconds,requests_per_second\n")
        for i in range(450):
            t = i * STEP
            rate = 8000.0 if t < 900 or t >= 2160 else min(45000.0, 8000.0 + 37000.0 * (t - 900) / 60.0)
            handle.write(f"{t:g},{rate:.1f}\n")


def _simulate(tmp_path: Path, *extra: str) -> tuple[dict[str, dict[str, float]], list[dict[str, str]]]:
    trace = tmp_path / "trace.csv"
    _trace(trace)
    fleet = tmp_path / "fleet.csv"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--spec",
            str(SPEC),
            "--trace",
            str(trace),
            "--profiles",
            str(PROFILES),
            "--policies",
            "fulcrum,hpa,oracle",
            "--fleet",
            str(fleet),
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    with fleet.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == FLEET_HEADER
        rows = list(reader)
    return json.loads(result.output)["policies"], rows


Simulated = tuple[dict[str, dict[str, float]], list[dict[str, str]], Path]


@pytest.fixture(scope="module")
def hot(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    where = tmp_path_factory.mktemp("hot")
    return (*_simulate(where, "--hot", "all"), where)


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    where = tmp_path_factory.mktemp("cold")
    return (*_simulate(where, "--hot", "none"), where)


def _recompute(rows: list[dict[str, str]], policy: str) -> tuple[float, float, float, dict[float, float]]:
    """From the CSV alone: total cost, seconds over budget, the highest cost rate, and cost per hour per step."""
    spec = yaml.safe_load(SPEC.read_text())["spec"]
    unit = {p["name"]: float(p["costPerHour"]) for p in spec["nodePools"]}
    budget = float(spec["budget"]["maxCostPerHour"])
    per_step: dict[float, float] = defaultdict(float)
    for row in rows:
        if row["policy"] == policy:
            replicas = int(row["ready_replicas"]) + int(row["starting_replicas"])
            per_step[float(row["t_seconds"])] += replicas * unit[row["node_pool"]]
    cost = sum(rate * STEP / 3600.0 for rate in per_step.values())
    over = sum(STEP for rate in per_step.values() if rate > budget + 1e-9)
    return cost, over, max(per_step.values()), per_step


@pytest.mark.parametrize("mode", ["hot", "cold"])
def test_the_fleet_csv_accounts_for_every_cost_and_second_over_budget(
    mode: str, request: pytest.FixtureRequest
) -> None:
    summary, rows, _ = request.getfixturevalue(mode)
    budget = float(yaml.safe_load(SPEC.read_text())["spec"]["budget"]["maxCostPerHour"])
    for policy in ("fulcrum", "hpa", "oracle"):
        cost, over, highest, per_step = _recompute(rows, policy)
        assert len(per_step) == 450  # a row for every step
        assert abs(cost - summary[policy]["cost"]) <= 1e-3 * max(1.0, cost), policy
        assert over == summary[policy]["budgetViolationSeconds"], policy
        assert highest <= budget + 1e-9, policy  # what ran never cost more than the ceiling, rolls included
    _, _, highest, _ = _recompute(rows, "hpa")
    assert highest > 0.9 * budget  # fp32 alone needs more than the budget during the jump: the ceiling binds


def test_the_fleet_csv_shows_rolls_and_hot_switches(hot: Simulated, cold: Simulated) -> None:
    _, cold_rows, _ = cold
    _, hot_rows, _ = hot
    # a cold switch rolls: two placements exist in the same step, both paid for
    by_step: dict[float, set[tuple[str, str]]] = defaultdict(set)
    for row in cold_rows:
        if row["policy"] == "fulcrum":
            by_step[float(row["t_seconds"])].add((row["tier"], row["node_pool"]))
            assert row["tier"] == row["serving_tier"]
    assert any(len(placements) > 1 for placements in by_step.values())
    # a hot switch keeps the pods (their tier) and changes what they serve
    switched = [r for r in hot_rows if r["policy"] == "fulcrum" and r["tier"] != r["serving_tier"]]
    assert switched
    first = min(float(r["t_seconds"]) for r in switched)
    assert 900.0 <= first <= 960.0  # within a tick or two of the jump, long before a new pod could start


def test_capacity_recomputed_from_the_fleet_csv_covers_the_load(hot: Simulated) -> None:
    """Ready replicas x the serving tier's capacity (from the profiles) against the trace, from the CSV alone."""
    summary, rows, tmp_path = hot
    table = ProfileTable.from_file(ProfilesFile.model_validate_json(PROFILES.read_text()))
    capacity: dict[float, float] = defaultdict(float)
    for row in rows:
        if row["policy"] == "oracle":
            per_replica = table.capacity(row["serving_tier"], row["node_pool"], 25.0, 99.0)
            capacity[float(row["t_seconds"])] += int(row["ready_replicas"]) * per_replica
    with (tmp_path / "trace.csv").open() as handle:
        rates = {float(r["t_seconds"]): float(r["requests_per_second"]) for r in csv.DictReader(handle)}
    # the oracle sizes every step for its rate: what the CSV says ran serves every step's load
    assert all(capacity[t] >= rate * (1 - 1e-6) for t, rate in rates.items())
    assert summary["oracle"]["sloAttainment"] > 0.98
