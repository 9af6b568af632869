"""``fulcrum run``: the operator."""

from __future__ import annotations

import asyncio
import logging
import os

import click
import kopf

import fulcrum.handlers  # noqa: F401  (registers the handlers)
from fulcrum.resources.settings import OperatorSettings


@click.command(help="Run the operator (Kopf) against the current kubeconfig, cluster-wide or in given namespaces.")
@click.option("--namespace", "-n", "namespaces", multiple=True, help="Watch only these namespaces (repeatable).")
@click.option("--build-namespace", default=None, help="Namespace of build Jobs and build records.")
@click.option(
    "--repository",
    default=None,
    help="Default repository storage: s3://bucket/prefix (gs://...), pvc://<claim>, or hostpath:///dir "
    "(single-node clusters only).",
)
@click.option("--s3-endpoint", default=None, help="URL of an S3-compatible store (empty: AWS S3).")
@click.option("--s3-region", default=None, help="Region of the store (default us-east-1).")
@click.option(
    "--repository-secret",
    default=None,
    help="Secret (in the build namespace) with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for builds.",
)
@click.option(
    "--serving-secret",
    default=None,
    help="Secret of that name in each serving namespace with read-only keys for Triton pods' download.",
)
@click.option("--storage-image", default=None, help="Image of the serving pods' download step (the operator's).")
@click.option(
    "--retention-seconds",
    type=click.IntRange(min=0),
    default=None,
    help="Delete build records and repositories unused this long (0: never; default 7 days).",
)
@click.option("--triton-image", default=None, help="Default tritonserver image.")
@click.option("--builder-image", default=None, help="Image running `fulcrum build` in build Jobs.")
@click.option("--build-target", type=click.Choice(["triton", "local"]), default=None, help="Repository flavour.")
@click.option("--liveness", default="http://0.0.0.0:8080/healthz", show_default=True, help="Liveness endpoint.")
@click.option("--workers", type=int, default=4, show_default=True, help="Concurrent reconciliations.")
@click.option("--tick-seconds", type=float, default=15.0, show_default=True, help="Control loop interval.")
@click.option(
    "--metrics-source",
    default="scrape",
    show_default=True,
    help="Where Triton metrics come from: scrape (each ready pod) or prometheus=<url>.",
)
@click.option("--metrics-port", type=int, default=9090, show_default=True, help="Operator /metrics port (0: off).")
@click.option(
    "--metrics-address",
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
    type=click.Path(file_okay=False),
    default=None,
    help="tls.crt and tls.key for --metrics-secure (reloaded on change); default: a self-signed certificate.",
)
@click.option("--verbose", is_flag=True, help="Debug logging.")
def run(
    *,
    namespaces: tuple[str, ...],
    build_namespace: str | None,
    repository: str | None,
    s3_endpoint: str | None,
    s3_region: str | None,
    repository_secret: str | None,
    serving_secret: str | None,
    storage_image: str | None,
    retention_seconds: int | None,
    triton_image: str | None,
    builder_image: str | None,
    build_target: str | None,
    liveness: str,
    workers: int,
    tick_seconds: float,
    metrics_source: str,
    metrics_port: int,
    metrics_address: str,
    metrics_secure: bool,
    metrics_cert_dir: str | None,
    verbose: bool,
) -> None:
    for name, value in (
        ("FULCRUM_BUILD_NAMESPACE", build_namespace),
        ("FULCRUM_REPOSITORY", repository),
        ("FULCRUM_S3_ENDPOINT", s3_endpoint),
        ("FULCRUM_S3_REGION", s3_region),
        ("FULCRUM_REPOSITORY_SECRET", repository_secret),
        ("FULCRUM_SERVING_SECRET", serving_secret),
        ("FULCRUM_STORAGE_IMAGE", storage_image),
        ("FULCRUM_RETENTION_SECONDS", None if retention_seconds is None else str(retention_seconds)),
        ("FULCRUM_TRITON_IMAGE", triton_image),
        ("FULCRUM_BUILDER_IMAGE", builder_image),
        ("FULCRUM_BUILD_TARGET", build_target),
        ("FULCRUM_WORKERS", str(workers)),
        ("FULCRUM_TICK_SECONDS", str(tick_seconds)),
        ("FULCRUM_METRICS_SOURCE", metrics_source),
        ("FULCRUM_METRICS_PORT", str(metrics_port)),
        ("FULCRUM_METRICS_ADDRESS", metrics_address),
        ("FULCRUM_METRICS_SECURE", "1" if metrics_secure else None),
        ("FULCRUM_METRICS_CERT_DIR", metrics_cert_dir),
    ):
        if value is not None:
            os.environ[name] = value
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not verbose:  # Kopf logs every handler call at INFO: keep the operator's own log readable
        for name in ("kopf.objects", "kopf.activities", "kopf._core"):
            logging.getLogger(name).setLevel(logging.WARNING)
    watched = list(namespaces)
    if watched:
        # build Jobs and records live in the build namespace: watching it is how builds are seen to finish
        build_ns = os.environ.get("FULCRUM_BUILD_NAMESPACE") or OperatorSettings().build_namespace
        watched += [] if build_ns in watched else [build_ns]
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not watched,
            namespaces=watched,
            liveness_endpoint=liveness,
        )
    )
