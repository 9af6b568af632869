"""``ModelDeployment.status``: written only by the operator, only when something changed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fulcrum.api.base import StatusModel
from fulcrum.api.profiles import Profile

ConditionType = Literal[
    "Ready", "Reconciling", "Stalled", "RepositoryReady", "Available", "MetricsAvailable", "SLOMet", "WithinBudget"
]
TierState = Literal["Ready", "Failed", "Unavailable"]
DecisionAction = Literal["ScaleUp", "ScaleDown", "SwitchTier", "SwitchPool", "Hold"]


class Condition(StatusModel):
    """A kstatus-style condition."""

    type: str = Field(
        description="Ready, Reconciling, Stalled, RepositoryReady, Available, MetricsAvailable, SLOMet or WithinBudget."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word saying why.")
    message: str = Field(default="", description="A sentence for humans, naming the field or file at fault.")
    observed_generation: int | None = Field(default=None, description="metadata.generation this condition is about.")
    last_transition_time: str | None = Field(default=None, description="When status last changed (RFC 3339).")


class ValidationSplit(StatusModel):
    """Which rows of the validation data gated a tier's accuracy and which calibrated it: a fixed split, so the
    gate never sees a row that calibration tuned the tier on."""

    gate_rows: list[int] = Field(min_length=2, max_length=2, description="[start, end) of the rows the gate used.")
    calibration_rows: list[int] | None = Field(
        default=None, min_length=2, max_length=2, description="[start, end) of the int8 calibration rows, if any."
    )
    gated_on: str = Field(default="", description="Where the tier's outputs were measured for the gate.")


class TierStatus(StatusModel):
    """What the build made of one tier."""

    name: str = Field(description="Tier name.")
    state: TierState = Field(description="Ready, Failed or Unavailable.")
    reason: str = Field(default="", description="Why the tier is in this state (e.g. AccuracyCheckFailed, NoGPU).")
    message: str = Field(default="", description="Details, with the measured numbers.")
    accuracy: dict[str, str] = Field(default_factory=dict, description="Measured accuracy metrics (decimal strings).")
    validation: ValidationSplit | None = Field(default=None, description="The rows that gated and calibrated it.")
    profiles: list[Profile] = Field(default_factory=list, description="Latency profiles per node pool.")
    repository: str | None = Field(default=None, description="Where the tier's Triton model lives.")
    size_bytes: int | None = Field(
        default=None, description="Size of the tier's model files, bytes (what loading it takes, before overhead)."
    )


class Observed(StatusModel):
    """What the serving fleet measured over the last window."""

    requests_per_second: str | None = Field(default=None, description="Request rate (decimal string).")
    latency_ms: str | None = Field(default=None, description="Latency at the SLO percentile, ms (decimal string).")
    queue_ms: str | None = Field(default=None, description="Mean queue time, ms (decimal string).")
    time: str | None = Field(
        default=None,
        description="End of the metrics window these figures were measured over (RFC 3339). They are rewritten only "
        "when they change; while metrics are unavailable they stay as last measured and MetricsAvailable says why.",
    )


class LastDecision(StatusModel):
    """The policy's latest action."""

    time: str = Field(description="When the decision was applied (RFC 3339).")
    action: DecisionAction = Field(description="ScaleUp, ScaleDown, SwitchTier, SwitchPool or Hold.")
    from_: str | None = Field(default=None, alias="from", description="Configuration before, e.g. fp32@l4x3.")
    to: str | None = Field(default=None, description="Configuration after, e.g. fp16-trt@l4x2.")
    reason: str = Field(default="", description="The decision explained in one sentence.")


class BuildStatus(StatusModel):
    """The build the active repository came from."""

    key: str | None = Field(default=None, description="Content address of the build (model digest + tier spec).")
    job: str | None = Field(default=None, description="Name of the build Job.")
    repository: str | None = Field(default=None, description="Where the built model repository is stored.")


class ColdTier(StatusModel):
    """A Ready tier that replicas of the active pool do not load beside the others: a switch to it starts pods."""

    name: str = Field(description="Tier name.")
    reason: str = Field(description="DoesNotFit, SizeUnknown or NotListed (not in serving.hotTiers).")
    message: str = Field(default="", description="Why, with the sizes and the pool's memory.")


class ServingStatus(StatusModel):
    """What clients reach: the served model name and the tier it routes to on the active placement."""

    model_name: str = Field(description="The model name clients call (spec.serving.modelName or metadata.name).")
    routed_tier: str | None = Field(default=None, description="The tier the served name routes to.")
    hot_tiers: list[str] = Field(
        default_factory=list,
        description="Tiers each replica of the active placement loads (a switch among them is hot).",
    )
    cold_tiers: list[ColdTier] = Field(
        default_factory=list, description="Ready tiers of the active pool not loaded with them, and why."
    )
    pods: int | None = Field(default=None, description="Ready pods of the active placement.")
    routed_pods: int | None = Field(
        default=None, description="Of them, pods confirmed to route the served name to routedTier."
    )


class PolicyMemory(StatusModel):
    """What the control loop keeps across operator restarts; everything else it rebuilds from the cluster."""

    last_switch_time: str | None = Field(
        default=None, description="When the last tier or pool switch started (RFC 3339): the cooldown runs from here."
    )
    speed_corrections: dict[str, str] = Field(
        default_factory=dict,
        description="tier@pool -> measured speed / profiled speed of its replicas (decimal string, 2 digits).",
    )


class ModelDeploymentStatus(StatusModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = Field(default=None, description="The metadata.generation last acted on.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready / Reconciling / Stalled and the rest.")
    active_tier: str | None = Field(default=None, description="Tier now serving.")
    active_node_pool: str | None = Field(default=None, description="Node pool now serving.")
    replicas: int | None = Field(default=None, description="Replicas asked for.")
    ready_replicas: int | None = Field(default=None, description="Replicas serving.")
    observed: Observed | None = Field(default=None, description="Measured load and latency.")
    cost_per_hour: str | None = Field(default=None, description="Cost of what runs now, per hour (decimal string).")
    tiers: list[TierStatus] = Field(default_factory=list, description="Per-tier build results.")
    last_decision: LastDecision | None = Field(default=None, description="The policy's latest action.")
    build: BuildStatus | None = Field(default=None, description="The build the repository came from.")
    serving: ServingStatus | None = Field(default=None, description="The served model name and its routing.")
    policy: PolicyMemory | None = Field(default=None, description="What the control loop remembers across restarts.")

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
