"""``fulcrum dev``: build, start, inspect and stop the local Kubernetes control plane."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fulcrum.dev.paths import DevHome, resolve_home

if TYPE_CHECKING:
    from fulcrum.dev.images import BuiltImage

HOME_HELP = "Cluster directory (default $FULCRUM_DEV_HOME or ~/.cache/fulcrum/dev); two homes are two clusters."


def _home(path: str | None) -> DevHome:
    return DevHome(resolve_home(path))


@click.group()
def dev() -> None:
    """A real local Kubernetes: etcd, kube-apiserver, controller-manager, scheduler, kwok GPU pools, local-0,
    and a Prometheus that scrapes Fulcrum and its Triton pods."""


def _run_build(force: bool) -> Path:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from fulcrum.dev import build as build_mod  # noqa: PLC0415

    console = Console(stderr=True)
    p = build_mod.plan()
    if p.complete and not force:
        build_mod.mark_wanted(p.bin_dir)
        console.print(f"binaries up to date: {p.bin_dir}")
        _prune_binaries(p.key)
        return p.bin_dir
    console.print(f"building {len(p.binaries)} binaries for pin {p.key} (one at a time; a cold build takes a while)")
    started = time.monotonic()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[packages]} packages"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks = {b.name: progress.add_task(b.name, packages=0, start=False, total=None) for b in p.binaries}
        counts: dict[str, int] = {}

        def report(name: str, event: str, elapsed: float) -> None:
            task = tasks[name]
            if event == "start":
                progress.start_task(task)
            elif event == "package":
                counts[name] = counts.get(name, 0) + 1
                progress.update(task, packages=counts[name])
            elif event == "done":
                progress.update(task, description=f"{name} [green]built in {elapsed:.0f}s", total=1, completed=1)
                progress.stop_task(task)
                if not console.is_terminal:
                    console.print(f"{name}: built in {elapsed:.0f}s")

        try:
            bin_dir = build_mod.build(p, report, force=force)
        except build_mod.BuildError as exc:
            raise click.ClickException(str(exc)) from exc
    console.print(f"built {p.bin_dir} in {time.monotonic() - started:.0f}s")
    _prune_binaries(p.key)
    return bin_dir


def _prune_binaries(
    current: str, *, dry_run: bool = False, keep_newest: int | None = None, keep_seconds: float | None = None
) -> None:
    """Pins nobody has wanted for a while leave the binary cache (see :mod:`fulcrum.dev.bin_cache`)."""
    from fulcrum.dev import bin_cache  # noqa: PLC0415

    try:
        result = bin_cache.prune(
            current,
            say=lambda m: click.echo(m, err=True),
            dry_run=dry_run,
            keep_newest=bin_cache.KEEP_NEWEST if keep_newest is None else keep_newest,
            keep_seconds=bin_cache.KEEP_SECONDS if keep_seconds is None else keep_seconds,
        )
    except OSError as exc:
        click.echo(f"binary cache: pruning failed ({exc}); the cache is left as it is", err=True)
        return
    _say_pruned("binary cache", "pins", [str(pin.path) for pin in result.removed], result.freed_bytes, dry_run)


def _say_pruned(cache: str, unit: str, removed: list[str], freed_bytes: int, dry_run: bool) -> None:
    """What a cache's pruning removed (or, ``dry_run``, would remove): one line each, or a summary on stderr."""
    if dry_run:
        for name in removed:
            click.echo(f"would remove {name}")
    elif removed:
        click.echo(f"{cache}: removed {len(removed)} stale {unit}, {freed_bytes / 1e9:.1f} GB freed", err=True)


