"""The node ``local-0``: what runs it and how it is configured. Pure: paths and a cluster config in, text out.

``local-0`` is a real kubelet on containerd + runc with CNI bridge networking and kube-proxy, all inside one
network namespace and one mount namespace of its own (created by :mod:`fulcrum.dev.nodehost`):

- the network namespace ``fdev<N>`` holds the node's end of a veth pair (``eth0``, ``10.243.<N>.2``: the node's
  InternalIP), the CNI bridge of its pods (``10.244.<N>.0/24``), kube-proxy's iptables rules and every port the
  node listens on. The host end (``fdev<N>``, ``10.243.<N>.1``) is the cluster's host address, where the API
  server and other host services listen. Two clusters on one machine therefore never share a bridge, a chain
  or a port, and nothing routes anywhere but between the host and its own node;
- the mount namespace hides the node's mounts (container root filesystems, volumes, pod network namespaces,
  the CNI state) from the host, so a torn-down node leaves none behind;
- the images come from a registry inside the namespace, ``localhost:5000``, serving the machine's image store
  (:mod:`fulcrum.dev.images`) read-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fulcrum.dev import images
from fulcrum.dev.config import LOCAL_NODE, LOCAL_POOL, POOL_LABEL, ClusterConfig
from fulcrum.dev.images import REGISTRY_HOST
from fulcrum.dev.paths import DevHome

REGISTRY_PORT = 5000
BRIDGE = "fulcrum0"  # the pods' bridge, inside the node's network namespace
NODE_INTERFACE = "eth0"  # the node's end of its link to the host
KUBELET_HEALTHZ_PORT = 10248
PROXY_METRICS_PORT = 10249
PROXY_HEALTHZ_PORT = 10256
# Directories the node's components use at fixed places; in the node's mount namespace each is a directory of
# the home, bind-mounted there.
PRIVATE_DIRS = {
    "/var/lib/cni": "cni-state",  # the CNI plugins' results cache
    "/var/log/containers": "container-logs",  # the kubelet's log symlinks (a fixed path in the kubelet)
    "/run/containerd": "containerd-run",  # the runc shims' sockets
}


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps its configuration and state, under the cluster's home."""

    root: Path

    @classmethod
    def of(cls, home: DevHome) -> NodePaths:
        return cls(home.root / "node")

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def registry_hosts(self) -> Path:
        return self.root / "certs.d"

    @property
    def cni_config(self) -> Path:
        return self.root / "cni"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    @property
    def registry_config(self) -> Path:
        return self.root / "registry.yml"

    def private(self, target: str) -> Path:
        """The home directory bind-mounted at ``target`` (one of PRIVATE_DIRS) in the node's mount namespace."""
        return self.root / "private" / PRIVATE_DIRS[target]

    def directories(self) -> list[Path]:
        return [
            self.root,
            self.containerd_root,
            self.containerd_state,
            self.registry_hosts / REGISTRY_HOST,
            self.cni_config,
            self.kubelet_root,
            self.pod_logs,
            *(self.private(t) for t in PRIVATE_DIRS),
        ]


def netns_name(cfg: ClusterConfig) -> str:
    return cfg.link


def cgroup_root(cfg: ClusterConfig) -> str:
    """The cgroup (in every hierarchy) under which the kubelet puts its pods."""
    return f"/fulcrum-dev-{cfg.subnet_index}"


def containerd_toml(paths: NodePaths, sandbox_image: str) -> str:
    """containerd's configuration: everything under the node's directory, the CRI plugin set for this VM.

    ``restrict_oom_score_adj``: this VM refuses negative oom_score_adj values, and without it every sandbox
    fails to start. ``sandbox_image``: the pinned pause, from the node's registry (nothing can be pulled from
    the internet). Pod network namespaces are mounted under the state directory, not /run/netns.
    """
    return f"""version = 2
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{paths.containerd_socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_tls_streaming = false
  stream_server_address = "127.0.0.1"
  max_concurrent_downloads = 3

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{paths.cni_config}"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    # a layer's blob is dropped once unpacked: a node keeps one copy of each image, not two
    discard_unpacked_layers = true

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{paths.containerd_state / "runc"}"

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{paths.registry_hosts}"
"""


