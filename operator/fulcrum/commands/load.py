"""``fulcrum load``: open-loop load at a Triton Service (or URLs) following a trace."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from fulcrum.controller.kube import KubeClient
from fulcrum.loadgen.endpoints import service_endpoints
from fulcrum.loadgen.generator import Schedule, run_load
from fulcrum.loadgen.stats import Interval, run_summary
from fulcrum.simulate.trace import read_trace


def _schedule(trace_path: Path, speedup: float) -> Schedule:
    trace = read_trace(trace_path)
    start = float(trace.times[0])
    return Schedule(
        times=[(float(t) - start) / speedup for t in trace.times],
        rates=[float(r) for r in trace.rates],
        end=(trace.end - start) / speedup,
    )


@click.command(
    help=(
        "Drive open-loop load at a Triton Service from a trace (t_seconds,requests_per_second). "
        "Ctrl-C (or SIGTERM) ends the run early and reports what was measured."
    )
)
@click.option(
    "--service",
    help="NS/NAME of the Service; requests spread over its ready endpoints, as kube-proxy would spread them.",
)
@click.option("--url", "urls", multiple=True, help="Triton HTTP endpoint(s) instead of a Service (repeatable).")
@click.option("--trace", "trace_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option(
    "--model",
    default=None,
    help=(
        "Model name every request calls. Default with --service: the Service's name (a ModelDeployment's served "
        "name unless spec.serving.modelName says otherwise); with --url: the first ready model."
    ),
)
@click.option(
    "--per-pod",
    is_flag=True,
    help="Ask each endpoint which model it serves and call that one (servers without one shared model name).",
)
@click.option("--interval", "interval_seconds", type=float, default=10.0, show_default=True, help="Report interval.")
@click.option("--slo-ms", type=float, default=None, help="Latency SLO for the attainment figures.")
@click.option("--speedup", type=float, default=1.0, show_default=True, help="Play the trace this many times faster.")
@click.option("--max-in-flight", type=int, default=512, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--kubeconfig", default=None, help="Kubeconfig for --service (default: $KUBECONFIG).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--request-log",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write every request as CSV: sent_unix,latency_ms (empty on error),endpoint.",
)
def load(
    *,
    service: str | None,
    urls: tuple[str, ...],
    trace_path: Path,
    model: str | None,
    per_pod: bool,
    interval_seconds: float,
    slo_ms: float | None,
    speedup: float,
    max_in_flight: int,
    seed: int,
    kubeconfig: str | None,
    as_json: bool,
    request_log: Path | None,
) -> None:
    if bool(service) == bool(urls):
        raise click.UsageError("give exactly one of --service NS/NAME or --url")
    schedule = _schedule(trace_path, speedup)
    console = Console(stderr=True)
    log: list[tuple[float, float | None, str]] | None = [] if request_log is not None else None

    stop = asyncio.Event()

    async def main() -> tuple[str, list[Interval]]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop early and still report what was measured
            loop.add_signal_handler(sig, stop.set)
        if urls:
            fixed = [u.rstrip("/") if "://" in u else f"http://{u.rstrip('/')}" for u in urls]

            async def endpoints() -> list[str]:
                return fixed

            return await _run(endpoints)
        namespace, _, name = (service or "").partition("/")
        if not name:
            raise click.UsageError("--service must be NS/NAME")
        nonlocal model
        if model is None and not per_pod:
            model = name
        kube = KubeClient.from_environment(kubeconfig)
        try:
            return await _run(lambda: service_endpoints(kube, namespace, name))
        finally:
            await kube.close()

    async def _run(endpoints: Callable[[], Awaitable[list[str]]]) -> tuple[str, list[Interval]]:
        def progress(t: float, in_flight: int, sent: int, interval: Interval) -> None:
            if not as_json:
                line = f"t={t:7.1f}s offered {interval.offered_rps:8.1f} rps  sent {sent:8d}  in flight {in_flight:4d}"
                console.print(line, end="\r", highlight=False)

        return await run_load(
            schedule,
            endpoints,
            model=model,
            interval_seconds=interval_seconds,
            max_in_flight=max_in_flight,
            seed=seed,
            on_progress=progress,
            request_log=log,
            per_pod=per_pod,
            stop=stop,
        )

    model_name, intervals = asyncio.run(main())
    if request_log is not None and log is not None:
        lines = ["sent_unix,latency_ms,endpoint"]
        lines += [f"{t:.6f},{'' if ms is None else f'{ms:.3f}'},{endpoint}" for t, ms, endpoint in sorted(log)]
        request_log.write_text("\n".join(lines) + "\n")
    rows = [i.summary(interval_seconds, slo_ms) for i in intervals]
    summary = run_summary(intervals, slo_ms)
    if as_json:
        click.echo(json.dumps({"model": model_name, "intervals": rows, "summary": summary}, indent=2))
        return
    table = Table(title=f"fulcrum load: {model_name}")
    for column in ("t", "offeredRps", "achievedRps", "p50Ms", "p99Ms", "errors", "dropped", "sloAttainment"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in row))
    console.print()
    Console().print(table)
    Console().print(f"total: {summary}")
