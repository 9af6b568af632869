"""The dev cluster's Prometheus: its configuration is valid for the real promtool and labels Triton series."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from fulcrum.dev import build, components, prometheus
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.paths import DevHome


def promtool() -> Path:
    bin_dir = build.find_bin_dir()
    assert bin_dir is not None, "run `fulcrum dev build` (scripts/setup does) first"
    return bin_dir / "promtool"


def test_config_passes_promtool(tmp_path: Path) -> None:
    home = DevHome(tmp_path)
    home.ensure()
    home.kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    cfg = ClusterConfig(port_base=30000)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(prometheus.config(home, cfg)))
    result = subprocess.run([promtool(), "check", "config", path], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_triton_series_get_the_model_deployment_label() -> None:
    config = prometheus.config(DevHome(Path("/h")), ClusterConfig())
    triton = next(j for j in config["scrape_configs"] if j["job_name"] == prometheus.TRITON_JOB)
    targets = {r.get("target_label"): r["source_labels"] for r in triton["relabel_configs"]}
    assert targets["model_deployment"] == ["__meta_kubernetes_pod_label_fulcrum_dev_model_deployment"]
    assert targets["namespace"] == ["__meta_kubernetes_namespace"]
    assert targets["pod"] == ["__meta_kubernetes_pod_name"]
    # the operator's own series carry namespace and model_deployment: they must win over the target's
    operators = [j for j in config["scrape_configs"] if j["job_name"] != prometheus.TRITON_JOB]
    assert operators and all(j["honor_labels"] for j in operators)


def test_listens_on_loopback_and_on_the_host_address_pods_reach() -> None:
    with_pods = ClusterConfig(port_base=30000, subnet_index=7)
    assert prometheus.listen_addresses(with_pods) == ["127.0.0.1:30007", "10.243.7.1:30007"]
    assert prometheus.in_cluster_url(with_pods) == "http://10.243.7.1:30007"
    argv = prometheus.component(Path("/bin"), DevHome(Path("/h")), with_pods).argv
    assert "--web.listen-address=10.243.7.1:30007" in argv
    assert isinstance(prometheus.component(Path("/bin"), DevHome(Path("/h")), with_pods), components.Component)


def test_host_targets_are_written_whole(tmp_path: Path) -> None:
    home = DevHome(tmp_path)
    path = prometheus.register_host_target(home, "operator", "127.0.0.1:9999", {"role": "test"})
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:9999"], "labels": {"instance": "operator", "role": "test"}}
    ]
    assert list(prometheus.targets_dir(home).iterdir()) == [path]
    prometheus.unregister_host_target(home, "operator")
    prometheus.unregister_host_target(home, "operator")
    assert not path.exists()
