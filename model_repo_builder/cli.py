"""``python -m model_repo_builder build`` and ``fulcrum build`` (the same click command), plus the two stages
the operator's build Job runs around it: ``fetch`` (sources and content key, with the storage credentials)
and ``publish`` (the built repository to its storage, write-once).

Exit codes: 0 when a result was written (tier failures and unusable sources are in it), 2 when the spec or
options are unusable (``--termination-message`` then holds ``{"error": "<message>"}``), 3 when a source or
the storage could not be reached (the Job tries again).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

EXIT_UNUSABLE = 2
EXIT_TRY_AGAIN = 3
SPEC_FILE = "modeldeployment.yaml"


def _platform(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--platform") from error
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--platform")
    return value


PLATFORM_HELP = (
    "JSON object describing what the build runs on (the operator passes the node pool); part of the content key."
)


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
    help="Model repository directory to write (manifest.json at its root), or s3://bucket/prefix (gs://...) to "
    "publish it there write-once as <prefix>/<content key>/ (AWS_* environment: endpoint, credentials).",
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
    help="Write the compact result here (<= 2048 bytes, deflated when longer; e.g. /dev/termination-log).",
)
@click.option("--force", is_flag=True, help="Rebuild even when the same build is already in --out.")
@click.option("--platform", "platform_json", default=None, help=PLATFORM_HELP)
@click.option(
    "--inputs",
    "inputs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Use the inputs `fetch` left in this directory instead of fetching (the build Job's hand-over).",
)
def build(
    *,
    spec_path: Path,
    out: str,
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
    platform_json: str | None,
    inputs_dir: Path | None,
) -> None:
    """Build a ModelDeployment's precision tiers into a Triton model repository with manifest.json."""
    from rich.console import Console

    from fulcrum.storage import is_object_uri
    from model_repo_builder import publish, termination
    from model_repo_builder.inputs import PUBLISHED_MANIFEST, Inputs
    from model_repo_builder.pipeline import BuildError, BuildOptions, default_cache_dir
    from model_repo_builder.pipeline import build as run_build
    from model_repo_builder.progress import StageProgress, summary_table

    console = Console(stderr=True)
    prefetched = Inputs.load(inputs_dir) if inputs_dir is not None else None
    if prefetched is not None and prefetched.published:
        # the fetch stage found this build already published: report it, build nothing
        manifest = publish.load_manifest(inputs_dir / PUBLISHED_MANIFEST)  # type: ignore[operator]
        publish.write(termination_message, publish.result_message(manifest, prefetched.key, prefetched.published, True))
        console.print(summary_table(manifest))
        console.print(f"[bold]reused[/] {prefetched.published} key {prefetched.key[:12]}")
        return
    if is_object_uri(out):
        _build_to_object_storage(
            spec_path=spec_path, out=out, target=target, node_pool=node_pool, as_json=as_json, profile=profile,
            profile_seconds=profile_seconds, profile_points=profile_points, profile_server=profile_server,
            search=search, search_seconds=search_seconds, termination_message=termination_message,
            platform=_platform(platform_json), console=console,
        )  # fmt: skip
        return
    options = BuildOptions(
        spec_path=spec_path,
        out=Path(out),
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
        platform=_platform(platform_json),
        inputs=prefetched,
        cache_dir=default_cache_dir(),
    )
    try:
        with StageProgress(console) as progress:
            result = run_build(options, progress.report)
    except BuildError as error:
        if termination_message is not None:
            termination_message.write_text(termination.error(None, str(error)))
        console.print(f"[bold red]error:[/] {error}")
        sys.exit(EXIT_UNUSABLE)
    wire = result.manifest.model_dump(by_alias=True, mode="json")
    if result.failure is not None:
        publish.write(termination_message, publish.error_message(*result.failure))
    elif termination_message is not None:
        termination_message.write_text(termination.compact(wire, result.key, str(result.repository), result.reused))
    console.print(summary_table(result.manifest))
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    console.print(
        f"[bold]{'reused' if result.reused else 'built'}[/] {result.repository} key {result.key[:12]} ({timings})"
    )
    if as_json:
        click.echo(json.dumps(wire, indent=2))


