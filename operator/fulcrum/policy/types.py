"""The policy's inputs and outputs: plain frozen dataclasses, JSON-serialisable where they are persisted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fulcrum.policy.forecast import Bursts, Growth

Action = Literal["ScaleUp", "ScaleDown", "SwitchTier", "SwitchPool", "Hold"]

STATE_VERSION = 2


@dataclass(frozen=True)
class Observation:
    """What the metrics said over the last tick; any field is None when there was no data."""

    requests_per_second: float | None = None
    latency_ms: float | None = None
    """Latency at the SLO percentile over the last tick, milliseconds."""
    queue_ms: float | None = None
    """Mean time requests waited in the server's queue, milliseconds."""
    complete: bool = True
    """False when some ready pods did not report in the window: the rate is then a lower bound."""


@dataclass(frozen=True)
class Placement:
    """Where the model runs: a tier on a node pool."""

    tier: str
    node_pool: str

    def __str__(self) -> str:
        return f"{self.tier}@{self.node_pool}"


@dataclass(frozen=True)
class Config:
    """A desired configuration: tier x node pool x replicas."""

    tier: str
    node_pool: str
    replicas: int

    @property
    def placement(self) -> Placement:
        return Placement(self.tier, self.node_pool)

    def __str__(self) -> str:
        """``fp32@l4x3``, the form ``status.lastDecision.from/to`` uses."""
        return f"{self.tier}@{self.node_pool}x{self.replicas}"

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "nodePool": self.node_pool, "replicas": self.replicas}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        return cls(str(data["tier"]), str(data["nodePool"]), int(data["replicas"]))


@dataclass(frozen=True)
class ReplicaGroup:
    """Replicas of one tier on one pool as they are now: how many serve, and when the others were started."""

    tier: str
    node_pool: str
    ready: int = 0
    starting: tuple[float, ...] = ()
    """Start times (seconds, same clock as ``now``) of the replicas that do not serve yet."""

    @property
    def placement(self) -> Placement:
        return Placement(self.tier, self.node_pool)

    @property
    def total(self) -> int:
        return self.ready + len(self.starting)

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "nodePool": self.node_pool, "ready": self.ready, "starting": list(self.starting)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicaGroup:
        return cls(
            str(data["tier"]),
            str(data["nodePool"]),
            int(data.get("ready", 0)),
            tuple(float(t) for t in data.get("starting", ())),
        )


