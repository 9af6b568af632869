"""Plan one reconciliation of a ModelDeployment. Pure: no I/O, no clock (``now`` is passed in).

Inputs are the parsed spec, the previous status, each pool's build state and the live Triton Deployments;
the output says which builds to start, which manifests to apply and delete, the new status and the events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from fulcrum.api import BuildStatus, Condition, ModelDeploymentSpec, ModelDeploymentStatus, NodePool
from fulcrum.policy.rollout import old_replicas_to_keep
from fulcrum.reconcile.builds import BuildPhase, BuildResult, MergedTier, merge_tiers
from fulcrum.reconcile.conditions import ordered, set_condition
from fulcrum.reconcile.layout import placement, routes
from fulcrum.reconcile.pods import REASONS as POD_REASONS
from fulcrum.reconcile.pods import PodProblem
from fulcrum.reconcile.routing import RoutingIntent, serving_status
from fulcrum.resources import labels
from fulcrum.resources.build_key import build_key, build_scope
from fulcrum.resources.common import Manifest
from fulcrum.resources.routing import routing_configmap
from fulcrum.resources.serving import server_deployment, server_pdb, server_service, triton_image
from fulcrum.resources.settings import OperatorSettings
from fulcrum.resources.storage import build_namespace, builds_in_own_namespace, storage_for


@dataclass(frozen=True)
class PoolBuild:
    """One pool's build: its key, its recorded result if finished, else whether its Job runs."""

    pool: NodePool
    key: str
    result: BuildResult | None = None
    job_phase: BuildPhase | None = None
    serving_image: str = ""
    """The Triton image this build measures its tiers with (the pool serves with it)."""
    detail: str = ""
    """Why a build without a result waits (a transient failure and when it is retried)."""
    namespace: str = ""  # where its Job runs ("" in tests that do not care); records live in the build namespace
    problem: PodProblem | None = None
    """Why its running Job's pod does not go on, when it is the user's to fix: an image that cannot be pulled (the
    serving image, which the build's Triton sidecar runs), a missing Secret or claim."""


@dataclass(frozen=True)
class LiveServer:
    """A Triton Deployment of this ModelDeployment as the cache sees it."""

    name: str
    tier: str
    pool: str
    replicas: int
    ready_replicas: int
    loaded: tuple[str, ...] = ()  # the tiers each replica loads (empty: only ``tier``)
    hot: bool = False  # a pool's hot Deployment: ``tier`` is where its served name routes now
    problem: PodProblem | None = None  # why its pods do not start, when the kubelet says it is the user's to fix


@dataclass(frozen=True)
class Choice:
    """What should serve: a tier on a pool with a replica count (from the policy, or the initial rule)."""

    tier: str
    pool: str
    replicas: int


@dataclass(frozen=True)
class Rollout:
    """What a rolling switch needs from the control loop: the policy's numbers, passed in (pure)."""

    capacities: Mapping[tuple[str, str], float]
    """(tier, pool) -> requests per second one replica serves within the SLO (the policy's estimate)."""
    rate: float | None = None
    """The load observed at the last control tick; None without metrics."""
    references: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """(tier, pool) being left -> what the fleet served within the SLO when that switch started."""


@dataclass
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    start_builds: list[PoolBuild] = field(default_factory=list)
    apply: list[Manifest] = field(default_factory=list)
    delete_deployments: list[str] = field(default_factory=list)
    scale_deployments: dict[str, int] = field(default_factory=dict)  # old fleets cut to what must still serve
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    events: list[Event] = field(default_factory=list)
    choice: Choice | None = None
    tiers: list[MergedTier] = field(default_factory=list)
    routing: RoutingIntent | None = None  # where the target Deployment's pods must route the served name


