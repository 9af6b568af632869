"""Pure parts of `fulcrum dev`: pools, ports, node manifests, build keys, certificates, kubeconfig."""

from __future__ import annotations

import ipaddress

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fulcrum.dev import build, certs, kubeconfig, nodes
from fulcrum.dev.config import DEFAULT_POOLS, ClusterConfig, Pool, Ports, parse_pool, parse_pools


def test_parse_pool_forms() -> None:
    assert parse_pool("l4=4x4") == Pool("l4", 4, 4)
    assert parse_pool("cpu=2") == Pool("cpu", 2, 0)


@pytest.mark.parametrize("bad", ["l4", "L4=1", "l4=x4", "local=1", "a=1x"])
def test_parse_pool_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="pool"):
        parse_pool(bad)


def test_parse_pools_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        parse_pools(["a=1", "a=2"])


def test_ports_from_base_are_distinct() -> None:
    ports = Ports.from_base(30000)
    assert len(set(ports.all())) == len(ports.all()) == 8
    with pytest.raises(ValueError):
        Ports.from_base(80)


def test_config_json_round_trip_and_addresses() -> None:
    cfg = ClusterConfig(port_base=31000, pools=(Pool("x", 1, 2),), subnet_index=7)
    assert ClusterConfig.from_json(cfg.to_json()) == cfg
    assert cfg.link == "fdev7"
    assert cfg.host_address == "10.243.7.1"
    assert cfg.node_address == "10.243.7.2"
    assert cfg.pod_subnet == ipaddress.IPv4Network("10.244.7.0/24")
    assert str(cfg.gateway) == "10.244.7.1"
    # a cluster.json of the node agent's days (netns, local_gpus, ...) still loads
    assert ClusterConfig.from_json('{"subnet_index": 3, "netns": true, "local_gpus": 0}').subnet_index == 3
    with pytest.raises(ValueError, match="subnet index"):
        ClusterConfig(subnet_index=255)


def test_default_pools_make_gpu_nodes_tainted_and_labelled() -> None:
    manifests = nodes.kwok_nodes(ClusterConfig(pools=DEFAULT_POOLS))
    assert len(manifests) == 8
    by_name = {m["metadata"]["name"]: m for m in manifests}
    l4 = by_name["kwok-l4-0"]
    assert l4["metadata"]["labels"]["fulcrum.dev/pool"] == "l4"
    assert l4["metadata"]["labels"]["type"] == "kwok"
    assert l4["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert l4["spec"]["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    assert by_name["kwok-a100-1"]["status"]["capacity"]["nvidia.com/gpu"] == "8"
    cpu = by_name["kwok-cpu-0"]
    assert "taints" not in cpu["spec"]
    assert "nvidia.com/gpu" not in cpu["status"]["allocatable"]


GO_MOD = """module x

require (
\tk8s.io/kubernetes v1.32.13
\tsigs.k8s.io/kwok v0.6.1 // indirect
)

replace (
\tk8s.io/api => k8s.io/api v0.32.13
)
"""


def test_module_versions_and_key() -> None:
    versions = build.module_versions(GO_MOD)
    assert versions["k8s.io/kubernetes"] == "v1.32.13"
    assert versions["sigs.k8s.io/kwok"] == "v0.6.1"
    assert versions["k8s.io/api"] == "v0.32.13"
    key = build.version_key({"go.mod": GO_MOD, "go.sum": "a"})
    assert key.startswith("k8s-v1.32.13-")
    assert key != build.version_key({"go.mod": GO_MOD, "go.sum": "b"})
    assert key == build.version_key({"go.sum": "a", "go.mod": GO_MOD})


def test_binaries_carry_the_release_version() -> None:
    bins = {b.name: b for b in build.binaries(build.module_versions(GO_MOD))}
    assert set(bins) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
        "pause",
        "kwok",
        "helm",
        "prometheus",
        "promtool",
        "weed",
    }
    for name in ("kube-apiserver", "kubelet", "kube-proxy", "kubectl"):
        assert "-X k8s.io/component-base/version.gitVersion=v1.32.13" in bins[name].ldflags
    assert bins["helm"].module_dir == "helm"
    helm = {b.name: b for b in build.binaries(build.module_versions(GO_MOD), "v0.32.2")}["helm"]
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=32" in helm.ldflags
    assert "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" in helm.ldflags
    assert bins["kwok"].module_dir == "kwok"
    assert bins["weed"].module_dir == "seaweedfs"
    assert bins["prometheus"].module_dir == bins["promtool"].module_dir == "prometheus"
    assert bins["prometheus"].tags == ("remove_all_sd", "enable_kubernetes_sd")  # only Kubernetes discovery


def test_prometheus_reports_its_release_not_the_go_module_version() -> None:
    assert "-X github.com/prometheus/common/version.Version=3.15.1" in build.prometheus_flags("v0.315.1")
    assert "-X github.com/prometheus/common/version.Version=3.5.0" in build.prometheus_flags("v0.305.0")


def test_committed_pin_is_one_release() -> None:
    plan = build.plan()
    assert plan.key.startswith("k8s-v1.32.")
    assert plan.bin_dir.parent.name == "bin"


def test_the_key_covers_the_go_sources(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "go.mod").write_text(GO_MOD)
    (tmp_path / "go.sum").write_text("")
    (tmp_path / "pause").mkdir()
    (tmp_path / "pause" / "main.go").write_text("package main\n")
    first = build.plan(tmp_path).key
    (tmp_path / "pause" / "main.go").write_text("package main // changed\n")
    assert build.plan(tmp_path).key != first


def test_certificates_chain_and_usages() -> None:
    ca = certs.make_ca()
    server = certs.issue(ca, "kube-apiserver", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)
    client = certs.issue(ca, "system:node:local-0", organizations=("system:nodes",), client=True)
    for pair in (server, client):
        pair.cert.verify_directly_issued_by(ca.cert)
    san = server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    eku = client.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    with pytest.raises(ValueError):
        certs.issue(ca, "x")


def test_write_pki_is_idempotent_and_repairs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert "apiserver" in certs.write_pki(tmp_path, apiserver_ips=("127.0.0.1",), kubelet_ips=("127.0.0.1",))
    first = (tmp_path / "ca.crt").read_bytes()
    assert certs.write_pki(tmp_path, apiserver_ips=("127.0.0.1",), kubelet_ips=("127.0.0.1",)) == []
    assert (tmp_path / "ca.crt").read_bytes() == first
    (tmp_path / "scheduler.crt").unlink()
    again = certs.write_pki(tmp_path, apiserver_ips=("127.0.0.1", "10.0.0.1"), kubelet_ips=("127.0.0.1",))
    assert sorted(again) == ["apiserver", "scheduler"]
    assert (tmp_path / "ca.crt").read_bytes() == first
    server = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    server.verify_directly_issued_by(certs.load_ca(tmp_path).cert)
    assert (tmp_path / "sa.key").stat().st_mode & 0o077 == 0
    doc = yaml.safe_load(kubeconfig.render_from_pki("https://127.0.0.1:1", tmp_path, "admin"))
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"
    assert doc["current-context"] == kubeconfig.CONTEXT
