"""The dev cluster's Prometheus: what Fulcrum's ``prometheus=<url>`` metrics source, alerts and reports read.

Built from ``github.com/prometheus/prometheus`` (``hack/devcluster/prometheus``) with only Kubernetes service
discovery compiled in. It discovers through the API server (the admin kubeconfig) and scrapes:

- ``triton``: every Fulcrum Triton pod's ``metrics`` port; series carry ``namespace``, ``pod``,
  ``model_deployment`` (from the pod label ``fulcrum.dev/model-deployment``), ``tier`` and ``node_pool``;
- ``fulcrum-operator``: the operator's metrics Service when the chart runs it in the cluster;
- ``fulcrum-operator-host``: operators running as host processes (tests, the quickstart), listed as files
  under ``<home>/prometheus/targets/`` (:func:`register_host_target`).

Both operator jobs keep the labels the operator exports (``honor_labels``): its per-ModelDeployment series
carry their own ``namespace``, which must not become the operator pod's.

The configuration is pure (:func:`config`) so a unit test can check it with ``promtool check config``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from fulcrum.dev.components import Component
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.paths import DevHome

NAME = "prometheus"
SCRAPE_INTERVAL = "5s"  # the operator's tick in tests and the quickstart; its rate()[30s] sees 6 samples
RETENTION = "2d"
TRITON_JOB = "triton"
OPERATOR_JOB = "fulcrum-operator"
HOST_OPERATOR_JOB = "fulcrum-operator-host"

# Meta labels of a pod's labels: Prometheus turns every character outside [a-zA-Z0-9_] into "_".
POD_LABEL = "__meta_kubernetes_pod_label_"

# The relabeling of Triton pods: shared with the chart's PodMonitor (a unit test holds them equal).
TRITON_RELABELING: tuple[dict[str, Any], ...] = (
    {
        "source_labels": [f"{POD_LABEL}app_kubernetes_io_managed_by", f"{POD_LABEL}app_kubernetes_io_component"],
        "regex": "fulcrum;triton-server",
        "action": "keep",
    },
    {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "metrics", "action": "keep"},
    {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed", "action": "drop"},
    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    {"source_labels": [f"{POD_LABEL}fulcrum_dev_model_deployment"], "target_label": "model_deployment"},
    {"source_labels": [f"{POD_LABEL}fulcrum_dev_tier"], "target_label": "tier"},
    {"source_labels": [f"{POD_LABEL}fulcrum_dev_node_pool"], "target_label": "node_pool"},
)


class PrometheusError(RuntimeError):
    pass


def root(home: DevHome) -> Path:
    return home.root / NAME


def config_file(home: DevHome) -> Path:
    return root(home) / "prometheus.yml"


def targets_dir(home: DevHome) -> Path:
    return root(home) / "targets"


def rules_dir(home: DevHome) -> Path:
    """Rule files here (``*.yaml``) are loaded at start: e.g. the chart's alerts, to try them locally."""
    return root(home) / "rules"


def data_dir(home: DevHome) -> Path:
    return root(home) / "data"


def listen_addresses(cfg: ClusterConfig) -> list[str]:
    """Loopback for host processes, and the cluster's host address (which pods on the node reach)."""
    port = cfg.ports.prometheus
    return [f"{address}:{port}" for address in dict.fromkeys(["127.0.0.1", cfg.host_address])]


def url(cfg: ClusterConfig) -> str:
    """Where host processes reach it."""
    return f"http://127.0.0.1:{cfg.ports.prometheus}"


def in_cluster_url(cfg: ClusterConfig) -> str:
    """Where pods reach it: the cluster's host address."""
    return f"http://{cfg.host_address}:{cfg.ports.prometheus}"


def config(home: DevHome, cfg: ClusterConfig) -> dict[str, Any]:
    """``prometheus.yml`` of the dev cluster (pure)."""
    sd = {"kubeconfig_file": str(home.kubeconfig)}
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "4s",
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"cluster": "fulcrum-dev"},
        },
        "rule_files": [str(rules_dir(home) / "*.yaml")],
        "scrape_configs": [
            {
                "job_name": TRITON_JOB,
                "kubernetes_sd_configs": [{"role": "pod", **sd}],
                "relabel_configs": [dict(rule) for rule in TRITON_RELABELING],
            },
            {
                "job_name": OPERATOR_JOB,
                "honor_labels": True,
                "kubernetes_sd_configs": [{"role": "endpointslice", **sd}],
                "relabel_configs": [
                    {
                        "source_labels": [
                            "__meta_kubernetes_service_label_app_kubernetes_io_part_of",
                            "__meta_kubernetes_service_label_app_kubernetes_io_component",
                            "__meta_kubernetes_endpointslice_port_name",
                        ],
                        "regex": "fulcrum;metrics;metrics",
                        "action": "keep",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            },
            {
                "job_name": HOST_OPERATOR_JOB,
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(targets_dir(home) / "*.json")], "refresh_interval": "5s"}],
            },
        ],
    }


def component(bin_dir: Path, home: DevHome, cfg: ClusterConfig) -> Component:
    argv = [
        str(bin_dir / NAME),
        f"--config.file={config_file(home)}",
        f"--storage.tsdb.path={data_dir(home)}",
        f"--storage.tsdb.retention.time={RETENTION}",
        *(f"--web.listen-address={address}" for address in listen_addresses(cfg)),
        "--web.enable-lifecycle",  # POST /-/reload after a rule file changes
        "--log.level=warn",
    ]
    return Component(NAME, argv, 70)


def prepare(home: DevHome, cfg: ClusterConfig) -> None:
    """Write the configuration (``up`` has created the node's link, whose host end holds the host address)."""
    for path in (root(home), targets_dir(home), rules_dir(home), data_dir(home)):
        path.mkdir(parents=True, exist_ok=True)
    config_file(home).write_text(yaml.safe_dump(config(home, cfg), sort_keys=False))


def ready(cfg: ClusterConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{url(cfg)}/-/ready", timeout=2) as response:  # noqa: S310 - our loopback URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(cfg: ClusterConfig, timeout: float, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready(cfg):
            return
        if alive is not None and not alive():
            raise PrometheusError("prometheus exited while starting")
        time.sleep(0.3)
    raise PrometheusError(f"prometheus not ready at {url(cfg)} after {timeout:.0f}s")


def register_host_target(home: DevHome, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
    """Have Prometheus scrape ``http://<address>/metrics`` of a host process (picked up within seconds)."""
    targets_dir(home).mkdir(parents=True, exist_ok=True)
    path = targets_dir(home) / f"{name}.json"
    partial = path.with_suffix(".partial")  # not *.json: Prometheus must never read half a file
    partial.write_text(json.dumps([{"targets": [address], "labels": {"instance": name, **(labels or {})}}]))
    partial.replace(path)
    return path


def unregister_host_target(home: DevHome, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (targets_dir(home) / f"{name}.json").unlink()


def clean(home: DevHome) -> None:
    """Forget the stored series and host targets (``fulcrum dev down`` without ``--keep-data``)."""
    for path in (data_dir(home), targets_dir(home)):
        shutil.rmtree(path, ignore_errors=True)
