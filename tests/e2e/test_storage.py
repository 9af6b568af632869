"""Repositories in the local cluster's object store (SeaweedFS, started by `fulcrum dev up`).

- the ctr-ranker example, applied exactly as a newcomer types it, is built from its s3:// sources into the store
  and served by Triton pods that download it from there; a second namespace reuses the build;
- a build pod killed mid-build publishes nothing and the Job does it again; another namespace's build of the
  same bytes (unpinned: each namespace runs its own Job) finds the published key and reuses it;
- with wrong credentials a ModelDeployment fails alone, its condition naming the bucket and the store's error;
  one whose Secret or claim is missing says its build waits for it, and the build goes on once it exists;
- garbage collection marks unused build records and deletes them, and the keys only they used.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from fulcrum.controller.cache import ObjectCache
from fulcrum.controller.collector import BuildCollector
from fulcrum.controller.kube import KubeClient
from fulcrum.dev import objectstore
from fulcrum.reconcile.pods import REASONS as POD_REASONS
from fulcrum.resources import labels
from fulcrum.resources.build import upload_form_secret_name
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from fulcrum.storage import ObjectURI, S3Client, S3Config, S3Repository
from fulcrum.storage.form import UploadForm
from fulcrum.storage.gc import UNUSED_SINCE
from model_repo_builder.termination import unpacked
from tests.e2e.conftest import Cluster
from tests.support.kube import EXAMPLE, Kube, debug, infer, wait_ready
from tests.support.kube_api import labels_of, meta, name_of, pod_ip, serialized
from tests.support.operator_process import ensure_secret
from tests.support.polling import wait_for
from tests.support.release import Release
from tests.support.tiny_model import tiny_manifest, write_tiny_onnx

pytestmark = [pytest.mark.e2e, pytest.mark.lane("store")]

MODELS = objectstore.REPOSITORY


def store_of(cluster: Cluster) -> objectstore.ObjectStoreConfig:
    store = objectstore.load(cluster.home)
    assert store is not None, "`fulcrum dev up` starts the object store"
    return store


def reader(cluster: Cluster) -> S3Repository:
    store = store_of(cluster)
    return S3Repository(S3Client(S3Config.from_environment(store.env("reader"))), ObjectURI.parse(MODELS))


def build_pods(kube: Kube, namespace: str, key: str) -> list[Any]:
    return kube.core.list_namespaced_pod(namespace, label_selector=f"job-name={labels.build_job_name(key)}").items


def kill_build_step(kube: Kube, pod: Any) -> None:
    """The pod dies mid-build, as on a node failure: deleted at once, its containers killed; the kubelet marks it
    Failed and the Job starts another."""
    kube.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)


def publish_result(pod: Any) -> dict[str, Any]:
    [publish] = pod.status.container_statuses
    return json.loads(unpacked(publish.state.terminated.message))  # type: ignore[no-any-return]


@pytest.fixture
def other_namespace(kube: Kube, namespace: str) -> Iterator[str]:
    name = f"{namespace[:50]}-b"
    kube.core.create_namespace(
        client.V1Namespace.model_validate({"metadata": {"name": name, "labels": {"fulcrum.dev/e2e": "true"}}})
    )
    wait_for("the default ServiceAccount", lambda: kube.core.list_namespaced_service_account(name).items, 60)
    try:
        yield name
    finally:
        kube.core.delete_namespace(name)


def test_the_example_applied_as_is_is_built_into_the_store_and_served_from_it(
    cluster: Cluster, kube: Kube, operator: Release, namespace: str
) -> None:
    """`kubectl apply -f examples/ctr-ranker/modeldeployment.yaml`, exactly as a newcomer types it (namespace
    `default`, where `fulcrum dev up` put the store's read-only keys), then the same file in another namespace."""
    path = EXAMPLE / "modeldeployment.yaml"
    applied = cluster.kubectl("apply", "-f", str(path))
    assert "created" in applied.stdout or "configured" in applied.stdout, applied
    try:
        wait_ready(kube, operator, "default", "ctr-ranker")
        md = kube.get("default", "ctr-ranker")
        build = md["status"]["build"]
        assert build["repository"].startswith(f"{MODELS}/"), build
        key = build["repository"].rsplit("/", 1)[1]
        marker = reader(cluster).published(key)
        assert marker is not None and "manifest.json" in {f.path for f in marker.files}
        [deployment] = kube.deployments("default", "ctr-ranker")
        pod_spec = deployment.spec.template.spec
        [pull] = pod_spec.init_containers
        assert pull.args == ["--from", build["repository"], "--into", f"/models/{key}"]
        assert [e.secret_ref.name for e in pull.env_from] == [objectstore.SERVING_SECRET]
        triton = pod_spec.containers[0]
        assert not triton.env_from and f"--model-repository=/models/{key}" in triton.args
        [pod, *_] = kube.ready_pods("default", "ctr-ranker")
        inputs = [
            {"name": "sparse", "shape": [1, 6], "datatype": "INT64", "data": [1] * 6},
            {"name": "dense", "shape": [1, 20], "datatype": "FP32", "data": [0.5] * 20},
        ]
        score = infer(pod_ip(pod), md["status"]["activeTier"], inputs)["outputs"][0]["data"][0]
        assert 0.0 <= score <= 1.0

        # another namespace, the same pinned bytes: the same build, no new Job
        jobs = kube.build_jobs(operator.build_namespace)
        kube.create_serving_secret(namespace)
        cluster.kubectl("apply", "-n", namespace, "-f", str(path))
        wait_ready(kube, operator, namespace, "ctr-ranker")
        other = kube.get(namespace, "ctr-ranker")["status"]["build"]
        assert (other["key"], other["repository"]) == (build["key"], build["repository"])
        assert kube.build_jobs(operator.build_namespace) == jobs
    finally:
        cluster.kubectl("delete", "-f", str(path), "--wait=false", check=False)


def test_a_killed_build_is_redone_and_another_namespace_reuses_the_bytes(
    cluster: Cluster, kube: Kube, operator: Release, namespace: str, other_namespace: str, tmp_path: Path
) -> None:
    store = store_of(cluster)
    admin = S3Client(S3Config.from_environment(store.env("admin")))
    model = write_tiny_onnx(tmp_path / "tiny.onnx", seed=uuid.uuid4().int % 2**31)  # new bytes: a new key
    source = f"e2e/{uuid.uuid4().hex[:8]}/tiny.onnx"
    admin.upload_file(objectstore.EXAMPLES_BUCKET, source, model)
    manifest = tiny_manifest("tiny", f"s3://{objectstore.EXAMPLES_BUCKET}/{source}")  # unpinned: per namespace
    kube.create(namespace, manifest)

    def building_pod() -> Any:
        """This model's build pod past its fetch step and before its publish step: building or measuring.

        Either step will do (both come before anything is written to the store). The build step alone of a
        model this small can start and end between two status updates of a busy kubelet, so a test waiting
        for it alone may never see it running."""
        for job in kube.batch.list_namespaced_job(operator.build_namespace).items:
            for pod in build_pods(kube, operator.build_namespace, labels_of(job)[labels.BUILD_KEY]):
                statuses = {c.name: c.state for c in pod.status.init_container_statuses or []}
                mid_build = any(statuses.get(step) and statuses[step].running for step in ("build", "measure"))
                if mid_build and source in str(pod.spec.init_containers[0].env):
                    return pod
        return None

    killed = wait_for("the build or measure step running", building_pod, 300, every=0.5, on_timeout=operator.log)
    key = killed.metadata.labels[labels.BUILD_KEY]
    kill_build_step(kube, killed)
    wait_ready(kube, operator, namespace, "tiny")
    pods = build_pods(kube, operator.build_namespace, key)
    [done] = [p for p in pods if p.status.phase == "Succeeded"]
    assert done.metadata.uid != killed.metadata.uid  # the Job started another pod, which built and published
    first = kube.get(namespace, "tiny")["status"]["build"]
    content_key = first["repository"].rsplit("/", 1)[1]
    repo = reader(cluster)
    marker = repo.published(content_key)
    assert marker is not None and repo.uploads(content_key) == [marker.upload]  # the killed pod published nothing
    assert publish_result(done)["reused"] is False
    # with read-only keys and the upload form the operator signed for exactly that key (a Secret of the Job)
    [publish] = done.spec.containers
    assert [e.secret_ref.name for e in publish.env_from] == [objectstore.SERVING_SECRET]
    [volume] = [v for v in done.spec.volumes if v.name == "upload-form"]
    secret = kube.core.read_namespaced_secret(volume.secret.secret_name, operator.build_namespace)
    assert secret.data is not None
    form = UploadForm.from_json(base64.b64decode(secret.data["form.json"]).decode())
    assert form.prefix == ObjectURI.parse(MODELS).child(content_key).prefix
    assert [o.kind for o in meta(secret).owner_references or []] == ["Job"]

    # another namespace: its own Job (the source is not pinned), which finds the same bytes published
    kube.create(other_namespace, manifest)
    wait_ready(kube, operator, other_namespace, "tiny")
    second = kube.get(other_namespace, "tiny")["status"]["build"]
    assert second["key"] != first["key"] and second["repository"] == first["repository"]
    [reuse] = build_pods(kube, operator.build_namespace, second["key"])
    assert publish_result(reuse)["reused"] is True
    assert repo.uploads(content_key) == [marker.upload] and repo.published(content_key) == marker


def test_wrong_credentials_fail_only_their_model_name_the_bucket_and_a_rebuild_recovers(
    cluster: Cluster, kube: Kube, operator: Release, namespace: str, tmp_path: Path
) -> None:
    """A team's own storage (spec.repository with its Secret): wrong keys fail that model alone, with the bucket
    and the store's error; fixed keys and the rebuild annotation build it in its namespace, into its bucket
    prefix, and its Triton pods download with its keys. A ``pvc://`` source also builds in its namespace, once its
    claim exists, into the platform's store: through an upload form signed there, never with the write keys."""
    store = store_of(cluster)
    admin = S3Client(S3Config.from_environment(store.env("admin")))
    source = f"e2e/{uuid.uuid4().hex[:8]}/tiny.onnx"
    admin.upload_file(objectstore.EXAMPLES_BUCKET, source, write_tiny_onnx(tmp_path / "tiny.onnx", seed=7))
    right = store.env("writer")
    wrong = {**right, "AWS_SECRET_ACCESS_KEY": "not-" + uuid.uuid4().hex}
    team_secret = {"metadata": {"name": "team-s3", "namespace": namespace}, "type": "Opaque"}
    ensure_secret(kube.kubeconfig, {**team_secret, "stringData": wrong})
    team = f"s3://{objectstore.MODELS_BUCKET}/team-{uuid.uuid4().hex[:6]}"
    bad = tiny_manifest("team", f"s3://{objectstore.EXAMPLES_BUCKET}/{source}")
    bad["spec"]["repository"] = {"uri": team, "secretRef": {"name": "team-s3"}}
    kube.create(namespace, bad)
    # two whose builds wait for what a person must create: a Secret, a claim (checked at the end: no extra wait)
    keyless = tiny_manifest("keyless", f"s3://{objectstore.EXAMPLES_BUCKET}/{source}")
    keyless["spec"]["repository"] = {"uri": f"{team}-late", "secretRef": {"name": "late-s3"}}
    kube.create(namespace, keyless)
    kube.create(namespace, tiny_manifest("claimed", "pvc://team-models/tiny.onnx"))
    # beside them, the example with the platform's storage (built by the test above, else here)
    kube.create(namespace, yaml.safe_load((EXAMPLE / "modeldeployment.yaml").read_text()))

    def failed(name: str) -> dict[str, Any] | None:
        condition = kube.condition(namespace, name, "RepositoryReady")
        # not building and not waiting on the kubelet or the scheduler (a Secret, a claim): the build's own answer
        final = (
            condition
            and condition["status"] == "False"
            and condition["reason"] != "Building"
            and condition["reason"] not in POD_REASONS
        )
        return condition if final else None

    condition = wait_for(
        "team to report its failure",
        lambda: failed("team"),
        300,
        on_timeout=lambda: debug(kube, operator, namespace, "team"),
    )
    assert condition["reason"] == "SourceFailed"
    assert f"bucket '{objectstore.EXAMPLES_BUCKET}'" in condition["message"]
    assert "SignatureDoesNotMatch" in condition["message"]
    assert kube.is_true(namespace, "team", "Stalled")
    # its build ran in its own namespace (its Secret is there), and the secret is nowhere in status or events
    assert kube.batch.list_namespaced_job(namespace).items
    events = kube.core.list_namespaced_event(namespace).items
    assert all(wrong["AWS_SECRET_ACCESS_KEY"] not in (e.message or "") for e in events)
    assert wrong["AWS_SECRET_ACCESS_KEY"] not in json.dumps(kube.get(namespace, "team")["status"])
    assert wrong["AWS_SECRET_ACCESS_KEY"] not in operator.log(2000)
    wait_ready(kube, operator, namespace, "ctr-ranker")  # nothing else is affected

    # the team fixes its keys and asks for a new build
    ensure_secret(kube.kubeconfig, {**team_secret, "stringData": right})
    kube.custom.patch_namespaced_custom_object(
        "fulcrum.dev", "v1alpha1", namespace, "modeldeployments", "team",
        {"metadata": {"annotations": {"fulcrum.dev/rebuild": "keys-fixed"}}},
    )  # fmt: skip
    wait_ready(kube, operator, namespace, "team")
    repository = kube.get(namespace, "team")["status"]["build"]["repository"]
    assert repository.startswith(f"{team}/")
    [pull] = kube.deployments(namespace, "team")[0].spec.template.spec.init_containers
    assert [e.secret_ref.name for e in pull.env_from] == ["team-s3"]

    # meanwhile the builds missing a Secret or a claim said what they wait for; that is not final
    def blocked(name: str, reason: str) -> dict[str, Any] | None:
        condition = kube.condition(namespace, name, "RepositoryReady")
        return condition if condition and condition["reason"] == reason else None

    waiting = wait_for(
        "keyless's build to say what it waits for", lambda: blocked("keyless", "CreateContainerConfigError"), 60
    )
    # the kubelet's words: `secret "late-s3" not found`
    assert "late-s3" in waiting["message"] and "not found" in waiting["message"], waiting
    assert "init container fetch" in waiting["message"], waiting
    unbound = wait_for("claimed's build to say what it waits for", lambda: blocked("claimed", "Unschedulable"), 60)
    assert 'persistentvolumeclaim "team-models" not found' in unbound["message"], unbound
    assert not kube.is_true(namespace, "keyless", "Stalled") and not kube.is_true(namespace, "claimed", "Stalled")
    # the Secret appears (with wrong keys: the quickest end): the same build goes on, to the store's answer
    late_secret = {"metadata": {"name": "late-s3", "namespace": namespace}, "type": "Opaque", "stringData": wrong}
    ensure_secret(kube.kubeconfig, late_secret)
    late = wait_for("keyless's build to go on", lambda: failed("keyless"), 120)
    assert late["reason"] == "SourceFailed" and "SignatureDoesNotMatch" in late["message"], late

    # the claim appears: claimed's build goes on in this namespace and publishes into the platform's store through
    # an upload form the operator signed here, holding only the read-only keys (no Secret here can write)
    # (a directory the build's non-root user can read: pytest's own are the owner's only)
    with tempfile.TemporaryDirectory(prefix="fulcrum-e2e-claim-") as shared:
        os.chmod(shared, 0o755)
        write_tiny_onnx(Path(shared) / "tiny.onnx", seed=11).chmod(0o644)
        with kube.hostpath_claim(namespace, "team-models", Path(shared)):
            wait_ready(kube, operator, namespace, "claimed")
    jobs = [serialized(kube.batch.api_client, j) for j in kube.batch.list_namespaced_job(namespace).items]
    [job] = [j for j in jobs if "team-models" in json.dumps(j["spec"]["template"]["spec"]["volumes"])]
    form = upload_form_secret_name(job)
    assert form is not None, "a build into the platform's store gets an upload form"
    pod = job["spec"]["template"]["spec"]
    steps = {c["name"]: c for c in [*pod["initContainers"], *pod["containers"]]}
    for step in ("fetch", "publish"):
        assert steps[step]["envFrom"] == [{"secretRef": {"name": objectstore.SERVING_SECRET}}], step
    assert [o.kind for o in meta(kube.core.read_namespaced_secret(form, namespace)).owner_references or []] == ["Job"]
    # the Job names no other Secret, and the operator's write keys are not in this namespace (team-s3, the team's
    # own keys, is for its own spec.repository)
    referenced = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} | {
        e["secretRef"]["name"] for c in steps.values() for e in c.get("envFrom", []) if "secretRef" in e
    }
    assert referenced == {objectstore.SERVING_SECRET, form}, referenced
    assert objectstore.BUILD_SECRET not in {name_of(s) for s in kube.core.list_namespaced_secret(namespace).items}
    assert kube.get(namespace, "claimed")["status"]["build"]["repository"].startswith(f"{MODELS}/")