@dev.command()
@click.option("--force", is_flag=True, help="Rebuild even if the binaries for this pin exist.")
@click.option("--no-images", is_flag=True, help="Only the binaries, not the container images.")
def build(force: bool, no_images: bool) -> None:
    """Build (or reuse) the pinned binaries (control plane, kubelet, kube-proxy, kubectl, kwok, helm, prometheus)
    and the images (fulcrum, fulcrum-builder, tritonserver-cpu, pause)."""
    import threading  # noqa: PLC0415

    from fulcrum.dev import images  # noqa: PLC0415

    # The images but pause need no Go binary: they build beside the Go build (pip downloads and image layers
    # overlap with compiling; a cold CI machine saves most of the shorter of the two).
    failures: list[BaseException] = []

    def recipes() -> None:
        try:
            _ensure_images(None, tuple(n for n in images.NAMES if n != images.PAUSE))
        except BaseException as exc:  # reported after the Go build
            failures.append(exc)

    worker = threading.Thread(target=recipes, name="images", daemon=True)
    if not no_images:
        worker.start()
    bin_dir = _run_build(force)
    if not no_images:
        worker.join()
        if failures:
            raise failures[0]
        _ensure_images(bin_dir, (images.PAUSE,))
    click.echo(str(bin_dir))


def _ensure_images(bin_dir: Path | None, names: tuple[str, ...] = ()) -> dict[str, BuiltImage]:
    from fulcrum.dev import images  # noqa: PLC0415

    started = time.monotonic()
    try:
        built = images.ensure(
            names or images.NAMES,
            say=lambda m: click.echo(f"images: {m.strip()}", err=True),
            pause_binary=bin_dir / "pause" if bin_dir is not None else None,
        )
    except images.ImageError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"images ready in {time.monotonic() - started:.0f}s", err=True)
    _prune_images(bin_dir)
    return built