def registry_hosts_toml() -> str:
    """containerd's hosts file for ``localhost:5000``: the node's own registry, plain HTTP on its loopback."""
    return f"""server = "http://{REGISTRY_HOST}"

[host."http://{REGISTRY_HOST}"]
  capabilities = ["pull", "resolve"]
"""


def cni_conflist(cfg: ClusterConfig, paths: NodePaths) -> str:
    """The pods' network: a bridge with the node as gateway; host-local addresses from the node's /24.

    No masquerade: the host routes the pod subnet to the node, so the host and the pods see each other's
    addresses. Hairpin mode lets a pod reach itself through a Service.
    """
    document = {
        "cniVersion": "1.0.0",
        "name": "fulcrum",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.private("/var/lib/cni") / "networks"),
                    "ranges": [[{"subnet": str(cfg.pod_subnet), "gateway": str(cfg.gateway)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(document, indent=2)


def kubelet_config(cfg: ClusterConfig, home: DevHome, paths: NodePaths) -> str:
    """The KubeletConfiguration (JSON is YAML). cgroupfs (no systemd here), swap tolerated, eviction only on
    nearly full disks (the machine is shared), images never garbage-collected below 90 % disk use.

    The disk thresholds are absolute: a percentage of a big disk that several sessions share (2 % of 250 GB is
    5 GB) is crossed whenever another session unpacks an image, and the node would then evict every pod (a build
    Job's, the operator's) and refuse new ones for minutes."""
    document = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": cfg.node_address,
        "port": cfg.ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "tlsCertFile": str(home.pki / "kubelet-local-0.crt"),
        "tlsPrivateKeyFile": str(home.pki / "kubelet-local-0.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(home.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root(cfg),
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "failSwapOn": False,
        "resolvConf": str(paths.resolv_conf),
        "podLogsDir": str(paths.pod_logs),
        "serializeImagePulls": False,
        "registerNode": True,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1Gi",
            "imagefs.available": "1Gi",
            "nodefs.inodesFree": "2%",
        },
        "imageGCHighThresholdPercent": 95,
        "imageGCLowThresholdPercent": 90,
        "shutdownGracePeriod": "0s",
        "protectKernelDefaults": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "nodeStatusUpdateFrequency": "10s",
        "maxPods": 110,
    }
    return json.dumps(document, indent=2)


def kube_proxy_config(cfg: ClusterConfig, kubeconfig: Path) -> str:
    """kube-proxy in iptables mode, its rules in the node's namespace; it leaves machine-wide sysctls alone
    (conntrack table size and timeouts are global or the host's business)."""
    document = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": LOCAL_NODE,
        "bindAddress": cfg.node_address,
        "clusterCIDR": str(cfg.pod_subnet),
        "healthzBindAddress": f"127.0.0.1:{PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{PROXY_METRICS_PORT}",
        "nodePortAddresses": [f"{cfg.node_address}/32"],
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"masqueradeAll": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
    }
    return json.dumps(document, indent=2)


def resolv_conf() -> str:
    """Pods get no DNS server (no cluster DNS here, and no query may leave the machine): lookups of names other
    than the pod's own hosts entries fail at once. Services are reached by ClusterIP or their environment."""
    return "nameserver 127.0.0.1\noptions ndots:1 attempts:1 timeout:1\n"


def kubelet_argv(bin_dir: Path, cfg: ClusterConfig, home: DevHome, paths: NodePaths) -> list[str]:
    return [
        str(bin_dir / "kubelet"),
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={home.component_config / 'node-local-0.kubeconfig'}",
        f"--root-dir={paths.kubelet_root}",
        f"--hostname-override={LOCAL_NODE}",
        f"--node-ip={cfg.node_address}",
        f"--node-labels={POOL_LABEL}={LOCAL_POOL}",
        "--v=1",
    ]


def kube_proxy_argv(bin_dir: Path, paths: NodePaths) -> list[str]:
    return [str(bin_dir / "kube-proxy"), f"--config={paths.proxy_config}", "--v=1"]


def containerd_argv(paths: NodePaths) -> list[str]:
    return ["containerd", "--config", str(paths.containerd_config), "--log-level", "warn"]


def registry_argv(paths: NodePaths) -> list[str]:
    return ["docker-registry", "serve", str(paths.registry_config)]


def registry_config() -> str:
    """The node's registry: the machine's image store, read-only, on the node's loopback."""
    return images.registry_config(images.registry_store(), f"127.0.0.1:{REGISTRY_PORT}", read_only=True)
