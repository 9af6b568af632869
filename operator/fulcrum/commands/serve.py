"""``fulcrum serve``: the bundled CPU tritonserver on a ``--target local`` model repository, until interrupted."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from fulcrum import local_triton


@click.command(help="Serve a local model repository (fulcrum build --target local) with the bundled tritonserver.")
@click.option(
    "--repo", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="Repository."
)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address HTTP, gRPC and metrics bind to.")
@click.option("--http-port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free one.")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="0 picks a free one.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=8002, show_default=True, help="0: free port.")
@click.option("--ready-timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for ready.")
def serve(*, repo: Path, address: str, http_port: int, grpc_port: int, metrics_port: int, ready_timeout: float) -> None:
    native = local_triton.native_models(repo)
    if native:
        raise click.ClickException(
            f"{repo}: models {native} use Triton backends the bundled CPU tritonserver does not ship "
            "(onnxruntime_onnx / tensorrt_plan); build the repository with `fulcrum build --target local`"
        )
    try:
        server = local_triton.start(
            repo,
            address=address,
            http_port=http_port or None,
            grpc_port=grpc_port or None,
            metrics_port=metrics_port or None,
        )
    except local_triton.TritonUnavailableError as error:
        raise click.ClickException(str(error)) from error
    stop = False

    def _interrupt(signum: int, frame: object) -> None:
        del signum, frame
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        try:
            server.wait_ready(ready_timeout)
        except (TimeoutError, local_triton.TritonUnavailableError) as error:
            raise click.ClickException(f"{error}\n(full log: {server.log_path})") from error
        click.echo(
            f"ready: http {server.http_url}  grpc {address}:{server.grpc_port}  metrics {server.metrics_url}  "
            f"(log {server.log_path}); Ctrl-C stops",
            err=True,
        )
        while not stop and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        server.stop()
    code = server.process.returncode
    if not stop and code:
        click.echo(f"tritonserver exited with {code}; log: {server.log_path}", err=True)
        sys.exit(code)
