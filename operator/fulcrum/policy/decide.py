"""``decide``: one control tick. Pure: the same inputs always give the same Decision.

A tick (docs/policy.md, "How the policy decides"):

1. **Evidence.** A complete observation, a lower bound (``complete=False``) or nothing (``None``): nothing shrinks,
   moves away or switches on less than a complete observation, and scale-in waits for a fully observed window.
2. **Forecasts** (:mod:`fulcrum.policy.forecast`): the trend ``F(h)`` (what the load will probably be ``h`` s
   ahead) and the envelope ``E(h)`` (how high it may get, learnt from how fast it rose before).
3. **Sizing.** Every candidate placement (a Ready tier on a pool) gets the replicas that, once started now, serve
   ``F`` on its own tier and ``E`` on the fastest tier its replicas can hot switch to (itself without hot tiers),
   within min/max replicas and the budget, keeping room for a way out when the only one needs new pods.
4. **Target.** The objective's best sustainable candidate (Quality: the most accurate tier, then the cheapest;
   Cost: the cheapest). Staying wins unless it cannot hold the forecast (a forced move), or a move is clearly
   better: a more accurate tier with hysteresis, or a saving of ``switch_saving``; a move that needs new pods
   must also hold the envelope for the whole cooldown it commits to.
5. **Step.** A hot switch (same pool, both tiers loaded: no new pods) when the ready replicas can serve the target
   tier, else the current tier scales up so that they can ("Preparing"); a cold switch (rolling, new pods) when
   the cooldown and the budget allow; a hot switch to a faster tier at once when the ready replicas cannot serve
   the next tick (the one move that skips every wait); otherwise scaling within the placement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from fulcrum.api import ModelDeploymentSpec
from fulcrum.policy.capacity import ProfileTable
from fulcrum.policy.forecast import HORIZONS, forecast, growth_samples, slope
from fulcrum.policy.plan import EPSILON, Candidate, Option, Planner
from fulcrum.policy.rollout import mixed_capacity, old_replicas_to_keep
from fulcrum.policy.types import (
    DEFAULT_TUNING,
    Action,
    Config,
    Decision,
    Observation,
    Placement,
    PolicyState,
    Tuning,
)

MAX_HISTORY = 128
SATURATED_SHARE = 0.9
"""A saturated fleet serves less than what reaches it: its speed sample is taken this far below that."""
NO_HOT_TIERS: Mapping[str, frozenset[str]] = {}

Evidence = Literal["complete", "partial", "none"]
"""What this tick's observation says about the load: all of it, a lower bound, or nothing."""


def decide(
    spec: ModelDeploymentSpec,
    profiles: ProfileTable,
    observation: Observation | None,
    state: PolicyState,
    now: float,
    *,
    tuning: Tuning = DEFAULT_TUNING,
    hot_tiers: Mapping[str, frozenset[str]] = NO_HOT_TIERS,
) -> Decision:
    """Choose tier x node pool x replicas for the time from ``now`` on.

    ``profiles`` holds the Ready tiers only; ``state.fleet`` the replicas that exist now (see the package
    docstring); ``hot_tiers`` maps a pool to the tiers each of its replicas loads (a switch among them is hot).
    The returned ``Decision.state`` is what to pass to the next call.
    """
    tick = _tick_seconds(state, now, tuning)
    evidence = evidence_of(observation)
    state = _record(spec, profiles, observation, evidence, state, now=now, tick=tick, tuning=tuning)
    tick_context = _Tick.build(
        spec,
        profiles,
        state,
        observation=observation,
        evidence=evidence,
        hot_tiers=hot_tiers,
        now=now,
        tick=tick,
        tuning=tuning,
    )
    return tick_context.run()


def evidence_of(observation: Observation | None) -> Evidence:
    """``none`` without a usable rate (no window, stale, every target failed): unknown, never zero."""
    if observation is None or observation.requests_per_second is None or observation.requests_per_second < 0.0:
        return "none"
    return "complete" if observation.complete else "partial"


def _tick_seconds(state: PolicyState, now: float, tuning: Tuning) -> float:
    if state.last_tick_at is None or now <= state.last_tick_at:
        return tuning.default_tick_seconds
    return min(300.0, now - state.last_tick_at)


def _record(
    spec: ModelDeploymentSpec,
    profiles: ProfileTable,
    observation: Observation | None,
    evidence: Evidence,
    state: PolicyState,
    *,
    now: float,
    tick: float,
    tuning: Tuning,
) -> PolicyState:
    """The state with this tick's observation folded in; only a complete observation teaches anything."""
    history = list(state.rate_history)
    while history and (now - history[0][0] > tuning.history_seconds):
        history.pop(0)
    while history and history[-1][0] >= now:
        history.pop()
    if evidence != "complete":  # a lower bound or nothing: the unbroken run of full windows ends
        return replace(state, rate_history=tuple(history), last_tick_at=now, observed_since=None)
    assert observation is not None and observation.requests_per_second is not None
    rate = observation.requests_per_second
    since = state.observed_since
    last = state.last_tick_at
    if since is None or last is None or not 0.0 <= now - last <= tuning.max_observation_gap_seconds:
        since = now
    history.append((now, rate))
    history = history[-MAX_HISTORY:]
    growth = state.growth.add(growth_samples(history, now, tick), now, tuning.envelope_memory_seconds)
    bursts = state.bursts.update(history, now, tuning.burst_memory_seconds)
    peak = rate
    if state.peak is not None:
        peak = max(rate, state.peak[1] * math.exp(-max(0.0, now - state.peak[0]) / tuning.peak_memory_seconds))
    window_seconds = _memory_seconds(spec, tuning)
    window = [(t, r) for t, r in state.scale_down_window if now - t < window_seconds and t < now]
    while window and window[-1][1] <= rate:
        window.pop()
    window.append((now, rate))
    settled = _settled(state, now, tuning.metrics_window_seconds)
    corrections = dict(state.corrections)
    sample = _speed_sample(spec, profiles, observation, state, tuning, now=now, settled=settled)
    if sample is not None and state.desired is not None:
        speed, saturated = sample
        key = f"{state.desired.tier}@{state.desired.node_pool}"
        low, high = tuning.correction_bounds
        old = corrections.get(key, 1.0)
        new = min(old, speed) if saturated else (1.0 - tuning.ewma_alpha) * old + tuning.ewma_alpha * speed
        corrections[key] = min(high, max(low, new))
    return replace(
        state,
        rate_history=tuple(history),
        scale_down_window=tuple(window),
        corrections=corrections,
        last_tick_at=now,
        observed_since=since,
        growth=growth,
        bursts=bursts,
        peak=(now, peak),
        settled=settled,
    )


