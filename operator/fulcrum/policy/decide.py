"""``decide``: one control tick. Pure: the same inputs always give the same Decision."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from fulcrum.api import ModelDeploymentSpec
from fulcrum.policy.capacity import ProfileTable
from fulcrum.policy.forecast import forecast, slope
from fulcrum.policy.plan import EPSILON, Candidate, Option, Planner
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


def decide(
    spec: ModelDeploymentSpec,
    profiles: ProfileTable,
    observation: Observation | None,
    state: PolicyState,
    now: float,
    *,
    tuning: Tuning = DEFAULT_TUNING,
) -> Decision:
    """Choose tier x node pool x replicas for the time from ``now`` on.

    ``profiles`` holds the Ready tiers only; ``state.fleet`` the replicas that exist now (see the package
    docstring). The returned ``Decision.state`` is what to pass to the next call.
    """
    tick = _tick_seconds(state, now, tuning)
    state = _record(spec, profiles, observation, state, now=now, tuning=tuning)
    tick_ctx = _Tick.build(spec, profiles, state, observation, now=now, tick=tick, tuning=tuning)
    return tick_ctx.run()


Evidence = Literal["complete", "partial", "none"]
"""What this tick's observation says about the load: all of it, a lower bound, or nothing."""


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
    state: PolicyState,
    *,
    now: float,
    tuning: Tuning,
) -> PolicyState:
    """The state with this tick's observation folded in: rate history and speed corrections."""
    history = [(t, r) for t, r in state.rate_history if now - t < tuning.history_seconds and t < now]
    corrections = dict(state.corrections)
    if evidence_of(observation) != "complete":  # a lower bound or nothing: the unbroken run of full windows ends
        return replace(state, rate_history=tuple(history[-64:]), last_tick_at=now, observed_since=None)
    assert observation is not None and observation.requests_per_second is not None
    rate = observation.requests_per_second
    since = state.observed_since
    last = state.last_tick_at
    if since is None or last is None or not 0.0 <= now - last <= tuning.max_observation_gap_seconds:
        since = now
    history.append((now, rate))
    sample = _speed_sample(spec, profiles, observation, state, tuning)
    if sample is not None and state.desired is not None:
        key = f"{state.desired.tier}@{state.desired.node_pool}"
        low, high = tuning.correction_bounds
        old = corrections.get(key, 1.0)
        corrections[key] = min(high, max(low, (1.0 - tuning.ewma_alpha) * old + tuning.ewma_alpha * sample))
    return replace(
        state, rate_history=tuple(history[-64:]), corrections=corrections, last_tick_at=now, observed_since=since
    )


def _speed_sample(
    spec: ModelDeploymentSpec,
    profiles: ProfileTable,
    observation: Observation | None,
    state: PolicyState,
    tuning: Tuning,
) -> float | None:
    """Observed speed / profiled speed of the serving replicas, when this tick says something about it."""
    desired = state.desired
    if observation is None or desired is None or observation.latency_ms is None:
        return None
    rate = observation.requests_per_second
    groups = [g for g in state.fleet if g.total > 0]
    if rate is None or len(groups) != 1 or groups[0].placement != desired.placement or groups[0].starting:
        return None  # only a settled fleet of one placement is comparable with its profile
    ready = groups[0].ready
    curve = profiles.curve(desired.tier, desired.node_pool)
    if ready <= 0 or curve is None:
        return None
    percentile = float(spec.slo.percentile)
    per_replica = rate / ready
    target = spec.slo.latency_ms * (1.0 - tuning.latency_margin)
    capacity = profiles.capacity(desired.tier, desired.node_pool, target, percentile)
    if per_replica < tuning.min_correction_utilisation * capacity or per_replica >= curve.saturation_rps:
        return None
    effective = curve.effective_rate(observation.latency_ms, percentile)
    if effective is None or effective <= 0.0:
        return None
    return per_replica / effective


