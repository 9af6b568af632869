"""``up``, ``down`` and ``status`` of a dev cluster: processes, certificates, nodes."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fulcrum.dev import build as build_mod
from fulcrum.dev import components, health, images, network, node, nodehost, nodes, objectstore, procs, prometheus
from fulcrum.dev.certs import write_pki
from fulcrum.dev.config import LOCAL_NODE, ClusterConfig
from fulcrum.dev.kubeconfig import render_from_pki
from fulcrum.dev.paths import DevHome

Say = Callable[[str], None]
WATCHDOG = "watchdog"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
HOST_SERVICES = ("prometheus", objectstore.NAME)  # on the host, listening on the cluster's host address
NODE_COMPONENTS = (nodehost.HOLDER, "registry", "containerd", "kubelet", "kube-proxy")
COMPONENTS = (*CONTROL_PLANE, *HOST_SERVICES, *NODE_COMPONENTS)


class ClusterError(RuntimeError):
    pass


@contextlib.contextmanager
def locked(home: DevHome) -> Iterator[None]:
    """One ``up``/``down`` at a time per home."""
    home.root.mkdir(parents=True, exist_ok=True)
    with open(home.root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_config(home: DevHome) -> ClusterConfig | None:
    try:
        return ClusterConfig.from_json(home.config_file.read_text())
    except FileNotFoundError:
        return None


def server_url(cfg: ClusterConfig) -> str:
    """The API server, on the cluster's host address (reachable from host processes and, as the ``kubernetes``
    Service, from pods)."""
    return f"https://{cfg.host_address}:{cfg.ports.apiserver}"


def _write_kubeconfigs(home: DevHome, cfg: ClusterConfig) -> None:
    server = server_url(cfg)
    home.kubeconfig.write_text(render_from_pki(server, home.pki, "admin"))
    home.kubeconfig.chmod(0o600)
    for stem in ("controller-manager", "scheduler", "node-local-0"):
        path = home.component_config / f"{stem}.kubeconfig"
        path.write_text(render_from_pki(server, home.pki, stem))
        path.chmod(0o600)


def component_env(home: DevHome) -> dict[str, str]:
    """The environment of every started process: tagged with the home; sbin on PATH (runc, iptables, mount)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONPATH")}
    env[procs.CLUSTER_ENV] = str(home.root)
    path = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(dict.fromkeys([*path, "/usr/local/sbin", "/usr/sbin", "/sbin"]))
    return env


