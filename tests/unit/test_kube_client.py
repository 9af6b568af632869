"""The operator's API client: what it sends as credentials."""

from __future__ import annotations

from fulcrum.controller.kube import bearer


def test_bearer_header_from_every_loader() -> None:
    assert bearer("bearer abc.def") == "Bearer abc.def"  # the in-cluster loader (a pod's ServiceAccount token)
    assert bearer("Bearer abc.def") == "Bearer abc.def"
    assert bearer("abc.def") == "Bearer abc.def"  # a kubeconfig's token