def pool_builds(
    spec: ModelDeploymentSpec,
    settings: OperatorSettings,
    results: Mapping[str, BuildResult],
    job_phases: Mapping[str, BuildPhase],
    namespace: str = "",
    *,
    details: Mapping[str, str] | None = None,
    rebuild: str = "",
) -> list[PoolBuild]:
    """Each pool's build key with what is known of it; ``results``/``job_phases``/``details`` are keyed by build
    key.

    ``namespace``: the ModelDeployment's (the key is scoped to it unless every input is pinned); ``rebuild``:
    its ``fulcrum.dev/rebuild`` annotation (a new value, a new build)."""
    storage = storage_for(spec, settings).identity
    scope = build_scope(spec, namespace, own_namespace=builds_in_own_namespace(spec))
    if rebuild and not scope:
        scope = namespace  # a build asked for by one ModelDeployment is its namespace's own
    where = build_namespace(spec, namespace, settings)
    out = []
    image = triton_image(spec, settings)
    for pool in spec.node_pools:
        key = build_key(spec, pool, settings.build_target, storage, serving_image=image, scope=scope, rebuild=rebuild)
        out.append(
            PoolBuild(
                pool,
                key,
                results.get(key),
                job_phases.get(key),
                image,
                detail=(details or {}).get(key, ""),
                namespace=where,
            )
        )
    return out


def servable(spec: ModelDeploymentSpec, tiers: list[MergedTier]) -> list[tuple[str, NodePool]]:
    """(tier, pool) pairs that can serve: a Ready tier with a built model and a profile on that pool."""
    pairs = []
    for tier in tiers:
        if tier.state != "Ready":
            continue
        profiled = {p.node_pool for p in tier.profiles}
        for pool in spec.node_pools:
            if pool.name in tier.paths and pool.name in profiled:
                pairs.append((tier.name, pool))
    return pairs


def serving_tiers_of(
    spec: ModelDeploymentSpec, builds: list[PoolBuild], previous_build: PoolBuild | None
) -> list[MergedTier]:
    """Tiers that can serve now: each pool's current build, else (while it runs) the previous build on that pool."""
    results = {b.pool.name: b.result for b in builds if b.result is not None}
    current = merge_tiers([t.name for t in spec.tiers], results)
    if previous_build is None or previous_build.result is None or previous_build.result.manifest is None:
        return current
    if previous_build.pool.name in results or previous_build.pool.name not in {p.name for p in spec.node_pools}:
        return current
    if servable(spec, current):
        return current
    names = [t.name for t in previous_build.result.manifest.tiers]
    return merge_tiers(names, {previous_build.pool.name: previous_build.result})


def initial_choice(spec: ModelDeploymentSpec, tiers: list[MergedTier], status: ModelDeploymentStatus) -> Choice | None:
    """Until the policy speaks: keep what serves if it still can; the tier that serves on its cheapest other pool
    when its pool left the spec (a pool switch the user asked for: the policy chose that tier for the load, which
    has not changed); else the first Ready tier on its cheapest pool."""
    pairs = servable(spec, tiers)
    if not pairs:
        return None
    replicas = max(1, spec.scaling.min_replicas)
    kept = min(max(status.replicas or replicas, spec.scaling.min_replicas, 1), _max(spec))
    for tier_name, pool in pairs:
        if tier_name == status.active_tier and pool.name == status.active_node_pool:
            return Choice(tier_name, pool.name, kept)
    elsewhere = [pool for name, pool in pairs if name == status.active_tier]
    if elsewhere and status.active_node_pool not in {p.name for p in spec.node_pools}:
        cheapest = min(elsewhere, key=lambda p: (p.cost_per_hour, p.name))
        return Choice(status.active_tier or "", cheapest.name, kept)
    first = pairs[0][0]
    cheapest = min((pool for name, pool in pairs if name == first), key=lambda p: (p.cost_per_hour, p.name))
    return Choice(first, cheapest.name, min(replicas, _max(spec)))


def _max(spec: ModelDeploymentSpec) -> int:
    return max(1, spec.scaling.max_replicas)


