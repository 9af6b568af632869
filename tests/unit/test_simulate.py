"""The simulator: traces, the serving model, the fleet, the baselines, the report and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from fulcrum.api import ProfilesFile, TierProfiles
from fulcrum.commands.simulate import simulate as simulate_command
from fulcrum.policy import Config, Curve, Placement
from fulcrum.simulate.engine import make_setting, simulate, simulate_policy
from fulcrum.simulate.fleet import SimFleet
from fulcrum.simulate.report import json_document
from fulcrum.simulate.serving import serve_step
from fulcrum.simulate.trace import Trace, TraceError, read_trace, write_trace
from tests.unit.test_policy_support import make_spec, model_profile

PROFILES = ProfilesFile(
    tiers=[
        TierProfiles(name="fp32", profiles=[model_profile("l4", 1000.0), model_profile("cpu", 200.0, base=6.0)]),
        TierProfiles(name="int8", profiles=[model_profile("l4", 3000.0, base=3.0)]),
    ]
)
KEYS = {
    "sloAttainment",
    "cost",
    "costVsOracle",
    "topTierShare",
    "budgetViolationSeconds",
    "tierSwitches",
    "scaleEvents",
}


def step_trace() -> Trace:
    return Trace.from_points([0.0, 600.0, 1200.0], [1000.0, 5000.0, 1000.0], end=1800.0)


def test_step_rates_integrate_the_piecewise_constant_trace() -> None:
    trace = Trace.from_points([0.0, 15.0], [10.0, 40.0], end=30.0)
    assert trace.step_rates(10.0).tolist() == pytest.approx([10.0, 25.0, 40.0])


def test_read_trace_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_trace(path, [0.0, 10.0], [5.0, 7.5])
    trace = read_trace(path)
    assert trace.rates.tolist() == [5.0, 7.5] and trace.end == 20.0
    bad = tmp_path / "bad.csv"
    bad.write_text("t_seconds,requests_per_second\n0,1\n0,2\n")
    with pytest.raises(TraceError, match=r"bad.csv:3"):
        read_trace(bad)
    (tmp_path / "hdr.csv").write_text("time,rate\n")
    with pytest.raises(TraceError, match="header"):
        read_trace(tmp_path / "hdr.csv")


def test_serving_below_saturation_follows_the_profile() -> None:
    curve = Curve.from_profile(model_profile("l4", 1000.0))
    outcome = serve_step(curve, 2, 800.0, 0.0, seconds=10.0, slo_ms=25.0, percentile=99.0)
    assert outcome.requests == 8000.0
    assert outcome.in_time / outcome.requests == pytest.approx(curve.share_within(400.0, 25.0))
    assert outcome.backlog == 0.0 and outcome.queue_ms == 0.0


def test_overload_queues_and_misses_everyone() -> None:
    curve = Curve.from_profile(model_profile("l4", 1000.0))
    outcome = serve_step(curve, 1, 3000.0, 0.0, seconds=10.0, slo_ms=25.0, percentile=99.0)
    assert outcome.in_time / outcome.requests < 0.05
    assert outcome.backlog > 0 and outcome.queue_ms > 25.0
    nothing = serve_step(None, 0, 100.0, 0.0, seconds=10.0, slo_ms=25.0, percentile=99.0)
    assert nothing.in_time == 0.0


def test_a_queue_timeout_sheds_only_the_excess_under_overload() -> None:
    curve = Curve.from_profile(model_profile("l4", 1000.0))
    unloaded_p99 = curve.latency_at(curve.rates[0], 99.0)
    timeout = (25.0 - unloaded_p99) / 1000.0  # served requests stay in time at the SLO percentile
    rate = 1.5 * curve.saturation_rps
    outcome = serve_step(curve, 1, rate, 0.0, seconds=10.0, slo_ms=25.0, percentile=99.0, queue_timeout_seconds=timeout)
    served = curve.saturation_rps / rate
    assert outcome.in_time / outcome.requests == pytest.approx(served, rel=0.03)  # the excess is rejected
    assert outcome.backlog <= curve.saturation_rps * timeout + 1e-9 and outcome.queue_ms <= 1000.0 * timeout
    # below saturation only requests that outwait the timeout are lost, never more than without it
    light = serve_step(curve, 2, 800.0, 0.0, seconds=10.0, slo_ms=25.0, percentile=99.0, queue_timeout_seconds=timeout)
    plain = serve_step(curve, 2, 800.0, 0.0, seconds=10.0, slo_ms=25.0, percentile=99.0)
    median = curve.latency_at(curve.rates[0], 50.0)
    assert light.in_time == pytest.approx(8000.0 * curve.share_within(400.0, min(25.0, 1000.0 * timeout + median)))
    assert light.in_time <= plain.in_time


def test_fleet_switch_overlaps_until_the_new_placement_is_ready() -> None:
    fleet = SimFleet({"l4": 60.0, "cpu": 30.0}, {"l4": 1.0, "cpu": 0.25})
    fleet.apply(Config("fp32", "l4", 2), 0.0, instant=True)
    fleet.apply(Config("int8", "cpu", 4), 100.0)
    assert fleet.serving == Placement("fp32", "l4")
    assert fleet.cost_per_hour() == pytest.approx(2 * 1.0 + 4 * 0.25)
    fleet.advance(120.0)
    assert fleet.serving == Placement("fp32", "l4")
    fleet.advance(130.0)
    assert fleet.serving == Placement("int8", "cpu")
    assert fleet.cost_per_hour() == pytest.approx(1.0)
    fleet.apply(Config("int8", "cpu", 6), 140.0)
    observed = fleet.observed(150.0)
    assert observed[0].ready == 4 and observed[0].starting == (140.0, 140.0)
    fleet.apply(Config("int8", "cpu", 3), 150.0)  # starting replicas go first
    assert fleet.observed(150.0)[0].ready == 3 and fleet.observed(150.0)[0].starting == ()


def test_a_switch_drops_the_old_placements_starting_replicas() -> None:
    fleet = SimFleet({"l4": 60.0, "cpu": 30.0}, {"l4": 1.0, "cpu": 0.25})
    fleet.apply(Config("fp32", "l4", 2), 0.0, instant=True)
    fleet.apply(Config("fp32", "l4", 5), 10.0)  # three more starting
    fleet.apply(Config("int8", "cpu", 4), 20.0)  # switch: the three would never serve
    assert fleet.cost_per_hour() == pytest.approx(2 * 1.0 + 4 * 0.25)
    assert fleet.serving == Placement("fp32", "l4")


def test_every_policy_runs_and_the_summary_has_designs_keys() -> None:
    setting = make_setting(make_spec(budget="10.00"), PROFILES, step_trace(), 10.0)
    runs = simulate(setting, ["fulcrum", "hpa", "kpa", "static", "oracle"])
    document = json_document(runs)
    assert set(document["policies"]) == {"fulcrum", "hpa", "kpa", "static", "oracle"}
    for row in document["policies"].values():
        assert set(row) == KEYS
        assert 0.0 <= row["sloAttainment"] <= 1.0
    assert document["policies"]["oracle"]["costVsOracle"] == 1.0
    assert document["policies"]["static"]["scaleEvents"] == 0
    assert document["policies"]["hpa"]["topTierShare"] == 1.0
    assert document["policies"]["fulcrum"]["sloAttainment"] > 0.7  # a 5x step in one tick, 60 s startup
    assert document["policies"]["fulcrum"]["budgetViolationSeconds"] == 0.0


def test_baselines_stay_within_the_budget() -> None:
    setting = make_setting(make_spec(budget="3.00"), PROFILES, step_trace(), 10.0)
    for name in ("hpa", "kpa", "static"):
        run = simulate_policy(setting, name)
        assert run.budget_violation_seconds == 0.0, name
        assert float(np.max(run.cost_per_hour)) <= 3.0


def test_oracle_is_instant_and_meets_the_slo() -> None:
    setting = make_setting(make_spec(budget=None), PROFILES, step_trace(), 10.0)
    oracle = simulate_policy(setting, "oracle")
    assert oracle.slo_attainment > 0.99
    assert oracle.capacity[60] >= oracle.rates[60]  # the step up is served at once


def test_a_slower_fleet_is_caught_by_the_correction() -> None:
    """A fleet 30 % slower than profiled saturates at first; the correction learns it and the fleet catches up."""
    spec = make_spec(budget=None)
    trace = Trace.from_points([0.0], [3000.0], end=1800.0)
    slow = simulate_policy(make_setting(spec, PROFILES, trace, 10.0, speed=0.7), "fulcrum")
    assert slow.slo_attainment > 0.95
    settled = slow.capacity[30:]  # from five minutes on (truth: 0.7x the profile)
    assert float(np.min(settled)) >= 3000.0


def test_a_trailing_metrics_window_shows_a_step_late_and_costs_attainment() -> None:
    """The operator's scrape source reads the last 15 s (at a 15 s step, each step's own rate: the same run); a
    minute's window shows a 5x step over four ticks, and the policy meets less of it."""
    spec = make_spec(budget=None)
    runs = {
        window: simulate_policy(
            make_setting(spec, PROFILES, step_trace(), 15.0, metrics_window_seconds=window), "fulcrum"
        )
        for window in (None, 15.0, 60.0)
    }
    assert runs[15.0].codes == runs[None].codes
    assert runs[15.0].slo_attainment == runs[None].slo_attainment
    assert runs[60.0].slo_attainment < runs[None].slo_attainment - 0.01
    step = 600 // 15  # the load's step
    assert runs[None].codes[step + 1] == "LoadRising" and runs[60.0].codes[step + 1] != "LoadRising"


