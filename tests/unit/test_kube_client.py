"""The operator's API client: what it sends as credentials."""

from __future__ import annotations

from fulcrum.controller.kube import KubeError, bearer


def test_bearer_header_from_every_loader() -> None:
    assert bearer("bearer abc.def") == "Bearer abc.def"  # the in-cluster loader (a pod's ServiceAccount token)
    assert bearer("Bearer abc.def") == "Bearer abc.def"
    assert bearer("abc.def") == "Bearer abc.def"  # a kubeconfig's token


def test_a_create_refused_in_a_namespace_being_deleted_is_told_apart_from_other_refusals() -> None:
    # the API server's words (NamespaceLifecycle admission), as the operator's logs showed them
    terminating = KubeError(
        403,
        "Forbidden",
        'services "switch" is forbidden: unable to create new content in namespace team-a because it is being '
        "terminated",
    )
    assert terminating.namespace_terminating and not terminating.conflict
    rbac = KubeError(403, "Forbidden", 'services is forbidden: User "system:serviceaccount:x:y" cannot create')
    assert not rbac.namespace_terminating
    assert not KubeError(409, "Conflict", "because it is being terminated").namespace_terminating