def old_replicas(server: LiveServer, choice: Choice, target_ready: int, rollout: Rollout | None, *, alone: bool) -> int:
    """Replicas a Deployment of the placement being left keeps this reconcile; 0: delete it.

    Rolling (the control loop passes a :class:`Rollout` with both placements' capacities, and only one placement
    is being left): :func:`fulcrum.policy.rollout.old_replicas_to_keep` of its ready replicas. Otherwise (no
    estimate yet) blue/green: its ready replicas until the new placement has all its replicas ready.
    Never more than it has: the old placement only shrinks, so the fleet stays within what the policy budgeted.
    """
    old_capacity = new_capacity = 0.0
    if rollout is not None and alone:
        old_capacity = rollout.capacities.get((server.tier, server.pool), 0.0)
        new_capacity = rollout.capacities.get((choice.tier, choice.pool), 0.0)
    if old_capacity > 0.0 and new_capacity > 0.0 and rollout is not None:
        keep = old_replicas_to_keep(
            old_ready=server.ready_replicas,
            old_capacity=old_capacity,
            new_ready=target_ready,
            new_capacity=new_capacity,
            rate=rollout.rate,
            reference=rollout.references.get((server.tier, server.pool)),
        )
    elif target_ready >= choice.replicas:
        keep = 0
    else:
        keep = server.ready_replicas
    return max(0, min(keep, server.replicas))


def _cost(
    spec: ModelDeploymentSpec,
    servers: list[LiveServer],
    choice: Choice | None,
    kept: Mapping[str, int],
    target_name: str | None,
) -> Decimal:
    """Cost per hour of what runs once this plan is applied: the target at the choice's size, the rest as kept."""
    total = Decimal(0)
    for server in servers:
        pool = _pool(spec, server.pool)
        if pool is not None and server.name != target_name:
            total += pool.cost_per_hour * kept.get(server.name, server.replicas)
    if choice is not None:
        total += spec.node_pool(choice.pool).cost_per_hour * choice.replicas
    return total


def _pool(spec: ModelDeploymentSpec, name: str) -> NodePool | None:
    return next((p for p in spec.node_pools if p.name == name), None)


def plan(
    *,
    md: Manifest,
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    settings: OperatorSettings,
    builds: list[PoolBuild],
    servers: list[LiveServer],
    now: str,
    choice: Choice | None = None,
    previous_build: PoolBuild | None = None,
    rollout: Rollout | None = None,
    live_routes: Mapping[str, str] | None = None,
    routing_key: str = "",
) -> Plan:
    """One reconciliation.

    ``choice`` overrides the initial serving rule (the policy's decision). ``previous_build`` is the build that
    served before the spec changed: it keeps serving on its pool until that pool's new build is finished.
    ``rollout`` (from the control loop) lets a switch roll: see :func:`old_replicas`. ``live_routes``: the
    routing ConfigMap's data as it is (Deployment name -> routing config), so Deployments being left keep theirs;
    ``routing_key``: the key that guards the pods' model-repository API (the live one, or a new random one).
    """
    out = Plan()
    out.start_builds, out.events = builds_to_start(builds)
    out.tiers = merge_tiers([t.name for t in spec.tiers], {b.pool.name: b.result for b in builds if b.result})
    serving_tiers = serving_tiers_of(spec, builds, previous_build)
    out.choice = choice_that_can_serve(spec, serving_tiers, status, choice)
    fleet = roll_out(
        md,
        spec=spec,
        settings=settings,
        serving_tiers=serving_tiers,
        builds=builds,
        previous_build=previous_build,
        choice=out.choice,
        servers=servers,
        rollout=rollout,
        live_routes=live_routes or {},
        routing_key=routing_key,
    )
    out.apply, out.scale_deployments, out.delete_deployments = fleet.apply, fleet.scale, fleet.delete
    out.routing = fleet.routing
    generation = int(md["metadata"].get("generation", 0))
    conditions = conditions_of(
        spec,
        settings=settings,
        builds=builds,
        tiers=out.tiers,
        choice=out.choice,
        fleet=fleet,
        servers=servers,
        previous=status.conditions,
        generation=generation,
        now=now,
    )
    out.status = status_of(
        spec,
        status=status,
        builds=builds,
        previous_build=previous_build,
        out=out,
        fleet=fleet,
        servers=servers,
        conditions=conditions,
        generation=generation,
        served_name=spec.serving.model_name or md["metadata"]["name"],
    )
    out.events += _transition_events(status.conditions, conditions)
    return out


def builds_to_start(builds: list[PoolBuild]) -> tuple[list[PoolBuild], list[Event]]:
    """Start every pool's build that has no result and no Job (a recorded result is final for its key)."""
    start = [b for b in builds if b.result is None and b.job_phase is None]
    events = [Event("Normal", "BuildStarted", f"building key {b.key[:12]} on pool {b.pool.name}") for b in start]
    return start, events