def test_oracle_always_runs_for_the_ratio() -> None:
    setting = make_setting(make_spec(), PROFILES, step_trace(), 10.0)
    runs = simulate(setting, ["static"])
    document = json_document(runs)
    assert list(document["policies"]) == ["static"]
    assert document["policies"]["static"]["costVsOracle"] > 1.0


def test_cli_json_timeline_and_plot(tmp_path: Path) -> None:
    spec = tmp_path / "md.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "fulcrum.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "x"},
                "spec": make_spec().to_wire(),
            }
        )
    )
    profiles = tmp_path / "profiles.json"
    profiles.write_text(PROFILES.model_dump_json(by_alias=True))
    trace = tmp_path / "trace.csv"
    write_trace(trace, [0.0, 300.0, 600.0], [1000.0, 4000.0, 1000.0])
    timeline = tmp_path / "timeline.csv"
    args = ["--spec", str(spec), "--trace", str(trace), "--profiles", str(profiles), "--policies", "fulcrum,hpa"]
    result = CliRunner().invoke(simulate_command, [*args, "--json", "--timeline", str(timeline)])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["policies"]) == {"fulcrum", "hpa"}
    rows = list(csv.reader(timeline.open()))
    assert rows[0] == ["t_seconds", "policy", "tier", "node_pool", "replicas"]
    assert {r[1] for r in rows[1:]} == {"fulcrum", "hpa"}
    table = CliRunner().invoke(simulate_command, args)
    assert table.exit_code == 0 and "fulcrum" in table.output
    bad = CliRunner().invoke(simulate_command, [*args[:-1], "nope"])
    assert bad.exit_code != 0 and "nope" in bad.output
    windowed = CliRunner().invoke(simulate_command, [*args, "--json", "--metrics-window", "30"])
    assert windowed.exit_code == 0, windowed.output
    assert set(json.loads(windowed.output)["policies"]) == {"fulcrum", "hpa"}
    too_short = CliRunner().invoke(simulate_command, [*args, "--metrics-window", "0.5"])
    assert too_short.exit_code != 0 and "--metrics-window" in too_short.output
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    plotted = CliRunner().invoke(simulate_command, [*args, "--plot", str(png)])
    assert plotted.exit_code == 0, plotted.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def parts(fleet: SimFleet, now: float) -> list[tuple[Placement, int]]:
    return [(part.placement, part.ready) for part in fleet.serving_parts(now)]


