"""Judging policies on many scenarios: one scenario's figures per policy, and their distribution over many.

The targets (issue 16) are taken over the *feasible* scenarios, those where the attainment bound
(:func:`fulcrum.simulate.policies.attainment_bound`: the most SLO attainment any policy could reach within the
budget) is at least 99.9 %.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fulcrum.policy import Tuning
from fulcrum.simulate.engine import Run, make_setting, simulate, simulate_policy
from fulcrum.simulate.misses import Misses, misses_of
from fulcrum.simulate.policies import attainment_bound
from fulcrum.simulate.scenarios import Scenario

POLICIES = ("fulcrum", "oracle", "hpa", "kpa", "static")
BASELINES = ("hpa", "kpa", "static")
FEASIBLE = 0.999


@dataclass(frozen=True)
class Figures:
    """One policy on one scenario."""

    attainment: float
    cost: float
    cost_vs_oracle: float
    top_share: float
    top_vs_oracle: float | None
    """None when the oracle never serves the top tier."""
    over_budget_seconds: float
    switches: int
    misses: Misses | None = None
    """Why its requests were late (:mod:`fulcrum.simulate.misses`; fulcrum only)."""


@dataclass(frozen=True)
class Outcome:
    """Every policy on one scenario."""

    name: str
    family: str
    summary: str
    objective: str
    bound: float
    figures: dict[str, Figures]
    cpu_seconds: float

    @property
    def feasible(self) -> bool:
        return self.bound >= FEASIBLE


@dataclass(frozen=True)
class Totals:
    """What one policy's run on a scenario adds up to (all that the figures need)."""

    attainment: float
    cost: float
    top_share: float
    over_budget_seconds: float
    switches: int
    misses: Misses | None = None
    """Why its requests were late (fulcrum's runs only; not kept in :class:`Shared`)."""

    @classmethod
    def of(cls, run: Run, misses: Misses | None = None) -> Totals:
        return cls(
            run.slo_attainment, run.cost, run.top_tier_share, run.budget_violation_seconds, run.tier_switches, misses
        )