def choice_that_can_serve(
    spec: ModelDeploymentSpec, serving_tiers: list[MergedTier], status: ModelDeploymentStatus, choice: Choice | None
) -> Choice | None:
    """The policy's choice when it can serve now, else the initial rule (keep what serves, or the first tier)."""
    pairs = {(tier, pool.name) for tier, pool in servable(spec, serving_tiers)}
    if choice is None or (choice.tier, choice.pool) not in pairs:
        return initial_choice(spec, serving_tiers, status)
    return choice


@dataclass
class Fleet:
    """What a reconcile does to the serving fleet, and what then serves."""

    apply: list[Manifest] = field(default_factory=list)
    scale: dict[str, int] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # Deployment being left -> replicas it keeps
    target: LiveServer | None = None
    target_name: str | None = None
    routing: RoutingIntent | None = None

    @property
    def target_ready(self) -> int:
        return self.target.ready_replicas if self.target is not None else 0


def roll_out(
    md: Manifest,
    *,
    spec: ModelDeploymentSpec,
    settings: OperatorSettings,
    serving_tiers: list[MergedTier],
    builds: list[PoolBuild],
    previous_build: PoolBuild | None,
    choice: Choice | None,
    servers: list[LiveServer],
    rollout: Rollout | None,
    live_routes: Mapping[str, str],
    routing_key: str,
) -> Fleet:
    """Apply the chosen placement (its routes, Deployment, Service, PDB); the Deployments being left keep what
    must still serve, and go when none of it is needed."""
    fleet = Fleet()
    if choice is None:
        return fleet
    md_name: str = md["metadata"]["name"]
    served_name = spec.serving.model_name or md_name
    serving = placement(
        spec,
        pool=spec.node_pool(choice.pool),
        tier=choice.tier,
        replicas=choice.replicas,
        tiers=serving_tiers,
        served_name=served_name,
        routing_key=routing_key,
    )
    fleet.target_name = target_name = serving.target.deployment_name(md_name)
    loads_tensorrt = any(t.name in dict(serving.target.models) and t.backend == "tensorrt" for t in serving_tiers)
    image, gpu = _served_build(builds, previous_build, choice.pool, tensorrt=loads_tensorrt)
    serving = dataclasses.replace(serving, target=dataclasses.replace(serving.target, image=image, gpu_product=gpu))
    fleet.target = next((s for s in servers if s.name == target_name), None)
    live = [s.name for s in servers]
    fleet.apply = [
        routing_configmap(md, routes(target_name, serving.pbtxt, live_routes, live), routing_key),
        server_deployment(md, spec, serving.target, settings),
        server_service(md),
        server_pdb(md),
    ]
    fleet.routing = RoutingIntent.of(md_name, serving, fleet.target.tier if fleet.target is not None else None)
    # the old placement keeps serving what the new one cannot serve yet, never more than its ready replicas
    # (the policy counts its starting ones as gone); it goes when none of it is needed
    leaving = [s for s in servers if s.name != target_name]
    for server in leaving:
        keep = old_replicas(server, choice, fleet.target_ready, rollout, alone=len(leaving) == 1)
        fleet.kept[server.name] = keep
        if keep == 0:
            fleet.delete.append(server.name)
        elif keep < server.replicas:
            fleet.scale[server.name] = keep
    return fleet


