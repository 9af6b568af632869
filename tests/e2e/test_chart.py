"""The chart on a real cluster: install it, run the operator as the chart's ServiceAccount, prove the RBAC.

One Helm release per mode, each in its own namespace that also holds the builds: namespaced (watchNamespaces =
[its namespace]: Roles only) and cluster-wide (the default: a ClusterRole, plus the build Role). The operator
runs as a local process with the ServiceAccount's token (``kubectl create token``), through a recording proxy
(tests/support/chart_audit.py) so every request it makes, and the answer, is known. One ModelDeployment is
taken through every path that needs a permission:

- pool ``l4`` (kwok GPU nodes) has a prebuilt build record: the operator serves it (routing ConfigMap,
  Deployment, Service and PDB by server-side apply, which creates them), the kwok pods get ready, the operator
  lists them to route their served model name, status goes Ready (status patch), Events;
- pool ``local`` (the real node ``local-0``) has no record: the operator creates the Job (its spec travels in
  it), the fetch step reports the content key and the operator creates the Job's upload form (a Secret), the
  build ends fast (the "model" is /etc/passwd of the builder image), the operator reads the Job's pods (watched)
  for the termination message, creates the record and marks the Job harvested; deleting the record asks for the
  build again: the operator deletes the old Job and builds once more;
- the operator leads through its Lease (created, read, renewed);
- a stale server Deployment of the ModelDeployment (an old tier) is deleted;
- two build records nobody uses: garbage collection marks one (patch) and deletes the one unused for longer
  than the retention.

The repository storage is the local cluster's object store, with the build credentials in a Secret the chart
renders (``repository.s3.createSecret``).

Then: every request was allowed except the three the operator is built to tolerate; every verb of every rule was
used; and, asking the real authorizer (SubjectAccessReview) for each verb of each rule removed in turn, the removal
denies exactly the requests no other rule grants (the build namespace is also a served one here, and a ClusterRole
covers it: there the serving and the build rules both grant ``create configmaps`` and ``list pods``). The GitOps
test applies the manifest again, server-side, under two field managers (namespaced mode only: the operator's writes
are the same in both modes).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fulcrum.api import parse_model_deployment
from fulcrum.dev import objectstore
from fulcrum.dev.rest import ApiError, Rest
from fulcrum.reconcile.builds import BuildResult
from fulcrum.reconcile.plan import pool_builds
from fulcrum.resources import labels
from fulcrum.resources.build import build_record, upload_form_secret_name
from fulcrum.resources.labels import build_record_name
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage
from fulcrum.storage.gc import UNUSED_SINCE
from tests.e2e.conftest import Cluster
from tests.support.chart import CHART, argocd_health, flag_values, helm_binary
from tests.support.chart_audit import Attributes, RecordingProxy, all_attributes, token_kubeconfig
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
RELEASE = "fulcrum"
MD = "ranker"
GITOPS = "gitops"  # the field manager of "Git" (kubectl apply --server-side)
SECOND = "argocd-controller"  # a second GitOps controller (Argo CD and Flux apply with force)
# What the operator asks for and is built to do without (KubeClient.ensure_namespace tolerates 403).
TOLERATED = {("create", "", "namespaces")}
# Object storage: no hostPath, so the namespace can enforce the `restricted` Pod Security Standard on the operator
# and on everything it creates. Nothing is ever written there: the only real build fails before it writes.
REPOSITORY = f"s3://{objectstore.MODELS_BUCKET}/chart-e2e"
RBAC = "rbac.authorization.k8s.io/v1"
NOT_A_MODEL = "/etc/passwd"  # in every image
UNUSED_NEW, UNUSED_OLD = "d" * 32, "e" * 32  # build records of an old spec that no ModelDeployment uses
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def model_deployment(namespace: str) -> Obj:
    return {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": MD, "namespace": namespace},
        "spec": {
            "model": {
                # fetched (so the operator signs its upload form), then refused by the build step: not ONNX
                "source": {"uri": f"file://{NOT_A_MODEL}", "format": "onnx"},
                "inputs": [{"name": "dense", "dataType": "FP32", "dims": [4]}],
                "outputs": [{"name": "score", "dataType": "FP32", "dims": [1]}],
            },
            "tiers": [{"name": "fp32", "precision": "fp32", "backend": "onnxruntime"}],
            "slo": {"latencyMs": 50},
            "nodePools": [
                {
                    "name": "l4",
                    "nodeSelector": {"fulcrum.dev/pool": "l4"},
                    "tolerations": [GPU_TOLERATION],
                    "gpusPerReplica": 1,
                    "costPerHour": "0.85",
                },
                {
                    "name": "local",
                    "nodeSelector": {"fulcrum.dev/pool": "local"},
                    "gpusPerReplica": 0,
                    "costPerHour": "0.10",
                },
            ],
            "scaling": {"minReplicas": 1, "maxReplicas": 2},
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def condition(obj: Obj | None, kind: str) -> Obj | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def apply(rest: Rest, manifest: Obj, manager: str, *, force: bool = False) -> Obj:
    """Server-side apply of a ModelDeployment, as ``kubectl apply --server-side`` (or a GitOps controller) does."""
    meta = manifest["metadata"]
    query = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return rest.request(
        "PATCH",
        f"/apis/fulcrum.dev/v1alpha1/namespaces/{meta['namespace']}/modeldeployments/{meta['name']}",
        manifest,
        content_type="application/apply-patch+yaml",
        query=query,
    )


@dataclass
class Stack:
    cluster: Cluster
    namespace: str
    helm: str
    install_output: str
    crds_by_chart: bool
    manifest: list[Obj]
    workdir: Path
    mode: str = "namespaced"
    proxy: RecordingProxy | None = None
    operator: subprocess.Popen[bytes] | None = None
    operator_log: Path | None = None
    settings: OperatorSettings = field(default_factory=OperatorSettings)

    @property
    def rest(self) -> Rest:
        return self.cluster.rest

    def md_path(self, name: str = MD) -> str:
        return f"/apis/fulcrum.dev/v1alpha1/namespaces/{self.namespace}/modeldeployments/{name}"

    def run_helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.helm, *args, "--kubeconfig", str(self.cluster.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    def roles(self) -> list[Obj]:
        return [o for o in self.manifest if o["kind"] in ("Role", "ClusterRole")]

    def operator_args(self) -> list[str]:
        deployment = next(o for o in self.manifest if o["kind"] == "Deployment")
        args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[0] == "run"
        return args[1:]

    def log_tail(self, lines: int = 60) -> str:
        if self.operator_log is None or not self.operator_log.exists():
            return "(no operator log)"
        return "\n".join(self.operator_log.read_text(errors="replace").splitlines()[-lines:])

    def stop_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.send_signal(signal.SIGTERM)
            try:
                self.operator.wait(30)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait(10)
        if self.proxy is not None:
            self.proxy.stop()


def store(cluster: Cluster) -> objectstore.ObjectStoreConfig:
    config = objectstore.load(cluster.home)
    assert config is not None, "`fulcrum dev up` starts the object store"
    return config


def store_values(cluster: Cluster) -> Obj:
    """The chart's values for the cluster's object store (what `fulcrum dev chart-values` prints)."""
    values: Obj = objectstore.chart_values(store(cluster))["repository"]["s3"]  # type: ignore[index]
    return values


def _install(cluster: Cluster, namespace: str, helm: str, workdir: Path, mode: str) -> Stack:
    existing = cluster.rest.get_or_none(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modeldeployments.fulcrum.dev"
    )
    owner = ((existing or {}).get("metadata", {}).get("annotations") or {}).get("meta.helm.sh/release-name")
    crds_by_chart = existing is None  # a CRD applied by another test (kubectl) cannot be adopted by a release
    values = {
        "watchNamespaces": [namespace] if mode == "namespaced" else [],
        "crds": {"install": crds_by_chart},
        "build": {"image": cluster.images["fulcrum-builder"].ref, "target": "local"},
        # the local pool's build measures through this image (its Triton sidecar); it is a build input too
        "triton": {"image": cluster.images["tritonserver-cpu"].ref},
        "repository": {"kind": "s3", "s3": {**store_values(cluster), "uri": REPOSITORY}},
        "operator": {"tickSeconds": 5, "workers": 2},
        # the in-cluster copy stays Pending: this test runs the same command line as a local process instead
        "nodeSelector": {"fulcrum.dev/e2e-no-such-node": "true"},
    }
    sets = [a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]
    stack = Stack(cluster, namespace, helm, "", crds_by_chart, [], workdir, mode)
    result = stack.run_helm("install", RELEASE, str(CHART), "--namespace", namespace, *sets)
    stack.install_output = result.stdout + (f"\n(CRD pre-existed, owner {owner!r})" if existing else "")
    manifest = stack.run_helm("get", "manifest", RELEASE, "--namespace", namespace).stdout
    stack.manifest = [d for d in yaml.safe_load_all(manifest) if d]
    stack.settings = OperatorSettings(
        build_namespace=namespace,
        storage=RepositoryStorage.parse(REPOSITORY, endpoint=store(cluster).endpoint),
        builder_image=cluster.images["fulcrum-builder"].ref,
        triton_image=cluster.images["tritonserver-cpu"].ref,
        build_target="local",
    )
    return stack


def _start_operator(stack: Stack) -> None:
    cluster, ns = stack.cluster, stack.namespace
    token = cluster.kubectl("create", "token", RELEASE, "--namespace", ns, "--duration", "2h").stdout.strip()
    assert token
    upstream = f"https://{cluster.config.host_address}:{cluster.config.ports.apiserver}"
    stack.proxy = RecordingProxy(upstream, cluster.home.pki / "ca.crt")
    port = stack.proxy.start()
    kubeconfig = stack.workdir / "operator.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(token_kubeconfig(f"http://127.0.0.1:{port}", token, ns)))
    liveness, metrics = free_port(), free_port()
    args = [a for a in stack.operator_args() if not a.startswith(("--liveness=", "--metrics-port="))] + [
        f"--liveness=http://127.0.0.1:{liveness}/healthz",
        f"--metrics-port={metrics}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(kubeconfig)
    # in the cluster the chart gives the operator the build credentials (envFrom) for garbage collection
    env.update(store(cluster).env("writer"))
    env["FULCRUM_GC_INTERVAL_SECONDS"] = "2"
    stack.operator_log = stack.workdir / "operator.log"
    fulcrum = str(Path(sys.executable).with_name("fulcrum"))
    with stack.operator_log.open("wb") as log:
        stack.operator = subprocess.Popen([fulcrum, "run", *args], env=env, stdout=log, stderr=subprocess.STDOUT)

    def live() -> bool:
        assert stack.operator is not None
        assert stack.operator.poll() is None, f"the operator exited:\n{stack.log_tail()}"
        url = f"http://127.0.0.1:{liveness}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
        return False

    wait_for("the operator's liveness endpoint", live, timeout=90)


def _seed(stack: Stack) -> None:
    """What the operator finds: a prebuilt record for pool l4, two unused records, a stale server Deployment; then
    the ModelDeployment."""
    ns, rest = stack.namespace, stack.rest
    manifest = model_deployment(ns)
    spec = parse_model_deployment(manifest).spec
    builds = {b.pool.name: b for b in pool_builds(spec, stack.settings, {}, {}, ns)}
    l4 = builds["l4"]
    points = [
        {
            "requestsPerSecond": rps,
            "latencyMs": {"p50": 2.0 + rps / 200, "p90": 3.0, "p95": 3.5, "p99": 4.0 + rps / 100},
        }
        for rps in (50.0, 200.0, 400.0)
    ]
    tier: Obj = {"name": "fp32", "precision": "fp32", "backend": "onnxruntime", "state": "Ready", "path": "fp32"}
    tier |= {"accuracy": {"MeanAbsError": 0.0}, "profiles": [{"nodePool": "l4", "points": points}]}
    result = BuildResult.from_record(
        {
            "phase": "Succeeded",
            "reason": "BuildSucceeded",
            "repository": f"{REPOSITORY}/{'0' * 64}",
            "manifest": {"model": MD, "source": {"uri": "file:///prebuilt.onnx", "sha256": "0" * 64}, "tiers": [tier]},
        }
    )
    rest.create(
        f"/api/v1/namespaces/{ns}/configmaps", build_record(l4.key, l4.pool, result.to_record(), stack.settings)
    )
    for key, since in ((UNUSED_NEW, None), (UNUSED_OLD, "2020-01-01T00:00:00Z")):
        record = build_record(key, l4.pool, {"phase": "Failed", "reason": "BuildFailed"}, stack.settings)
        if since:
            record["metadata"]["annotations"] = {UNUSED_SINCE: since}
        rest.create(f"/api/v1/namespaces/{ns}/configmaps", record)
    stale_labels = {
        **labels.owned_labels(MD, labels.COMPONENT_SERVER),
        labels.TIER: "fp16",
        labels.POOL: "l4",
    }
    rest.create(
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"{MD}-fp16-l4", "labels": stale_labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": stale_labels},
                "template": {
                    "metadata": {"labels": stale_labels},
                    "spec": {"containers": [{"name": "x", "image": "example.invalid/x", "command": ["true"]}]},
                },
            },
        },
    )
    apply(rest, manifest, GITOPS)


@pytest.fixture(scope="module", params=["namespaced", "cluster-wide"])
def stack(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    helm = helm_binary()
    if helm is None:
        pytest.fail("no helm binary (fulcrum dev build makes one)")
    namespace = f"chart-e2e-{uuid.uuid4().hex[:6]}"
    ns_labels = {"fulcrum.dev/e2e": "true", "pod-security.kubernetes.io/enforce": "restricted"}
    cluster.rest.create("/api/v1/namespaces", {"metadata": {"name": namespace, "labels": ns_labels}})
    workdir = tmp_path_factory.mktemp("chart-e2e")
    stack: Stack | None = None
    try:
        stack = _install(cluster, namespace, helm, workdir, request.param)
        _start_operator(stack)
        _seed(stack)
        yield stack
    finally:
        if stack is not None:
            stack.stop_operator()
            stack.run_helm("uninstall", RELEASE, "--namespace", namespace, check=False)
        with contextlib.suppress(ApiError):
            cluster.rest.delete(f"/api/v1/namespaces/{namespace}")
        # gone before the next mode starts: a cluster-wide operator would otherwise see this ModelDeployment
        # and get 403s writing into a terminating namespace
        wait_for(
            f"namespace {namespace} to be deleted",
            lambda: cluster.rest.get_or_none(f"/api/v1/namespaces/{namespace}") is None,
            180,
        )


def builds_l4_key(stack: Stack) -> str:
    spec = parse_model_deployment(model_deployment(stack.namespace)).spec
    return next(b.key for b in pool_builds(spec, stack.settings, {}, {}, stack.namespace) if b.pool.name == "l4")


def ready(stack: Stack) -> Obj:
    """Ready and settled: Ready=True, Reconciling=False (the stale Deployment gone, both pools' builds done)."""

    def probe() -> Obj | None:
        assert stack.operator is not None and stack.operator.poll() is None, f"operator exited:\n{stack.log_tail()}"
        md = stack.rest.get(stack.md_path())
        ok = condition(md, "Ready")
        settled = (condition(md, "Reconciling") or {}).get("status") == "False"
        current = (md.get("status") or {}).get("observedGeneration") == md["metadata"]["generation"]
        return md if ok and ok["status"] == "True" and settled and current else None

    try:
        md: Obj = wait_for("ModelDeployment Ready=True and settled", probe, timeout=300)
    except AssertionError as exc:
        md = stack.rest.get(stack.md_path())
        raise AssertionError(
            f"{exc}\nstatus: {json.dumps(md.get('status'), indent=1)[:3000]}\n{stack.log_tail()}"
        ) from None
    return md


def only_namespaced(stack: Stack) -> None:
    if stack.mode != "namespaced":
        pytest.skip("checked once, in namespaced mode: the operator writes the same things in both modes")


# --- the tests -------------------------------------------------------------------------------------------------


def test_install_creates_the_release_and_tells_the_next_step(stack: Stack) -> None:
    assert "NOTES:" in stack.install_output
    notes = stack.install_output.split("NOTES:", 1)[1]
    assert "kubectl apply -f" in notes
    kinds = {o["kind"] for o in stack.manifest}
    assert {"Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"} <= kinds
    if stack.mode == "namespaced":
        assert f"It watches ModelDeployments in: {stack.namespace}." in notes
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
        assert flag_values(stack.operator_args(), "--namespace") == [stack.namespace]
    else:
        assert "It watches ModelDeployments in every namespace." in notes
        assert {"ClusterRole", "ClusterRoleBinding"} <= kinds
        assert flag_values(stack.operator_args(), "--namespace") == []
    # the namespace enforces the `restricted` Pod Security Standard: the operator's pod is admitted (it stays
    # Pending on purpose: no node matches its nodeSelector)
    pods_path = f"/api/v1/namespaces/{stack.namespace}/pods"
    pods = wait_for(
        "the operator pod to be admitted",
        lambda: stack.rest.get(pods_path, labelSelector="app.kubernetes.io/component=operator")["items"],
        60,
    )
    assert pods[0]["spec"]["serviceAccountName"] == RELEASE


def test_model_deployment_gets_ready_as_the_charts_service_account(stack: Stack) -> None:
    md = ready(stack)
    ns, rest = stack.namespace, stack.rest
    status = md["status"]
    assert (status["activeTier"], status["activeNodePool"]) == ("fp32", "l4")
    # what Argo CD would show for it, with the chart's health check
    assert argocd_health(md)["status"] == "Healthy"
    server = labels.server_deployment_name(MD, "fp32", "l4")
    deployment = rest.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{server}")
    assert deployment["metadata"]["labels"][labels.MANAGED_BY] == "fulcrum"
    assert rest.get_or_none(f"/api/v1/namespaces/{ns}/services/{MD}") is not None
    assert rest.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets")["items"]
    # the stale tier's Deployment was deleted
    wait_for(
        "the stale Deployment to go",
        lambda: rest.get_or_none(f"/apis/apps/v1/namespaces/{ns}/deployments/{MD}-fp16-l4") is None,
        60,
    )
    # the local pool's build ran and was harvested into a record
    local = next(
        b
        for b in pool_builds(parse_model_deployment(model_deployment(ns)).spec, stack.settings, {}, {}, ns)
        if b.pool.name == "local"
    )
    record = rest.get(f"/api/v1/namespaces/{ns}/configmaps/{labels.build_record_name(local.key)}")
    harvested = json.loads(record["data"]["result.json"])
    assert harvested["phase"] in ("Succeeded", "Failed"), harvested
    # no model: whatever the builder reported, no tier of it can serve
    assert status["activeNodePool"] == "l4"
    assert not any(t.get("state") == "Ready" for t in harvested["manifest"].get("tiers") or []), harvested
    job = rest.get(f"/apis/batch/v1/namespaces/{ns}/jobs/{labels.build_job_name(local.key)}")
    form = rest.get(f"/api/v1/namespaces/{ns}/secrets/{upload_form_secret_name(job)}")
    assert [o["uid"] for o in form["metadata"]["ownerReferences"]] == [job["metadata"]["uid"]]
    events = rest.get(f"/api/v1/namespaces/{ns}/events")["items"]
    assert any(e.get("source", {}).get("component") == "fulcrum" for e in events)
    # garbage collection: the record unused for longer than the retention is gone, the other one marked
    configmaps = f"/api/v1/namespaces/{ns}/configmaps/"
    wait_for(
        "the old unused record to be deleted",
        lambda: rest.get_or_none(configmaps + build_record_name(UNUSED_OLD)) is None,
        60,
    )
    marked = rest.get(configmaps + build_record_name(UNUSED_NEW))
    assert UNUSED_SINCE in (marked["metadata"].get("annotations") or {})
    assert UNUSED_SINCE not in (
        rest.get(configmaps + build_record_name(builds_l4_key(stack)))["metadata"].get("annotations") or {}
    )


def test_deleting_a_build_record_builds_again(stack: Stack) -> None:
    """A build record is the cache of a build: deleting it is how a user asks for the build again. The harvested
    Job goes first (Jobs are named after their key), then a new Job runs and writes a new record."""
    ready(stack)
    ns, rest = stack.namespace, stack.rest
    local = next(
        b
        for b in pool_builds(parse_model_deployment(model_deployment(ns)).spec, stack.settings, {}, {}, ns)
        if b.pool.name == "local"
    )
    record_path = f"/api/v1/namespaces/{ns}/configmaps/{labels.build_record_name(local.key)}"
    job_path = f"/apis/batch/v1/namespaces/{ns}/jobs/{labels.build_job_name(local.key)}"
    record = wait_for("the local build's record", lambda: rest.get_or_none(record_path), 300, 2)
    old_job = rest.get(job_path)["metadata"]["uid"]
    assert json.loads(record["data"]["result.json"])["jobUid"] == old_job
    rest.delete(record_path)

    def rebuilt() -> dict[str, Any] | None:
        record = rest.get_or_none(record_path)
        result = json.loads(record["data"]["result.json"]) if record else {}
        return result if result.get("jobUid") not in (None, old_job) else None

    result = wait_for("a new record from a new build Job", rebuilt, 300, 2, on_timeout=stack.log_tail)
    job = rest.get(job_path)
    assert job["metadata"]["uid"] == result["jobUid"] != old_job
    assert "transient" not in result  # the builder said what came of it: final, not retried


def test_gitops_reapply_and_a_second_manager_change_nothing(stack: Stack) -> None:
    """Git applies again, then a second GitOps controller applies the same manifest (Argo CD and Flux apply with
    force): the generation does not move, nothing to diff, and only the GitOps managers own spec fields."""
    only_namespaced(stack)
    before = ready(stack)
    manifest = model_deployment(stack.namespace)
    again = apply(stack.rest, manifest, GITOPS)
    second = apply(stack.rest, manifest, SECOND, force=True)
    generation = before["metadata"]["generation"]
    assert again["metadata"]["generation"] == generation
    assert second["metadata"]["generation"] == generation
    assert again["spec"] == before["spec"] == second["spec"]
    # kubectl's own verdict, as a server-side diff sees it: nothing to change, for either manager
    path = stack.workdir / "md.yaml"
    path.write_text(yaml.safe_dump(manifest))
    for manager in (GITOPS, SECOND):
        diff = stack.cluster.kubectl(
            "diff", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-f", str(path), check=False
        )
        assert diff.returncode == 0, f"kubectl diff ({manager}) found drift:\n{diff.stdout}{diff.stderr}"
    # give the operator a few ticks to react to the applies; the spec stays Git's
    time.sleep(12)
    after = stack.rest.get(stack.md_path())
    assert after["metadata"]["generation"] == generation
    assert after["spec"] == before["spec"]
    assert not after["metadata"].get("finalizers")
    assert not any(k.startswith("kopf.") for k in (after["metadata"].get("annotations") or {}))
    entries = after["metadata"]["managedFields"]
    spec_owners = {e["manager"] for e in entries if "f:spec" in (e.get("fieldsV1") or {})}
    assert spec_owners and spec_owners <= {GITOPS, SECOND}, entries
    status_writers = {e["manager"] for e in entries if e.get("subresource") == "status"}
    assert status_writers and all("fulcrum" in m for m in status_writers), entries
    assert (condition(after, "Ready") or {}).get("status") == "True"


def test_a_second_manager_shares_the_spec_without_force(stack: Stack) -> None:
    only_namespaced(stack)
    before = ready(stack)
    manifest = model_deployment(stack.namespace)
    shared = apply(stack.rest, manifest, "team-pipeline")
    assert shared["metadata"]["generation"] == before["metadata"]["generation"]
    assert shared["spec"] == before["spec"]


def _denied(rest: Rest, attrs: list[Attributes], user: str, groups: list[str]) -> set[Attributes]:
    out = set()
    for attr in attrs:
        review = rest.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", attr.review(user, groups))
        if not review.get("status", {}).get("allowed"):
            out.add(attr)
    return out


def _user(ns: str, sa: str) -> tuple[str, list[str]]:
    return f"system:serviceaccount:{ns}:{sa}", [
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    ]


def test_each_verb_of_each_rule_is_needed_and_the_rules_suffice(stack: Stack) -> None:
    ready(stack)
    stack.stop_operator()
    assert stack.proxy is not None
    requests = stack.proxy.snapshot()
    seen = all_attributes(requests)
    ns, rest = stack.namespace, stack.rest

    # 1. sufficient: nothing the operator needs was forbidden
    forbidden = {a for a, statuses in seen.items() if 403 in statuses}
    assert {(a.verb, a.group, a.resource) for a in forbidden} <= TOLERATED, sorted(map(str, forbidden))
    used = sorted(a for a in seen if a not in forbidden)
    assert used, "the proxy recorded no resource requests"
    print(f"{len(requests)} requests; allowed: {', '.join(map(str, used))}")
    print(f"denied and tolerated: {', '.join(map(str, sorted(forbidden)))}")

    # the real authorizer agrees for the chart's ServiceAccount: every used request allowed, the tolerated denied
    user, groups = _user(ns, RELEASE)
    assert not _denied(rest, used, user, groups)
    assert _denied(rest, sorted(forbidden), user, groups) == forbidden

    # 2. necessary: for each verb of each rule, a ServiceAccount bound to the chart's roles minus that verb. It
    # loses the requests only that verb granted: where another role grants the same in the same place (the build
    # namespace is also a watched one, or the ClusterRole covers it), those keep working.
    grants = [
        (role["metadata"].get("namespace"), (verb, rule["apiGroups"][0], rule["resources"][0]), (id(role), index))
        for role in stack.roles()
        for index, rule in enumerate(role["rules"])
        for verb in rule["verbs"]
    ]

    def covers(scope: str | None, triple: tuple[str, str, str], a: Attributes) -> bool:
        return (a.verb, a.group, a.resource) == triple and scope in (None, a.namespace)

    probes: list[tuple[str, str, tuple[str, str, str], set[Attributes]]] = []
    objects: list[Obj] = []
    for role in stack.roles():
        for index, rule in enumerate(role["rules"]):
            for verb in rule["verbs"]:
                name = f"probe-{len(probes)}"
                triple = (verb, rule["apiGroups"][0], rule["resources"][0])
                scope = role["metadata"].get("namespace")  # None: a ClusterRole, bound cluster-wide
                needing = {a for a in used if covers(scope, triple, a)}
                assert needing, f"{role['metadata']['name']}: {verb} {rule['resources'][0]}: never used (drop it)"
                others = [g for g in grants if g[2] != (id(role), index) or g[1] != triple]
                expected = {a for a in needing if not any(covers(sc, tr, a) for sc, tr, _ in others)}
                probes.append((name, f"{role['metadata']['name']}: {verb} {rule['resources'][0]}", triple, expected))
                objects.append(
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}
                )
                for other in stack.roles():
                    rules = [dict(r) for r in other["rules"]]
                    if other is role:
                        rules[index] = {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}
                        rules = [r for r in rules if r["verbs"]]
                    cluster_wide = other["kind"] == "ClusterRole"
                    role_name = f"{ns}-{name}-{other['metadata']['name']}"
                    meta = {"name": role_name} if cluster_wide else {"name": role_name, "namespace": ns}
                    objects.append({"apiVersion": RBAC, "kind": other["kind"], "metadata": meta, "rules": rules})
                    objects.append(
                        {
                            "apiVersion": RBAC,
                            "kind": "ClusterRoleBinding" if cluster_wide else "RoleBinding",
                            "metadata": meta,
                            "roleRef": {
                                "apiGroup": "rbac.authorization.k8s.io",
                                "kind": other["kind"],
                                "name": role_name,
                            },
                            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
                        }
                    )
    shared = [label for _name, label, _t, expected in probes if not expected]
    print(f"granted twice in the same place (the build namespace is watched, or the ClusterRole covers it): {shared}")
    path = stack.workdir / f"probes-{stack.mode}.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    stack.cluster.kubectl("apply", "--server-side", "-f", str(path))
    try:
        # the authorizer denies exactly the requests that needed the removed verb (polled: RBAC caches briefly)
        for name, label, _triple, expected in probes:
            user, groups = _user(ns, name)

            def agrees(user: str = user, groups: list[str] = groups, expected: set[Attributes] = expected) -> bool:
                return _denied(rest, used, user, groups) == expected

            wait_for(f"{label}: the authorizer to deny exactly {sorted(map(str, expected))}", agrees, 30, 0.5)
    finally:
        stack.cluster.kubectl("delete", "--wait=false", "--ignore-not-found", "-f", str(path), check=False)


def test_upgrade_then_uninstall_keeps_the_crd(stack: Stack) -> None:
    stack.stop_operator()
    result = stack.run_helm(
        "upgrade", RELEASE, str(CHART), "--namespace", stack.namespace, "--reuse-values", "--set", "operator.workers=3"
    )
    assert "has been upgraded" in result.stdout
    stack.run_helm("uninstall", RELEASE, "--namespace", stack.namespace)
    rest = stack.rest
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    assert rest.get_or_none(f"{rbac}/namespaces/{stack.namespace}/roles/{RELEASE}-build") is None
    assert rest.get_or_none(f"{rbac}/clusterroles/{RELEASE}") is None
    crd = rest.get_or_none("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modeldeployments.fulcrum.dev")
    assert crd is not None, "helm uninstall deleted the CRD (and with it every ModelDeployment)"
    assert rest.get_or_none(stack.md_path()) is not None
    if stack.crds_by_chart:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