@dataclass(frozen=True)
class Shared:
    """What does not depend on fulcrum (the oracle, the baselines and the attainment bound) for one scenario.

    It does not depend on hot tiers either (the oracle's placements are instant, the baselines never leave their
    tier), so one is good for every mode; :meth:`to_dict` / :meth:`from_dict` let a benchmark keep it between runs.
    """

    bound: float
    totals: dict[str, Totals]

    def to_dict(self) -> dict[str, Any]:
        totals = {name: {k: v for k, v in asdict(t).items() if k != "misses"} for name, t in self.totals.items()}
        return {"bound": self.bound, "totals": dict(sorted(totals.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Shared:
        totals = {
            str(name): Totals(
                float(t["attainment"]),
                float(t["cost"]),
                float(t["top_share"]),
                float(t["over_budget_seconds"]),
                int(t["switches"]),
            )
            for name, t in dict(data["totals"]).items()
        }
        return cls(float(data["bound"]), totals)


def shared_runs(scenario: Scenario, *, step: float, policies: Sequence[str] = POLICIES) -> Shared:
    """Simulate the oracle and the baselines among ``policies``, and the attainment bound."""
    setting = make_setting(scenario.spec, scenario.profiles, scenario.trace, step, hot=None)
    runs = simulate(setting, [p for p in policies if p != "fulcrum"])
    totals = {("oracle" if name == "_oracle" else name): Totals.of(run) for name, run in runs.items()}
    return Shared(attainment_bound(setting), totals)


def evaluate(scenario: Scenario, *, step: float, hot: bool, policies: Sequence[str] = POLICIES) -> Outcome:
    """Simulate every policy on a scenario (``hot``: with the scenario's hot tiers, else cold switches only)."""
    return evaluate_modes(scenario, step=step, modes=(hot,), policies=policies)[hot]


def evaluate_modes(
    scenario: Scenario,
    *,
    step: float,
    modes: Sequence[bool],
    policies: Sequence[str] = POLICIES,
    shared: Shared | None = None,
    tuning: Tuning | None = None,
    metrics_window_seconds: float | None = None,
) -> dict[bool, Outcome]:
    """:func:`evaluate` for each hot-tier mode in ``modes``, sharing what does not depend on hot tiers.

    Only fulcrum switches tiers on a pool with start-up and overlap: the oracle's placements are instant (a hot
    switch and a cold one are the same to it) and the baselines never leave their tier, so they, and the
    attainment bound, are simulated once (or taken from ``shared``, :func:`shared_runs` of an earlier run) and
    reused for every mode. ``tuning``: fulcrum's knobs, for a sweep (its defaults when None).
    ``metrics_window_seconds``: the trailing window of the rate fulcrum observes (None: each step's); the baselines
    keep each step's rate, so they stay shared.
    """
    started = time.process_time()
    if shared is None:
        shared = shared_runs(scenario, step=step, policies=policies)
    shared_seconds = (time.process_time() - started) / len(modes)
    outcomes = {}
    for hot in modes:
        began = time.process_time()
        totals = dict(shared.totals)
        if "fulcrum" in policies:
            setting = make_setting(
                scenario.spec,
                scenario.profiles,
                scenario.trace,
                step,
                hot=scenario.hot if hot else None,
                metrics_window_seconds=metrics_window_seconds,
            )
            run = simulate_policy(setting, "fulcrum", tuning=tuning)
            totals["fulcrum"] = Totals.of(run, misses_of(run, setting))
        keep = [p for p in policies if p in totals]
        outcomes[hot] = _outcome(
            scenario,
            {p: totals[p] for p in keep},
            totals["oracle"],
            shared.bound,
            shared_seconds + time.process_time() - began,
        )
    return outcomes


def _outcome(
    scenario: Scenario, totals: Mapping[str, Totals], oracle: Totals, bound: float, cpu_seconds: float
) -> Outcome:
    figures = {}
    for name, run in totals.items():
        top = None if oracle.top_share <= 0.0 else run.top_share / oracle.top_share
        figures[name] = Figures(
            run.attainment,
            run.cost,
            run.cost / oracle.cost if oracle.cost > 0 else 1.0,
            run.top_share,
            top,
            run.over_budget_seconds,
            run.switches,
            run.misses,
        )
    return Outcome(
        scenario.name,
        scenario.family,
        scenario.summary,
        scenario.spec.scaling.objective,
        bound,
        figures,
        cpu_seconds,
    )


@dataclass(frozen=True)
class Spread:
    """5th percentile, median and worst of a figure over scenarios."""

    p5: float
    median: float
    worst: float
    count: int


def spread(values: Iterable[float], *, higher_is_better: bool = True) -> Spread:
    """The 5th percentile is the bad tail: the low one for attainment, the high one for cost (then p95)."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if data.size == 0:
        return Spread(math.nan, math.nan, math.nan, 0)
    if higher_is_better:
        return Spread(float(np.percentile(data, 5)), float(np.median(data)), float(data.min()), int(data.size))
    return Spread(float(np.percentile(data, 95)), float(np.median(data)), float(data.max()), int(data.size))


@dataclass(frozen=True)
class Verdict:
    """The targets of issue 16 for ``fulcrum`` over the feasible scenarios."""

    attainment: Spread
    cost: Spread
    top: Spread
    over_budget: list[str]
    """Scenarios where fulcrum spent any time over budget (any scenario)."""
    beaten: list[tuple[str, str, float]]
    """(scenario, baseline, points) where a baseline within budget beat fulcrum's attainment by > 1 point."""

    @property
    def checks(self) -> dict[str, bool]:
        return {
            "attainment median >= 99.5 %": self.attainment.median >= 0.995,
            "attainment p5 >= 98 %": self.attainment.p5 >= 0.98,
            "cost median <= 1.15x oracle": self.cost.median <= 1.15,
            "0 s over budget everywhere": not self.over_budget,
            "top tier median >= 0.9x oracle (Quality)": self.top.median >= 0.9,
            "no baseline within budget > 1 point better": not self.beaten,
        }


def verdict(outcomes: Sequence[Outcome], policy: str = "fulcrum") -> Verdict:
    feasible = [o for o in outcomes if o.feasible]
    attainment = spread(o.figures[policy].attainment for o in feasible)
    cost = spread((o.figures[policy].cost_vs_oracle for o in feasible), higher_is_better=False)
    top = spread(
        o.figures[policy].top_vs_oracle  # type: ignore[misc]
        for o in feasible
        if o.objective == "Quality" and o.figures[policy].top_vs_oracle is not None
    )
    over = [o.name for o in outcomes if o.figures[policy].over_budget_seconds > 0.0]
    beaten = []
    for o in feasible:
        mine = o.figures[policy].attainment
        for baseline in BASELINES:
            theirs = o.figures.get(baseline)
            if theirs is not None and theirs.over_budget_seconds <= 0.0 and theirs.attainment > mine + 0.01:
                beaten.append((o.name, baseline, 100.0 * (theirs.attainment - mine)))
    return Verdict(attainment, cost, top, over, beaten)


__all__ = [
    "BASELINES",
    "FEASIBLE",
    "POLICIES",
    "Figures",
    "Outcome",
    "Shared",
    "Spread",
    "Totals",
    "Verdict",
    "evaluate",
    "evaluate_modes",
    "shared_runs",
    "spread",
    "verdict",
]
