"""``--metrics-secure`` against the real API server: HTTPS, TokenReview for who, SubjectAccessReview for whether.

A ServiceAccount bound to a ClusterRole allowing ``get`` on the non-resource URL ``/metrics`` reads the page; one
without it gets 403, no token or a forged one 401. Reviews are cached: repeated scrapes cost no API requests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import aiohttp
import pytest

from fulcrum.controller.kube import KubeClient
from fulcrum.controller.metrics_server import KubeAuthorizer, SecureMetricsServer

pytestmark = pytest.mark.e2e


def token(cluster: Any, namespace: str, account: str) -> str:
    cluster.rest.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": account}})
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}}
    issued = cluster.rest.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", request)
    return str(issued["status"]["token"])


async def scrape(port: int, bearer: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://127.0.0.1:{port}/metrics", headers=headers, ssl=False) as response,
    ):
        return response.status, await response.text()


def test_only_authorized_service_accounts_read_metrics(cluster: Any, namespace: str) -> None:
    role = f"metrics-reader-{uuid.uuid4().hex[:6]}"
    cluster.rest.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {"metadata": {"name": role}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]},
    )
    cluster.rest.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": namespace}],
        },
    )
    try:
        reader, stranger = token(cluster, namespace, "prometheus"), token(cluster, namespace, "stranger")
        asyncio.run(_check(cluster, reader, stranger))
    finally:
        cluster.rest.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{role}")
        cluster.rest.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}")


async def _check(cluster: Any, reader: str, stranger: str) -> None:
    kube = KubeClient.from_environment(str(cluster.kubeconfig))
    reviews: Counter[str] = Counter()

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        reviews[body["kind"]] += 1
        return await kube.request("POST", path, body=body)

    server = SecureMetricsServer(KubeAuthorizer(post), "127.0.0.1", 0)
    port = await server.start()
    try:
        assert (await scrape(port, None))[0] == 401
        assert (await scrape(port, "not-a-token"))[0] == 401
        status, body = await scrape(port, stranger)
        assert status == 403, body
        assert "system:serviceaccount:" in body and "stranger" in body
        status, body = await scrape(port, reader)
        assert status == 200, body
        assert "fulcrum_operator_info" in body
        before = dict(reviews)
        for _ in range(5):
            assert (await scrape(port, reader))[0] == 200
            assert (await scrape(port, stranger))[0] == 403
        assert dict(reviews) == before, "cached reviews must not reach the API server again"
        assert before == {"TokenReview": 3, "SubjectAccessReview": 2}
    finally:
        await server.stop()
        await kube.close()