def _build_to_object_storage(
    *,
    spec_path: Path,
    out: str,
    target: str,
    node_pool: str,
    as_json: bool,
    profile: bool,
    profile_seconds: float,
    profile_points: int | None,
    profile_server: str,
    search: bool,
    search_seconds: float,
    termination_message: Path | None,
    platform: dict[str, Any] | None,
    console: Any,
) -> None:
    """``fulcrum build --out s3://...``: fetch, reuse the published key or build and publish it."""
    import shutil

    from model_repo_builder import publish, termination
    from model_repo_builder.inputs import fetch_inputs
    from model_repo_builder.pipeline import BuildError, BuildOptions, default_cache_dir, load_spec, search_inputs
    from model_repo_builder.pipeline import build as run_build
    from model_repo_builder.progress import StageProgress, summary_table

    def fail(message: str, code: int) -> None:
        publish.write(termination_message, termination.error(None, message))
        console.print(f"[bold red]error:[/] {message}")
        sys.exit(code)

    try:
        store = publish.store_at(out)
        md = load_spec(spec_path.resolve())
    except (publish.PublishError, BuildError) as error:
        fail(str(error), EXIT_UNUSABLE)
        return
    cache = default_cache_dir()
    platform = platform or {"nodePool": node_pool}
    work = cache / "work" / f"publish-{os.getpid()}"
    options = BuildOptions(
        spec_path=spec_path, out=work, target=target, node_pool=node_pool, profile=profile,  # type: ignore[arg-type]
        profile_duration=profile_seconds, profile_points=profile_points, profile_server=profile_server,  # type: ignore[arg-type]
        search=search, search_seconds=search_seconds, platform=platform, cache_dir=cache,
    )  # fmt: skip
    inputs = fetch_inputs(
        md,
        base_dir=spec_path.resolve().parent,
        cache_dir=cache,
        target=target,
        platform=platform,
        search=search_inputs(md, options),
    )
    if inputs.failure is not None:
        publish.write(termination_message, publish.error_message(*inputs.failure))
        console.print(f"[bold red]{inputs.failure[0]}:[/] {inputs.failure[1]}")
        sys.exit(EXIT_TRY_AGAIN if inputs.transient else 0)
    try:
        found = publish.published_manifest(store, inputs.key)
        if found is not None:
            location, manifest = found
            reused = True
        else:
            shutil.rmtree(work, ignore_errors=True)
            options.inputs = inputs
            try:
                with StageProgress(console) as progress:
                    result = run_build(options, progress.report)
                manifest = result.manifest
                location, reused = "", False
                if publish.servable(manifest):
                    location, created = publish.publish(store, inputs.key, work)
                    reused = not created
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except publish.PublishError as error:
        fail(str(error), EXIT_TRY_AGAIN if error.transient else EXIT_UNUSABLE)
        return
    except BuildError as error:
        fail(str(error), EXIT_UNUSABLE)
        return
    publish.write(termination_message, publish.result_message(manifest, inputs.key, location, reused))
    console.print(summary_table(manifest))
    console.print(
        f"[bold]{'reused' if reused else 'published'}[/] {location or '(nothing Ready)'} key {inputs.key[:12]}"
    )
    if as_json:
        click.echo(json.dumps(manifest.model_dump(by_alias=True, mode="json"), indent=2))


@click.command(name="fetch", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option(
    "--spec-env",
    default=None,
    help="Read the ModelDeployment YAML from this environment variable instead of --spec (the build Job); it "
    f"is written to {SPEC_FILE} in --inputs for the next steps.",
)
@click.option(
    "--inputs",
    "inputs_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to put the fetched files and inputs.json in.",
)
@click.option("--repository", required=True, help="Where builds are published: s3://bucket/prefix or a directory.")
@click.option("--target", type=click.Choice(["triton", "local"]), default="triton", show_default=True)
@click.option("--platform", "platform_json", default=None, help=PLATFORM_HELP)
@click.option(
    "--relative-files/--no-relative-files",
    default=True,
    show_default=True,
    help="Whether a relative file: URI may name a file beside the spec (not in a cluster).",
)
@click.option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="As the build's own --search: whether the config search (a build input) is part of the key.",
)
@click.option("--termination-message", type=click.Path(dir_okay=False, path_type=Path), default=None)
def fetch(
    *,
    spec_path: Path | None,
    spec_env: str | None,
    inputs_dir: Path,
    repository: str,
    target: str,
    platform_json: str | None,
    relative_files: bool,
    search: bool,
    termination_message: Path | None,
) -> None:
    """Fetch and verify a build's sources, compute its content key and look for it in the repository."""
    import dataclasses

    from rich.console import Console

    from fulcrum.storage.form import content_key_message
    from model_repo_builder import publish, termination
    from model_repo_builder.inputs import PUBLISHED_MANIFEST, fetch_inputs
    from model_repo_builder.pipeline import BuildError, BuildOptions, load_spec, search_inputs

    console = Console(stderr=True)
    inputs_dir.mkdir(parents=True, exist_ok=True)
    if (spec_path is None) == (spec_env is None):
        raise click.UsageError("give exactly one of --spec and --spec-env")
    if spec_env is not None:
        if not os.environ.get(spec_env):
            raise click.UsageError(f"--spec-env: ${spec_env} is empty")
        spec_path = inputs_dir / SPEC_FILE
        spec_path.write_text(os.environ[spec_env])
    assert spec_path is not None
    try:
        md = load_spec(spec_path.resolve())
        store = publish.store_at(repository)
    except (BuildError, publish.PublishError) as error:
        publish.write(termination_message, termination.error(None, str(error)))
        console.print(f"[bold red]error:[/] {error}")
        sys.exit(EXIT_UNUSABLE)
    inputs = fetch_inputs(
        md,
        base_dir=spec_path.resolve().parent,
        cache_dir=inputs_dir,
        target=target,
        platform=_platform(platform_json) or {},
        copy_into=inputs_dir,
        relative_files=relative_files,
        search=search_inputs(md, BuildOptions(spec_path=spec_path, out=inputs_dir, target=target, search=search)),  # type: ignore[arg-type]
    )
    if inputs.failure is None:
        try:
            found = publish.published_manifest(store, inputs.key)
        except publish.PublishError as error:
            inputs = dataclasses.replace(inputs, failure=("StorageFailed", str(error)), transient=error.transient)
        else:
            if found is not None:
                location, manifest = found
                (inputs_dir / PUBLISHED_MANIFEST).write_text(manifest.model_dump_json(by_alias=True))
                inputs = dataclasses.replace(inputs, published=location)
    if inputs.failure is not None:
        console.print(f"[bold red]{inputs.failure[0]}:[/] {inputs.failure[1]}")
        if inputs.transient:
            reason = "SourceUnreachable" if inputs.failure[0] == "SourceFailed" else "StorageUnreachable"
            publish.write(termination_message, publish.error_message(reason, inputs.failure[1]))
            sys.exit(EXIT_TRY_AGAIN)
    inputs.save(inputs_dir)
    if inputs.failure is None:
        state = f"published at {inputs.published}" if inputs.published else "not built yet"
        console.print(f"key {inputs.key[:12]}: {state}")
        if not inputs.published:  # the operator signs this build's upload form for exactly this key
            publish.write(termination_message, content_key_message(inputs.key))


