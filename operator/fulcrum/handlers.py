"""What the operator watches, and which ModelDeployment each change concerns: thin glue.

Informers (``fulcrum.controller.informer``) list and watch the kinds below into the object cache; every change
is routed here to the keys of the ModelDeployments it concerns, which go on the work queue. Workers reconcile
from the cache. The operator writes nothing but ``status`` on a ModelDeployment (no annotations, no finalizers:
GitOps tools see no drift) and leaves deletion to owner references.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fulcrum.controller.cache import Body, Key, ObjectCache, owner_of
from fulcrum.resources import labels

MANAGED = f"{labels.MANAGED_BY}={labels.MANAGER}"


@dataclass(frozen=True)
class Watch:
    """One kind the operator lists and watches (RBAC needs list and watch on exactly these)."""

    kind: str
    group: str
    resource: str
    label_selector: str | None = None
    in_models: bool = True
    """Watched where ModelDeployments are served (all namespaces, or the given ones)."""
    in_builds: bool = False
    """Watched in the build namespace as well (build Jobs and records live there)."""


WATCHES = (
    Watch("ModelDeployment", "fulcrum.dev", "modeldeployments"),
    Watch("Deployment", "apps", "deployments", MANAGED),
    Watch("Service", "", "services", MANAGED),
    Watch("PodDisruptionBudget", "policy", "poddisruptionbudgets", MANAGED),
    Watch("EndpointSlice", "discovery.k8s.io", "endpointslices", MANAGED),
    # build Jobs run in the build namespace, or beside the ModelDeployment when its build mounts the team's own
    # Secret or claim (spec.repository, a pvc:// source)
    Watch("Job", "batch", "jobs", MANAGED, in_builds=True),
    # build records in the build namespace; each ModelDeployment's routing ConfigMap beside it
    Watch("ConfigMap", "", "configmaps", MANAGED, in_builds=True),
    # what only the kubelet reports (an image that cannot be pulled), on Triton pods and on build pods
    Watch("Pod", "", "pods", MANAGED, in_builds=True),
)


def keys_for(
    kind: str,
    old: Body | None,
    new: Body | None,
    cache: ObjectCache,
    builders: Callable[[str], Iterable[Key]],
) -> set[Key]:
    """The ModelDeployments a change of one object concerns.

    ``builders(build_key)`` gives the ModelDeployments waiting on a build (its Job and record are shared).
    """
    keys: set[Key] = set()
    for body in (old, new):
        if body is None:
            continue
        meta = body.get("metadata", {})
        namespace = meta.get("namespace", "")
        if kind == "ModelDeployment":
            keys.add((namespace, meta["name"]))
        elif kind in ("Job", "ConfigMap", "Pod"):
            build = (meta.get("labels") or {}).get(labels.BUILD_KEY)
            if build:
                keys.update(builders(build))  # a build's Job, record or pod
            owner = owner_of(body)
            if owner:
                keys.add((namespace, owner))  # a ModelDeployment's routing ConfigMap
        elif kind == "EndpointSlice":
            service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
            if service and ("ModelDeployment", (namespace, service)) in cache:
                keys.add((namespace, service))
        else:
            owner = owner_of(body)
            if owner:
                keys.add((namespace, owner))
    return keys
