"""Policy benchmark: every example trace x policy, side by side with the oracle, and the simulator's speed.

Run: ``python benchmarks/policy.py [--step 10] [--policies fulcrum,hpa,kpa,static,oracle] [--hot both|on|off]``

``fulcrum`` runs with hot tiers on (each replica loads every tier profiled on its pool: a switch among them is a
routing change, no new pods) and off (every switch rolls new pods), side by side; the baselines serve one tier
and run once. ``absorb`` is the longest stretch during which the serving replicas could not serve the load
within the SLO: on the flash sale, the time the fleet took to absorb the spike.

Targets for ``fulcrum`` (issue 6): SLO attainment >= 99 % (flash sale: 98 %), cost <= 1.2x the oracle's,
over budget < 1 % of the time, top-tier share >= 90 % of the oracle's. The last column says which are met.
These four traces are examples the policy was shaped on; ``benchmarks/scenarios.py`` judges it on held-out
generated scenarios.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fulcrum.api import ProfilesFile
from fulcrum.commands.simulate import load_spec
from fulcrum.simulate.engine import Run, all_hot_tiers, make_setting, simulate, simulate_policy
from fulcrum.simulate.trace import read_trace

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "ctr-ranker" / "simulate.yaml"
PROFILES = ROOT / "examples" / "profiles" / "ctr-ranker.json"
TRACES = ("diurnal", "flash-sale", "black-friday", "bursts")


def targets(trace: str, run: Run, oracle: Run) -> str:
    slo_target = 0.98 if trace == "flash-sale" else 0.99
    misses = []
    if run.slo_attainment < slo_target:
        misses.append("slo")
    if oracle.cost > 0 and run.cost / oracle.cost > 1.2:
        misses.append("cost")
    if run.duration > 0 and run.budget_violation_seconds / run.duration >= 0.01:
        misses.append("budget")
    if oracle.top_tier_share > 0 and run.top_tier_share / oracle.top_tier_share < 0.9:
        misses.append("top-tier")
    return "all met" if not misses else "missed: " + ",".join(misses)


def absorb_seconds(run: Run, step: float) -> tuple[float, float]:
    """The longest run of steps whose serving capacity fell short of the load: (its start, its length) in s."""
    short = run.capacity < run.rates * (1.0 - 1e-9)
    best_start, best_length, start = 0.0, 0.0, None
    for i, flag in enumerate([*short.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if (i - start) * step > best_length:
                best_start, best_length = float(run.times[start]), (i - start) * step
            start = None
    return best_start, best_length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=10.0)
    parser.add_argument("--policies", default="fulcrum,hpa,kpa,static,oracle")
    parser.add_argument(
        "--switch", choices=["rolling", "blue-green"], default="rolling", help="How switches happen (fleet model)."
    )
    parser.add_argument("--hot", choices=["on", "off", "both"], default="both", help="fulcrum with hot tiers on/off.")
    args = parser.parse_args()
    spec = load_spec(SPEC)
    profiles = ProfilesFile.model_validate_json(PROFILES.read_text())
    policies = [p for p in args.policies.split(",") if p]
    header = (
        f"{'trace':13s} {'policy':12s} {'SLO att.':>9s} {'cost':>8s} {'vs oracle':>9s} "
        f"{'top tier':>8s} {'top/oracle':>10s} {'over budget':>11s} {'switches':>8s} {'absorb (longest short)':>22s}"
        "  fulcrum targets"
    )
    print(
        f"spec {SPEC.relative_to(ROOT)}, profiles {PROFILES.relative_to(ROOT)}, step {args.step:g} s, "
        f"switches {args.switch}"
    )
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.hot]
    hot = all_hot_tiers(spec, profiles)
    loaded = ", ".join(f"{pool}={'+'.join(tiers)}" for pool, tiers in hot.items())
    print(f"hot tiers (on): {loaded}")
    print(header)
    print("-" * len(header))
    for name in TRACES:
        trace = read_trace(ROOT / "examples" / "traces" / f"{name}.csv")
        for index, on in enumerate(modes):
            setting = make_setting(
                spec, profiles, trace, args.step, rolling=args.switch == "rolling", hot=hot if on else None
            )
            # the baselines serve one tier (hot tiers change nothing for them): they run with the first mode only
            wanted = policies if index == 0 else [p for p in policies if p in ("fulcrum", "oracle")]
            runs = simulate(setting, wanted)
            oracle = runs.get("oracle") or runs["_oracle"]
            for policy, run in runs.items():
                if policy.startswith("_") or (index > 0 and policy != "fulcrum"):
                    continue
                label = f"{policy} {'hot' if on else 'cold'}" if policy == "fulcrum" else policy
                top_ratio = run.top_tier_share / oracle.top_tier_share if oracle.top_tier_share > 0 else 1.0
                over = run.budget_violation_seconds / run.duration if run.duration > 0 else 0.0
                verdict = targets(name, run, oracle) if policy == "fulcrum" else ""
                at, absorb = absorb_seconds(run, args.step)
                print(
                    f"{name:13s} {label:12s} {run.slo_attainment:9.4%} {run.cost:8.2f} "
                    f"{run.cost / oracle.cost:8.3f}x {run.top_tier_share:8.1%} {top_ratio:9.2f}x {over:11.2%} "
                    f"{run.tier_switches:8d} {absorb:5.0f} s at {at / 3600:5.2f} h  {verdict}"
                )
    print()
    trace = read_trace(ROOT / "examples" / "traces" / "diurnal.csv")
    setting = make_setting(spec, profiles, trace, 10.0)
    steps = len(setting.step_rates)
    print(f"simulator speed, 24 h trace at 10 s steps ({steps} steps), goal < 5 s per policy (wall, and CPU time")
    print("of this process: on a shared machine wall time also counts other jobs):")
    for policy in policies:
        start, cpu = time.perf_counter(), time.process_time()
        simulate_policy(setting, policy)
        elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        print(f"  {policy:8s} wall {elapsed:6.2f} s  cpu {used:6.2f} s  ({1e6 * used / steps:6.1f} us/step cpu)")


if __name__ == "__main__":
    main()
