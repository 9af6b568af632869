"""Labels and names of everything Fulcrum creates.

Children carry ``app.kubernetes.io/managed-by: fulcrum`` and ``fulcrum.dev/model-deployment: <name>``, and never
the parent's ``app.kubernetes.io/instance`` (Argo CD tracks resources by it).
"""

from __future__ import annotations

import hashlib
import re

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "fulcrum"
MODEL_DEPLOYMENT = "fulcrum.dev/model-deployment"
COMPONENT = "app.kubernetes.io/component"
TIER = "fulcrum.dev/tier"
POOL = "fulcrum.dev/node-pool"
BUILD_KEY = "fulcrum.dev/build-key"
SPEC_HASH = "fulcrum.dev/spec-hash"
ROUTING = "fulcrum.dev/routing"  # "hot" on the pods of a pool's hot Deployment (several tiers loaded)
LOADED_TIERS = "fulcrum.dev/loaded-tiers"  # annotation: the tiers each replica of a Deployment loads
ROUTING_KEY = "fulcrum.dev/routing-key"  # pod annotation: a digest of the key its model-repository API takes

COMPONENT_SERVER = "triton-server"
COMPONENT_BUILD = "model-build"
COMPONENT_BUILD_RECORD = "build-record"
COMPONENT_ROUTING = "routing"
ROUTING_HOT = "hot"
COMPONENT_BUILD_CLEANUP = "repository-cleanup"

MAX_NAME = 63


def dns_name(*parts: str, max_length: int = MAX_NAME) -> str:
    """Join parts into a DNS-1123 label; if too long, truncate and append a short hash so names stay unique."""
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"[^a-z0-9-]", "-", raw.lower()).strip("-")
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-')}-{digest}"


def owned_labels(md_name: str, component: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, MODEL_DEPLOYMENT: md_name, COMPONENT: component}


def server_selector(md_name: str) -> dict[str, str]:
    """Selects every Triton pod of a ModelDeployment, whatever its tier or pool (the Service and PDB use it)."""
    return {MODEL_DEPLOYMENT: md_name, COMPONENT: COMPONENT_SERVER}


def server_deployment_name(md_name: str, tier: str, pool: str) -> str:
    """The Deployment serving one tier alone on a pool (a switch to or from it starts pods)."""
    return dns_name(md_name, tier, pool)


def hot_deployment_name(md_name: str, pool: str) -> str:
    """The Deployment of a pool whose replicas load its hot tiers (a switch among them is a routing change)."""
    return dns_name(md_name, pool)


def build_job_name(key: str) -> str:
    return dns_name("fulcrum-build", key[:20])


def upload_form_name(key: str, nonce: str) -> str:
    """The Secret holding a build Job's upload form (owned by the Job). ``nonce``: new for each Job, so a Job
    never mounts the form of an earlier Job of its key that is still on its way out."""
    return dns_name("fulcrum-build", key[:20], "upload", nonce)


def build_record_name(key: str) -> str:
    return dns_name("fulcrum-build", key[:20], "record")
