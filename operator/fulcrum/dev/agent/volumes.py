"""Materialise a pod's volumes as host directories and map each container's mounts onto them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.dev.agent.podspec import Lookups, SpecError, field_ref

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class VolumeLookups:
    objects: Lookups
    pvc: Callable[[str, str], dict[str, Any] | None]
    pv: Callable[[str], dict[str, Any] | None]
    token: Callable[[dict[str, Any], str | None, int], str | None]  # pod, audience, seconds
    ca_pem: str


def _write(path: Path, data: bytes, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    if mode is not None:
        path.chmod(mode & 0o777)


def _key_files(
    target: Path,
    data: dict[str, bytes],
    items: list[dict[str, Any]] | None,
    *,
    mode: int | None,
    what: str,
    optional: bool,
) -> None:
    if items:
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise SpecError(f"{what}: key {item['key']!r} not found")
            _write(target / item["path"], data[item["key"]], item.get("mode", mode))
    else:
        for key, value in data.items():
            _write(target / key, value, mode)


def _as_bytes(obj: dict[str, str] | None) -> dict[str, bytes] | None:
    """ConfigMap data / decoded Secret data as file contents (text only: binaryData is not supported)."""
    if obj is None:
        return None
    return {k: v.encode() for k, v in obj.items()}


def _fill(
    source: dict[str, Any],
    kind: str,
    target: Path,
    pod: dict[str, Any],
    *,
    lk: VolumeLookups,
    pod_ip: str,
    default_mode: int | None,
) -> None:
    ns = pod["metadata"]["namespace"]
    if kind == "configMap":
        name, optional = source["name"], bool(source.get("optional"))
        data = _as_bytes(lk.objects.config_map(ns, name))
        if data is None:
            if optional:
                return
            raise SpecError(f"configMap {ns}/{name} not found")
        _key_files(
            target,
            data,
            source.get("items"),
            mode=source.get("defaultMode", default_mode),
            what=f"configMap {ns}/{name}",
            optional=optional,
        )
    elif kind == "secret":
        name, optional = source.get("secretName") or source["name"], bool(source.get("optional"))
        data = _as_bytes(lk.objects.secret(ns, name))
        if data is None:
            if optional:
                return
            raise SpecError(f"secret {ns}/{name} not found")
        _key_files(
            target,
            data,
            source.get("items"),
            mode=source.get("defaultMode", default_mode),
            what=f"secret {ns}/{name}",
            optional=optional,
        )
    elif kind == "downwardAPI":
        for item in source.get("items", []) or []:
            if "fieldRef" in item:
                value = field_ref(pod, item["fieldRef"]["fieldPath"], pod_ip, "127.0.0.1")
            else:
                raise SpecError("downwardAPI: only fieldRef items are supported on local-0")
            _write(target / item["path"], value.encode(), item.get("mode", default_mode))
    elif kind == "serviceAccountToken":
        token = lk.token(pod, source.get("audience"), int(source.get("expirationSeconds", 3600)))
        _write(target / source.get("path", "token"), (token or "").encode(), default_mode)
    else:
        raise SpecError(f"unsupported projected source {kind!r}")


def materialise(pod: dict[str, Any], pod_dir: Path, lk: VolumeLookups, pod_ip: str) -> dict[str, Path]:
    """Create every volume of the pod; returns ``volume name -> host directory``."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, Path] = {}
    for vol in pod["spec"].get("volumes", []) or []:
        name = vol["name"]
        target = pod_dir / "volumes" / name
        if "emptyDir" in vol:
            target.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in vol:
            target = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type") in ("DirectoryOrCreate", None, "") and not target.exists():
                target.mkdir(parents=True, exist_ok=True)
        elif "configMap" in vol:
            _fill(
                vol["configMap"],
                "configMap",
                target,
                pod,
                lk=lk,
                pod_ip=pod_ip,
                default_mode=vol["configMap"].get("defaultMode"),
            )
            target.mkdir(parents=True, exist_ok=True)
        elif "secret" in vol:
            _fill(
                vol["secret"],
                "secret",
                target,
                pod,
                lk=lk,
                pod_ip=pod_ip,
                default_mode=vol["secret"].get("defaultMode"),
            )
            target.mkdir(parents=True, exist_ok=True)
        elif "downwardAPI" in vol:
            _fill(
                vol["downwardAPI"],
                "downwardAPI",
                target,
                pod,
                lk=lk,
                pod_ip=pod_ip,
                default_mode=vol["downwardAPI"].get("defaultMode"),
            )
        elif "projected" in vol:
            mode = vol["projected"].get("defaultMode")
            for source in vol["projected"].get("sources", []) or []:
                for kind, spec in source.items():
                    _fill(spec, kind, target, pod, lk=lk, pod_ip=pod_ip, default_mode=mode)
            target.mkdir(parents=True, exist_ok=True)
            if (target / "ca.crt").exists() is False and name.startswith("kube-api-access"):
                _write(target / "ca.crt", lk.ca_pem.encode(), None)
        elif "persistentVolumeClaim" in vol:
            target = pvc_path(ns, vol["persistentVolumeClaim"]["claimName"], lk)
        else:
            kinds = sorted(k for k in vol if k != "name")
            raise SpecError(f"volume {name}: type {kinds} is not supported on local-0")
        out[name] = target
    return out


def pvc_path(ns: str, claim: str, lk: VolumeLookups) -> Path:
    pvc = lk.pvc(ns, claim)
    if pvc is None:
        raise SpecError(f"persistentVolumeClaim {ns}/{claim} not found")
    pv_name = (pvc.get("spec") or {}).get("volumeName")
    if not pv_name:
        raise SpecError(f"persistentVolumeClaim {ns}/{claim} is not bound yet")
    pv = lk.pv(pv_name)
    if pv is None:
        raise SpecError(f"persistentVolume {pv_name} (claim {ns}/{claim}) not found")
    spec = pv.get("spec") or {}
    path = (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
    if not path:
        raise SpecError(f"persistentVolume {pv_name} is neither hostPath nor local: cannot use it on local-0")
    target = Path(path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def mounts(container: dict[str, Any], volumes: dict[str, Path]) -> dict[str, str]:
    """``mountPath -> host path`` of one container (subPath honoured)."""
    out: dict[str, str] = {}
    for mount in container.get("volumeMounts", []) or []:
        base = volumes.get(mount["name"])
        if base is None:
            raise SpecError(f"container {container['name']}: volumeMount {mount['name']!r} has no volume")
        host = base / mount["subPath"] if mount.get("subPath") else base
        if mount.get("subPath") and not host.exists():
            host.mkdir(parents=True, exist_ok=True)
        out[mount["mountPath"]] = str(host)
    return out
