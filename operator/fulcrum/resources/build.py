"""The build Job and the build record that caches a finished build's result.

A build runs for one (build key, node pool). Its pod runs its steps in turn, each with only what it needs:

1. ``fetch`` (init): fetches and verifies the sources (``s3://``, ``https://``, a ``pvc://`` claim mounted
   read-only), computes the content key from their bytes and looks it up in the repository storage; it holds
   the storage credentials (read-only ones with an upload form, below) and, when the key is not published yet,
   reports it in its termination message. The spec travels in its environment; it writes it beside the files;
2. ``build`` (init): ``fulcrum build`` from the fetched files into an emptyDir, holding the pool's GPUs; it runs
   the model's code (export, conversion, TensorRT engines), so it gets no credential and no claim, and reads the
   fetched files (and the key) from a read-only mount;
3. ``triton``, a native sidecar (an init container with ``restartPolicy: Always``) of the pool's *serving image*
   with ``spec.serving.resources`` (a replica's CPU and memory limits), holds the same GPUs (the kubelet hands
   the finished init container's devices on) and serves an emptyDir in explicit model-control mode; ``measure``
   (init, the builder image, no GPU, no limit, no credential) reuses the build and gates, searches and profiles
   each tier through the sidecar over loopback: every tier is measured through the Triton it will serve with, on
   the pool's device and under a replica's resources. The ``local`` target (the dev cluster) works the same way,
   its serving image the CPU tritonserver of images/tritonserver-cpu;
4. ``publish``: publishes the built repository write-once under ``<storage>/<content key>/`` and writes the
   result (manifest and where it was published) as its termination message. The Job completes when it exits
   (the kubelet then stops the sidecar). With the default object storage and an operator that holds the write
   keys, it writes through an *upload form* (``fulcrum.storage.form``): a signed POST policy for that one key,
   which the operator creates as a Secret owned by the Job once fetch has reported the key
   (``upload_form_secret``), so no step of the Job can write anywhere else.

The operator copies the result into a *build record* ConfigMap (in the build namespace) named after the key, so a
finished build is reused by every ModelDeployment with the same key, and a failed build is not retried until its
inputs change, someone deletes the record or asks again with the ``fulcrum.dev/rebuild`` annotation: no retry
storm. A pod that fails for a reason outside the model (killed, evicted, storage unreachable) is retried by the Job
(``backoffLimit``), and a Job the infrastructure failed is started again with backoff (``fulcrum.reconcile.builds``);
an unusable spec or model (exit 2) fails the Job at once and is final.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml

from fulcrum.api import ModelDeploymentSpec, NodePool
from fulcrum.resources import labels
from fulcrum.resources import storage as storage_mod
from fulcrum.resources.build_key import gpu_product
from fulcrum.resources.common import (
    SCRATCH_DIR,
    Manifest,
    container_security_context,
    gpu_resources,
    pod_security_context,
    scheduling,
)
from fulcrum.resources.settings import MODELS_MOUNT, OperatorSettings
from fulcrum.storage.form import UploadForm

SPEC_ENV = "FULCRUM_SPEC"
SPEC_FILE = "modeldeployment.yaml"  # written by the fetch step beside the fetched files
RECORD_KEY = "result.json"
TERMINATION_LOG = "/dev/termination-log"
INPUTS_MOUNT = "/work/inputs"
OUT_MOUNT = "/work/out"
BUILT = f"{OUT_MOUNT}/repository"
EXIT_UNUSABLE = 2  # the builder's exit status for a spec or option it cannot use: retrying cannot help
TRITON_MODELS = "/var/run/fulcrum/triton-models"
"""The emptyDir the measure step copies tiers into and the Triton sidecar serves."""
TRITON_HTTP_PORT = 8000
UPLOAD_FORM_MOUNT = "/var/run/fulcrum/upload-form"
UPLOAD_FORM_FILE = "form.json"
UPLOAD_FORM_PREFIX_ANNOTATION = "fulcrum.dev/upload-prefix"
UPLOAD_FORM_EXPIRES_ANNOTATION = "fulcrum.dev/upload-expires"
SERVING_IMAGE_ANNOTATION = "fulcrum.dev/serving-image"
"""On the Job: the Triton image the build was measured with (a build record keeps it; serving uses it)."""


def _build_labels(key: str, pool: NodePool) -> dict[str, str]:
    return {
        labels.MANAGED_BY: labels.MANAGER,
        labels.COMPONENT: labels.COMPONENT_BUILD,
        labels.BUILD_KEY: key,
        labels.POOL: pool.name,
    }


def pool_platform(pool: NodePool, serving_image: str, serving_resources: Manifest | None = None) -> dict[str, Any]:
    """What a build on ``pool`` runs on, as the builder's content key sees it: the pool's hardware, the Triton
    image it is measured with and a replica's CPU request and limit, when set (TensorRT engines and profiles
    belong to them)."""
    platform: dict[str, Any] = {
        "nodePool": pool.name,
        "gpusPerReplica": pool.gpus_per_replica,
        "nodeSelector": dict(pool.node_selector),
        "gpuProduct": gpu_product(pool),
        "servingImage": serving_image,
    }
    cpu = {kind: v["cpu"] for kind, v in (serving_resources or {}).items() if v and "cpu" in v}
    if cpu:
        platform["cpu"] = cpu
    return platform


def spec_document(md_name: str, spec: ModelDeploymentSpec) -> str:
    """The ModelDeployment the builder reads, stripped of status and cluster metadata (YAML)."""
    document = {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": md_name},
        "spec": spec.to_wire(),
    }
    return yaml.safe_dump(document, sort_keys=True)


def _container(name: str, image: str, command: list[str], args: list[str], mounts: list[Manifest]) -> Manifest:
    return {
        "name": name,
        "image": image,
        "command": command,
        "args": args,
        "env": [{"name": "HOME", "value": SCRATCH_DIR}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }


def triton_sidecar(pool: NodePool, serving_image: str, serving_resources: Manifest | None = None) -> Manifest:
    """The pool's own Triton, serving the measure container's copies of the tiers (explicit model control), with
    a serving replica's resources (``spec.serving.resources``)."""
    container: Manifest = {
        "name": "triton",
        "image": serving_image,
        "restartPolicy": "Always",  # a native sidecar: runs beside the later steps, stopped after the last
        "command": ["tritonserver"],
        "args": [
            f"--model-repository={TRITON_MODELS}",
            "--model-control-mode=explicit",
            "--strict-readiness=false",
            "--http-address=127.0.0.1",
            f"--http-port={TRITON_HTTP_PORT}",
            "--grpc-address=127.0.0.1",
            "--allow-metrics=false",
            "--exit-timeout-secs=5",
        ],
        "env": [{"name": "HOME", "value": SCRATCH_DIR}],
        # no probe: it listens on loopback only, and the measure step waits for /v2/health/live itself
        "volumeMounts": [
            {"name": "triton-models", "mountPath": TRITON_MODELS},
            {"name": "triton-tmp", "mountPath": SCRATCH_DIR},
        ],
        "securityContext": container_security_context(),
    }
    resources = gpu_resources(pool, serving_resources)
    if resources:
        container["resources"] = resources
    return container


