"""The operator's API client, informer and Lease against the real API server of the session cluster."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client

from fulcrum.controller import kube as kube_module
from fulcrum.controller.cache import Body, ObjectCache
from fulcrum.controller.informer import Informer
from fulcrum.controller.kube import KubeClient, KubeError, TokenFile
from fulcrum.controller.leader import LeaderElectionConfig, LeaderElector, micro_time
from fulcrum.controller.reconciler import is_subset
from fulcrum.resources import labels
from tests.support.kube_api import api_client, serialized
from tests.support.manifest_cases import BASE

pytestmark = pytest.mark.e2e

LABEL = "app.kubernetes.io/managed-by=fulcrum"


def _configmap(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "fulcrum"}},
        "data": {"x": name},
    }


def _client(cluster: Any) -> KubeClient:
    return KubeClient.from_environment(str(cluster.kubeconfig))


def test_lists_come_in_pages_with_their_version(cluster: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_module, "LIST_PAGE_SIZE", 2)

    async def scenario() -> tuple[list[dict[str, Any]], str, int]:
        kube = _client(cluster)
        for n in range(5):
            await kube.create(_configmap(namespace, f"cm-{n}"))
        items, version = await kube.list_with_version("ConfigMap", namespace, LABEL)
        pages = kube.requests["GET"]
        await kube.close()
        return items, version, pages

    items, version, pages = asyncio.run(scenario())
    assert sorted(i["metadata"]["name"] for i in items) == [f"cm-{n}" for n in range(5)]
    assert all(i["kind"] == "ConfigMap" and i["apiVersion"] == "v1" for i in items)
    assert version and pages == 3


def test_the_informer_lists_then_watches_and_a_relist_drops_what_was_deleted_in_the_gap(
    cluster: Any, namespace: str
) -> None:
    """After a watch expired (410), the informer lists again: the objects deleted while it was not watching leave
    the cache, reported as deletions (no DELETED event will ever come for them)."""

    async def scenario() -> tuple[list[str], list[str], list[str], int]:
        kube = _client(cluster)
        cache = ObjectCache()
        changes: list[str] = []

        def on_change(_kind: str, old: Body | None, new: Body | None) -> None:
            body = new or old
            assert body is not None
            changes.append(f"{'deleted' if new is None else 'seen'} {body['metadata']['name']}")

        await kube.create(_configmap(namespace, "kept"))
        await kube.create(_configmap(namespace, "doomed"))
        informer = Informer(kube, cache, "ConfigMap", namespace, on_change, label_selector=LABEL)
        task = asyncio.create_task(informer.run())
        await asyncio.wait_for(informer.synced.wait(), 30)
        synced = sorted(n for _, n in cache.keys("ConfigMap"))
        await kube.create(_configmap(namespace, "watched"))
        for _ in range(300):
            if ("ConfigMap", (namespace, "watched")) in cache:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        # the gap: no watch open while one object is deleted and another created
        await kube.delete("ConfigMap", namespace, "doomed")
        await kube.create(_configmap(namespace, "born-in-the-gap"))
        changes.clear()
        informer.resource_version = None  # what the informer does on 410 Gone (tests/unit/test_cache.py)
        task = asyncio.create_task(informer.run())
        for _ in range(600):
            if informer.lists == 2 and ("ConfigMap", (namespace, "born-in-the-gap")) in cache:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await kube.close()
        return synced, sorted(n for _, n in cache.keys("ConfigMap")), changes, informer.lists

    synced, after, changes, lists = asyncio.run(scenario())
    assert synced == ["doomed", "kept"]
    assert lists == 2
    assert after == ["born-in-the-gap", "kept", "watched"]
    assert "deleted doomed" in changes and "seen born-in-the-gap" in changes
    assert "seen kept" not in changes, "unchanged objects are not reported again"


def _deployment(namespace: str) -> dict[str, Any]:
    labels = {"app": "quantities", "app.kubernetes.io/managed-by": "fulcrum"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "quantities", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "quantities"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "example.invalid/none:1",
                            "resources": {
                                "requests": {"cpu": "0.5", "memory": "0.5Gi", "ephemeral-storage": 1000000},
                                "limits": {"cpu": 2, "memory": "1024Mi"},
                            },
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1024Mi"}}],
                },
            },
        },
    }


def test_applying_quantities_the_api_server_normalises_is_a_no_op(cluster: Any, namespace: str) -> None:
    """`cpu: "0.5"` comes back as 500m: comparing text would apply this manifest on every reconcile."""
    manifest = _deployment(namespace)

    async def scenario() -> dict[str, Any]:
        kube = _client(cluster)
        live = await kube.apply(copy.deepcopy(manifest))
        await kube.close()
        return live

    live = asyncio.run(scenario())
    requests = live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests["cpu"] == "500m", requests  # the API server's spelling, not ours
    assert is_subset(manifest, live)
    changed = copy.deepcopy(manifest)
    changed["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "0.6"
    assert not is_subset(changed, live)


def test_a_status_write_from_a_stale_read_fails_instead_of_overwriting(
    cluster: Any, crd_installed: None, namespace: str
) -> None:
    md = copy.deepcopy(BASE)
    md["metadata"] = {"name": "concurrency", "namespace": namespace}

    async def scenario() -> tuple[int, str | None]:
        kube = _client(cluster)
        created = await kube.request("POST", kube_module.object_path("ModelDeployment", namespace), body=md)
        stale = created["metadata"]["resourceVersion"]
        fresh = await kube.patch_status(namespace, "concurrency", {"activeTier": "fp32"}, stale)
        try:
            await kube.patch_status(namespace, "concurrency", {"activeTier": "fp16"}, stale)
            status = 200
        except KubeError as exc:
            status = exc.status
        now = await kube.get("ModelDeployment", namespace, "concurrency")
        await kube.close()
        assert fresh["metadata"]["resourceVersion"] != stale
        return status, (now or {}).get("status", {}).get("activeTier")

    status, tier = asyncio.run(scenario())
    assert status == 409
    assert tier == "fp32", "the stale write changed nothing"


def _token(core: k8s_client.CoreV1Api, namespace: str, account: str) -> str:
    # the models the client makes of these manifests anyway (its calls validate their bodies)
    core.create_namespaced_service_account(
        namespace, k8s_client.V1ServiceAccount.model_validate({"metadata": {"name": account}})
    )
    request = k8s_client.AuthenticationV1TokenRequest.model_validate(
        {"spec": {"audiences": [], "expirationSeconds": 600}}
    )
    for _ in range(50):
        try:
            granted = core.create_namespaced_service_account_token(account, namespace, request)
            assert granted.status is not None, "a TokenRequest answered without its token"
            return str(granted.status.token)
        except k8s_client.ApiException as exc:
            if exc.status != 404:
                raise
            time.sleep(0.1)
    raise AssertionError(f"no token for {namespace}/{account}")


def test_a_rotated_service_account_token_is_read_again(cluster: Any, namespace: str, tmp_path: Path) -> None:
    """Bound tokens rotate: when the API server refuses the token it was given, the client reads the file again."""
    api = api_client(cluster.kubeconfig)
    core = k8s_client.CoreV1Api(api)
    host = api.configuration.host
    ca = api.configuration.ssl_ca_cert
    first, second = _token(core, namespace, "first"), _token(core, namespace, "second")
    token_file = tmp_path / "token"
    token_file.write_text(first)

    async def whoami(kube: KubeClient) -> str:
        review = await kube.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return str(review["status"]["userInfo"]["username"])

    async def refused(token: str) -> bool:
        probe = KubeClient(host, ssl.create_default_context(cafile=ca), {"Authorization": f"Bearer {token}"})
        try:
            await probe.request("GET", "/version")
        except KubeError as exc:
            return exc.status == 401
        finally:
            await probe.close()
        return False

    async def scenario() -> tuple[str, str]:
        kube = KubeClient(
            host, ssl.create_default_context(cafile=ca), {"Accept": "application/json"}, TokenFile(token_file)
        )
        before = await whoami(kube)
        # the kubelet rotates the projected token and the old one stops working (here: its account is deleted)
        core.delete_namespaced_service_account("first", namespace)
        token_file.write_text(second)
        for _ in range(300):
            if await refused(first):
                break
            await asyncio.sleep(0.1)
        after = await whoami(kube)  # sent with the token read a moment ago, refused, read again, sent again
        await kube.close()
        return before, after

    before, after = asyncio.run(scenario())
    assert before == f"system:serviceaccount:{namespace}:first"
    assert after == f"system:serviceaccount:{namespace}:second"


def _lease(cluster: Any, namespace: str) -> dict[str, Any]:
    api = api_client(cluster.kubeconfig)
    lease = k8s_client.CoordinationV1Api(api).read_namespaced_lease("fulcrum-operator", namespace)
    return serialized(api, lease)


def test_one_leader_at_a_time_and_the_standby_takes_over_an_abandoned_lease(cluster: Any, namespace: str) -> None:
    def config(identity: str) -> LeaderElectionConfig:
        return LeaderElectionConfig(namespace, identity, lease_duration=6, renew_deadline=4, retry_period=0.5)

    async def scenario() -> dict[str, Any]:
        kube = _client(cluster)
        first, standby = LeaderElector(kube, config("first")), LeaderElector(kube, config("standby"))
        await first.acquire()
        holding = asyncio.create_task(first.hold())
        refused = []
        for _ in range(16):  # 8 s, longer than the lease: the leader renews, so the standby never takes it
            refused.append(await standby.try_acquire_or_renew())
            await asyncio.sleep(0.5)
        holding.cancel()  # the leader dies without releasing
        abandoned = time.monotonic()
        await standby.acquire()
        waited = time.monotonic() - abandoned
        still_first = await first.try_acquire_or_renew()
        await standby.release()
        after_release = await first.try_acquire_or_renew()
        await kube.close()
        return {
            "refused": refused,
            "waited": waited,
            "still_first": still_first,
            "after_release": after_release,
            "first_leads": first.is_leader,
        }

    result = asyncio.run(scenario())
    assert not any(result["refused"])
    assert result["waited"] > 0.0  # reported by the leader-failover e2e; never a timing assertion here
    assert result["still_first"] is False, "the old leader sees the new holder and does not take it back"
    assert result["after_release"] is True and result["first_leads"]
    lease = _lease(cluster, namespace)
    assert lease["spec"]["holderIdentity"] == "first"
    assert lease["spec"]["leaseTransitions"] == 2


def test_two_candidates_for_an_expired_lease_cannot_both_win(cluster: Any, namespace: str) -> None:
    """Both read the same expired record; the update carries its resourceVersion, so only one succeeds."""

    def config(identity: str) -> LeaderElectionConfig:
        return LeaderElectionConfig(namespace, identity, lease_duration=1, renew_deadline=0.8, retry_period=0.2)

    async def scenario() -> list[bool]:
        kube = _client(cluster)
        await LeaderElector(kube, config("gone")).try_acquire_or_renew()
        a, b = LeaderElector(kube, config("a")), LeaderElector(kube, config("b"))
        await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())  # both observe the record
        await asyncio.sleep(1.5)  # it expires for both
        results = list(await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew()))
        await kube.close()
        return results

    assert sorted(asyncio.run(scenario())) == [False, True]


def test_nothing_is_reconciled_before_every_watch_has_listed(cluster: Any, crd_installed: None, namespace: str) -> None:
    """A worker that started before the listings would see no children and create them again, or forget them."""
    from fulcrum.controller.manager import Manager, ManagerOptions
    from fulcrum.controller.reconciler import Reconciler
    from fulcrum.resources.settings import OperatorSettings
    from tests.support.operator_process import free_port

    for n in range(3):
        md = copy.deepcopy(BASE)
        md["metadata"] = {"name": f"early-{n}", "namespace": namespace}
        k8s_client.CustomObjectsApi(api_client(cluster.kubeconfig)).create_namespaced_custom_object(
            "fulcrum.dev", "v1alpha1", namespace, "modeldeployments", md
        )

    async def scenario() -> tuple[list[bool], bool]:
        kube = _client(cluster)
        reconciler = Reconciler(kube, ObjectCache(), OperatorSettings(build_namespace=namespace))
        options = ManagerOptions(namespaces=(namespace,), workers=2, health=f"http://127.0.0.1:{free_port()}/healthz")
        manager = Manager(reconciler, options)
        seen: list[bool] = []

        async def reconcile(key: tuple[str, str]) -> float | None:
            seen.append(manager.synced and len(manager.cache.keys("ModelDeployment")) == 3)
            if len(seen) >= 3:
                manager.stopping.set()
            return None

        reconciler.reconcile = reconcile  # type: ignore[method-assign]
        code = await asyncio.wait_for(manager.run(), 120)
        return seen, code == 0

    seen, clean = asyncio.run(scenario())
    assert len(seen) >= 3 and all(seen), seen
    assert clean


def test_the_control_loop_keeps_ticking_while_a_rebuild_runs(
    cluster: Any, crd_installed: None, namespace: str, tmp_path: Path
) -> None:
    """A spec change rebuilds; until the new build is done the previous one serves, and is still autoscaled."""
    from fulcrum.api import parse_model_deployment
    from fulcrum.controller.control import ControlLoop
    from fulcrum.controller.reconciler import Reconciler
    from fulcrum.reconcile.builds import BuildResult
    from fulcrum.reconcile.plan import pool_builds
    from fulcrum.resources.build import build_job, build_record
    from fulcrum.resources.settings import OperatorSettings, RepositoryStorage

    settings = OperatorSettings(build_namespace=namespace, storage=RepositoryStorage("hostPath", str(tmp_path)))
    pool = {"name": "nowhere", "nodeSelector": {"fulcrum.dev/pool": "nowhere"}, "gpusPerReplica": 0, "costPerHour": "1"}
    old = copy.deepcopy(BASE)
    old["metadata"] = {"name": "rebuilding", "namespace": namespace}
    old["spec"]["nodePools"] = [pool]
    old["spec"]["tiers"] = [{"name": "fp32", "precision": "fp32"}]
    new = copy.deepcopy(old)
    new["spec"]["tiers"] = [{"name": "fp32", "precision": "fp32"}, {"name": "fp16", "precision": "fp16"}]
    old_build = pool_builds(parse_model_deployment(old).spec, settings, {}, {}, namespace)[0]
    new_spec = parse_model_deployment(new).spec
    new_build = pool_builds(new_spec, settings, {}, {}, namespace)[0]
    assert old_build.key != new_build.key
    points = [{"requestsPerSecond": 100.0, "latencyMs": {"p50": 1, "p90": 2, "p95": 3, "p99": 4}}]
    tier: dict[str, Any] = {
        "name": "fp32",
        "precision": "fp32",
        "backend": "onnxruntime",
        "state": "Ready",
        "path": "fp32",
    }
    tier |= {"accuracy": {"MeanAbsError": 0.0}, "profiles": [{"nodePool": "nowhere", "points": points}]}
    served = BuildResult.from_record(
        {
            "phase": "Succeeded",
            "repository": "/models/old",
            "manifest": {"model": "m", "source": {"uri": "file:///m.onnx", "sha256": "0" * 64}, "tiers": [tier]},
        }
    )

    async def scenario() -> dict[str, Any]:
        kube = _client(cluster)
        await kube.create(build_record(old_build.key, old_build.pool, served.to_record(), settings))
        job = build_job(new_build.key, new_build.pool, settings, new_spec, serving_image=new_build.serving_image)
        await kube.create(job)  # pending forever: no such node
        created = await kube.request("POST", kube_module.object_path("ModelDeployment", namespace), body=new)
        # the status an operator wrote while the old build served
        status = {"activeTier": "fp32", "activeNodePool": "nowhere", "replicas": 1, "build": {"key": old_build.key}}
        await kube.patch_status(namespace, "rebuilding", status, created["metadata"]["resourceVersion"])
        cache = ObjectCache()
        for kind in ("ModelDeployment", "Job", "ConfigMap", "Deployment"):
            items, _ = await kube.list_with_version(kind, namespace)
            cache.replace(kind, namespace, items)
        control = ControlLoop(tick_seconds=5)
        reconciler = Reconciler(kube, cache, settings, control=control)
        await reconciler.reconcile((namespace, "rebuilding"))
        written = await kube.get("ModelDeployment", namespace, "rebuilding")
        await kube.close()
        return {"ticked": (namespace, "rebuilding") in control.memory, "status": (written or {}).get("status") or {}}

    result = asyncio.run(scenario())
    assert result["ticked"], "the control loop did not tick while the previous build serves"
    status = result["status"]
    assert status["build"]["key"] == old_build.key  # still serving the previous build
    assert status.get("lastDecision"), status  # and the policy decided for it
    ready = next(c for c in status["conditions"] if c["type"] == "RepositoryReady")
    assert (ready["status"], ready["reason"]) == ("False", "Building")


def test_a_record_written_by_someone_else_first_wins(cluster: Any, namespace: str, tmp_path: Path) -> None:
    """Two harvests of one build: the second create gets 409, and the stored record, not its own, is what counts."""
    from fulcrum.controller.reconciler import Reconciler
    from fulcrum.resources.settings import OperatorSettings, RepositoryStorage

    settings = OperatorSettings(build_namespace=namespace, storage=RepositoryStorage("hostPath", str(tmp_path)))
    stored = _configmap(namespace, "fulcrum-build-k-record")
    stored["data"] = {"result.json": json.dumps({"phase": "Succeeded", "jobUid": "first"})}
    mine = copy.deepcopy(stored)
    mine["data"] = {"result.json": json.dumps({"phase": "Failed", "jobUid": "second"})}

    async def scenario() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        kube = _client(cluster)
        await kube.create(stored)
        reconciler = Reconciler(kube, ObjectCache(), settings)
        written = await reconciler._write_record(copy.deepcopy(mine), None)
        cached = reconciler.cache.get("ConfigMap", namespace, "fulcrum-build-k-record")
        await kube.close()
        return written, cached

    written, cached = asyncio.run(scenario())
    assert written is None, "the 409 is reported, not hidden"
    assert cached is None, "its own record must never stand in for the stored one"


def test_build_records_unused_for_the_retention_period_are_collected(cluster: Any, namespace: str) -> None:
    from fulcrum.api import parse_model_deployment
    from fulcrum.controller.collector import BuildCollector
    from fulcrum.reconcile.plan import pool_builds
    from fulcrum.resources.build import build_record
    from fulcrum.resources.settings import OperatorSettings, RepositoryStorage

    settings = OperatorSettings(build_namespace=namespace, storage=RepositoryStorage.parse("s3://bucket/fulcrum"))
    md = copy.deepcopy(BASE)
    md["metadata"] = {"name": "user", "namespace": namespace}
    used = pool_builds(parse_model_deployment(md).spec, settings, {}, {}, namespace)
    unused = copy.deepcopy(md)
    unused["spec"]["tiers"] = [{"name": "fp32", "precision": "fp32"}]
    stale = pool_builds(parse_model_deployment(unused).spec, settings, {}, {}, namespace)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = [start]

    async def scenario() -> list[list[str]]:
        kube = _client(cluster)
        for build in (*used, *stale):
            await kube.create(build_record(build.key, build.pool, {"phase": "Succeeded"}, settings))
        cache = ObjectCache()
        cache.put("ModelDeployment", md)
        collector = BuildCollector(kube, cache, settings, retention_seconds=3600, clock=lambda: now[0])
        left = []
        for at in (0, 3599, 3600):
            now[0] = start + timedelta(seconds=at)
            items, _ = await kube.list_with_version("ConfigMap", namespace)  # what the watch would bring
            cache.replace("ConfigMap", namespace, items)
            await collector.collect()  # the first pass marks the unused records (the annotation is the clock)
            remaining, _ = await kube.list_with_version("ConfigMap", namespace, LABEL)
            left.append(sorted(c["metadata"]["name"] for c in remaining))
        await kube.close()
        return left

    first, almost, after = asyncio.run(scenario())
    used_names = sorted(labels.build_record_name(b.key) for b in used)
    assert first == almost == sorted(used_names + [labels.build_record_name(b.key) for b in stale])
    assert after == used_names  # only what no ModelDeployment builds or serves from, after the retention


def test_the_leader_gauge_follows_the_lease(cluster: Any, crd_installed: None, namespace: str) -> None:
    """``fulcrum_leader`` is 1 only while this replica holds the Lease: 0 on a standby (another replica holds it),
    1 once it takes the Lease, 0 again when someone else holds it (the replica then stops acting and exits 1)."""
    from prometheus_client import REGISTRY

    from fulcrum.controller.manager import Manager, ManagerOptions
    from fulcrum.controller.reconciler import Reconciler
    from fulcrum.resources.settings import OperatorSettings
    from tests.support.operator_process import free_port

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("fulcrum_leader")

    def config(identity: str) -> LeaderElectionConfig:
        return LeaderElectionConfig(namespace, identity, lease_duration=4, renew_deadline=2, retry_period=0.2)

    async def until(what: str, probe: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; fulcrum_leader={gauge()}"
            await asyncio.sleep(0.05)

    async def scenario() -> dict[str, Any]:
        kube = _client(cluster)
        other = LeaderElector(kube, config("other-replica"))
        await other.acquire()
        reconciler = Reconciler(kube, ObjectCache(), OperatorSettings(build_namespace=namespace))
        reconciler.reconcile = _no_reconcile  # type: ignore[method-assign]
        options = ManagerOptions(
            namespaces=(namespace,),
            workers=1,
            health=f"http://127.0.0.1:{free_port()}/healthz",
            leader_election=config("this-replica"),
        )
        manager = Manager(reconciler, options)
        running = asyncio.create_task(manager.run())
        seen: dict[str, Any] = {}
        await until("the cache to sync", lambda: manager.synced)
        await asyncio.sleep(0)  # let the manager reach the Lease
        seen["standby"] = (gauge(), manager.leading)
        await other.release()
        await until("this replica to lead", lambda: gauge() == 1.0)
        seen["leading"] = (gauge(), manager.leading)
        # another replica takes the Lease over (as after a partition): this one must step down
        api = api_client(cluster.kubeconfig)
        k8s_client.CoordinationV1Api(api).patch_namespaced_lease(
            "fulcrum-operator",
            namespace,
            {"spec": {"holderIdentity": "usurper", "renewTime": micro_time(), "leaseDurationSeconds": 60}},
        )
        seen["exit"] = await asyncio.wait_for(running, 60)
        seen["lost"] = (gauge(), manager.leading)
        return seen

    seen = asyncio.run(scenario())
    assert seen["standby"] == (0.0, False), seen
    assert seen["leading"] == (1.0, True), seen
    assert seen["lost"] == (0.0, False) and seen["exit"] == 1, seen


async def _no_reconcile(key: tuple[str, str]) -> float | None:
    return None


def test_a_new_leader_signs_a_pending_builds_upload_form_once(cluster: Any, namespace: str) -> None:
    """A failover while a build waits for its upload form: the new leader remembers no signed form, signs again,
    the API server answers "exists", and the Secret the Job already mounts stays as the first leader wrote it."""
    from fulcrum.api import parse_model_deployment
    from fulcrum.controller.reconciler import Reconciler
    from fulcrum.controller.uploads import UploadSigner
    from fulcrum.resources.build import (
        UPLOAD_FORM_FILE,
        UPLOAD_FORM_PREFIX_ANNOTATION,
        build_job,
        upload_form_secret_name,
    )
    from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
    from fulcrum.storage.form import UploadForm, content_key_message

    settings = OperatorSettings(
        build_namespace=namespace,
        storage=RepositoryStorage.parse(
            "s3://models/fulcrum", endpoint="http://127.0.0.1:9", secret="repo-writer", serving_secret="repo-reader"
        ),
    )
    signer = UploadSigner.from_environment(settings, {"AWS_ACCESS_KEY_ID": "W", "AWS_SECRET_ACCESS_KEY": "w-secret"})
    assert signer is not None
    spec = parse_model_deployment(copy.deepcopy(BASE)).spec
    build_key, content_key = "k" * 32, "c" * 64
    job = build_job(
        build_key, spec.node_pool("cpu"), settings, spec, serving_image="tritonserver-cpu:test",
        upload_form=labels.upload_form_name(build_key, "f41l0v"),
    )  # fmt: skip
    job["spec"]["suspend"] = True  # no pod: the fetch step's report is put in the leaders' caches below
    form_secret, job_name = upload_form_secret_name(job), job["metadata"]["name"]
    assert form_secret is not None

    async def leader(created: dict[str, Any]) -> tuple[set[str], dict[str, Any]]:
        kube = _client(cluster)
        reconciler = Reconciler(kube, ObjectCache(), settings, signer=signer)
        fetched = {"terminated": {"exitCode": 0, "message": content_key_message(content_key)}}
        reconciler.cache.record(
            "Pod",
            {
                "metadata": {"name": "build-pod", "namespace": namespace, "labels": {"job-name": job_name}},
                "status": {"initContainerStatuses": [{"name": "fetch", "state": fetched}]},
            },
        )
        await reconciler._sign_upload_form(created)
        secret = await kube.get("Secret", namespace, form_secret)
        await kube.close()
        assert secret is not None, "no upload form Secret"
        return set(reconciler._forms_signed), secret

    async def scenario() -> tuple[tuple[set[str], dict[str, Any]], tuple[set[str], dict[str, Any]]]:
        kube = _client(cluster)
        created = await kube.create(job)
        await kube.close()
        assert created is not None
        return await leader(created), await leader(created)

    (first_signed, first), (second_signed, second) = asyncio.run(scenario())
    uid = first["metadata"]["ownerReferences"][0]["uid"]
    assert first_signed == second_signed == {uid}, "the new leader counts the existing form as signed"
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], "not written again"
    assert second["metadata"]["ownerReferences"][0]["name"] == job_name
    assert second["metadata"]["annotations"][UPLOAD_FORM_PREFIX_ANNOTATION] == f"fulcrum/{content_key}/"
    form = UploadForm.from_json(base64.b64decode(second["data"][UPLOAD_FORM_FILE]).decode())
    assert form.prefix == f"fulcrum/{content_key}/" and form.allows(f"fulcrum/{content_key}/published.json")