def test_a_rolling_switch_swaps_capacity_for_capacity() -> None:
    capacity = {Placement("fp32", "l4"): 700.0, Placement("int8", "l4"): 2100.0}
    fleet = SimFleet({"l4": 60.0}, {"l4": 1.0}, rolling=True, capacity=capacity)
    fleet.apply(Config("fp32", "l4", 6), 0.0, instant=True)
    fleet.apply(Config("int8", "l4", 1), 10.0)  # room for one new replica only
    fleet.advance(60.0, rate=4000.0)
    assert parts(fleet, 60.0) == [(Placement("fp32", "l4"), 6)]
    fleet.advance(70.0, rate=4000.0)  # the int8 replica is ready; an even split gives it one replica's share
    assert parts(fleet, 70.0) == [(Placement("fp32", "l4"), 5), (Placement("int8", "l4"), 1)]
    fleet.apply(Config("int8", "l4", 2), 80.0)
    fleet.advance(140.0, rate=4000.0)  # two int8 replicas serve 4200 rps alone: the old placement goes
    assert fleet.serving == Placement("int8", "l4")
    assert parts(fleet, 140.0) == [(Placement("int8", "l4"), 2)]


def test_a_rolling_switch_lets_old_replicas_go_that_the_load_does_not_need() -> None:
    capacity = {Placement("fp32", "l4"): 700.0, Placement("int8", "l4"): 2100.0}
    fleet = SimFleet({"l4": 60.0}, {"l4": 1.0}, rolling=True, capacity=capacity)
    fleet.apply(Config("fp32", "l4", 6), 0.0, instant=True)
    fleet.apply(Config("int8", "l4", 2), 10.0)
    fleet.advance(20.0, rate=2000.0)  # 3 x 700 serve 2000 rps
    assert parts(fleet, 20.0) == [(Placement("fp32", "l4"), 3)]
    assert fleet.cost_per_hour() == pytest.approx(3 + 2)