def conditions_of(
    spec: ModelDeploymentSpec,
    *,
    settings: OperatorSettings,
    builds: list[PoolBuild],
    tiers: list[MergedTier],
    choice: Choice | None,
    fleet: Fleet,
    servers: list[LiveServer],
    previous: list[Condition],
    generation: int,
    now: str,
) -> list[Condition]:
    """RepositoryReady, Stalled, Available, Reconciling and Ready (kstatus).

    Ready stays True while the model serves: a scale-up, a switch or a rebuild shows as Reconciling, not as the
    model going away. It is False only when nothing serves or the object is stalled.
    """
    conditions: list[Condition] = []

    def cond(type_: str, ok: bool | None, reason: str, message: str) -> None:
        conditions.append(
            set_condition(previous, type_, status=ok, reason=reason, message=message, generation=generation, now=now)
        )

    pending = [b.pool.name for b in builds if b.result is None]
    retrying = [b for b in builds if b.result is None and b.job_phase == "Retrying"]
    ready_tiers = [t for t in tiers if t.state == "Ready"]
    failed_all = bool(builds) and not pending and not ready_tiers
    if ready_tiers and any(b.result and b.result.phase == "Succeeded" for b in builds):
        extra = f"; still building on {', '.join(pending)}" if pending else ""
        if storage_for(spec, settings).kind == "hostPath":
            extra += "; hostPath storage serves single-node clusters only (use s3:// or a ReadWriteMany claim)"
        cond("RepositoryReady", True, "BuildSucceeded", f"{len(ready_tiers)} of {len(spec.tiers)} tiers Ready{extra}")
    elif failed_all:
        cond("RepositoryReady", False, _failure_reason(builds, tiers), _failure_message(tiers, builds))
    elif retrying:
        cond("RepositoryReady", False, "BuildRetrying", "; ".join(f"pool {b.pool.name}: {b.detail}" for b in retrying))
    elif stuck := next((b for b in builds if b.result is None and b.problem is not None), None):
        # not final: the kubelet and the scheduler retry, so the build goes on once the image, Secret or claim is there
        assert stuck.problem is not None
        text = f"the build on pool {stuck.pool.name} cannot start: {stuck.problem.message}"
        cond("RepositoryReady", False, stuck.problem.reason, text)
    else:
        cond("RepositoryReady", False, "Building", f"building on pool(s) {', '.join(pending) or '-'}")

    stalled_reason = stalled_message = ""
    if failed_all:
        stalled_reason, stalled_message = _failure_reason(builds, tiers), _failure_message(tiers, builds)
    elif ready_tiers and choice is None and not pending:
        stalled_reason = "NoServableTier"
        stalled_message = (
            "no Ready tier has a build and a profile on any node pool of spec.nodePools "
            f"(Ready tiers: {', '.join(t.name for t in ready_tiers)})"
        )
    cond("Stalled", bool(stalled_reason), stalled_reason or "Progressing", stalled_message)

    ready_replicas = fleet.target_ready
    old_serving = sum(min(s.ready_replicas, fleet.kept.get(s.name, 0)) for s in servers if s.name in fleet.kept)
    repository = conditions[0]
    if choice is None and repository.reason in POD_REASONS:
        available = (False, repository.reason, repository.message)  # a build that cannot start, named
    elif choice is None:
        available = (False, "NoServingTier", "nothing to serve yet")
    elif ready_replicas > 0 or old_serving > 0:
        message = f"{ready_replicas}/{choice.replicas} replicas of {choice.tier} on {choice.pool} ready"
        if old_serving:
            message += f"; {old_serving} of the placement being left still serve"
        available = (True, "ReplicasReady", message)
    elif fleet.target is not None and fleet.target.problem is not None:
        available = (False, fleet.target.problem.reason, fleet.target.problem.message)
    else:
        available = (False, "ReplicasNotReady", f"waiting for replicas of {choice.tier} on {choice.pool}")
    cond("Available", *available)

    rolling = choice is not None and (ready_replicas < choice.replicas or bool(fleet.kept))
    reconciling = not stalled_reason and (bool(pending) or choice is None or rolling)
    if reconciling:
        why = "RollingOut" if rolling and not (pending and choice is None) else "Building"
        cond("Reconciling", True, why, available[2] if why == "RollingOut" else conditions[0].message)
    else:
        cond("Reconciling", False, "Settled", "")

    if stalled_reason:
        cond("Ready", False, stalled_reason, stalled_message)
    elif available[0]:
        cond("Ready", True, "Serving", available[2])
    elif available[1] in POD_REASONS:
        cond("Ready", False, available[1], available[2])  # e.g. ImagePullBackOff, naming the pod and the image
    else:
        cond("Ready", False, "Reconciling", next(c.message for c in conditions if c.type == "Reconciling"))
    return conditions