def _wait(
    what: str, check: Callable[[], bool], timeout: float, alive: Callable[[], bool] | None = None, log: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise ClusterError(f"{what} exited while starting; see {log}:\n{_tail(log)}")
        time.sleep(0.3)
    raise ClusterError(f"{what} not ready after {timeout:.0f}s; see {log}:\n{_tail(log)}")


def _tail(log: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _check_ports_free(cfg: ClusterConfig, home: DevHome) -> None:
    busy = [p for p in cfg.ports.all() if health.port_open(p)]
    if busy:
        raise ClusterError(
            f"ports {busy} are already in use by another program; choose other ports with --port-base "
            f"(this cluster's home: {home.root})"
        )


def choose_subnet_index(home: DevHome, first: int = 1) -> int:
    """Reserve the first free cluster index N on this machine by creating the node's link ``fdev<N>``.

    Creating the link is atomic, so two clusters starting at once never share an index (and so never share
    addresses, a network namespace or a cgroup).
    """
    problem = network.supported()
    if problem is not None:
        raise ClusterError(problem)
    for index in range(first, 255):
        if network.reserve_link(f"fdev{index}", str(home.root)):
            return index
    raise ClusterError(f"no free cluster index from {first}: links fdev{first}..fdev254 all exist")


def _own_subnet(home: DevHome, cfg: ClusterConfig) -> ClusterConfig:
    """Keep the configured index if its link is free or ours, else reserve another one."""
    owner = network.link_owner(cfg.link)
    if owner == str(home.root):
        return cfg
    if owner is None and network.reserve_link(cfg.link, str(home.root)):
        return cfg
    first = 200 if cfg.subnet_index >= 200 else 1
    return dataclasses.replace(cfg, subnet_index=choose_subnet_index(home, first))


def _started(home: DevHome, name: str, argv: list[str], env: dict[str, str], say: Say) -> procs.ProcRecord:
    say(f"starting {name}")
    return procs.start(home.run, name, argv, log=home.logs / f"{name}.log", env=env, cwd=home.root)


def _running_record(home: DevHome, name: str) -> procs.ProcRecord | None:
    record = procs.load(home.run, name)
    return record if procs.running(record) else None


def up(
    home: DevHome, cfg: ClusterConfig, say: Say = print, timeout: float = 180.0, owner_pid: int | None = None
) -> ClusterConfig:
    """Start whatever is not running; a second call on a healthy cluster changes nothing.

    With ``owner_pid`` a watchdog takes the cluster down when that process dies (test sessions).
    """
    problem = network.supported()
    if problem is not None:
        raise ClusterError(problem)
    with locked(home):
        home.ensure()
        existing = load_config(home)
        running_now = [r.name for r in procs.records(home.run) if procs.running(r)]
        if existing is not None and running_now and existing != cfg:
            say(
                f"cluster at {home.root} already runs ({', '.join(running_now)}); keeping its configuration "
                "(run `fulcrum dev down` first to change pools or ports)"
            )
            cfg = existing
        bin_dir = build_mod.find_bin_dir()
        if bin_dir is None:
            raise ClusterError("binaries are not built for the current pin; run `fulcrum dev build` first")
        if not running_now:
            _check_ports_free(cfg, home)
            cfg = _own_subnet(home, cfg)
        home.config_file.write_text(cfg.to_json())
        # the link first: the API server listens on its host end
        network.setup(cfg, owner=str(home.root))
        sandbox = images.ensure([images.PAUSE], say=say, pause_binary=bin_dir / "pause")[images.PAUSE]
        write_pki(
            home.pki,
            apiserver_ips=(cfg.host_address, "10.96.0.1", "127.0.0.1"),
            kubelet_ips=(cfg.node_address,),
        )
        _write_kubeconfigs(home, cfg)
        paths = nodehost.write_files(cfg, home, server_url(cfg), sandbox.ref)
        env = component_env(home)
        ctx = health.tls_context(home.pki)
        prometheus.prepare(home, cfg)
        started: list[str] = []
        for comp in [*components.all_components(bin_dir, home, cfg), prometheus.component(bin_dir, home, cfg)]:
            if _running_record(home, comp.name) is not None:
                continue
            if comp.name == "kwok":
                _register_kwok_nodes(home, cfg)
            rec = _started(home, comp.name, comp.argv, env, say)
            started.append(comp.name)
            log = str(home.logs / f"{comp.name}.log")

            def alive(rec: procs.ProcRecord = rec) -> bool:
                return procs.running(rec)

            if comp.name == "etcd":
                _wait("etcd", lambda: health.port_open(cfg.ports.etcd_client), timeout, alive, log)
            elif comp.name == "kube-apiserver":
                try:
                    health.wait_https_ok(
                        cfg.host_address,
                        cfg.ports.apiserver,
                        "/readyz",
                        ctx,
                        timeout,
                        alive=alive,
                        what="kube-apiserver",
                    )
                except (TimeoutError, RuntimeError) as exc:
                    raise ClusterError(f"{exc}\n{_tail(log)}") from exc
            else:
                time.sleep(0.2)
                if not alive():
                    raise ClusterError(f"{comp.name} exited at start; see {log}:\n{_tail(log)}")
        health.wait_https_ok(cfg.host_address, cfg.ports.apiserver, "/readyz", ctx, timeout, what="kube-apiserver")
        started += _start_node(home, cfg, bin_dir, paths, env, say=say, timeout=timeout)
        _wait_nodes_ready(home, cfg, timeout)
        try:
            prometheus.wait_ready(cfg, timeout)
        except prometheus.PrometheusError as exc:
            prometheus_log = str(home.logs / "prometheus.log")
            raise ClusterError(f"{exc}; see {prometheus_log}:\n{_tail(prometheus_log)}") from exc
        try:
            store = objectstore.up(home, cfg, bin_dir, env=env, say=say, timeout=timeout)
        except objectstore.ObjectStoreError as exc:
            raise ClusterError(str(exc)) from exc
        _serving_secret(home, store)
        if owner_pid is not None and _running_record(home, WATCHDOG) is None:
            ticks = procs.start_ticks(owner_pid)
            argv = [
                sys.executable,
                "-m",
                "fulcrum.dev.watchdog",
                "--home",
                str(home.root),
                "--pid",
                str(owner_pid),
                "--ticks",
                str(ticks),
            ]
            watchdog_env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
            procs.start(home.run, WATCHDOG, argv, log=home.logs / f"{WATCHDOG}.log", env=watchdog_env, cwd=home.root)
        say("cluster ready" + (f" (started {', '.join(started)})" if started else " (already running)"))
        return cfg


def _start_node(
    home: DevHome,
    cfg: ClusterConfig,
    bin_dir: Path,
    paths: node.NodePaths,
    env: dict[str, str],
    *,
    say: Say,
    timeout: float,
) -> list[str]:
    """The node's processes, each in the node's namespaces (the holder's), in dependency order."""
    started: list[str] = []
    holder = _running_record(home, nodehost.HOLDER)
    if holder is None:
        for leftover in NODE_COMPONENTS[1:]:  # a node without its namespaces: its processes start over
            record = procs.load(home.run, leftover)
            if record is not None:
                procs.stop(record, grace=5.0)
                procs.forget(home.run, leftover)
        nodehost.sweep(cfg, home)
        nodehost.create_cgroups(cfg)
        holder = _started(home, nodehost.HOLDER, nodehost.holder_argv(cfg, bin_dir, paths), env, say)
        started.append(nodehost.HOLDER)
        log = str(home.logs / f"{nodehost.HOLDER}.log")
        _wait(
            "the node's namespaces",
            lambda: _holder_ready(holder.pid),
            30,
            lambda: procs.running(holder),
            log,
        )
        nodehost.save_namespaces(home, holder.pid)
    argvs = {
        "registry": node.registry_argv(paths),
        "containerd": node.containerd_argv(paths),
        "kubelet": node.kubelet_argv(bin_dir, cfg, home, paths),
        "kube-proxy": node.kube_proxy_argv(bin_dir, paths),
    }
    for name, argv in argvs.items():
        if _running_record(home, name) is not None:
            continue
        rec = _started(home, name, nodehost.enter(holder.pid, argv), env, say)
        started.append(name)
        log = str(home.logs / f"{name}.log")
        if name == "containerd":

            def alive(rec: procs.ProcRecord = rec) -> bool:
                return procs.running(rec)

            _wait("containerd", paths.containerd_socket.exists, timeout, alive, log)
        else:
            time.sleep(0.2)
            if not procs.running(rec):
                raise ClusterError(f"{name} exited at start; see {log}:\n{_tail(log)}")
    return started


def _holder_ready(pid: int) -> bool:
    """The holder has made its mounts and become ``pause`` (its mount namespace is the node's from then on)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "pause"
    except OSError:
        return False


def _api(home: DevHome) -> object:
    from kubernetes import client, config  # noqa: PLC0415 - keep `fulcrum dev status` light

    return client.CoreV1Api(config.new_client_from_config(str(home.kubeconfig)))  # type: ignore[no-untyped-call]


def _register_kwok_nodes(home: DevHome, cfg: ClusterConfig) -> None:
    from kubernetes.client import ApiException  # noqa: PLC0415

    api = _api(home)
    for manifest in nodes.kwok_nodes(cfg):
        try:
            api.create_node(manifest)  # type: ignore[attr-defined]
        except ApiException as exc:
            if exc.status != 409:
                name = manifest["metadata"]["name"]
                raise ClusterError(f"creating node {name} failed: {exc.reason} {exc.body}") from exc


def _serving_secret(home: DevHome, store: objectstore.ObjectStoreConfig) -> None:
    """The object store's read-only keys in namespace ``default``, where a newcomer applies the examples: the
    chart's dev values (`fulcrum dev chart-values`) name this Secret as the serving pods' credentials."""
    from kubernetes.client import ApiException  # noqa: PLC0415

    api = _api(home)
    body = objectstore.secret(store, "reader", objectstore.SERVING_SECRET, objectstore.DEFAULT_NAMESPACE)
    try:
        api.create_namespaced_secret(objectstore.DEFAULT_NAMESPACE, body)  # type: ignore[attr-defined]
    except ApiException as exc:
        if exc.status != 409:
            raise ClusterError(f"creating the object store's read-only Secret failed: {exc.reason}") from exc
        api.replace_namespaced_secret(objectstore.SERVING_SECRET, objectstore.DEFAULT_NAMESPACE, body)  # type: ignore[attr-defined]


def _node_ready(node: object) -> bool:
    conditions = getattr(getattr(node, "status", None), "conditions", None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _wait_nodes_ready(home: DevHome, cfg: ClusterConfig, timeout: float) -> None:
    expected = {n["metadata"]["name"] for n in nodes.kwok_nodes(cfg)} | {LOCAL_NODE}
    deadline = time.monotonic() + timeout
    api = _api(home)
    missing = expected
    while time.monotonic() < deadline:
        items = api.list_node().items  # type: ignore[attr-defined]
        ready = {n.metadata.name for n in items if _node_ready(n) and not _has_not_ready_taint(n)}
        missing = expected - ready
        if not missing:
            return
        time.sleep(0.5)
    raise ClusterError(
        f"nodes not Ready after {timeout:.0f}s: {', '.join(sorted(missing))} "
        f"(logs: {home.logs}/kwok.log, {home.logs}/kubelet.log, {home.logs}/containerd.log)"
    )


def _has_not_ready_taint(node: object) -> bool:
    taints = getattr(getattr(node, "spec", None), "taints", None) or []
    return any(t.key == "node.kubernetes.io/not-ready" for t in taints)


def down(home: DevHome, say: Say = print, keep_data: bool = False) -> list[str]:
    """Stop every process of the cluster (node first), then remove what the node left: pods, cgroups, its
    network namespace and link, mounts. Nothing of the cluster survives, whatever state it was in."""
    with locked(home):
        stopped = []
        order = {c: i for i, c in enumerate(COMPONENTS)}
        recs = sorted(procs.records(home.run), key=lambda r: -order.get(r.name, 100))
        for rec in recs:
            if rec.pid == os.getpid():  # the watchdog taking its cluster down
                procs.forget(home.run, rec.name)
                continue
            if procs.running(rec):
                say(f"stopping {rec.name}")
                stopped.append(rec.name)
            procs.stop(rec, grace=5.0 if rec.name in NODE_COMPONENTS else 10.0)
            procs.forget(home.run, rec.name)
        cfg = load_config(home) or _config_from_link(home)
        if cfg is not None:
            pods = nodehost.sweep(cfg, home)
            if pods:
                say(f"killed {len(pods)} process(es) of the node's pods and shims")
        leftovers = procs.sweep(home.root)
        if leftovers:
            say(f"killed {len(leftovers)} leftover process(es): {leftovers}")
        if cfg is not None and network.link_owner(cfg.link) in (str(home.root), ""):
            network.teardown(cfg)
        mounted = nodehost.unmount_under(home.root)
        if mounted:
            say(f"unmounted {len(mounted)} leftover mount(s) under {home.root}")
        if not keep_data:
            # the node's unpacked images are tens of thousands of files: rm(1) is quicker at it than Python
            subprocess.run(["rm", "-rf", str(node.NodePaths.of(home).root)], check=False)
            for path in (home.etcd_data, home.run):
                shutil.rmtree(path, ignore_errors=True)
            prometheus.clean(home)
            objectstore.remove_state(home)
        return stopped


def _config_from_link(home: DevHome) -> ClusterConfig | None:
    """The cluster's index from the link it reserved, when its cluster.json is gone (a deleted home): enough to
    find and remove its node."""
    for link in network.links_of(str(home.root)):
        if link.removeprefix("fdev").isdigit():
            return ClusterConfig(pools=(), subnet_index=int(link.removeprefix("fdev")))
    return None


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # running | crashed | stopped
    pid: int | None
    rss_mib: float
    log: str


def status(home: DevHome) -> dict[str, object]:
    cfg = load_config(home)
    comps: list[ComponentStatus] = []
    for name in COMPONENTS:
        rec = procs.load(home.run, name)
        log = str(home.logs / f"{name}.log")
        if rec is None:
            comps.append(ComponentStatus(name, "stopped", None, 0.0, log))
        elif procs.running(rec):
            comps.append(ComponentStatus(name, "running", rec.pid, _tree_rss(rec.pid) / 1024, log))
        else:
            comps.append(ComponentStatus(name, "crashed", rec.pid, 0.0, log))
    ready = False
    if cfg is not None and any(c.state == "running" for c in comps if c.name == "kube-apiserver"):
        with contextlib.suppress(Exception):
            code, _ = health.https_get(cfg.host_address, cfg.ports.apiserver, "/readyz", health.tls_context(home.pki))
            ready = code == 200
    store = objectstore.load(home)
    return {
        "home": str(home.root),
        "kubeconfig": str(home.kubeconfig),
        "server": server_url(cfg) if cfg else None,
        "prometheus": prometheus.url(cfg) if cfg else None,
        "objectStore": {"endpoint": store.endpoint, "buckets": [objectstore.MODELS_BUCKET, objectstore.EXAMPLES_BUCKET]}
        if store
        else None,
        "apiserverReady": ready,
        "components": [c.__dict__ for c in comps],
        "rssMiB": round(sum(c.rss_mib for c in comps), 1),
        "processes": len(procs.tagged_pids(home.root)),
    }


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _tree_rss(pid: int) -> int:
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        total += procs.rss_kib(p)
        stack += _children(p)
    return total


def status_json(home: DevHome) -> str:
    return json.dumps(status(home), indent=2)
