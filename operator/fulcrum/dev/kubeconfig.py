"""Kubeconfig documents for the dev cluster's users. Pure: returns YAML text."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

CONTEXT = "fulcrum-dev"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str = "admin") -> str:
    """A kubeconfig with the credentials embedded, so it works from any directory."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [
            {"name": user, "user": {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}}
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def render_from_pki(server: str, pki: Path, stem: str) -> str:
    return render(
        server,
        (pki / "ca.crt").read_bytes(),
        (pki / f"{stem}.crt").read_bytes(),
        (pki / f"{stem}.key").read_bytes(),
        user=stem,
    )