@dataclass(frozen=True)
class PolicyState:
    """Everything ``decide`` remembers between ticks; the operator persists ``to_dict()`` and passes it back.

    ``fleet`` is observed, not remembered: the caller replaces it every tick (:meth:`with_fleet`) with the
    replicas that exist now, starting ones included. Every field has a safe absent value (docs/policy.md,
    "After a restart"): a state rebuilt from status with only ``desired`` holds what runs, scales in only after a
    fully observed window, and relearns the envelope.
    """

    desired: Config | None = None
    fleet: tuple[ReplicaGroup, ...] = ()
    last_switch_at: float | None = None
    """Time of the last cold switch (new pods): the next one waits ``tierSwitchCooldownSeconds``."""
    last_tick_at: float | None = None
    rate_history: tuple[tuple[float, float], ...] = ()
    """(time, requests per second) of recent complete ticks, oldest first: the trend and the growth windows."""
    scale_down_window: tuple[tuple[float, float], ...] = ()
    """(time, requests per second) seen in the last ``scaleDownStabilizationSeconds``, kept as a max-queue (each
    rate higher than every later one): the fleet never shrinks below what the window's highest load needed."""
    corrections: Mapping[str, float] = field(default_factory=dict)
    """``tier@pool`` -> observed speed / profiled speed (EWMA); 1.0 when the fleet runs as profiled."""
    observed_since: float | None = None
    """Start of the unbroken run of ticks with a complete observation; None when the last tick had none.

    Scale-in (and any move to a placement that serves or costs less) needs this run to cover the whole
    ``scaleDownStabilizationSeconds`` window. A state rebuilt after a restart has None: nothing scales in until a
    full window has been observed."""
    growth: Growth = field(default_factory=Growth)
    """How the load has swung over each horizon (decayed histograms)."""
    bursts: Bursts = field(default_factory=Bursts)
    """Bursts seen lately, and the one going on: the fleet keeps room for a height that recurs."""
    peak: tuple[float, float] | None = None
    """(time, rate): the highest rate seen lately, decaying with ``Tuning.peak_memory_seconds``."""
    last_hot_switch_at: float | None = None
    """Time of the last hot switch (no new pods): the next one that is not forced waits ``hot_dwell_seconds``."""
    settled: tuple[float, str, int] | None = None
    """(since, ``tier@pool``, ready replicas): since when the fleet has been that one placement with that many
    replicas, all ready; None while it is not. A speed sample needs a metrics window that saw only this fleet."""

    def with_fleet(self, fleet: tuple[ReplicaGroup, ...] | list[ReplicaGroup]) -> PolicyState:
        return replace(self, fleet=tuple(fleet))

    def correction(self, tier: str, pool: str) -> float:
        return self.corrections.get(f"{tier}@{pool}", 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (camelCase keys), for a status field or an annotation."""
        return {
            "version": STATE_VERSION,
            "desired": None if self.desired is None else self.desired.to_dict(),
            "fleet": [g.to_dict() for g in self.fleet],
            "lastSwitchAt": self.last_switch_at,
            "lastTickAt": self.last_tick_at,
            "rateHistory": [[t, r] for t, r in self.rate_history],
            "scaleDownWindow": [[t, r] for t, r in self.scale_down_window],
            "corrections": dict(sorted(self.corrections.items())),
            "observedSince": self.observed_since,
            "growth": self.growth.to_dict(),
            "bursts": self.bursts.to_dict(),
            "peak": None if self.peak is None else list(self.peak),
            "lastHotSwitchAt": self.last_hot_switch_at,
            "settled": None if self.settled is None else list(self.settled),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PolicyState:
        """Read what :meth:`to_dict` wrote; an empty or missing state is a fresh one.

        A state of an older version keeps what still means the same (desired, fleet, switch and tick times,
        rate history, corrections); its scale-down window held replica counts, so it is dropped (the window
        refills, and nothing scales in until it is observed again).
        """
        if not data:
            return cls()
        desired = data.get("desired")
        current = int(data.get("version", STATE_VERSION)) == STATE_VERSION
        peak = data.get("peak")
        return cls(
            desired=None if desired is None else Config.from_dict(desired),
            fleet=tuple(ReplicaGroup.from_dict(g) for g in data.get("fleet", ())),
            last_switch_at=_opt_float(data.get("lastSwitchAt")),
            last_tick_at=_opt_float(data.get("lastTickAt")),
            rate_history=tuple((float(t), float(r)) for t, r in data.get("rateHistory", ())),
            scale_down_window=tuple((float(t), float(r)) for t, r in data.get("scaleDownWindow", ()))
            if current
            else (),
            corrections={str(k): float(v) for k, v in dict(data.get("corrections", {})).items()},
            observed_since=_opt_float(data.get("observedSince")) if current else None,
            growth=Growth.from_dict(data.get("growth")),
            bursts=Bursts.from_dict(data.get("bursts")),
            peak=None if not peak else (float(peak[0]), float(peak[1])),
            last_hot_switch_at=_opt_float(data.get("lastHotSwitchAt")),
            settled=_read_settled(data.get("settled")),
        )


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _read_settled(value: object) -> tuple[float, str, int] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return None
    return float(value[0]), str(value[1]), int(value[2])


@dataclass(frozen=True)
class Decision:
    """What to run from now on, why, and the state to pass to the next tick."""

    action: Action
    tier: str
    node_pool: str
    replicas: int
    code: str
    """One CamelCase word: LoadRising, LoadFalling, Steady, BudgetExhausted, BudgetAhead, LoadAllows, Cheaper..."""
    reason: str
    """The decision in one sentence, for ``status.lastDecision.reason`` and the Event."""
    state: PolicyState
    previous: Config | None = None

    @property
    def config(self) -> Config:
        return Config(self.tier, self.node_pool, self.replicas)

    @property
    def budget_exhausted(self) -> bool:
        return self.code == "BudgetExhausted"


@dataclass(frozen=True)
class Tuning:
    """Knobs of the policy; the defaults are what the benchmarks measure (tuned on seeds 0-199 only)."""

    latency_margin: float = 0.05
    """Capacity is taken at ``latencyMs x (1 - margin)`` at the SLO percentile."""
    headroom: float = 0.0
    """The trend is sized with this much extra rate (the learnt swings carry the load's own margin; the speed
    correction catches a fleet slower than profiled)."""
    trend_window_seconds: float = 120.0
    """Rate history used for the trend (least squares slope)."""
    trend_horizon_seconds: float = 60.0
    """A slope is extrapolated at most this far (about as long as it was measured); beyond, the learnt swings."""
    short_trend_window_seconds: float = 60.0
    """A second, short window: the steeper of the two slopes is used, so the onset of a ramp is seen early."""
    history_seconds: float = 1000.0
    """How much rate history the state keeps (the longest growth horizon, 960 s, and a little)."""
    envelope_quantile: float = 0.97
    """The envelope covers this quantile of the swings seen over each horizon (on the fastest hot tier)."""
    accurate_quantile: float = 0.5
    """The accurate tier itself serves this quantile of the swings where its limits allow."""
    envelope_memory_seconds: float = 3600.0
    """Swing samples fade with this time constant."""
    envelope_prior_samples: float = 30.0
    """Samples of no growth the swings start from (in weight of the current tick)."""
    peak_memory_seconds: float = 3600.0
    """The swings never ask for more than the highest rate seen lately, fading with this time constant."""
    burst_memory_seconds: float = 14400.0
    """Bursts older than this are forgotten."""
    burst_recurrence: int = 1
    """Once this many bursts were seen within the memory, the fleet keeps room for the highest (1: any burst may
    come back; 2: a burst seen once may be a one-off, and the first two are met late)."""
    burst_on_accurate_tier: float = 2.0
    """Recurring bursts this high (x the baseline) are held on the accurate tier itself where the budget allows:
    a hot switch to a faster tier comes a tick after the burst shows. Lower ones are left to the hot switch."""
    scale_in_startups: float = 1.0
    """Scale-in keeps what the highest load seen over the scale-down window needed, or over this many start-ups
    of the pool when that is longer: a replica let go comes back only a start-up later, so letting it go to
    start it again within that time costs a start-up's worth of it and a tick or more short (0: the window only).
    Scale-in still waits for a fully observed ``scaleDownStabilizationSeconds`` window."""
    max_observation_gap_seconds: float = 120.0
    """Two complete observations further apart than this do not make an unbroken run (``observed_since``)."""
    default_tick_seconds: float = 15.0
    """Assumed time to the next tick when the state has no previous tick."""
    ewma_alpha: float = 0.2
    """Weight of a new speed-correction sample."""
    correction_bounds: tuple[float, float] = (0.25, 1.5)
    min_correction_utilisation: float = 0.3
    """Correction samples are taken only when replicas run at least this share of their SLO capacity."""
    upgrade_hysteresis: float = 0.05
    """Moving to a more accurate tier needs this much spare capacity."""
    switch_saving: float = 0.15
    """Moving for cost alone needs at least this saving."""
    shortfall_tolerance: float = 0.05
    """A capacity short of the forecast by less than this share is not a shortfall (noise)."""
    hot_switch_seconds: float = 2.0
    """Time from a hot switch until the replicas serve the new tier (measured 1.6 s on the CPU Triton)."""
    hot_dwell_seconds: float = 60.0
    """A hot switch that is not forced by the load waits this long after the previous one (no flapping)."""
    metrics_window_seconds: float = 60.0
    """How long what the operator reads can still hold an earlier fleet: its rate window is short (15 s or 30 s,
    ``fulcrum.metrics.sources``), but the latency is Triton's summary over a recent window of its own, and a backlog
    drains for a while. No speed sample is taken this long after a hot switch, nor before the fleet has been the
    same ready replicas this long: the latency still holds the tier switched from (after an emergency switch, an
    overloaded tier's) or fewer replicas than are ready now (after a scale-up that landed in an overload, a backlog
    that more replicas would read as slow ones). (Called ``hot_settle_seconds`` before it also guarded scale-ups.)"""
    rolling_switch: bool = True
    """The operator rolls switches (old replicas removed as new ones become ready, both serving meanwhile), so a
    switch to a placement whose replicas serve at least as much for no more cost needs room for one new replica
    beside the old fleet, not the whole new fleet. False: blue/green, every switch needs the whole new fleet."""


DEFAULT_TUNING = Tuning()