def _settled(state: PolicyState, now: float, window: float) -> tuple[float, str, int] | None:
    """Since when the fleet has been one placement with every replica ready and as many as now (None: it is not).

    Only a change from replicas that served counts: a fleet that comes up where none served (nothing ready at
    the last tick) shares its metrics window with no other, and neither does a fleet on the first tick of a
    state (a new ModelDeployment, a restart), which is taken as it was for the whole metrics ``window``.
    """
    groups = [g for g in state.fleet if g.total > 0]
    if not groups:
        return now, "", 0
    if len(groups) != 1 or groups[0].starting:
        return None
    key, ready = str(groups[0].placement), groups[0].ready
    previous = state.settled
    if previous is not None and previous[1:] == (key, ready):
        return previous
    unseen = state.last_tick_at is None or (previous is not None and previous[2] == 0)
    return (now - window if unseen else now), key, ready


def _memory_seconds(spec: ModelDeploymentSpec, tuning: Tuning) -> float:
    """How long the loads seen are kept for scale-in: the stabilization window, or longer start-ups."""
    longest = max((float(p.replica_startup_seconds) for p in spec.node_pools), default=0.0)
    return max(float(spec.scaling.scale_down_stabilization_seconds), tuning.scale_in_startups * longest)


def _speed_sample(
    spec: ModelDeploymentSpec,
    profiles: ProfileTable,
    observation: Observation,
    state: PolicyState,
    tuning: Tuning,
    *,
    now: float,
    settled: tuple[float, str, int] | None,
) -> tuple[float, bool] | None:
    """Observed speed / profiled speed of the serving replicas, when this tick says something about it, and
    whether the fleet was saturated (hard evidence that it is slower than profiled: taken at once).

    ``settled``: since when the fleet has been what it is now (:func:`_settled`)."""
    desired = state.desired
    rate = observation.requests_per_second
    if desired is None or observation.latency_ms is None or rate is None:
        return None
    switched = state.last_hot_switch_at
    if switched is not None and 0.0 <= now - switched < tuning.metrics_window_seconds:
        return None  # the latency is still (partly) the tier switched from: says nothing about this one
    groups = [g for g in state.fleet if g.total > 0]
    if len(groups) != 1 or groups[0].placement != desired.placement or groups[0].starting:
        return None  # only a settled fleet of one placement is comparable with its profile
    if settled is None or now - settled[0] < tuning.metrics_window_seconds:
        return None  # the metrics window still holds fewer ready replicas than serve now (and their backlog)
    ready = groups[0].ready
    curve = profiles.curve(desired.tier, desired.node_pool)
    if ready <= 0 or curve is None:
        return None
    percentile = float(spec.slo.percentile)
    per_replica = rate / ready
    target = spec.slo.latency_ms * (1.0 - tuning.latency_margin)
    capacity = profiles.capacity(desired.tier, desired.node_pool, target, percentile)
    if per_replica < tuning.min_correction_utilisation * capacity:
        return None
    window = [r for t, r in state.rate_history if 0.0 <= now - t <= tuning.metrics_window_seconds]
    if max([rate, *window]) / ready >= curve.saturation_rps:
        # overloaded beyond the profile within the metrics window: the latency is the backlog the profile itself
        # predicts (it drains over the next ticks), which says nothing about the replicas' speed
        return None
    if observation.latency_ms > curve.latency_at(curve.saturation_rps, percentile):
        # saturated below the profile's saturation rate (a queue builds): the replicas serve less than what
        # reaches each of them, so they are at most that fast relative to the profile
        return SATURATED_SHARE * per_replica / curve.saturation_rps, True
    effective = curve.effective_rate(observation.latency_ms, percentile)
    if effective is None or effective <= 0.0:
        return None
    return per_replica / effective, False


