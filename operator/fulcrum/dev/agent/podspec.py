"""Pure helpers that read a pod (as a dict) the way a kubelet does: env, paths, ports.

No I/O: ConfigMaps and Secrets come in through a :class:`Lookups` callback object.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Pod = dict[str, Any]
Container = dict[str, Any]

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
TERMINATION_ENV = "FULCRUM_TERMINATION_LOG"
MAX_TERMINATION_BYTES = 4096


class SpecError(ValueError):
    """The pod cannot run as specified (a missing ConfigMap key, an unknown field path...)."""


@dataclass(frozen=True)
class Lookups:
    """``config_map(ns, name)`` / ``secret(ns, name)`` return the data dict or None if absent."""

    config_map: Callable[[str, str], dict[str, str] | None]
    secret: Callable[[str, str], dict[str, str] | None]


def decode_secret(data: Mapping[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (data or {}).items()}


_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as they are, ``$$`` escapes."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_RE.sub(sub, text)


def field_ref(pod: Pod, path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str(meta.get(match[1], {}).get(match[2], ""))
    raise SpecError(f"unsupported fieldRef fieldPath {path!r}")


def _quantity_value(value: str | None, divisor: str | None) -> str:
    if value is None:
        return "0"
    if divisor in (None, "1") and value.endswith("m"):
        return str(max(1, -(-int(value[:-1]) // 1000)))
    return value


def resource_ref(container: Container, resource: str, divisor: str | None) -> str:
    kind, _, name = resource.partition(".")
    resources = container.get("resources", {}) or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(name)
    return _quantity_value(value, divisor)


def _key_ref(kind: str, ref: dict[str, Any], ns: str, lookups: Lookups) -> str | None:
    fetch = lookups.config_map if kind == "configMap" else lookups.secret
    data = fetch(ns, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise SpecError(f"{kind} {ns}/{ref['name']} not found")
    if ref["key"] not in data:
        if optional:
            return None
        raise SpecError(f"key {ref['key']!r} not found in {kind} {ns}/{ref['name']}")
    return data[ref["key"]]


def container_env(pod: Pod, container: Container, lookups: Lookups, pod_ip: str, host_ip: str) -> dict[str, str]:
    """The container's environment in Kubernetes order: envFrom, then env (later wins, $(VAR) expanded)."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []) or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            data = lookups.config_map(ns, ref["name"])
            kind = "configMap"
        elif "secretRef" in source:
            ref = source["secretRef"]
            data = lookups.secret(ns, ref["name"])
            kind = "secret"
        else:
            continue
        if data is None:
            if ref.get("optional"):
                continue
            raise SpecError(f"{kind} {ns}/{ref['name']} (envFrom) not found")
        env.update({f"{prefix}{k}": v for k, v in data.items()})
    for var in container.get("env", []) or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom")
        if not source:
            env[name] = ""
            continue
        value: str | None
        if "fieldRef" in source:
            value = field_ref(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            value = resource_ref(container, ref["resource"], ref.get("divisor"))
        elif "configMapKeyRef" in source:
            value = _key_ref("configMap", source["configMapKeyRef"], ns, lookups)
        elif "secretKeyRef" in source:
            value = _key_ref("secret", source["secretKeyRef"], ns, lookups)
        else:
            raise SpecError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env


def path_rewriter(mapping: Mapping[str, str]) -> Callable[[str], str]:
    """Replace container paths (mount paths, the termination log) by host paths inside any string.

    A container path matches only as a whole path component sequence: ``/models`` matches in
    ``--model-repository=/models/x`` but not in ``/modelsx`` or ``/data/models``. Longer paths win.
    """
    paths = sorted((p.rstrip("/") or "/" for p in mapping), key=len, reverse=True)
    targets = {p.rstrip("/") or "/": h for p, h in mapping.items()}
    if not paths:
        return lambda s: s
    pattern = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(p) for p in paths) + r")(?=/|$|[^\w.-])")

    def rewrite(text: str) -> str:
        return pattern.sub(lambda m: targets[m.group(1)], text)

    return rewrite


def termination_path(container: Container) -> str:
    return str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)


def resolve_port(container: Container, port: int | str) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for spec in container.get("ports", []) or []:
        if spec.get("name") == port:
            return int(spec["containerPort"])
    raise SpecError(f"container {container['name']}: no port named {port!r}")


def termination_message(file_text: str | None, log_tail: str, exit_code: int, policy: str | None) -> str:
    """What kubelet puts in ``state.terminated.message``."""
    message = (file_text or "")[:MAX_TERMINATION_BYTES]
    if not message and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_tail.splitlines()[-80:]
        message = "\n".join(lines)[-2048:]
    return message