@click.command(name="publish", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--inputs", "inputs_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--built",
    "built_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The repository the build wrote (its --out).",
)
@click.option("--repository", required=True, help="Where to publish: s3://bucket/prefix or a directory.")
@click.option(
    "--upload-form",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Publish to object storage through this signed upload form (JSON; the credentials then only read).",
)
@click.option(
    "--upload-form-wait",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for --upload-form to appear.",
)
@click.option("--termination-message", type=click.Path(dir_okay=False, path_type=Path), default=None)
def publish_command(
    *,
    inputs_dir: Path,
    built_dir: Path,
    repository: str,
    upload_form: Path | None,
    upload_form_wait: float,
    termination_message: Path | None,
) -> None:
    """Publish a built repository under its content key (write-once) and write the build's result."""
    from rich.console import Console

    from model_repo_builder import publish
    from model_repo_builder.inputs import PUBLISHED_MANIFEST, Inputs

    console = Console(stderr=True)
    inputs = Inputs.load(inputs_dir)
    if inputs.failure is not None:
        publish.write(termination_message, publish.error_message(*inputs.failure))
        console.print(f"[bold red]{inputs.failure[0]}:[/] {inputs.failure[1]}")
        return
    if inputs.published:
        manifest = publish.load_manifest(inputs_dir / PUBLISHED_MANIFEST)
        publish.write(termination_message, publish.result_message(manifest, inputs.key, inputs.published, True))
        console.print(f"reused {inputs.published}")
        return
    manifest_path = built_dir / publish.MANIFEST
    if not manifest_path.is_file():
        message = f"the build wrote no {publish.MANIFEST} in {built_dir}"
        publish.write(termination_message, publish.error_message("BuildFailed", message))
        console.print(f"[bold red]error:[/] {message}")
        sys.exit(1)
    manifest = publish.load_manifest(manifest_path)
    location, reused = "", False
    if publish.servable(manifest):
        try:
            store = publish.store_at(repository, upload_form=upload_form, wait=upload_form_wait, say=console.print)
            location, created = publish.publish(store, inputs.key, built_dir)
        except publish.PublishError as error:
            reason = "StorageUnreachable" if error.transient else "PublishFailed"
            publish.write(termination_message, publish.error_message(reason, str(error)))
            console.print(f"[bold red]{reason}:[/] {error}")
            sys.exit(EXIT_TRY_AGAIN if error.transient else 0)
        reused = not created
    publish.write(termination_message, publish.result_message(manifest, inputs.key, location, reused))
    console.print(f"{'reused' if reused else 'published'} {location or '(no Ready tier: nothing to publish)'}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Fulcrum's model repository builder."""


main.add_command(build)
main.add_command(fetch)
main.add_command(publish_command)