def test_wrong_serving_credentials_say_why_the_replicas_do_not_start(
    cluster: Cluster, kube: Kube, operator: Release, namespace: str
) -> None:
    """The build is fine (shared), but this namespace's read-only keys are wrong: the download step fails and
    Available names the object and the store's error."""
    store = store_of(cluster)
    wrong = {**store.env("reader"), "AWS_SECRET_ACCESS_KEY": "not-" + uuid.uuid4().hex}
    ensure_secret(
        kube.kubeconfig,
        {
            "metadata": {"name": objectstore.SERVING_SECRET, "namespace": namespace},
            "type": "Opaque",
            "stringData": wrong,
        },
    )
    manifest = yaml.safe_load((EXAMPLE / "modeldeployment.yaml").read_text())
    kube.custom.create_namespaced_custom_object("fulcrum.dev", "v1alpha1", namespace, "modeldeployments", manifest)

    def says_why() -> dict[str, Any] | None:
        condition = kube.condition(namespace, "ctr-ranker", "Available")
        return condition if condition and "SignatureDoesNotMatch" in condition["message"] else None

    available = wait_for(
        "Available to say why", says_why, 300, on_timeout=lambda: debug(kube, operator, namespace, "ctr-ranker")
    )
    # the kubelet's reason (the download step backs off), the step's own words in the message
    assert available["status"] == "False" and available["reason"] in ("CrashLoopBackOff", "ContainerExited")
    assert f"{MODELS}/" in available["message"] and "init container repository" in available["message"]
    assert wrong["AWS_SECRET_ACCESS_KEY"] not in json.dumps(kube.get(namespace, "ctr-ranker")["status"])