@dataclass
class _Tick:
    spec: ModelDeploymentSpec
    planner: Planner
    state: PolicyState
    now: float
    tick: float
    tuning: Tuning
    rate: float
    rate_slope: float
    trend_slope: float
    """The long window's slope alone: switches are planned on the trend, not on the last ticks' noise."""
    evidence: Evidence
    """This tick's observation: ``complete``, ``partial`` (``rate`` is a lower bound) or ``none`` (hold)."""
    _ceilings: dict[Placement, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        spec: ModelDeploymentSpec,
        profiles: ProfileTable,
        state: PolicyState,
        observation: Observation | None,
        *,
        now: float,
        tick: float,
        tuning: Tuning,
    ) -> _Tick:
        target = spec.slo.latency_ms * (1.0 - tuning.latency_margin)
        planner = Planner(spec, profiles, state, target, float(spec.slo.percentile))
        evidence = evidence_of(observation)
        if evidence == "partial":  # what some pods reported: a lower bound, good for scaling up only
            assert observation is not None and observation.requests_per_second is not None
            rate = observation.requests_per_second
        else:  # complete: this tick's rate (recorded last); none: the last one known, for the reason only
            rate = state.rate_history[-1][1] if state.rate_history else 0.0
        rate_slope = max(
            slope(state.rate_history, now, tuning.trend_window_seconds),
            slope(state.rate_history, now, tuning.short_trend_window_seconds),
        )
        trend_slope = slope(state.rate_history, now, tuning.trend_window_seconds)
        return cls(spec, planner, state, now, tick, tuning, rate, rate_slope, trend_slope, evidence)

    @property
    def covered(self) -> bool:
        """Whether complete observations cover the whole scale-down window: only then may the fleet shrink."""
        since = self.state.observed_since
        window = self.spec.scaling.scale_down_stabilization_seconds
        return self.evidence == "complete" and since is not None and self.now - since >= window

    # --- demand -------------------------------------------------------------------------------------------

    def demand_at(self, horizon: float, *, trend: bool = False) -> float:
        """The forecast ``horizon`` seconds ahead with headroom; ``trend``: on the long window's slope only."""
        rate_slope = self.trend_slope if trend else self.rate_slope
        return forecast(self.rate, rate_slope, horizon) * (1.0 + self.tuning.headroom)

    def demand_for(self, candidate: Candidate) -> float:
        """What a candidate must serve once replicas started now are up: the forecast at its startup."""
        return self.demand_at(candidate.startup + self.tick)

    def demand_next(self, candidate: Candidate) -> float:
        """The same, for replicas started at the next tick."""
        return self.demand_at(candidate.startup + 2.0 * self.tick)

    @property
    def rising(self) -> bool:
        """Whether the load grew materially over the trend window."""
        return self.rate_slope * self.tuning.trend_window_seconds > 0.05 * max(self.rate, 1e-9)

    # --- the tick -----------------------------------------------------------------------------------------

    def run(self) -> Decision:
        objective = self.spec.scaling.objective
        current = self._current()
        if not self.planner.candidates:
            return self._no_candidates(current)
        if current is not None and self.evidence == "none":
            return self._hold(current)
        if current is None or self.planner.candidate(current.placement) is None:
            if current is not None and self.evidence != "complete":
                return self._hold(current)
            return self._place(current, objective)
        if self.evidence == "complete":  # a switch is never started on a lower bound
            switch = self._switch(current, objective)
            if switch is not None:
                return switch
        return self._scale(current)

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

    def _place(self, current: Config | None, objective: str) -> Decision:
        """First placement, or the desired tier stopped being a candidate: choose afresh (no cooldown)."""
        already = self.planner.fleet_cost(self.state.fleet)
        option = self.planner.best(self.demand_for, objective, already=already)
        code = "Placed" if current is None else "TierUnavailable"
        if option is None:
            option = self.planner.best_effort(self.demand_for, objective, already=already)
            code = "BudgetExhausted"
        assert option is not None  # candidates exist
        target = Config(option.placement.tier, option.placement.node_pool, option.replicas)
        if current is None:
            reason = f"Starting with {target}, the best configuration for {self.rate:.0f} rps under {objective}."
        else:
            reason = f"{current.placement} is no longer a Ready candidate, so moving to {target}."
        if code == "BudgetExhausted":
            reason = self._exhausted_reason(target, option)
        return self._decide(current, target, code, reason, switched=current is not None)

    # --- switching ----------------------------------------------------------------------------------------

    def _switch(self, current: Config, objective: str) -> Decision | None:
        placement = current.placement
        cooldown = self.spec.scaling.tier_switch_cooldown_seconds
        last = self.state.last_switch_at
        if last is not None and self.now - last < cooldown:
            return None
        if any(g.placement != placement and g.total > 0 for g in self.state.fleet):
            return None  # a switch is still in progress
        planner = self.planner
        here = planner.candidate(placement)
        assert here is not None
        fleet_cost = planner.switch_cost(self.state.fleet, placement)
        stay = planner.size(here, self.demand_for(here))
        ideal = planner.best(self.demand_for, objective)
        if ideal is None:
            return self._switch_best_effort(current, here, objective, fleet_cost)
        if not (stay.meets and planner.affordable(stay.cost)):
            forced = self._target(objective, placement, fleet_cost) or ideal
            return self._switch_to(current, forced, fleet_cost, "BudgetAhead" if self.rising else "LoadRising")
        if ideal.placement != placement:
            better = objective == "Quality" and ideal.candidate.rank < here.rank
            if better:
                switch = self._switch_up(current, ideal, fleet_cost)
                if switch is not None:
                    return switch
            elif ideal.cost <= (1.0 - self.tuning.switch_saving) * stay.cost and (
                objective == "Cost" or ideal.candidate.rank <= here.rank
            ):
                option = planner.size(ideal.candidate, self.demand_for(ideal.candidate))
                if planner.affordable(option.cost, fleet_cost) and self._lasting(option.candidate):
                    return self._switch_to(current, option, fleet_cost, "Cheaper")
        if planner.budget is not None and not self._safe(here):
            target = self._target(objective, placement, fleet_cost)
            if target is not None:
                return self._switch_to(current, target, fleet_cost, "BudgetAhead")
        return None

    def _safe(self, here: Candidate, extra: float = 0.0, ahead: float = 0.0) -> bool:
        """Whether staying on ``here`` keeps a switch elsewhere affordable at the next tick (or ``ahead`` s later)."""
        planner = self.planner
        if planner.budget is None:
            return True
        lead = 2.0 * self.tick + ahead
        stay_next = planner.size(here, self.demand_at(here.startup + lead, trend=True) * (1.0 + extra))
        if not (stay_next.meets and planner.affordable(stay_next.cost)):
            return False
        fallback = self._escape(here, lead)
        return fallback is None or planner.affordable(stay_next.cost + self._room(fallback, here, stay_next.replicas))

    def _lasting(self, candidate: Candidate, extra: float = 0.0) -> bool:
        """Whether a switch target would still serve, with a way out, when the cooldown lets it move again."""
        return self._safe(candidate, extra=extra, ahead=float(self.spec.scaling.tier_switch_cooldown_seconds))

    def _escape(self, here: Candidate, lead: float) -> Option | None:
        """The cheapest other placement meeting the demand ``lead`` seconds after its startup.

        Only placements that can serve more than ``here`` within the budget count: moving to one that cannot
        would never be the way out of a budget that ``here`` has outgrown.
        """
        planner = self.planner
        ceiling = self._ceiling_capacity(here)
        useful = [
            c for c in planner.candidates if c.placement != here.placement and self._ceiling_capacity(c) > ceiling
        ]
        if not useful:
            return None
        options = [planner.size(c, self.demand_at(c.startup + lead)) for c in useful]
        fitting = [o for o in options if o.meets and planner.affordable(o.cost)]
        return min(fitting, key=lambda o: (o.cost, o.candidate.rank)) if fitting else None

    def _ceiling_capacity(self, candidate: Candidate) -> float:
        """Requests per second a candidate serves within the SLO at the most replicas the budget allows."""
        cached = self._ceilings.get(candidate.placement)
        if cached is None:
            planner = self.planner
            cached = min(planner.max_replicas, planner.budget_replicas(candidate)) * candidate.capacity
            self._ceilings[candidate.placement] = cached
        return cached

    def _target(self, objective: str, exclude: Placement, fleet_cost: float) -> Option | None:
        """Where to switch: meets the demand, the overlap fits the budget; preferably still fits after the cooldown."""
        planner = self.planner
        leaving = planner.candidate(exclude)
        fitting: list[tuple[tuple[float, ...], Option]] = []
        for candidate in planner.candidates:
            if candidate.placement == exclude:
                continue
            option = planner.size(candidate, self.demand_for(candidate))
            room = self._room(option, leaving, self._kept(exclude))
            if not (option.meets and planner.affordable(room, fleet_cost)):
                continue
            lasting = self._lasting(candidate)
            if lasting:
                order = (
                    (float(candidate.rank), option.cost)
                    if objective == "Quality"
                    else (option.cost, float(candidate.rank))
                )
                fitting.append(((0.0, *order), option))
            else:  # nothing may last: the most the budget can buy there, so the next move is least likely
                fitting.append(((1.0, -self._ceiling_capacity(candidate), option.cost), option))
        if not fitting:
            return None
        return min(fitting, key=lambda item: item[0])[1]

    def _switch_up(self, current: Config, ideal: Option, fleet_cost: float) -> Decision | None:
        """Back to a more accurate tier, when it fits with hysteresis and the switch fits the budget."""
        planner = self.planner
        demand = self.demand_for(ideal.candidate) * (1.0 + self.tuning.upgrade_hysteresis)
        option = planner.size(ideal.candidate, demand)
        room = self._room(option, planner.candidate(current.placement), self._kept(current.placement))
        if not option.meets or not planner.affordable(room, fleet_cost):
            return None
        if not self._lasting(option.candidate, extra=self.tuning.upgrade_hysteresis):
            return None  # would have to leave again before the cooldown lets it
        return self._switch_to(current, option, fleet_cost, "LoadAllows")

    def _switch_best_effort(
        self, current: Config, here: Candidate, objective: str, fleet_cost: float
    ) -> Decision | None:
        """Nothing meets the SLO within the budget: move to what serves the most in time, if that is elsewhere."""
        planner = self.planner
        best = planner.best_effort(self.demand_for, objective)
        if best is None or best.placement == current.placement:
            return None
        here_best = min(planner.max_replicas, planner.budget_replicas(here)) * here.capacity
        if best.capacity <= 1.1 * here_best:
            return None
        return self._switch_to(current, best, fleet_cost, "BudgetExhausted")

    def _switch_to(self, current: Config, option: Option, fleet_cost: float, code: str) -> Decision | None:
        """Start the switch; while old and new overlap the whole fleet must stay under the ceiling.

        Until complete observations cover the scale-down window, a switch never lowers what the fleet serves:
        moves for cost or accuracy wait, and a move forced by the load is sized for at least the current fleet.
        """
        planner = self.planner
        replicas = option.replicas
        if not self.covered:
            if code in ("Cheaper", "LoadAllows"):
                return None
            here = planner.candidate(current.placement)
            if here is not None:
                floor = math.ceil(current.replicas * here.capacity / option.candidate.capacity - EPSILON)
                replicas = min(planner.max_replicas, max(replicas, floor))
                option = Option(option.candidate, replicas, option.meets)
        if not planner.affordable(option.cost, fleet_cost):
            affordable = planner.budget_replicas(option.candidate, fleet_cost)
            if affordable < max(1, planner.min_replicas):
                return None
            replicas = affordable  # start smaller, grow once the old fleet is gone
        target = Config(option.placement.tier, option.placement.node_pool, replicas)
        budget = planner.budget
        ceiling = "" if budget is None else f" within the {budget:.2f}/h budget"
        overlap = fleet_cost + replicas * option.candidate.unit_cost
        if code == "LoadAllows":
            reason = (
                f"Load of {self.rate:.0f} rps now fits {target.placement}{ceiling}, so switching back "
                f"from {current} to {target} (overlap {overlap:.2f}/h)."
            )
        elif code == "Cheaper":
            reason = f"{target} serves {self.rate:.0f} rps within the SLO for less than {current}, so switching."
        elif code == "BudgetExhausted":
            reason = self._exhausted_reason(target, option)
        elif code == "BudgetAhead":
            reason = (
                f"Load of {self.rate:.0f} rps is rising toward what {current.placement} can serve{ceiling}, "
                f"so switching to {target} while the overlap still fits ({overlap:.2f}/h)."
            )
        else:
            reason = (
                f"{current.placement} cannot serve the forecast {self.demand_for(option.candidate):.0f} rps"
                f"{ceiling}, so switching to {target}."
            )
        return self._decide(current, target, code, reason, switched=True)

    # --- scaling within a placement -----------------------------------------------------------------------

    def _scale(self, current: Config) -> Decision:
        planner = self.planner
        here = planner.candidate(current.placement)
        assert here is not None
        demand = self.demand_for(here)
        wanted = planner.size(here, demand)
        other_cost = planner.fleet_cost(self.state.fleet, exclude=current.placement)
        window_seconds = self.spec.scaling.scale_down_stabilization_seconds
        window = tuple((t, n) for t, n in self.state.scale_down_window if self.now - t < window_seconds)
        if self.evidence == "complete":  # the window holds what the load *seen* needed; a lower bound says nothing
            seen = planner.size(here, self.rate * (1.0 + self.tuning.headroom))
            window = (*window, (self.now, seen.replicas))
        replicas = current.replicas
        waiting = False
        # up at once; down only to what both the forecast and the window's largest recommendation need, and only
        # once complete observations cover the whole window
        if wanted.replicas > replicas:
            replicas = wanted.replicas
        elif self.covered:
            replicas = min(replicas, max(wanted.replicas, *(n for _, n in window)))
        else:
            waiting = wanted.replicas < replicas
        allowed = max(planner.min_replicas, min(planner.max_replicas, planner.budget_replicas(here, other_cost)))
        reserve = self._escape_reserve(here, other_cost)
        if reserve > 0.0:  # stop growing where a switch away would no longer fit; never shrink for it
            kept = planner.budget_replicas(here, other_cost + reserve)
            allowed = min(allowed, max(planner.min_replicas, kept, min(current.replicas, replicas)))
        capped = replicas > allowed
        replicas = min(replicas, allowed)
        target = Config(current.tier, current.node_pool, replicas)
        serves = replicas * here.capacity
        if capped and other_cost > 0.0:
            code = "Switching"
            reason = (
                f"{target} grows toward the forecast {demand:.0f} rps as the old placement's replicas go, "
                f"keeping the fleet within the budget."
            )
        elif capped or not wanted.meets:
            code = "BudgetExhausted" if capped else "MaxReplicas"
            limit = "the budget" if capped else f"maxReplicas {planner.max_replicas}"
            reason = (
                f"The forecast {demand:.0f} rps needs more than {limit} allows; {target} serves {serves:.0f} rps "
                "within the SLO, the most it can."
            )
        elif replicas > current.replicas:
            code = "LoadRising"
            load = (
                f"Load of {self.rate:.0f} rps"
                if self.evidence == "complete"
                else f"Load of at least {self.rate:.0f} rps (some replicas did not report)"
            )
            reason = (
                f"{load} is forecast at {demand:.0f} rps once new replicas are up, so "
                f"{current.placement} scales from {current.replicas} to {replicas} ({here.capacity:.0f} rps each)."
            )
        elif waiting and replicas == current.replicas and self.evidence != "complete":
            code = "PartialMetrics"
            reason = (
                f"Only some replicas reported metrics (at least {self.rate:.0f} rps), so {target} is kept: "
                "nothing shrinks or switches on a lower bound."
            )
        elif waiting and replicas == current.replicas:
            code = "Observing"
            since = self.state.observed_since
            seen_for = 0.0 if since is None else self.now - since
            reason = (
                f"Load of {self.rate:.0f} rps needs fewer replicas, but only {seen_for:.0f} s of the "
                f"{window_seconds} s scale-down window has been observed in full, so {target} is kept."
            )
        elif replicas < current.replicas:
            code = "LoadFalling"
            reason = (
                f"Load has needed at most {replicas} replicas for {window_seconds} s, so {current.placement} scales "
                f"from {current.replicas} to {replicas}."
            )
        else:
            code = "Steady"
            reason = f"{target} serves the forecast {demand:.0f} rps within the SLO."
        state = replace(self.state, scale_down_window=window)
        return _finish(current, target, code, reason, state)

    def _escape_reserve(self, here: Candidate, other_cost: float) -> float:
        """Budget kept free for the overlap of a switch away, so scaling up never closes the way out."""
        if self.planner.budget is None or other_cost > 0.0:
            return 0.0
        escape = self._escape(here, 2.0 * self.tick)
        return 0.0 if escape is None else self._room(escape, here, self._kept(here.placement))

    def _room(self, option: Option, leaving: Candidate | None, kept: int) -> float:
        """Budget a switch to ``option`` needs beside the ``kept`` ready replicas of the placement it leaves.

        Blue/green: the whole new fleet. Rolling (``fulcrum.policy.rollout``): the Service splits requests evenly,
        so ``k`` old and ``n`` new replicas serve ``(k + n) x`` the slower one's capacity. A new replica that
        serves at least as much lets one old replica go as soon as it is ready: room for one. A slower one lowers
        what the mixed fleet serves, so the first new replicas must bring ``k + n`` up to the new fleet's size.
        A dearer new replica would not free the budget for the next one: the whole new fleet.
        """
        new = option.candidate
        if not self.tuning.rolling_switch or leaving is None or new.unit_cost > leaving.unit_cost:
            return option.cost
        if new.capacity >= leaving.capacity:
            return new.unit_cost
        return max(1, option.replicas - kept) * new.unit_cost

    def _kept(self, placement: Placement) -> int:
        """Ready replicas of a placement: what keeps serving when a switch away starts."""
        return sum(g.ready for g in self.state.fleet if g.placement == placement)

    def _exhausted_reason(self, target: Config, option: Option) -> str:
        budget = self.planner.budget
        ceiling = "" if budget is None else f" within the {budget:.2f}/h budget"
        return (
            f"No Ready tier meets the SLO for {self.demand_for(option.candidate):.0f} rps{ceiling}; {target} "
            f"serves the most requests in time ({option.candidate.capacity * target.replicas:.0f} rps)."
        )

    def _decide(
        self, current: Config | None, target: Config, code: str, reason: str, switched: bool = False
    ) -> Decision:
        state = self.state
        if switched:
            state = replace(state, last_switch_at=self.now, scale_down_window=((self.now, target.replicas),))
        elif current is None:
            state = replace(state, scale_down_window=((self.now, target.replicas),))
        return _finish(current, target, code, reason, state)


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


__all__ = ["decide"]
