"""The real kube-apiserver, with the generated CRD, gives every manifest of the shared table the verdict
the table (and pydantic) gives it: accepted specs parse, refused ones fail to parse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.support.kube import GROUP, PLURAL, VERSION
from tests.support.kube_api import api_client
from tests.support.manifest_cases import CASES, Case, manifest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def custom(cluster: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client(cluster.kubeconfig))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api_server_verdict_matches_table(
    case: Case, custom: client.CustomObjectsApi, crd_installed: None, namespace: str
) -> None:
    body = manifest(case, name=None)
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, dry_run="All", field_validation="Strict"
        )
        accepted, message = True, ""
    except client.ApiException as exc:
        assert exc.status in (400, 422), exc.body
        assert exc.body is not None
        accepted, message = False, json.loads(exc.body)["message"]
    assert accepted == case.valid, f"{case.id}: API server {'accepted' if accepted else 'refused'}: {message}"
    if case.error:
        assert case.error in message
