"""``python -m model_repo_builder build`` and ``fulcrum build`` (the same click command).

Exit codes: 0 when a manifest was written (tier failures are in it), 2 when the spec or options are unusable
(``--termination-message`` then holds ``{"error": "<message>"}``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command(name="build", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--spec",
    "spec_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A ModelDeployment YAML file (the whole object).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model repository directory to write (manifest.json at its root).",
)
@click.option(
    "--target",
    type=click.Choice(["triton", "local"]),
    default="triton",
    show_default=True,
    help="triton: native onnxruntime_onnx / tensorrt_plan configs; "
    "local: python-backend models that the bundled CPU tritonserver serves.",
)
@click.option(
    "--node-pool",
    default="local",
    show_default=True,
    help="Node pool name recorded in the profiles (the pool the build runs on).",
)
@click.option("--json", "as_json", is_flag=True, help="Print manifest.json to stdout.")
@click.option(
    "--profile/--no-profile",
    default=True,
    show_default=True,
    help="Gate, search and profile each Ready tier (the measure stage); --no-profile stops after building.",
)
@click.option(
    "--profile-seconds",
    type=click.FloatRange(0.2, 600),
    default=3.0,
    show_default=True,
    help="Load duration of each profile point.",
)
@click.option(
    "--profile-points", type=click.IntRange(1, 32), default=None, help="At most this many profile points per tier."
)
@click.option(
    "--profile-server",
    type=click.Choice(["auto", "onnxruntime", "tritonserver"]),
    default="auto",
    show_default=True,
    help="Where tiers are gated, searched and profiled: tritonserver = the bundled CPU tritonserver serving the "
    "built repository (--target local only); onnxruntime = onnxruntime tiers profiled in process, no server; auto = "
    "--triton-url when given, else tritonserver for --target local, else onnxruntime.",
)
@click.option(
    "--triton-url",
    default=None,
    help="A running Triton in explicit model-control mode (the build Job's sidecar: the pool's image and device) "
    "to gate, search and profile every tier through.",
)
@click.option(
    "--triton-repository",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The model repository --triton-url serves, shared with this process (tiers are copied there).",
)
@click.option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="Search Triton's serving knobs per tier (when spec.serving.configSearch.enabled); --no-search serves the "
    "spec's config as given.",
)
@click.option(
    "--search-seconds",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    help="Load duration of each open-loop point of the config search.",
)
@click.option(
    "--termination-message",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the compact JSON result here (<= 4096 bytes; e.g. /dev/termination-log).",
)
@click.option("--force", is_flag=True, help="Rebuild even when the same build is already in --out.")
def build(
    *,
    spec_path: Path,
    out: Path,
    target: str,
    node_pool: str,
    as_json: bool,
    profile: bool,
    profile_seconds: float,
    profile_points: int | None,
    profile_server: str,
    triton_url: str | None,
    triton_repository: Path | None,
    search: bool,
    search_seconds: float,
    termination_message: Path | None,
    force: bool,
) -> None:
    """Build a ModelDeployment's precision tiers into a Triton model repository with manifest.json."""
    from rich.console import Console

    from model_repo_builder import termination
    from model_repo_builder.pipeline import BuildError, BuildOptions
    from model_repo_builder.pipeline import build as run_build
    from model_repo_builder.progress import StageProgress, summary_table

    console = Console(stderr=True)
    options = BuildOptions(
        spec_path=spec_path,
        out=out,
        target=target,  # type: ignore[arg-type]
        node_pool=node_pool,
        profile=profile,
        profile_duration=profile_seconds,
        profile_points=profile_points,
        profile_server=profile_server,  # type: ignore[arg-type]
        triton_url=triton_url,
        triton_repository=triton_repository,
        search=search,
        search_seconds=search_seconds,
        force=force,
    )
    try:
        with StageProgress(console) as progress:
            result = run_build(options, progress.report)
    except BuildError as error:
        if termination_message is not None:
            termination_message.write_text(json.dumps({"error": str(error)[:3800]}))
        console.print(f"[bold red]error:[/] {error}")
        sys.exit(2)
    wire = result.manifest.model_dump(by_alias=True, mode="json")
    if termination_message is not None:
        termination_message.write_text(termination.compact(wire, result.key, str(result.repository), result.reused))
    console.print(summary_table(result.manifest))
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    console.print(
        f"[bold]{'reused' if result.reused else 'built'}[/] {result.repository} key {result.key[:12]} ({timings})"
    )
    if as_json:
        click.echo(json.dumps(wire, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Fulcrum's model repository builder."""


main.add_command(build)