def _prune_images(
    bin_dir: Path | None,
    *,
    dry_run: bool = False,
    keep_newest: int | None = None,
    keep_seconds: float | None = None,
) -> None:
    """Keys nobody has wanted for a while leave the cache (see :mod:`fulcrum.dev.image_cache`)."""
    from fulcrum.dev import image_cache, images  # noqa: PLC0415

    pause = bin_dir / "pause" if bin_dir is not None else None
    current = images.keys(pause_binary=pause if pause is not None and pause.exists() else None)
    try:
        result = image_cache.prune(
            current,
            say=lambda m: click.echo(m, err=True),
            dry_run=dry_run,
            keep_newest=image_cache.KEEP_NEWEST if keep_newest is None else keep_newest,
            keep_seconds=image_cache.KEEP_SECONDS if keep_seconds is None else keep_seconds,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        click.echo(f"image cache: pruning failed ({exc}); the cache is left as it is", err=True)
        return
    removed = [f"{entry.name}:{entry.key}" for entry in result.removed]
    _say_pruned("image cache", "keys", removed, result.freed_bytes, dry_run)


@dev.command("images")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: name -> ref, sizes, build time.")
def images_command(names: tuple[str, ...], as_json: bool) -> None:
    """Build (or reuse) Fulcrum's images and print their references (as the dev node pulls them)."""
    from dataclasses import asdict  # noqa: PLC0415

    bin_dir = _run_build(False)
    built = _ensure_images(bin_dir, names)
    if as_json:
        click.echo(json.dumps({name: asdict(image) for name, image in built.items()}, indent=2))
        return
    for image in built.values():
        click.echo(
            f"{image.ref}  {image.size_bytes / 1e6:.0f} MB unpacked, {image.compressed_bytes / 1e6:.0f} MB compressed"
        )


@dev.command("prune-images")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option(
    "--keep-newest", type=int, default=2, show_default=True, help="Keys kept per image, most recently wanted first."
)
@click.option(
    "--keep-hours", type=float, default=6.0, show_default=True, help="Keep every key wanted within this many hours."
)
def prune_images(dry_run: bool, keep_newest: int, keep_hours: float) -> None:
    """Remove image keys no checkout has wanted lately from the build storage and the registry store.

    Runs by itself after every image build with the defaults; the keys this checkout wants always stay."""
    _prune_images(None, dry_run=dry_run, keep_newest=keep_newest, keep_seconds=keep_hours * 3600)


@dev.command("prune-binaries")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--keep-newest", type=int, default=2, show_default=True, help="Pins kept, most recently wanted first.")
@click.option(
    "--keep-hours", type=float, default=6.0, show_default=True, help="Keep every pin wanted within this many hours."
)
def prune_binaries(dry_run: bool, keep_newest: int, keep_hours: float) -> None:
    """Remove the binary directories of pins no checkout has wanted lately (~/.cache/fulcrum/bin/k8s-*).

    Runs by itself after every `fulcrum dev build` with the defaults; this checkout's pin and any directory a
    running process was started from always stay."""
    from fulcrum.dev import build as build_mod  # noqa: PLC0415

    try:
        current = build_mod.plan().key
    except build_mod.BuildError as exc:
        raise click.ClickException(str(exc)) from exc
    _prune_binaries(current, dry_run=dry_run, keep_newest=keep_newest, keep_seconds=keep_hours * 3600)


@dev.command("bin-dir")
def bin_dir() -> None:
    """Print the directory of the current pin's binaries (built or not), for PATH: kubectl, helm, kubelet..."""
    from fulcrum.dev import build as build_mod  # noqa: PLC0415

    try:
        p = build_mod.plan()
    except build_mod.BuildError as exc:
        raise click.ClickException(str(exc)) from exc
    if p.complete:
        build_mod.mark_wanted(p.bin_dir)
    click.echo(str(p.bin_dir))


@dev.command()
@click.option("--home", "home_dir", type=click.Path(file_okay=False), help=HOME_HELP)
@click.option(
    "--pool",
    "pools",
    multiple=True,
    metavar="NAME=NODES[xGPUS]",
    help="A kwok node pool, e.g. l4=4x4 or cpu=2; repeat it. Default: l4=4x4 a100=2x8 cpu=2.",
)
@click.option("--no-pools", is_flag=True, help="No kwok pools, only local-0.")
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65000),
    default=None,
    help="First of 8 consecutive loopback ports (default 25600).",
)
@click.option("--timeout", type=float, default=180.0, show_default=True, help="Seconds to wait for readiness.")
def up(
    *,
    home_dir: str | None,
    pools: tuple[str, ...],
    no_pools: bool,
    port_base: int | None,
    timeout: float,
) -> None:
    """Start the cluster (building the binaries first if needed); a no-op if it already runs."""
    from fulcrum.dev import build as build_mod  # noqa: PLC0415
    from fulcrum.dev import cluster  # noqa: PLC0415
    from fulcrum.dev.config import DEFAULT_POOLS, DEFAULT_PORT_BASE, ClusterConfig, parse_pools  # noqa: PLC0415

    home = _home(home_dir)
    try:
        chosen = () if no_pools else (parse_pools(pools) if pools else DEFAULT_POOLS)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pool") from exc
    if build_mod.find_bin_dir() is None:
        _run_build(False)
    previous = cluster.load_config(home)
    started = time.monotonic()
    try:
        index = previous.subnet_index if previous else cluster.choose_subnet_index(home)
        cfg = ClusterConfig(
            port_base=port_base or (previous.port_base if previous else DEFAULT_PORT_BASE),
            pools=chosen,
            subnet_index=index,
        )
        cfg = cluster.up(home, cfg, say=lambda m: click.echo(m, err=True), timeout=timeout)
    except cluster.ClusterError as exc:
        raise click.ClickException(
            f"{exc}\n(`fulcrum dev status` shows what runs; `fulcrum dev down` stops it)"
        ) from exc
    from fulcrum.dev import prometheus  # noqa: PLC0415

    click.echo(f"ready in {time.monotonic() - started:.1f}s; export KUBECONFIG={home.kubeconfig}", err=True)
    click.echo(f"Prometheus: {prometheus.url(cfg)} (from pods: {prometheus.in_cluster_url(cfg)})", err=True)
    from fulcrum.dev import objectstore  # noqa: PLC0415

    store = objectstore.load(home)
    if store is not None:
        click.echo(
            f"object store: {store.endpoint} (hosts and pods; keys: `fulcrum dev s3-env`, Helm values: "
            "`fulcrum dev chart-values`)",
            err=True,
        )


