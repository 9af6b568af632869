"""Command lines of the control-plane processes and kwok. Pure: paths in, argv out (the node: fulcrum.dev.node)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fulcrum.dev.config import SERVICE_CIDR, ClusterConfig
from fulcrum.dev.paths import DevHome

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_LABEL = "type=kwok"  # kwok manages the nodes that carry it; local-0 does not


@dataclass(frozen=True)
class Component:
    """A process ``up`` starts; ``order`` is the start order, ``down`` stops in reverse."""

    name: str
    argv: list[str]
    order: int


def etcd(bin_dir: Path, home: DevHome, cfg: ClusterConfig) -> Component:
    pki, ports = home.pki, cfg.ports
    client = f"https://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return Component(
        "etcd",
        [
            str(bin_dir / "etcd"),
            "--name=fulcrum-dev",
            f"--data-dir={home.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=fulcrum-dev={peer}",
            f"--cert-file={pki / 'etcd-server.crt'}",
            f"--key-file={pki / 'etcd-server.key'}",
            f"--trusted-ca-file={pki / 'ca.crt'}",
            "--client-cert-auth=true",
            "--unsafe-no-fsync=true",  # a throw-away dev store: speed over durability
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ],
        10,
    )


def apiserver(bin_dir: Path, home: DevHome, cfg: ClusterConfig) -> Component:
    pki, ports = home.pki, cfg.ports
    return Component(
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=https://127.0.0.1:{ports.etcd_client}",
            f"--etcd-cafile={pki / 'ca.crt'}",
            f"--etcd-certfile={pki / 'etcd-client.crt'}",
            f"--etcd-keyfile={pki / 'etcd-client.key'}",
            # the host's end of the node's link: host processes and (through the `kubernetes` Service) pods
            f"--bind-address={cfg.host_address}",
            f"--advertise-address={cfg.host_address}",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={home.component_config / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            # front-proxy (aggregated APIs): without it every component complains about a missing CA bundle
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ],
        20,
    )


def controller_manager(bin_dir: Path, home: DevHome, cfg: ClusterConfig) -> Component:
    pki, kubeconfig = home.pki, home.component_config / "controller-manager.kubeconfig"
    return Component(
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cfg.ports.controller_manager}",
            f"--cert-dir={home.component_config / 'controller-manager-certs'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        30,
    )


def scheduler(bin_dir: Path, home: DevHome, cfg: ClusterConfig) -> Component:
    kubeconfig = home.component_config / "scheduler.kubeconfig"
    return Component(
        "kube-scheduler",
        [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cfg.ports.scheduler}",
            f"--cert-dir={home.component_config / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        40,
    )


def kwok(bin_dir: Path, home: DevHome, cfg: ClusterConfig) -> Component:
    return Component(
        "kwok",
        [
            str(bin_dir / "kwok"),
            f"--kubeconfig={home.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-label-selector={KWOK_NODE_LABEL}",
            f"--server-address=127.0.0.1:{cfg.ports.kwok}",
            "--cidr=127.200.0.1/16",  # fake pod IPs on loopback: nothing ever leaves the machine
            "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
        ],
        50,
    )


def all_components(bin_dir: Path, home: DevHome, cfg: ClusterConfig) -> list[Component]:
    return [
        etcd(bin_dir, home, cfg),
        apiserver(bin_dir, home, cfg),
        controller_manager(bin_dir, home, cfg),
        scheduler(bin_dir, home, cfg),
        kwok(bin_dir, home, cfg),
    ]
