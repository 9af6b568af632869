"""A local-directory volume provisioner: PVCs of StorageClass ``fulcrum-local`` get a hostPath PV.

Runs inside the node agent with admin credentials (provisioning is a cluster-level job, not a
kubelet's). The class is the cluster's default, so a PVC without ``storageClassName`` works too.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from fulcrum.dev.rest import ApiError, Rest

log = logging.getLogger("fulcrum.dev.agent")

STORAGE_CLASS = "fulcrum-local"
PROVISIONER = "fulcrum.dev/local-dir"
PERIOD = 1.0


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def volume_for(pvc: dict[str, Any], root: Path) -> dict[str, Any]:
    """The PersistentVolume that satisfies ``pvc``: a directory under ``root``, pre-bound to the claim."""
    meta, spec = pvc["metadata"], pvc.get("spec", {})
    uid = meta["uid"]
    path = root / f"{meta['namespace']}-{meta['name']}-{uid[:8]}"
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{uid}", "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": uid,
            },
        },
    }


def wants_volume(pvc: dict[str, Any]) -> bool:
    spec = pvc.get("spec", {})
    return (
        spec.get("storageClassName") == STORAGE_CLASS
        and not spec.get("volumeName")
        and (pvc.get("status") or {}).get("phase", "Pending") == "Pending"
        and not pvc["metadata"].get("deletionTimestamp")
    )


class Provisioner:
    def __init__(self, rest: Rest, root: Path) -> None:
        self.rest, self.root = rest, root

    def ensure_class(self) -> None:
        try:
            self.rest.create("/apis/storage.k8s.io/v1/storageclasses", storage_class())
        except ApiError as exc:
            if exc.status != 409:
                raise

    def sync_once(self) -> None:
        for pvc in self.rest.get("/api/v1/persistentvolumeclaims").get("items", []):
            if not wants_volume(pvc):
                continue
            pv = volume_for(pvc, self.root)
            Path(pv["spec"]["hostPath"]["path"]).mkdir(parents=True, exist_ok=True)
            try:
                self.rest.create("/api/v1/persistentvolumes", pv)
                log.info(
                    "provisioned %s for %s/%s",
                    pv["metadata"]["name"],
                    pvc["metadata"]["namespace"],
                    pvc["metadata"]["name"],
                )
            except ApiError as exc:
                if exc.status != 409:
                    raise
        for pv in self.rest.get("/api/v1/persistentvolumes").get("items", []):
            ours = (pv["metadata"].get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER
            if ours and (pv.get("status") or {}).get("phase") == "Released":
                path = Path(pv["spec"]["hostPath"]["path"])
                self.rest.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
                if path.is_relative_to(self.root):
                    shutil.rmtree(path, ignore_errors=True)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.ensure_class()
                break
            except (ApiError, OSError) as exc:
                log.warning("storage class: %s", exc)
                stop.wait(2)
        while not stop.is_set():
            try:
                self.sync_once()
            except (ApiError, OSError) as exc:
                log.warning("provisioner: %s", exc)
            stop.wait(PERIOD)