def test_garbage_collection_marks_then_deletes_unused_records_and_their_keys(
    cluster: Cluster, kube: Kube, tmp_path: Path
) -> None:
    import asyncio

    store = store_of(cluster)
    build_namespace = f"gc-{uuid.uuid4().hex[:6]}"
    settings = OperatorSettings(
        build_namespace=build_namespace,
        storage=RepositoryStorage.parse(
            f"s3://{objectstore.MODELS_BUCKET}/gc-{uuid.uuid4().hex[:6]}", endpoint=store.endpoint
        ),
    )
    writer = S3Repository(
        S3Client(S3Config.from_environment(store.env("writer"))), ObjectURI.parse(settings.storage.location)
    )
    (tmp_path / "built").mkdir()
    (tmp_path / "built" / "manifest.json").write_text("{}")
    key = "ab" * 32
    writer.publish(key, tmp_path / "built")
    kube.core.create_namespace(client.V1Namespace.model_validate({"metadata": {"name": build_namespace}}))
    record = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": labels.build_record_name("c" * 32),
            "labels": {
                labels.MANAGED_BY: labels.MANAGER,
                labels.COMPONENT: labels.COMPONENT_BUILD_RECORD,
                labels.BUILD_KEY: "c" * 32,
            },
        },
        "data": {"result.json": json.dumps({"phase": "Succeeded", "repository": writer.location(key)})},
    }
    try:
        created = kube.core.create_namespaced_config_map(build_namespace, client.V1ConfigMap.model_validate(record))

        async def collect(after: timedelta) -> None:
            cache = ObjectCache()
            live = kube.core.read_namespaced_config_map(name_of(created), build_namespace)
            cache.put("ConfigMap", serialized(client.ApiClient(), live))
            api = KubeClient.from_environment(str(kube.kubeconfig))
            try:
                collector = BuildCollector(
                    api, cache, settings, 7 * 86400, writer, clock=lambda: datetime.now(UTC) + after
                )
                await collector.collect()
            finally:
                await api.close()

        asyncio.run(collect(timedelta(0)))
        marked = kube.core.read_namespaced_config_map(name_of(created), build_namespace)
        assert UNUSED_SINCE in (meta(marked).annotations or {})
        assert writer.published(key) is not None  # not yet: unused for less than the retention
        asyncio.run(collect(timedelta(days=8)))
        with pytest.raises(client.ApiException):
            kube.core.read_namespaced_config_map(name_of(created), build_namespace)
        assert writer.published(key) is None
        assert not list(writer.client.list_objects(objectstore.MODELS_BUCKET, writer.base.child(key).prefix))
    finally:
        kube.core.delete_namespace(build_namespace)
