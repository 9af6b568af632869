"""Helpers of the chart tests: find helm, render the chart, pick objects out of the rendering."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fulcrum"
CRD_FILE = ROOT / "crds" / "fulcrum.dev_modeldeployments.yaml"
CHART_CRD_FILE = CHART / "files" / "crds" / "fulcrum.dev_modeldeployments.yaml"
KUBE_VERSION = "1.32.0"  # the dev cluster's (also what the pinned helm assumes without a cluster)
HELM_ENV = "FULCRUM_HELM"

Obj = dict[str, Any]


def helm_binary() -> str | None:
    """``$FULCRUM_HELM``, else the helm that `fulcrum dev build` made, else helm on PATH."""
    explicit = os.environ.get(HELM_ENV)
    if explicit:
        return explicit
    try:
        from fulcrum.dev import build as dev_build

        bin_dir = dev_build.find_bin_dir()
    except Exception:
        bin_dir = None
    if bin_dir is not None and (bin_dir / "helm").exists():
        return str(bin_dir / "helm")
    return shutil.which("helm")


def require_helm() -> str:
    helm = helm_binary()
    if helm is None:
        pytest.skip(f"no helm: run `fulcrum dev build` (builds it into ~/.cache/fulcrum/bin) or set ${HELM_ENV}")
    return helm


def helm(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([require_helm(), *args], capture_output=True, text=True, check=False, timeout=120, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


REQUIRED: dict[str, Any] = {"repository": {"s3": {"uri": "s3://models/fulcrum"}}}
"""The one value every install sets: where repositories go (the chart has no default storage)."""


def with_required(values: dict[str, Any] | None) -> dict[str, Any]:
    """``values`` over :data:`REQUIRED` (deep merge)."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
        return over

    return merge(REQUIRED, values or {})  # type: ignore[no-any-return]


def set_args(values: dict[str, Any] | None) -> list[str]:
    """Values as ``--set-json`` arguments (one per top-level key: types survive, nothing is stringified)."""
    import json

    return [arg for key, value in (values or {}).items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def render(
    values: dict[str, Any] | None = None,
    *,
    namespace: str = "fulcrum-system",
    release: str = "fulcrum",
    required: bool = True,
) -> list[Obj]:
    """``helm template`` the chart (with :data:`REQUIRED` under ``values`` unless ``required`` is False)."""
    values = with_required(values) if required else values
    out = helm(
        "template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION, *set_args(values)
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_error(values: dict[str, Any], *, required: bool = True) -> str:
    """The error of a rendering that must fail (schema or a `required`/`fail` in a template)."""
    values = with_required(values) if required else values
    result = helm("template", "fulcrum", str(CHART), "--kube-version", KUBE_VERSION, *set_args(values), check=False)
    assert result.returncode != 0, f"rendering with {values} should fail but gave:\n{result.stdout[:2000]}"
    return result.stderr


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: Iterable[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def operator_container(objects: Iterable[Obj]) -> Obj:
    deployment = one(objects, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: Obj = containers[0]
    return container


def flag_values(args: list[str], flag: str) -> list[str]:
    """Values of ``--flag=value`` arguments, in order."""
    return [a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")]


def rbac_permissions(rules: Iterable[Obj]) -> set[tuple[str, str, str]]:
    """Rules flattened to (apiGroup, resource, verb) triples."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


ARGOCD_HEALTH = CHART / "argocd" / "health.lua"


def argocd_health(obj: Obj) -> dict[str, str]:
    """Run the chart's Argo CD health check as Argo CD does (Lua 5.1, the object as the global ``obj``)."""
    lua51 = pytest.importorskip("lupa.lua51")
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(ARGOCD_HEALTH.read_text())
    assert result is not None, "the health check must return a table"
    return {key: result[key] for key in ("status", "message")}