def build_job(
    key: str,
    pool: NodePool,
    settings: OperatorSettings,
    spec: ModelDeploymentSpec,
    *,
    serving_image: str,
    namespace: str | None = None,
    md_name: str = "model",
    upload_form: str | None = None,
) -> Manifest:
    """The Job that builds one key on one pool (TensorRT engines must be built on the GPU they serve on).

    ``serving_image``: the pool's Triton image, which the build measures with (under a replica's
    ``spec.serving.resources``); ``namespace``: where it runs (the build namespace, or the ModelDeployment's own
    when its spec names a Secret or claim there). ``upload_form``: the name of the Secret (``labels.upload_form_name``)
    in which the operator will put this build's upload form (``upload_form_secret``), so no step holds a write
    key: fetch and publish read with the serving pods' read-only Secret, and publish writes its own key through
    the form."""
    storage = storage_mod.storage_for(spec, settings)
    credentials = storage.serving_secret if upload_form else storage.secret
    serving_resources = spec.serving.resources.to_wire() if spec.serving.resources else None
    platform = pool_platform(pool, serving_image, serving_resources)
    platform_json = json.dumps(platform, sort_keys=True, separators=(",", ":"))
    claims = storage_mod.pvc_source_claims(spec)
    steps = ["fetch", "build", "measure", "publish"]
    volumes: list[Manifest] = [
        {"name": "inputs", "emptyDir": {}},
        {"name": "out", "emptyDir": {}},
        *({"name": f"tmp-{step}", "emptyDir": {}} for step in steps),
        *(
            {"name": f"source-{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
            for i, claim in enumerate(claims)
        ),
        {"name": "triton-models", "emptyDir": {}},
        {"name": "triton-tmp", "emptyDir": {}},
    ]
    repository = storage_mod.volume(storage, read_only=False)
    read_repository = storage_mod.volume(storage, read_only=True)
    if repository is not None:
        volumes.append(repository[0])
    location = storage.pod_location
    inputs_ro = {"name": "inputs", "mountPath": INPUTS_MOUNT, "readOnly": True}

    fetch = _container(
        "fetch",
        settings.builder_image,
        ["python", "-m", "model_repo_builder", "fetch"],
        [
            "--spec-env",
            SPEC_ENV,
            "--inputs",
            INPUTS_MOUNT,
            "--repository",
            location,
            "--target",
            settings.build_target,
            "--platform",
            platform_json,
            "--no-relative-files",
            "--termination-message",
            TERMINATION_LOG,
        ],
        [
            {"name": "inputs", "mountPath": INPUTS_MOUNT},
            {"name": "tmp-fetch", "mountPath": SCRATCH_DIR},
            *(
                {"name": f"source-{i}", "mountPath": f"{storage_mod.PVC_SOURCES_MOUNT}/{claim}", "readOnly": True}
                for i, claim in enumerate(claims)
            ),
            *([read_repository[1]] if read_repository is not None else []),
        ],
    )
    fetch["env"].append({"name": SPEC_ENV, "value": spec_document(md_name, spec)})
    builder_args = [
        "--spec", f"{INPUTS_MOUNT}/{SPEC_FILE}", "--inputs", INPUTS_MOUNT, "--out", BUILT,
        "--target", settings.build_target, "--node-pool", pool.name, "--termination-message", TERMINATION_LOG,
    ]  # fmt: skip
    build = _container(
        "build",
        settings.builder_image,
        ["fulcrum", "build"],
        [*builder_args, "--no-profile"],  # the measure step measures, through the sidecar
        [inputs_ro, {"name": "out", "mountPath": OUT_MOUNT}, {"name": "tmp-build", "mountPath": SCRATCH_DIR}],
    )
    resources = gpu_resources(pool)
    if resources:
        build["resources"] = resources
    measure = _container(
        "measure",
        settings.builder_image,
        ["fulcrum", "build"],
        [*builder_args, "--triton-url", f"127.0.0.1:{TRITON_HTTP_PORT}", "--triton-repository", TRITON_MODELS],
        [
            inputs_ro,
            {"name": "out", "mountPath": OUT_MOUNT},
            {"name": "tmp-measure", "mountPath": SCRATCH_DIR},
            {"name": "triton-models", "mountPath": TRITON_MODELS},
        ],
    )
    init = [fetch, build, triton_sidecar(pool, serving_image, serving_resources), measure]
    form_args: list[str] = []
    form_mounts: list[Manifest] = []
    if upload_form:
        # optional: the operator creates it once the fetch step has reported the content key
        secret = {"secretName": upload_form, "optional": True, "defaultMode": 0o400}
        volumes.append({"name": "upload-form", "secret": secret})
        form_mounts.append({"name": "upload-form", "mountPath": UPLOAD_FORM_MOUNT, "readOnly": True})
        form_args = ["--upload-form", f"{UPLOAD_FORM_MOUNT}/{UPLOAD_FORM_FILE}"]
    publish = _container(
        "publish",
        settings.builder_image,
        ["python", "-m", "model_repo_builder", "publish"],
        [
            "--inputs",
            INPUTS_MOUNT,
            "--built",
            BUILT,
            "--repository",
            location,
            *form_args,
            "--termination-message",
            TERMINATION_LOG,
        ],
        [
            inputs_ro,
            {"name": "out", "mountPath": OUT_MOUNT, "readOnly": True},
            {"name": "tmp-publish", "mountPath": SCRATCH_DIR},
            *([repository[1]] if repository is not None else []),
            *form_mounts,
        ],
    )
    for container in (fetch, publish):
        variables, env_from = storage_mod.env(storage, credentials)
        container["env"] += variables
        if env_from:
            container["envFrom"] = env_from
    pod_labels = _build_labels(key, pool)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": labels.build_job_name(key),
            "namespace": namespace or settings.build_namespace,
            "labels": pod_labels,
            "annotations": {SERVING_IMAGE_ANNOTATION: serving_image},
        },
        "spec": {
            # a pod the infrastructure took away (preempted, evicted, its node drained) is simply replaced; other
            # pod failures (the store unreachable: the fetch step's exit 3) are retried; exit 2 from a step that
            # reads the spec or runs the model (it is unusable) is final
            "backoffLimit": settings.build_retries,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": step, "operator": "In", "values": [EXIT_UNUSABLE]},
                    }
                    for step in steps
                    if step != "publish"
                ]
                + [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}],
            },
            "ttlSecondsAfterFinished": settings.build_ttl_seconds,
            "activeDeadlineSeconds": settings.build_timeout_seconds,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(settings),
                    **scheduling(pool),
                    "initContainers": init,
                    "containers": [publish],
                    "volumes": volumes,
                },
            },
        },
    }