@dataclass
class _Tick:
    spec: ModelDeploymentSpec
    planner: Planner
    state: PolicyState
    now: float
    tick: float
    tuning: Tuning
    evidence: Evidence
    """This tick's observation: ``complete``, ``partial`` (``rate`` is a lower bound) or ``none`` (hold)."""
    hot: Mapping[str, frozenset[str]]
    rate: float
    rate_slope: float
    """The steeper of the long and the short window's slopes: scaling sees the onset of a ramp early."""
    trend_slope: float
    """The long window's slope alone: switches are planned on the trend, not on the last ticks' noise."""
    peak: float
    _growth: dict[tuple[float, bool], float] = field(default_factory=dict)
    _knot_cache: tuple[list[float], list[float]] | None = None
    _burst_level: float | None = None
    _sized: dict[tuple[Placement, float, float, bool, bool], Option] = field(default_factory=dict)
    _emergency: dict[Placement, float] = field(default_factory=dict)
    _reserve: dict[Placement, float] = field(default_factory=dict)
    _ceiling: dict[Placement, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        spec: ModelDeploymentSpec,
        profiles: ProfileTable,
        state: PolicyState,
        *,
        observation: Observation | None,
        evidence: Evidence,
        hot_tiers: Mapping[str, frozenset[str]],
        now: float,
        tick: float,
        tuning: Tuning,
    ) -> _Tick:
        target = spec.slo.latency_ms * (1.0 - tuning.latency_margin)
        planner = Planner(spec, profiles, state, target, float(spec.slo.percentile))
        if evidence == "partial":  # what some pods reported: a lower bound, good for scaling up only
            assert observation is not None and observation.requests_per_second is not None
            rate = observation.requests_per_second
        else:  # complete: this tick's rate (recorded last); none: the last one known, for the reason only
            rate = state.rate_history[-1][1] if state.rate_history else 0.0
        trend_slope = slope(state.rate_history, now, tuning.trend_window_seconds, sure=True)
        rate_slope = max(trend_slope, slope(state.rate_history, now, tuning.short_trend_window_seconds, sure=True))
        peak = rate if state.peak is None else max(rate, state.peak[1])
        hot = {pool: tiers for pool, tiers in hot_tiers.items() if len(tiers) > 1}
        return cls(spec, planner, state, now, tick, tuning, evidence, hot, rate, rate_slope, trend_slope, peak)

    # --- forecasts ----------------------------------------------------------------------------------------

    def trend(self, horizon: float, *, steady: bool = False, commit: bool = False) -> float:
        """The load expected ``horizon`` seconds ahead, with headroom.

        A slope is extrapolated at most ``trend_horizon_seconds``, about as long as it was measured, so a burst's
        onset is not projected minutes ahead: the steeper of the long and short windows' slopes for scaling, the
        long window's alone (``steady``) for switches. A move that commits to its target for the cooldown
        (``commit``) extrapolates the slope over the whole horizon: a ramp that goes on must not trap it; the long
        window's for a move by choice, the steeper one for a forced move (``steady=False``): the load that forces
        it is rising now, and a target it outgrows within the cooldown means a second start-up.
        """
        rate_slope = self.trend_slope if steady else self.rate_slope
        if commit:
            extrapolated = forecast(self.rate, rate_slope, horizon)
        else:
            extrapolated = forecast(self.rate, rate_slope, min(horizon, self.tuning.trend_horizon_seconds))
        return extrapolated * (1.0 + self.tuning.headroom)

    def envelope(self, horizon: float, *, steady: bool = False) -> float:
        """How high the load may get within ``horizon`` seconds: the trend, wider swings, a burst that recurs."""
        return max(self.trend(horizon, steady=steady), self.swing(horizon), self.burst_need)

    def _commit_lead(self) -> float:
        return float(self.spec.scaling.tier_switch_cooldown_seconds)

    def swing(self, horizon: float, *, accurate: bool = False) -> float:
        """The learnt swings over ``horizon`` from the rate now, up to the recent peak.

        ``accurate``: the usual swings (``accurate_quantile``) the accurate tier itself serves where it can,
        else the wide ones (``envelope_quantile``) the fleet must survive.
        """
        return min(self.rate * self.growth(horizon, accurate=accurate), max(self.peak, self.rate))

    @property
    def burst_need(self) -> float:
        """A recurring burst from the baseline now (0 without one)."""
        return self.burst_level

    @property
    def burst_height(self) -> float:
        """How many times the baseline recurring bursts have reached lately (1: none)."""
        tuning = self.tuning
        return self.state.bursts.recurring_height(self.now, tuning.burst_memory_seconds, tuning.burst_recurrence)

    @property
    def burst_level(self) -> float:
        """The rate a recurring burst would reach from the baseline now (0 without one)."""
        if self._burst_level is None:
            height = self.burst_height
            baseline = self.state.bursts.baseline(self.state.rate_history, self.now)
            self._burst_level = 0.0 if height <= 1.0 else height * baseline
        return self._burst_level

    def growth(self, horizon: float, *, accurate: bool = False) -> float:
        """The learnt growth factor within ``horizon``: the highest up to it (log-linear in between)."""
        cached = self._growth.get((horizon, accurate))
        if cached is not None:
            return cached
        knots = self._knots[1 if accurate else 0]
        if horizon <= HORIZONS[0]:
            cached = float(knots[0] ** (max(horizon, 0.0) / HORIZONS[0]))
        else:
            cached = knots[-1]
            for i in range(1, len(HORIZONS)):
                if horizon <= HORIZONS[i]:
                    w = math.log(horizon / HORIZONS[i - 1]) / math.log(HORIZONS[i] / HORIZONS[i - 1])
                    low, high = knots[i - 1], knots[i]
                    cached = max(low, float(low ** (1.0 - w) * high**w))
                    break
        self._growth[(horizon, accurate)] = cached
        return cached

    @property
    def _knots(self) -> tuple[list[float], list[float]]:
        """The learnt growth quantiles (wide, usual) at every horizon, never falling as the horizon grows."""
        if self._knot_cache is None:
            tuning = self.tuning
            qs = (tuning.envelope_quantile, tuning.accurate_quantile)
            rows: tuple[list[float], list[float]] = ([], [])
            for index in range(len(HORIZONS)):
                values = self.state.growth.quantiles(
                    index, qs, self.now, tuning.envelope_memory_seconds, tuning.envelope_prior_samples
                )
                for row, value in zip(rows, values, strict=True):
                    row.append(max(value, row[-1]) if row else value)
            self._knot_cache = rows
        return self._knot_cache

    # --- candidates -----------------------------------------------------------------------------------------

    def is_hot(self, placement: Placement) -> bool:
        return placement.tier in self.hot.get(placement.node_pool, ())

    def hot_reachable(self, current: Placement, target: Placement) -> bool:
        return current.node_pool == target.node_pool and self.is_hot(current) and self.is_hot(target)

    def emergency_capacity(self, candidate: Candidate) -> float:
        """Per replica: what the fastest tier this candidate's replicas can hot switch to serves."""
        cached = self._emergency.get(candidate.placement)
        if cached is None:
            cached = candidate.capacity
            if self.is_hot(candidate.placement):
                for other in self.planner.candidates:
                    if self.hot_reachable(candidate.placement, other.placement):
                        cached = max(cached, other.capacity)
            self._emergency[candidate.placement] = cached
        return cached

    def size(
        self, candidate: Candidate, lead: float = 0.0, extra: float = 0.0, *, steady: bool = True, commit: bool = False
    ) -> Option:
        """Replicas that serve the trend on ``candidate`` itself and wider swings on its fastest hot tier; a
        recurring burst of ``burst_on_accurate_tier`` or more on the candidate itself where its limits allow
        (a hot switch comes a tick late), else on the hot tier too: the least replicas for that are what makes
        the candidate sustainable (``Option.least``).

        ``lead``: how long after this tick they must still do (0: once replicas started now are ready).
        ``extra``: a share added to the trend (hysteresis for a move to a more accurate tier).
        ``steady``: on the long window's slope (switches); False: the steeper slope too (scaling).
        ``commit``: the trend over the whole horizon (a move that commits for the cooldown, :meth:`trend`).
        """
        key = (candidate.placement, lead, extra, steady, commit)
        cached = self._sized.get(key)
        if cached is None:
            horizon = candidate.startup + self.tick + lead
            planner = self.planner
            emergency = self.emergency_capacity(candidate)
            base = max(
                planner.needed(candidate, self.trend(horizon, steady=steady, commit=commit) * (1.0 + extra)),
                _replicas_for(self.swing(horizon), emergency),
            )
            least = max(base, _replicas_for(self.burst_need, emergency))
            wanted = _replicas_for(self.swing(horizon, accurate=True), candidate.capacity)
            if self.burst_height >= self.tuning.burst_on_accurate_tier:
                wanted = max(wanted, _replicas_for(self.burst_need, candidate.capacity))
            needed = least
            if wanted > least:  # swings and bursts on the accurate tier itself only where the limits allow it
                needed = max(least, min(wanted, self.limit(candidate)))
            replicas = min(planner.max_replicas, max(planner.min_replicas, needed))
            fewest = min(planner.max_replicas, max(planner.min_replicas, least))
            cached = Option(candidate, replicas, least <= planner.max_replicas, fewest)
            self._sized[key] = cached
        return cached

    def reserve(self, candidate: Candidate) -> float:
        """Budget a candidate leaves free for its way out: none when a faster tier is a hot switch away.

        The way out is the cheapest other placement whose replicas serve at least as much for no more cost and
        that can serve more within the budget: a rolling switch to it needs room for one new replica.
        """
        cached = self._reserve.get(candidate.placement)
        if cached is not None:
            return cached
        planner = self.planner
        cached = 0.0
        if planner.budget is not None and self.emergency_capacity(candidate) <= candidate.capacity:
            ceiling = self.ceiling(candidate)
            rooms = [
                self._first_replicas(self.size(other), candidate, 0) * other.unit_cost
                for other in planner.candidates
                if other.placement != candidate.placement
                and other.capacity >= candidate.capacity
                and other.unit_cost <= candidate.unit_cost
                and self.ceiling(other) > ceiling
            ]
            cached = min(rooms, default=0.0)
        self._reserve[candidate.placement] = cached
        return cached

    def ceiling(self, candidate: Candidate) -> float:
        """Requests per second a candidate serves at the most replicas the budget allows (hot tiers included)."""
        cached = self._ceiling.get(candidate.placement)
        if cached is None:
            planner = self.planner
            most = min(planner.max_replicas, planner.budget_replicas(candidate))
            cached = most * self.emergency_capacity(candidate)
            self._ceiling[candidate.placement] = cached
        return cached

    def limit(self, candidate: Candidate, other_cost: float = 0.0) -> int:
        """Most replicas of a candidate: max replicas, and the budget minus others and its way out's room."""
        planner = self.planner
        room = self.reserve(candidate) if other_cost <= 0.0 else 0.0
        return min(planner.max_replicas, planner.budget_replicas(candidate, other_cost + room))

    def sustainable(self, option: Option) -> bool:
        """Whether a sized candidate fits its limits (a candidate whose way out does not fit never does)."""
        return option.meets and option.fewest <= self.limit(option.candidate)

    def target(self, objective: str, lead: float = 0.0) -> Option | None:
        """The objective's best candidate that holds the forecasts within its limits."""
        fitting = [o for o in (self.size(c, lead) for c in self.planner.candidates) if self.sustainable(o)]
        if not fitting:
            return None
        if objective == "Cost":
            return min(fitting, key=lambda o: (o.cost, o.candidate.rank, -o.capacity))
        return min(fitting, key=lambda o: (o.candidate.rank, o.cost, -o.capacity))

    # --- the fleet now ------------------------------------------------------------------------------------

    def serving_capacity(self, within: float, tier: str | None = None, pool: str | None = None) -> float:
        """What the replicas ready ``within`` seconds serve (Service split evenly), ``pool`` retargeted to ``tier``."""
        counts: list[tuple[int, float]] = []
        horizon = self.now + within
        for group in self.state.fleet:
            startup = self._startup(group.node_pool)
            ready = group.ready + sum(1 for t in group.starting if t + startup <= horizon)
            if ready <= 0:
                continue
            placement = group.placement
            if tier is not None and group.node_pool == pool and self.is_hot(placement):
                placement = Placement(tier, group.node_pool)
            candidate = self.planner.candidate(placement)
            counts.append((ready, 0.0 if candidate is None else candidate.capacity))
        if not counts:
            return 0.0
        if len(counts) == 1:
            return counts[0][0] * counts[0][1]
        return mixed_capacity(sum(n for n, _ in counts), min(c for _, c in counts), 0, 0.0)

    def _startup(self, pool: str) -> float:
        for candidate in self.planner.candidates:
            if candidate.placement.node_pool == pool:
                return candidate.startup
        return 0.0

    def in_progress(self, current: Placement) -> bool:
        """A cold switch still rolls: replicas of another placement exist."""
        return any(g.placement != current and g.total > 0 for g in self.state.fleet)

    @property
    def covered(self) -> bool:
        """Whether complete observations cover the whole scale-down window: only then may the fleet shrink."""
        since = self.state.observed_since
        window = self.spec.scaling.scale_down_stabilization_seconds
        return self.evidence == "complete" and since is not None and self.now - since >= window

    # --- the tick -----------------------------------------------------------------------------------------

    def run(self) -> Decision:
        objective = self.spec.scaling.objective
        current = self._current()
        if not self.planner.candidates:
            return self._no_candidates(current)
        if current is not None and self.evidence == "none":
            return self._hold(current)
        if current is None:
            return self._place(None, objective)
        here = self.planner.candidate(current.placement)
        if here is None:
            if self.evidence != "complete":
                return self._hold(current)
            return self._place(current, objective)
        if self.evidence == "complete":  # a switch is never started on a lower bound
            move = self._move(current, here, objective)
            if move is not None:
                return move
        return self._scale(current, here)

    def _current(self) -> Config | None:
        if self.state.desired is not None:
            return self.state.desired
        groups = [g for g in self.state.fleet if g.total > 0]
        if len({g.placement for g in groups}) == 1:  # state lost, one placement running: adopt it
            return Config(groups[0].tier, groups[0].node_pool, sum(g.total for g in groups))
        return None

    def _no_candidates(self, current: Config | None) -> Decision:
        if current is None:
            first = Config(self.spec.tiers[0].name, self.spec.node_pools[0].name, self.spec.scaling.min_replicas)
            return self._decide(None, first, "NoReadyTier", "No tier is Ready with a profile yet, so nothing changes.")
        return self._decide(
            current, current, "NoReadyTier", f"No Ready tier has a usable profile, so {current} is kept."
        )

    def _hold(self, current: Config) -> Decision:
        """No usable observation (or only a lower bound where nothing may grow): keep what runs, within the spec."""
        replicas = min(self.planner.max_replicas, max(self.planner.min_replicas, current.replicas))
        target = Config(current.tier, current.node_pool, replicas)
        if self.evidence == "none":
            code = "NoMetrics"
            reason = f"No usable metrics this tick (the load is unknown, not zero), so {target} is kept."
        else:
            code = "PartialMetrics"
            reason = (
                f"Only some replicas reported metrics (at least {self.rate:.0f} rps), so {target} is kept: "
                "nothing shrinks or switches on a lower bound."
            )
        return _finish(current, target, code, reason, self.state)

    def _place(self, current: Config | None, objective: str) -> Decision:
        """First placement, or the desired tier stopped being a candidate: choose afresh (no cooldown)."""
        planner = self.planner
        already = planner.fleet_cost(self.state.fleet) if current is None else 0.0
        option = self.target(objective)
        code = "Placed" if current is None else "TierUnavailable"
        if option is None or not planner.affordable(option.cost, already):
            option = self._best_effort(objective, already)
            code = "BudgetExhausted"
        target = Config(option.placement.tier, option.placement.node_pool, option.replicas)
        if code == "BudgetExhausted":
            reason = self._exhausted_reason(target, option)
        elif current is None:
            reason = f"Starting with {target}, the best configuration for {self.rate:.0f} rps under {objective}."
        else:
            reason = f"{current.placement} is no longer a Ready candidate, so moving to {target}."
        return self._decide(current, target, code, reason, cold=current is not None)

    def _best_effort(self, objective: str, already: float = 0.0) -> Option:
        """Nothing holds the forecast within the budget: what serves most of the trend in time."""
        best = self.planner.best_effort(lambda c: self.trend(c.startup + self.tick), objective, already)
        assert best is not None  # candidates exist
        return best

    # --- moving: hot and cold switches --------------------------------------------------------------------

    def _move(self, current: Config, here: Candidate, objective: str) -> Decision | None:
        """A switch, when one is due: an emergency hot switch, a forced move, or a clearly better target."""
        placement = current.placement
        emergency = self._emergency_switch(current, here, objective)
        if emergency is not None:
            return emergency
        lead = self._stay_lead(here)
        stay = self.size(here, lead)
        stay_ok = self.sustainable(stay) or self._holds_with_hot_escape(here)
        if stay_ok and not any(self._could_be_better(c, here, objective) for c in self.planner.candidates):
            return None
        targets = self._move_targets(here, objective, lead=0.0 if stay_ok else lead)
        if not targets:
            return None if stay_ok else self._switch_best_effort(current, here, objective)
        for target in targets:  # the best first; one whose switch does not fit now gives way to the next
            if stay_ok and not self._better(target, here, stay, objective):
                return None
            if self.hot_reachable(placement, target.placement):
                step = self._hot_step(current, here, target, forced=not stay_ok)
            else:
                step = self._cold_step(current, here, target, forced=not stay_ok, objective=objective)
            if step is not None:
                return step
        return None

    def _could_be_better(self, candidate: Candidate, here: Candidate, objective: str) -> bool:
        """A quick filter for :meth:`_better`: a more accurate tier, or a clearly cheaper rate per request."""
        if candidate.placement == here.placement:
            return False
        if objective == "Quality" and candidate.rank != here.rank:
            return candidate.rank < here.rank
        cheaper = (1.0 - self.tuning.switch_saving) * here.unit_cost / here.capacity
        return candidate.unit_cost / candidate.capacity <= cheaper

    def _move_targets(self, here: Candidate, objective: str, *, lead: float) -> list[Option]:
        """The other candidates that hold the forecasts ``lead`` seconds past their start-up, the objective's best
        first. A forced move (``lead`` > 0: the current placement does not hold that long) only goes where more
        can be served within the budget.

        A move to new pods commits to the target for the cooldown: targets that hold the trend that long come
        first (a hot switch commits to nothing), for a forced move those that hold the steeper slope that long
        before those that hold only the long window's; if none does, those the budget buys the most of.
        """
        cooldown = float(self.spec.scaling.tier_switch_cooldown_seconds)
        ranked: list[tuple[tuple[float, ...], Option]] = []
        floor = self.ceiling(here) if lead > 0.0 else 0.0
        for candidate in self.planner.candidates:
            if candidate.placement == here.placement or self.ceiling(candidate) <= floor:
                continue
            option = self.size(candidate, lead)
            if not self.sustainable(option):
                continue
            hot = self.hot_reachable(here.placement, candidate.placement)
            # holding the long window's trend for the cooldown; for a forced move, first the steeper slope's too
            lasting = hot or self.sustainable(self.size(candidate, cooldown, commit=True))
            steep = hot or (lasting and self.sustainable(self.size(candidate, cooldown, steady=False, commit=True)))
            # new pods cost an overlap and a start-up, and leave the pods that load the way back: a cold target
            # comes before a hot one only where it saves what a move for cost alone must save
            cost = option.cost if hot else option.cost / (1.0 - self.tuning.switch_saving)
            if objective == "Cost":
                order: tuple[float, ...] = (cost, float(candidate.rank), -option.capacity)
            else:
                order = (float(candidate.rank), cost, -option.capacity)
            if lasting and (steep or lead <= 0.0):
                ranked.append(((0.0, *order), option))
            elif lasting:
                ranked.append(((1.0, *order), option))
            else:
                ranked.append(((2.0, -self.ceiling(candidate), *order), option))
        ranked.sort(key=lambda item: item[0])
        return [option for _, option in ranked]

    def _holds_with_hot_escape(self, here: Candidate) -> bool:
        """With a faster tier a hot switch away, staying only needs the trend to fit: a burst beyond it is met by
        the hot switch the tick it shows (the emergency), not by leaving early."""
        if self.emergency_capacity(here) <= here.capacity:
            return False
        planner = self.planner
        needed = planner.needed(here, self.trend(here.startup + self.tick, steady=True))
        return needed <= min(planner.max_replicas, planner.budget_replicas(here))

    def _stay_lead(self, here: Candidate) -> float:
        """How much longer than its own start-up the current placement must hold: until a way out is ready.

        With a faster tier a hot switch away, none. Otherwise the way out needs new pods: staying one more tick
        must leave time to start them (their start-up and a tick).
        """
        if self.emergency_capacity(here) > here.capacity:
            return 0.0
        startups = [c.startup for c in self.planner.candidates if c.placement != here.placement]
        return max(0.0, max(startups, default=here.startup) - here.startup) + self.tick

    def _better(self, target: Option, here: Candidate, stay: Option, objective: str) -> bool:
        """Whether moving to ``target`` is worth it while staying still holds (hysteresis, commitment, saving)."""
        candidate = target.candidate
        hot = self.hot_reachable(here.placement, target.placement)
        if hot and not self._dwelt():
            return False
        if objective == "Quality" and candidate.rank < here.rank:
            # back to a more accurate tier: it must serve with hysteresis, and hold for the commitment
            lead = 0.0 if hot else self._commit_lead()
            return self.sustainable(self.size(candidate, lead, self.tuning.upgrade_hysteresis, commit=not hot))
        if objective == "Quality" and candidate.rank > here.rank:
            return False  # never less accurate while the current tier holds
        saving = target.cost <= (1.0 - self.tuning.switch_saving) * stay.cost
        if not saving:
            return False
        return hot or self.sustainable(self.size(candidate, self._commit_lead(), commit=True))

    def _dwelt(self) -> bool:
        last = self.state.last_hot_switch_at
        return last is None or self.now - last >= self.tuning.hot_dwell_seconds

    def _emergency_switch(self, current: Config, here: Candidate, objective: str) -> Decision | None:
        """The ready replicas cannot serve the next tick: a hot switch to a tier that can, at once."""
        if not self.is_hot(current.placement):
            return None
        need = self.trend(self.tick)
        have = self.serving_capacity(self.tick)
        if have >= need * (1.0 - self.tuning.shortfall_tolerance):
            return None
        options = []
        for candidate in self.planner.candidates:
            if not self.hot_reachable(current.placement, candidate.placement):
                continue
            capacity = self.serving_capacity(self.tick, candidate.placement.tier, candidate.placement.node_pool)
            if capacity > have * (1.0 + EPSILON):
                options.append((capacity, candidate))
        if not options:
            return None
        covering = [(c, o) for c, o in options if c >= need]
        if covering:
            if objective == "Cost":
                capacity, best = min(covering, key=lambda item: (item[1].unit_cost, item[1].rank))
            else:
                capacity, best = min(covering, key=lambda item: (item[1].rank, -item[0]))
        else:
            capacity, best = max(options, key=lambda item: (item[0], -item[1].rank))
        sized = self.size(best)
        replicas = max(current.replicas, min(sized.replicas, self.limit(best, self._other_cost(current))))
        target = Config(best.placement.tier, best.placement.node_pool, replicas)
        reason = (
            f"Load of {self.rate:.0f} rps outgrew what the ready {current.placement} replicas serve "
            f"({have:.0f} rps), so they switch hot to {best.placement.tier} ({capacity:.0f} rps within seconds, "
            "no new pods)."
        )
        return self._decide(current, target, "LoadRising", reason, hot=True)

    def _hot_step(self, current: Config, here: Candidate, target: Option, *, forced: bool) -> Decision | None:
        """Toward a tier the same replicas load: switch when the ready ones serve it, else scale up first."""
        candidate = target.candidate
        if not forced and self.in_progress(current.placement):
            return None  # a cold switch still rolls: its room was planned for the tier it started with
        if not forced and candidate.capacity < here.capacity and not self.covered:
            # back to a slower tier by choice waits for a fully observed window, as a cold move does: before it,
            # the move may not lower what the replicas serve, which on a tier several times slower means
            # starting replicas up to the budget's limit only to let them go when the window is covered
            return None
        other_cost = self._other_cost(current)
        limit = max(self.planner.min_replicas, self.limit(candidate, other_cost))
        replicas = min(target.replicas, limit)
        need = self.trend(self.tick) * (1.0 + (0.0 if forced else self.tuning.upgrade_hysteresis))
        # the switch lands within seconds: only replicas ready by then serve the target tier this tick
        within = self.tuning.hot_switch_seconds
        ready_serves = self.serving_capacity(within, candidate.placement.tier, candidate.placement.node_pool)
        pool = candidate.placement.node_pool
        if ready_serves >= need or candidate.capacity >= here.capacity:
            # a hot switch re-routes the same pods: none of them goes with it (letting them go is scale-in's
            # call, after the window and with the way back in mind; cutting them here only to start them again for
            # the way back paid a start-up for nothing: ramp-0062 went 10 -> 3 -> 10 within a minute)
            floor = max(self._floor(current, candidate), current.replicas)
            to = Config(candidate.placement.tier, pool, max(replicas, floor))
            if forced:
                code = "BudgetAhead"
                reason = (
                    f"{current.placement} cannot hold the load it may meet ({self.envelope(here.startup):.0f} rps) "
                    f"within the budget, so its replicas switch hot to {to.tier} ({to}, no new pods)."
                )
            elif candidate.rank < here.rank:
                code = "LoadAllows"
                reason = (
                    f"The ready replicas on {pool} serve the forecast {need:.0f} rps on {to.tier} again, so they "
                    f"switch hot back from {current.tier} ({to}, no new pods)."
                )
            else:
                code = "Cheaper"
                reason = f"{to} serves {self.rate:.0f} rps within the SLO for less than {current}, so switching hot."
            return self._decide(current, to, code, reason, hot=True)
        # the ready replicas are too few for the target tier: grow them on the current tier first
        if replicas <= current.replicas:
            return None
        to = Config(current.tier, current.node_pool, replicas)
        reason = (
            f"{current.placement} scales from {current.replicas} to {replicas} so that {candidate.placement.tier} "
            f"can serve the forecast {self.trend(here.startup + self.tick):.0f} rps once they are ready (then a "
            "hot switch)."
        )
        return self._decide(current, to, "Preparing", reason)

    def _settled(self, current: Config) -> bool:
        """A fully observed window, no replica of the current placement still starting, no burst going on."""
        return (
            self.covered
            and self.state.bursts.current is None
            and not any(g.placement == current.placement and g.starting for g in self.state.fleet)
        )

    def _first_replicas(self, option: Option, leaving: Candidate, kept: int) -> int:
        """New replicas a rolling switch must start with so that it can finish within the budget.

        The Service splits requests evenly, so ``k`` old and ``n`` new ready replicas serve ``(k + n) x`` the
        slower one's capacity. A new replica that serves at least as much for no more cost lets one old replica
        go as soon as it is ready: one is enough. A slower one lowers what the mixed fleet serves, so the first new
        replicas must bring ``k + n`` up to the new fleet's size. A dearer one would not free the budget for the
        next: the whole new fleet (as blue/green always needs, ``Tuning.rolling_switch=False``).
        """
        new = option.candidate
        if not self.tuning.rolling_switch or new.unit_cost > leaving.unit_cost:
            return option.replicas
        if new.capacity >= leaving.capacity:
            return 1
        return max(1, option.replicas - kept)

    def _roll_completes(
        self, option: Option, leaving: Candidate, kept: int, fleet_cost: float, *, by_choice: bool = False
    ) -> bool:
        """Whether a rolling switch to ``option`` can finish within the budget, played out with the operator's rule.

        The new placement grows as far as the budget allows beside what is left of the old one, and the old one
        is cut to :func:`fulcrum.policy.rollout.old_replicas_to_keep` as new replicas become ready (the fleet model
        the simulator runs); the roll is stuck when neither moves. Blue/green needs the whole new fleet beside
        the old one.

        ``fleet_cost`` is what stays beside the target (not the target's own replicas, which the roll starts
        from: a roll back to a placement being left has some).

        A move by choice (``by_choice``: for accuracy or cost, staying holds) plays the roll out against the load
        that may have come once the new replicas are ready (the trend and the learnt swings over their start-up):
        a roll that stalls when the load rises during it leaves both placements paid for and the mixed fleet
        serving at the slower replicas' share (noise-0069: a cheaper pool's one big replica chosen at 799 rps,
        ready at 952 rps, then 48 minutes of five old and one new replica at 96-99 % of what they serve). A
        forced move keeps the load now: staying is what fails, and a roll that may stall is still the way out.
        """
        planner = self.planner
        new = option.candidate
        if not self.tuning.rolling_switch:
            return planner.affordable(option.cost, fleet_cost)
        if planner.budget is None or kept <= 0:
            return True
        others = fleet_cost - kept * leaving.unit_cost
        reference = kept * leaving.capacity
        existing = sum(g.total for g in self.state.fleet if g.placement == new.placement)
        rate = self.rate * (1.0 + self.tuning.headroom)
        if by_choice:  # not a recurring burst: a burst passes and lets the roll go on, a level the load rose to not
            horizon = new.startup + self.tick
            rate = max(rate, self.trend(horizon, steady=True), self.swing(horizon))
        old, grown = kept, existing
        for _ in range(kept + 2):
            room = planner.budget - others - old * leaving.unit_cost
            more = max(grown, min(option.replicas, math.floor(room / new.unit_cost + EPSILON)))
            left = old_replicas_to_keep(
                old_ready=old,
                old_capacity=leaving.capacity,
                new_ready=more,
                new_capacity=new.capacity,
                rate=rate,
                reference=reference,
            )
            if left == 0:
                return True
            if left == old and more == grown:
                return False
            old, grown = left, more
        return False

    def _returning(self, placement: Placement) -> bool:
        """Whether ``placement`` is one a cold switch still rolling is leaving: it has ready replicas that serve.

        A roll whose target cannot hold the load within the budget (it rose after the switch; noise-1104 without
        hot tiers: fp16 x2 to fp32 x6 at 1 600 rps, then 2 800 rps, eight replicas at the slower fp32's share for
        72 minutes) goes back there: those replicas serve at once and all stay, and the target's go as they stop
        being needed, rolled like any placement left.
        """
        current = self.state.desired
        return (
            current is not None
            and placement != current.placement
            and any(g.placement == placement and g.ready > 0 for g in self.state.fleet)
        )

    def _floor(self, current: Config, candidate: Candidate) -> int:
        """Until the window is observed in full, a move never lowers what the replicas serve."""
        if self.covered:
            return 0
        here = self.planner.candidate(current.placement)
        if here is None:
            return 0
        floor = math.ceil(current.replicas * here.capacity / candidate.capacity - EPSILON)
        return min(floor, self.limit(candidate, self._other_cost(current)))

    def _cold_step(
        self, current: Config, here: Candidate, target: Option, *, forced: bool, objective: str
    ) -> Decision | None:
        """A rolling switch to new pods, when the cooldown, the budget and the evidence allow it.

        Or, forced, back to the placement a roll is leaving (:meth:`_returning`): no cooldown, and the roll in
        progress is no obstacle, since it is what fails.
        """
        planner = self.planner
        candidate = target.candidate
        returning = forced and self._returning(candidate.placement)
        cooldown = self.spec.scaling.tier_switch_cooldown_seconds
        last = self.state.last_switch_at
        if not returning and last is not None and self.now - last < cooldown:
            return None
        if not returning and self.in_progress(current.placement):
            return None
        if not forced and not self._settled(current):
            return None  # moves for accuracy or cost wait for a fully observed, settled fleet
        own = [g for g in self.state.fleet if g.placement == candidate.placement]  # a way back has some
        # what stays beside the target: the target's own replicas are part of it
        fleet_cost = planner.switch_cost(self.state.fleet, current.placement) - planner.fleet_cost(own)
        replicas = max(target.replicas, self._floor(current, candidate))
        if returning:  # the pods gone back to are paid for and serve now: none goes with the way back
            replicas = max(replicas, sum(g.total for g in own))
        kept = sum(g.ready for g in self.state.fleet if g.placement == current.placement)
        option = Option(candidate, replicas, target.meets)
        if not self._roll_completes(option, here, kept, fleet_cost, by_choice=not forced):
            return None  # the roll could not finish within the budget
        if not planner.affordable(replicas * candidate.unit_cost, fleet_cost):
            replicas = planner.budget_replicas(candidate, fleet_cost)  # start smaller, grow as the old ones go
            if replicas < planner.min_replicas:
                if not forced:
                    return None  # a move for accuracy or cost waits until the overlap buys minReplicas
                replicas = planner.min_replicas  # minReplicas wins over the budget
        to = Config(candidate.placement.tier, candidate.placement.node_pool, replicas)
        budget = planner.budget
        ceiling = "" if budget is None else f" within the {budget:.2f}/h budget"
        overlap = fleet_cost + replicas * candidate.unit_cost
        if returning:
            code = "BudgetAhead" if planner.budget is not None else "LoadRising"
            ready = sum(g.ready for g in own)
            serve = "ready replica still serves" if ready == 1 else "ready replicas still serve"
            reason = (
                f"{current.placement} cannot hold the load it may meet ({self.envelope(here.startup):.0f} rps)"
                f"{ceiling}, so the switch to it goes back to {to}, whose {ready} {serve}; the {current.placement} "
                "replicas go as they stop being needed."
            )
        elif forced:
            code = "BudgetAhead" if planner.budget is not None else "LoadRising"
            reason = (
                f"{current.placement} cannot hold the load it may meet ({self.envelope(here.startup):.0f} rps)"
                f"{ceiling}, so switching to {to} while the overlap fits ({overlap:.2f}/h)."
            )
        elif objective == "Quality" and candidate.rank < here.rank:
            code = "LoadAllows"
            reason = (
                f"Load of {self.rate:.0f} rps now fits {to.tier}{ceiling}, so switching back from {current} to {to} "
                f"(overlap {overlap:.2f}/h)."
            )
        else:
            code = "Cheaper"
            reason = f"{to} serves {self.rate:.0f} rps within the SLO for less than {current}, so switching."
        return self._decide(current, to, code, reason, cold=True)

    def _switch_best_effort(self, current: Config, here: Candidate, objective: str) -> Decision | None:
        """Nothing holds the forecast within the budget: move to what serves the most in time, if that is elsewhere."""
        planner = self.planner
        best = self._best_effort(objective)
        if best.placement == current.placement:
            return None
        here_best = self.ceiling(here)
        if best.capacity <= 1.1 * here_best:
            return None
        target = Config(best.placement.tier, best.placement.node_pool, best.replicas)
        if self.hot_reachable(current.placement, best.placement):
            return self._decide(current, target, "BudgetExhausted", self._exhausted_reason(target, best), hot=True)
        last = self.state.last_switch_at
        cooldown = self.spec.scaling.tier_switch_cooldown_seconds
        if (last is not None and self.now - last < cooldown) or self.in_progress(current.placement):
            return None
        fleet_cost = planner.switch_cost(self.state.fleet, current.placement)
        kept = sum(g.ready for g in self.state.fleet if g.placement == current.placement)
        replicas = min(best.replicas, planner.budget_replicas(best.candidate, fleet_cost))
        if replicas < max(1, planner.min_replicas) or not self._roll_completes(best, here, kept, fleet_cost):
            return None
        target = Config(best.placement.tier, best.placement.node_pool, replicas)
        return self._decide(current, target, "BudgetExhausted", self._exhausted_reason(target, best), cold=True)

    # --- scaling within a placement -----------------------------------------------------------------------

    def _other_cost(self, current: Config) -> float:
        """What the replicas of other placements (a switch still rolling) cost per hour."""
        return self.planner.fleet_cost(self.state.fleet, exclude=current.placement)

    def _scale(self, current: Config, here: Candidate) -> Decision:
        planner = self.planner
        wanted = self.size(here, steady=False)
        demand = self.trend(here.startup + self.tick)
        other_cost = self._other_cost(current)
        window_seconds = self.spec.scaling.scale_down_stabilization_seconds
        # a replica let go comes back only a start-up later: keep what the load of that long needed too
        memory = max(float(window_seconds), self.tuning.scale_in_startups * here.startup)
        replicas = current.replicas
        waiting = False
        # up at once; down only once complete observations cover the whole window, and never below what the
        # highest load seen in the window needed
        growing = any(g.placement == current.placement and g.starting for g in self.state.fleet)
        if wanted.replicas > replicas:
            replicas = wanted.replicas
        elif growing:  # the replicas a recent forecast started are not undone before they serve
            pass
        elif self.covered:
            seen = max((r for t, r in self.state.scale_down_window if self.now - t < memory), default=0.0)
            held = max(
                planner.needed(here, seen * (1.0 + self.tuning.headroom)),
                self._return_floor(here, seen * (1.0 + self.tuning.headroom), other_cost),
            )
            replicas = min(replicas, max(wanted.replicas, held, planner.min_replicas))
        else:
            waiting = wanted.replicas < replicas
        allowed = max(planner.min_replicas, self.limit(here, other_cost))
        capped = replicas > allowed and replicas > current.replicas
        if capped:
            replicas = max(current.replicas, allowed) if other_cost <= 0.0 else allowed
        target = Config(current.tier, current.node_pool, replicas)
        serves = replicas * here.capacity
        if capped and other_cost > 0.0:
            code = "Switching"
            reason = (
                f"{target} grows toward the forecast {demand:.0f} rps as the old placement's replicas go, "
                "keeping the fleet within the budget."
            )
        elif capped or not wanted.meets:
            code = "BudgetExhausted" if capped else "MaxReplicas"
            limit = "the budget" if capped else f"maxReplicas {planner.max_replicas}"
            # name what sized the fleet: the envelope (trend, swings, a burst that recurs) over a start-up
            envelope = self.envelope(here.startup + self.tick)
            what = "a recurring burst" if self.burst_need >= envelope else "the forecast"
            reason = (
                f"Load of {self.rate:.0f} rps: {what} of {envelope:.0f} rps needs more than {limit} "
                f"allows; {target} serves {serves:.0f} rps within the SLO, the most it can."
            )
        elif replicas > current.replicas:
            code = "LoadRising"
            load = (
                f"Load of {self.rate:.0f} rps"
                if self.evidence == "complete"
                else f"Load of at least {self.rate:.0f} rps (some replicas did not report)"
            )
            reason = (
                f"{load} may reach {max(demand, self.envelope(here.startup + self.tick)):.0f} rps before new "
                f"replicas are up, so {current.placement} scales from {current.replicas} to {replicas} "
                f"({here.capacity:.0f} rps each)."
            )
        elif replicas < current.replicas:
            code = "LoadFalling"
            reason = (
                f"Load has needed at most {replicas} replicas for {memory:.0f} s, so {current.placement} scales "
                f"from {current.replicas} to {replicas}."
            )
        elif waiting and self.evidence != "complete":
            code = "PartialMetrics"
            reason = (
                f"Only some replicas reported metrics (at least {self.rate:.0f} rps), so {target} is kept: "
                "nothing shrinks or switches on a lower bound."
            )
        elif waiting:
            code = "Observing"
            since = self.state.observed_since
            seen_for = 0.0 if since is None else self.now - since
            reason = (
                f"Load of {self.rate:.0f} rps needs fewer replicas, but only {seen_for:.0f} s of the "
                f"{window_seconds} s scale-down window has been observed in full, so {target} is kept."
            )
        else:
            code = "Steady"
            reason = f"{target} serves the forecast {demand:.0f} rps within the SLO."
            if self.burst_need > demand:
                reason = (
                    f"{target} serves the forecast {demand:.0f} rps within the SLO and keeps room for a recurring "
                    f"burst of {self.burst_need:.0f} rps."
                )
        return _finish(current, target, code, reason, self.state)

    def _return_floor(self, here: Candidate, load: float, other_cost: float) -> int:
        """Under Quality, on a tier switched to hot: the replicas the most accurate tier loaded on the same pods
        needs for ``load`` where its limits allow, so that scaling in on the faster tier does not undo the way back
        (the same pods serve either tier; shrinking them only to grow them again before returning is churn)."""
        if self.spec.scaling.objective != "Quality":
            return 0
        planner = self.planner
        for candidate in sorted(planner.candidates, key=lambda c: c.rank):
            if candidate.rank >= here.rank:
                break
            if self.hot_reachable(here.placement, candidate.placement):
                needed = planner.needed(candidate, load)
                if needed <= self.limit(candidate, other_cost):
                    return needed
        return 0

    def _exhausted_reason(self, target: Config, option: Option) -> str:
        budget = self.planner.budget
        ceiling = "" if budget is None else f" within the {budget:.2f}/h budget"
        demand = self.trend(option.candidate.startup + self.tick)
        return (
            f"No Ready tier meets the SLO for {demand:.0f} rps{ceiling}; {target} serves the most requests in time "
            f"({option.candidate.capacity * target.replicas:.0f} rps)."
        )

    def _decide(
        self,
        current: Config | None,
        target: Config,
        code: str,
        reason: str,
        *,
        cold: bool = False,
        hot: bool = False,
    ) -> Decision:
        state = self.state
        if cold:
            state = replace(state, last_switch_at=self.now)
        if hot:
            state = replace(state, last_hot_switch_at=self.now)
        return _finish(current, target, code, reason, state)


def _replicas_for(demand: float, capacity: float) -> int:
    return 0 if demand <= 0.0 else math.ceil(demand / capacity - EPSILON)


def _finish(current: Config | None, target: Config, code: str, reason: str, state: PolicyState) -> Decision:
    state = replace(state, desired=target)
    action = "Hold" if code == "NoReadyTier" else _action(current, target)
    return Decision(action, target.tier, target.node_pool, target.replicas, code, reason, state, current)


def _action(current: Config | None, target: Config) -> Action:
    if current is None:
        return "ScaleUp" if target.replicas > 0 else "Hold"
    if current.tier != target.tier:
        return "SwitchTier"
    if current.node_pool != target.node_pool:
        return "SwitchPool"
    if target.replicas > current.replicas:
        return "ScaleUp"
    if target.replicas < current.replicas:
        return "ScaleDown"
    return "Hold"


__all__ = ["decide", "evidence_of"]