def status_of(
    spec: ModelDeploymentSpec,
    *,
    status: ModelDeploymentStatus,
    builds: list[PoolBuild],
    previous_build: PoolBuild | None,
    out: Plan,
    fleet: Fleet,
    servers: list[LiveServer],
    conditions: list[Condition],
    generation: int,
    served_name: str,
) -> ModelDeploymentStatus:
    """The new status: what serves, what it costs, the tiers and the build it came from, the served name's
    routing; the control loop's fields (observed figures, the last decision, its memory and conditions) carried
    over as they were."""
    choice = out.choice
    active_build = next((b for b in builds if choice is not None and b.pool.name == choice.pool), None)
    if active_build is not None and active_build.result is None and previous_build is not None:
        active_build = previous_build  # still serving the previous build while this pool rebuilds
    elif active_build is None and builds:
        active_build = builds[0]
    return ModelDeploymentStatus(
        observed_generation=generation,
        conditions=ordered(_carry_other_conditions(status.conditions, conditions)),
        active_tier=choice.tier if choice else None,
        active_node_pool=choice.pool if choice else None,
        replicas=choice.replicas if choice else None,
        ready_replicas=fleet.target_ready if choice else None,
        observed=status.observed,
        cost_per_hour=format(
            _cost(spec, servers, choice, fleet.kept, fleet.target_name).quantize(Decimal("0.01")), "f"
        ),
        tiers=[t.to_status() for t in out.tiers],
        last_decision=status.last_decision,
        build=BuildStatus(
            key=active_build.key,
            job=labels.build_job_name(active_build.key),
            repository=active_build.result.repository if active_build.result else None,
        )
        if active_build
        else None,
        policy=status.policy,
        serving=serving_status(served_name, out.routing, status.serving, fleet.target_ready),
    )


def _served_build(
    builds: list[PoolBuild], previous_build: PoolBuild | None, pool: str, *, tensorrt: bool
) -> tuple[str | None, str | None]:
    """The Triton image and the GPU the serving build of ``pool`` was measured with.

    A build is served with the image its tiers were gated and profiled with (while a new image's build runs, the
    previous build keeps serving with its own), and a TensorRT tier only on the GPU model its plan was built on.
    """
    build = next((b for b in builds if b.pool.name == pool and b.result is not None), None)
    if build is None and previous_build is not None and previous_build.pool.name == pool:
        build = previous_build
    if build is None or build.result is None:
        return None, None
    image = build.result.serving_image or None
    manifest = build.result.manifest
    gpu = manifest.gpu_product if manifest is not None and tensorrt else None
    return image, gpu


def _carry_other_conditions(previous: list[Condition], new: list[Condition]) -> list[Condition]:
    """Conditions this planner does not own (SLOMet, WithinBudget: the control loop's) are kept as they were."""
    owned = {c.type for c in new}
    return [*new, *(c for c in previous if c.type not in owned)]


def _failure_reason(builds: list[PoolBuild], tiers: list[MergedTier]) -> str:
    for build in builds:
        if build.result is not None and build.result.phase == "Failed":
            return build.result.reason or "BuildFailed"
    return next((t.reason for t in tiers if t.reason), "NoReadyTier")


def _failure_message(tiers: list[MergedTier], builds: list[PoolBuild]) -> str:
    whole = [b for b in builds if b.result is not None and b.result.phase == "Failed" and b.result.manifest is None]
    if whole:
        return whole[0].result.message if whole[0].result else ""
    return "no tier is Ready: " + "; ".join(f"{t.name}: {t.reason} {t.message}".strip() for t in tiers)


def _transition_events(previous: list[Condition], new: list[Condition]) -> list[Event]:
    """One event per meaningful condition change: good news as Normal, failures as Warning."""
    events = []
    before = {c.type: c for c in previous}
    for condition in new:
        old = before.get(condition.type)
        if old is not None and old.status == condition.status and old.reason == condition.reason:
            continue
        text = f"{condition.type}={condition.status}: {condition.message}".rstrip(": ")
        stalled = condition.type == "Stalled" and condition.status == "True"
        build_failed = (
            condition.type == "RepositoryReady" and condition.status == "False" and condition.reason != "Building"
        )
        if stalled or build_failed:
            events.append(Event("Warning", condition.reason, text))
        elif condition.type in ("Ready", "RepositoryReady") and condition.status == "True":
            events.append(Event("Normal", condition.reason, text))  # Available=True says what Ready=True says
    return events