def upload_form_secret_name(job: Manifest) -> str | None:
    """The Secret a build Job's publish step reads its upload form from; None when it publishes without one."""
    for volume in job.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []:
        if volume.get("name") == "upload-form":
            return str(volume["secret"]["secretName"])
    return None


def upload_form_secret(key: str, job: Manifest, form: UploadForm) -> Manifest:
    """The Secret with a build Job's upload form, owned by the Job (it goes when the Job goes)."""
    meta = job["metadata"]
    name = upload_form_secret_name(job)
    assert name is not None, "the Job publishes without an upload form"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {
                labels.MANAGED_BY: labels.MANAGER,
                labels.COMPONENT: labels.COMPONENT_BUILD,
                labels.BUILD_KEY: key,
            },
            "annotations": {UPLOAD_FORM_PREFIX_ANNOTATION: form.prefix, UPLOAD_FORM_EXPIRES_ANNOTATION: form.expires},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "data": {UPLOAD_FORM_FILE: base64.b64encode(form.to_json().encode()).decode()},
    }


def build_record(key: str, pool: NodePool, result: dict[str, Any], settings: OperatorSettings) -> Manifest:
    """The ConfigMap caching a finished build's result (``result`` as the builder reported it)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": labels.build_record_name(key),
            "namespace": settings.build_namespace,
            "labels": {**_build_labels(key, pool), labels.COMPONENT: labels.COMPONENT_BUILD_RECORD},
        },
        "data": {RECORD_KEY: json.dumps(result, sort_keys=True, separators=(",", ":"))},
    }


def repository_cleanup_job(content_key: str, settings: OperatorSettings) -> Manifest | None:
    """A Job that removes one published repository (``<content key>/``) from the default storage when it is a
    claim or a node directory, which the operator does not mount; None for object storage, whose keys the operator
    deletes itself."""
    mounted = storage_mod.volume(settings.storage, read_only=False)
    if mounted is None:
        return None
    volume, mount = mounted
    job_labels = {
        labels.MANAGED_BY: labels.MANAGER,
        labels.COMPONENT: labels.COMPONENT_BUILD_CLEANUP,
        labels.BUILD_KEY: content_key,
    }
    path = f"{MODELS_MOUNT}/{content_key}"
    container: Manifest = {
        "name": "cleanup",
        "image": settings.builder_image,
        "command": ["python3", "-c", "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)", path],
        "volumeMounts": [mount],
        "securityContext": container_security_context(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": labels.dns_name("fulcrum-gc", content_key[:20]),
            "namespace": settings.build_namespace,
            "labels": job_labels,
        },
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 600,
            "activeDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(settings),
                    "containers": [container],
                    "volumes": [volume],
                },
            },
        },
    }
