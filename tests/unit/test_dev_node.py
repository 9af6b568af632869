"""Pure parts of the dev cluster's real node and images: configuration files, content keys, requirements."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from fulcrum.dev import images, node
from fulcrum.dev.config import ClusterConfig
from fulcrum.dev.node import NodePaths
from fulcrum.dev.paths import DevHome

ROOT = Path(__file__).resolve().parents[2]
CFG = ClusterConfig(port_base=30000, subnet_index=9)
HOME = DevHome(Path("/tmp/fulcrum-home"))
PATHS = NodePaths.of(HOME)


def test_containerd_keeps_everything_under_the_node_and_has_the_two_settings_this_vm_needs() -> None:
    config = tomllib.loads(node.containerd_toml(PATHS, "localhost:5000/pause:abc"))
    assert config["root"].startswith(str(PATHS.root)) and config["state"].startswith(str(PATHS.root))
    assert config["grpc"]["address"] == str(PATHS.containerd_socket)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # negative oom_score_adj is refused here
    assert cri["sandbox_image"] == "localhost:5000/pause:abc"  # nothing can be pulled from the internet
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["cni"]["conf_dir"] == str(PATHS.cni_config)
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc["Root"].startswith(str(PATHS.root))
    assert cri["registry"]["config_path"] == str(PATHS.registry_hosts)
    hosts = tomllib.loads(node.registry_hosts_toml())
    assert hosts["server"] == "http://localhost:5000"


def test_pod_network_is_the_clusters_own_subnet_routed_not_masqueraded() -> None:
    conflist = json.loads(node.cni_conflist(CFG, PATHS))
    bridge = conflist["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["isGateway"] and not bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.9.0/24", "gateway": "10.244.9.1"}]]
    assert bridge["ipam"]["dataDir"].startswith(str(PATHS.root))


def test_kubelet_and_kube_proxy_listen_on_the_node_and_keep_to_its_cgroup() -> None:
    kubelet = yaml.safe_load(node.kubelet_config(CFG, HOME, PATHS))
    assert kubelet["address"] == CFG.node_address == "10.243.9.2"
    assert kubelet["cgroupDriver"] == "cgroupfs" and kubelet["failSwapOn"] is False
    assert kubelet["cgroupRoot"] == node.cgroup_root(CFG) == "/fulcrum-dev-9"
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["authorization"]["mode"] == "Webhook"
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{PATHS.containerd_socket}"
    assert kubelet["podLogsDir"].startswith(str(PATHS.root))
    proxy = yaml.safe_load(node.kube_proxy_config(CFG, Path("/k")))
    assert proxy["mode"] == "iptables" and proxy["clusterCIDR"] == "10.244.9.0/24"
    assert proxy["conntrack"]["maxPerCore"] == 0  # the conntrack table size is machine-wide: left alone
    argv = node.kubelet_argv(Path("/bin"), CFG, HOME, PATHS)
    assert "--node-ip=10.243.9.2" in argv and "--node-labels=fulcrum.dev/pool=local" in argv
    assert f"--root-dir={PATHS.kubelet_root}" in argv


def test_the_nodes_registry_serves_the_machines_store_read_only_on_its_loopback() -> None:
    config = json.loads(node.registry_config())
    assert config["http"]["addr"] == "127.0.0.1:5000"
    assert config["storage"]["maintenance"]["readonly"]["enabled"] is True
    assert config["storage"]["filesystem"]["rootdirectory"] == str(images.registry_store())
    writer = json.loads(images.registry_config(Path("/s"), "127.0.0.1:1", read_only=False))
    assert "readonly" not in writer["storage"]["maintenance"]


def test_image_keys_follow_their_inputs_and_nothing_else(tmp_path: Path) -> None:
    for rel in ("images/fulcrum/Containerfile", "pyproject.toml", "operator/fulcrum/x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v1")
    recipe = images.Recipe("fulcrum", ("pyproject.toml", "operator"))
    key = images.recipe_key(recipe, tmp_path, "base")
    (tmp_path / "operator" / "fulcrum" / "__pycache__").mkdir()
    (tmp_path / "operator" / "fulcrum" / "__pycache__" / "x.cpython-311.pyc").write_text("cache")
    (tmp_path / "README.md").write_text("not an input")
    assert images.recipe_key(recipe, tmp_path, "base") == key
    assert images.recipe_key(recipe, tmp_path, "other-base") != key
    (tmp_path / "operator" / "fulcrum" / "x.py").write_text("v2")
    assert images.recipe_key(recipe, tmp_path, "base") != key
    (tmp_path / "operator" / "fulcrum" / "x.py").write_text("v1")
    (tmp_path / "images" / "fulcrum" / "Containerfile").write_text("v2")
    assert images.recipe_key(recipe, tmp_path, "base") != key
    assert images.image_ref("fulcrum", key) == f"localhost:5000/fulcrum:{key}"


def test_no_image_copies_the_docs() -> None:
    """A change to README.md or docs/ (CI figures, say) must not rebuild images: no recipe hashes them or copies
    them (pip gets a stub readme inside the build)."""
    for recipe in images.RECIPES:
        assert not any(i.endswith(".md") or i.startswith("docs") for i in recipe.inputs), recipe
        text = (ROOT / "images" / recipe.name / "Containerfile").read_text()
        copied = [line.split()[1:-1] for line in text.splitlines() if line.startswith(("COPY", "ADD"))]
        assert not any(s.endswith(".md") or s.startswith("docs") for sources in copied for s in sources), copied


def test_every_recipe_has_a_containerfile_with_a_base_argument() -> None:
    for recipe in images.RECIPES:
        text = (ROOT / "images" / recipe.name / "Containerfile").read_text()
        assert "ARG BASE=python:3.11-slim-bookworm" in text and "FROM ${BASE}" in text
        assert "USER 65532:65532" in text
        images.input_files(ROOT, recipe.inputs)  # every input exists


@pytest.mark.parametrize(
    ("text", "size"), [("184 MB", 184_000_000), ("1.44 MB", 1_440_000), ("5.2 GB", 5_200_000_000), ("12 kB", 12_000)]
)
def test_parse_size(text: str, size: int) -> None:
    assert images.parse_size(text) == size


def _requirements(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "images" / "requirements.py"), str(ROOT / "pyproject.toml"), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_requirements_come_from_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements() == project["dependencies"]
    builder = _requirements("builder", "local")
    assert any(r.startswith("torch") for r in builder) and any(r.startswith("nvidia-pytriton") for r in builder)
    only = _requirements("--only", "nvidia-pytriton", "onnxruntime", "numpy")
    assert sorted(r.split(">")[0].split("=")[0] for r in only) == ["numpy", "nvidia-pytriton", "onnxruntime"]
    assert not any(r.startswith("torch") for r in _requirements())  # the operator image has no torch


def test_chart_values_for_the_dev_cluster() -> None:
    from fulcrum.dev import chart_values, objectstore

    built = {
        name: images.BuiltImage(name, "k" + name[:3], images.image_ref(name, "k" + name[:3]), 1, 1, 1.0)
        for name in ("fulcrum", "fulcrum-builder", "tritonserver-cpu")
    }
    keys = {who: objectstore.AccessKey(f"{who.upper()}KEY", f"{who}-secret") for who in ("admin", "writer", "reader")}
    store = objectstore.ObjectStoreConfig(
        "10.243.7.1", {"s3": 20008}, admin=keys["admin"], writer=keys["writer"], reader=keys["reader"]
    )
    values = chart_values.merged(
        chart_values.image_values(built),
        objectstore.chart_values(store),
        chart_values.node_values(),
        {"build": {"namespace": "b"}},
    )
    assert values["image"] == {"repository": "localhost:5000/fulcrum", "tag": "kful"}
    assert values["build"] == {"image": "localhost:5000/fulcrum-builder:kful", "target": "local", "namespace": "b"}
    assert values["triton"]["image"] == "localhost:5000/tritonserver-cpu:ktri"
    # the chart's default storage (s3), in the cluster's object store at the address pods and host processes reach
    s3 = values["repository"]["s3"]
    assert values["repository"]["kind"] == "s3" and s3["endpoint"] == "http://10.243.7.1:20008"
    assert (s3["accessKeyId"], s3["secretAccessKey"]) == ("WRITERKEY", "writer-secret")  # never the admin's
    assert s3["servingSecretName"] == objectstore.SERVING_SECRET
    assert values["nodeSelector"] == {"fulcrum.dev/pool": "local"}