@dev.command(name="s3-env")
@click.option("--home", "home_dir", type=click.Path(file_okay=False), help=HOME_HELP)
@click.option(
    "--as",
    "who",
    type=click.Choice(["admin", "writer", "reader"]),
    default="admin",
    show_default=True,
    help="admin: everything; writer: what build Jobs may do; reader: what serving pods may do.",
)
@click.option("--env-file", is_flag=True, help="NAME=value lines (kubectl create secret --from-env-file).")
def s3_env(home_dir: str | None, who: str, env_file: bool) -> None:
    """Print `export AWS_...` lines for the cluster's object store: eval "$(fulcrum dev s3-env)"."""
    from fulcrum.dev import objectstore  # noqa: PLC0415

    store = objectstore.load(_home(home_dir))
    if store is None:
        raise click.ClickException("this cluster has no object store yet: run `fulcrum dev up`")
    click.echo("\n".join(objectstore.environment_lines(store, who, shell=not env_file)))


@dev.command(name="chart-values")
@click.option("--home", "home_dir", type=click.Path(file_okay=False), help=HOME_HELP)
def chart_values_command(home_dir: str | None) -> None:
    """Print Helm values that install charts/fulcrum on this cluster: its images, local builds, its object store.

    helm install fulcrum charts/fulcrum -n fulcrum-system --create-namespace -f <(fulcrum dev chart-values)
    """
    import yaml  # noqa: PLC0415

    from fulcrum.dev import chart_values, images, objectstore  # noqa: PLC0415

    home = _home(home_dir)
    store = objectstore.load(home)
    if store is None:
        raise click.ClickException("this cluster has no object store yet: run `fulcrum dev up`")
    bin_dir = _run_build(False)
    built = _ensure_images(bin_dir, tuple(n for n in images.NAMES if n != images.PAUSE))
    values = chart_values.merged(
        chart_values.image_values(built), objectstore.chart_values(store), chart_values.node_values()
    )
    click.echo(yaml.safe_dump(values, sort_keys=False), nl=False)


@dev.command()
@click.option("--home", "home_dir", type=click.Path(file_okay=False), help=HOME_HELP)
@click.option("--keep-data", is_flag=True, help="Keep etcd data and pod directories.")
def down(home_dir: str | None, keep_data: bool) -> None:
    """Stop every process of the cluster; nothing is left running."""
    from fulcrum.dev import cluster  # noqa: PLC0415

    home = _home(home_dir)
    stopped = cluster.down(home, say=lambda m: click.echo(m, err=True), keep_data=keep_data)
    click.echo("stopped " + (", ".join(stopped) if stopped else "nothing (no process was running)"), err=True)


@dev.command()
@click.option("--home", "home_dir", type=click.Path(file_okay=False), help=HOME_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(home_dir: str | None, as_json: bool) -> None:
    """What runs, what crashed (exit status 1 if a component crashed)."""
    from fulcrum.dev import cluster  # noqa: PLC0415

    home = _home(home_dir)
    info = cluster.status(home)
    comps = info["components"]
    assert isinstance(comps, list)
    crashed = [c["name"] for c in comps if c["state"] == "crashed"]
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        from rich.console import Console  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        table = Table(title=f"fulcrum dev cluster at {info['home']}")
        for col in ("component", "state", "pid", "RSS MiB", "log"):
            table.add_column(col)
        colours = {"running": "green", "crashed": "red", "stopped": "dim"}
        for c in comps:
            table.add_row(
                c["name"], f"[{colours[c['state']]}]{c['state']}", str(c["pid"] or ""), f"{c['rss_mib']:.0f}", c["log"]
            )
        console = Console()
        console.print(table)
        console.print(f"API server: {info['server']} ready={info['apiserverReady']}  total RSS {info['rssMiB']} MiB")
        console.print(f"KUBECONFIG={info['kubeconfig']}")
        if info.get("prometheus"):
            console.print(f"Prometheus: {info['prometheus']}")
    if crashed:
        sys.exit(1)