@pytest.mark.parametrize("rolling", [True, False])
def test_switches_keep_the_budget_and_the_slo(rolling: bool) -> None:
    trace = Trace.from_points([0.0, 600.0, 1800.0], [1000.0, 6000.0, 1500.0], end=3600.0)
    setting = make_setting(make_spec(budget="8.00", cooldown=300), PROFILES, trace, 10.0, rolling=rolling)
    run = simulate_policy(setting, "fulcrum")
    assert run.budget_violation_seconds == 0.0
    assert run.tier_switches >= 2  # away from fp32 as the load rises, back as it falls
    assert run.slo_attainment > 0.9


def test_with_a_queue_timeout_the_capacity_series_is_what_the_timeout_lets_through() -> None:
    """Triton rejects what waited longer than the queue timeout, so the replicas serve in time only up to the rate
    at which the latency reaches the timeout plus the service time (when that is tighter than the SLO): the
    capacity series says so, as the serving model and the policy do (it used to report the SLO's capacity)."""
    from fulcrum.policy.plan import served_latency

    plain = make_spec(budget=None)
    batching = plain.serving.dynamic_batching.model_copy(update={"queue_timeout_microseconds": 10_000})
    timed = plain.model_copy(update={"serving": plain.serving.model_copy(update={"dynamic_batching": batching})})
    trace = Trace.from_points([0.0], [2000.0], end=600.0)
    curve = make_setting(plain, PROFILES, trace, 10.0).truth.curve("fp32", "l4")
    assert curve is not None
    tighter = served_latency(timed, curve, 25.0)
    assert tighter < 25.0 and 0.0 < curve.capacity(tighter, 99.0) < curve.capacity(25.0, 99.0)
    for spec, latency in ((plain, 25.0), (timed, tighter)):
        run = simulate_policy(make_setting(spec, PROFILES, trace, 10.0), "static")
        replicas = run.replicas["fp32"][-1]
        assert run.capacity[-1] == pytest.approx(replicas * curve.capacity(latency, 99.0))
