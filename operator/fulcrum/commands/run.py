"""``fulcrum run``: the operator."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import click

from fulcrum.controller.cache import ObjectCache
from fulcrum.controller.control import ControlLoop
from fulcrum.controller.kube import KubeClient
from fulcrum.controller.leader import LeaderElectionConfig
from fulcrum.controller.manager import Manager, ManagerOptions
from fulcrum.controller.reconciler import Reconciler
from fulcrum.controller.uploads import UploadSigner
from fulcrum.metrics.sources import source_from_spec
from fulcrum.resources.settings import OperatorSettings, RepositoryStorage


def _identity() -> str:
    """``<hostname>_<uuid>``, as client-go's leader election names a candidate (the pod name in a cluster)."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@click.command(help="Run the operator against the current kubeconfig (or in-cluster), cluster-wide or in namespaces.")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Serve only these namespaces (repeatable).")
@click.option(
    "--build-namespace",
    envvar="FULCRUM_BUILD_NAMESPACE",
    default=OperatorSettings().build_namespace,
    show_default=True,
    help="Namespace of build Jobs and build records.",
)
@click.option(
    "--repository",
    envvar="FULCRUM_REPOSITORY",
    default=None,
    help="Default repository storage: s3://bucket/prefix (gs://...), pvc://<claim>, or hostpath:///dir "
    "(single-node clusters only).",
)
@click.option(
    "--s3-endpoint", envvar="FULCRUM_S3_ENDPOINT", default=None, help="URL of an S3-compatible store (empty: AWS S3)."
)
@click.option("--s3-region", envvar="FULCRUM_S3_REGION", default=None, help="Region of the store (default us-east-1).")
@click.option(
    "--repository-secret",
    envvar="FULCRUM_REPOSITORY_SECRET",
    default=None,
    help="Secret (in the build namespace) with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for builds.",
)
@click.option(
    "--serving-secret",
    envvar="FULCRUM_SERVING_SECRET",
    default=None,
    help="Secret of that name in each serving namespace with read-only keys for Triton pods' download.",
)
@click.option(
    "--storage-image",
    envvar="FULCRUM_STORAGE_IMAGE",
    default=None,
    help="Image of the serving pods' download step (the operator's).",
)
@click.option("--triton-image", envvar="FULCRUM_TRITON_IMAGE", default=None, help="Default tritonserver image.")
@click.option(
    "--builder-image", envvar="FULCRUM_BUILDER_IMAGE", default=None, help="Image running `fulcrum build` in build Jobs."
)
@click.option(
    "--build-target",
    envvar="FULCRUM_BUILD_TARGET",
    type=click.Choice(["triton", "local"]),
    default="triton",
    show_default=True,
    help="Repository flavour.",
)
@click.option(
    "--build-retention-days",
    envvar="FULCRUM_BUILD_RETENTION_DAYS",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="Delete a build record and its repository once no ModelDeployment has used it for this long (0: never).",
)
@click.option(
    "--gc-interval-seconds",
    envvar="FULCRUM_GC_INTERVAL_SECONDS",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="How often the leader looks for unused build records and repositories.",
)
@click.option(
    "--liveness",
    default="http://0.0.0.0:8080/healthz",
    show_default=True,
    help="Liveness endpoint; /readyz on the same port answers 200 once the cache has synced.",
)
@click.option("--workers", envvar="FULCRUM_WORKERS", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--tick-seconds",
    envvar="FULCRUM_TICK_SECONDS",
    type=click.FloatRange(min=0.5),
    default=15.0,
    show_default=True,
    help="Control loop interval.",
)
@click.option(
    "--metrics-source",
    envvar="FULCRUM_METRICS_SOURCE",
    default="scrape",
    show_default=True,
    help="Where Triton metrics come from: scrape (each ready pod) or prometheus=<url>.",
)
@click.option(
    "--metrics-window-seconds",
    envvar="FULCRUM_METRICS_WINDOW_SECONDS",
    type=click.FloatRange(min=1.0),
    default=None,
    help="The rate window: 15 s when scraping (or the last tick when ticks are further apart), 30 s with Prometheus "
    "(its rate() range, which must hold two of its scrapes).",
)
@click.option(
    "--metrics-port",
    envvar="FULCRUM_METRICS_PORT",
    type=int,
    default=9090,
    show_default=True,
    help="Operator /metrics port (0: off).",
)
@click.option(
    "--metrics-address",
    envvar="FULCRUM_METRICS_ADDRESS",
    default="0.0.0.0",  # noqa: S104 - in a pod: the pod's own network
    show_default=True,
    help="Address /metrics listens on (127.0.0.1 for an operator outside the cluster).",
)
@click.option(
    "--metrics-secure",
    is_flag=True,
    help="Serve /metrics over HTTPS, only to clients whose token may `get` /metrics (TokenReview + "
    "SubjectAccessReview).",
)
@click.option(
    "--metrics-cert-dir",
    envvar="FULCRUM_METRICS_CERT_DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="tls.crt and tls.key for --metrics-secure (reloaded on change); default: a self-signed certificate.",
)
@click.option(
    "--leader-elect/--no-leader-elect",
    default=True,
    show_default=True,
    help="Lead through a coordination.k8s.io Lease before reconciling (run several replicas, one acts).",
)
@click.option(
    "--leader-elect-resource-namespace",
    envvar="POD_NAMESPACE",
    default=None,
    help="Namespace of the Lease (default: the pod's namespace, else the build namespace).",
)
@click.option("--leader-elect-resource-name", default="fulcrum-operator", show_default=True, help="Name of the Lease.")
@click.option(
    "--leader-elect-lease-duration",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    help="Seconds a standby waits, from the last change of the Lease it saw, before taking it over.",
)
@click.option(
    "--leader-elect-renew-deadline",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds the leader keeps trying to renew before it stops acting.",
)
@click.option(
    "--leader-elect-retry-period",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    help="Seconds between two attempts to take or renew the Lease.",
)
@click.option("--verbose", is_flag=True, help="Debug logging.")
def run(
    *,
    namespaces: tuple[str, ...],
    build_namespace: str,
    repository: str | None,
    s3_endpoint: str | None,
    s3_region: str | None,
    repository_secret: str | None,
    serving_secret: str | None,
    storage_image: str | None,
    triton_image: str | None,
    builder_image: str | None,
    build_target: str,
    build_retention_days: float,
    gc_interval_seconds: float,
    liveness: str,
    workers: int,
    tick_seconds: float,
    metrics_source: str,
    metrics_window_seconds: float | None,
    metrics_port: int,
    metrics_address: str,
    metrics_secure: bool,
    metrics_cert_dir: str | None,
    leader_elect: bool,
    leader_elect_resource_namespace: str | None,
    leader_elect_resource_name: str,
    leader_elect_lease_duration: float,
    leader_elect_renew_deadline: float,
    leader_elect_retry_period: float,
    verbose: bool,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    defaults = OperatorSettings()
    settings = OperatorSettings(
        build_namespace=build_namespace,
        storage=defaults.storage,
        triton_image=triton_image or defaults.triton_image,
        builder_image=builder_image or defaults.builder_image,
        storage_image=storage_image or defaults.storage_image,
        build_target="local" if build_target == "local" else "triton",
    )
    try:
        if repository:
            settings = replace(
                settings,
                storage=RepositoryStorage.parse(
                    repository,
                    endpoint=s3_endpoint or None,
                    region=s3_region or None,
                    secret=repository_secret or None,
                    serving_secret=serving_secret or None,
                ),
            )
        election = (
            LeaderElectionConfig(
                namespace=leader_elect_resource_namespace or build_namespace,
                identity=_identity(),
                name=leader_elect_resource_name,
                lease_duration=leader_elect_lease_duration,
                renew_deadline=leader_elect_renew_deadline,
                retry_period=leader_elect_retry_period,
            )
            if leader_elect
            else None
        )
        metrics = source_from_spec(metrics_source, metrics_window_seconds)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = ManagerOptions(
        namespaces=namespaces,
        workers=workers,
        health=liveness,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        metrics_secure=metrics_secure,
        metrics_cert_dir=Path(metrics_cert_dir) if metrics_cert_dir else None,
        build_retention_seconds=build_retention_days * 86400.0,
        gc_seconds=gc_interval_seconds,
        leader_election=election,
    )

    async def main() -> int:
        kube = KubeClient.from_environment(os.environ.get("KUBECONFIG"))
        reconciler = Reconciler(
            kube, ObjectCache(), settings, control=ControlLoop(tick_seconds=tick_seconds), metrics=metrics,
            signer=UploadSigner.from_environment(settings),
        )  # fmt: skip
        logging.getLogger("fulcrum").info(
            "fulcrum operator starting: %s; leader election %s", settings, election or "off"
        )
        if settings.storage.kind == "hostPath":
            logging.getLogger("fulcrum").warning(
                "repository storage is hostPath %s: builds and Triton pods must run on the same node, so this works "
                "on single-node clusters only; use s3://bucket/prefix or a ReadWriteMany claim (pvc://) elsewhere",
                settings.storage.location,
            )
        return await Manager(reconciler, options).run()

    sys.exit(asyncio.run(main()))
