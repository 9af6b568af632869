"""``fulcrum storage``: read published model repositories (serving pods' init container, and people).

Object storage is reached with the AWS_* environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from fulcrum.storage import ObjectURI, RepositoryError, S3Error, StorageConfigError, open_repository
from fulcrum.storage.repository import MARKER, Published, S3Repository

TERMINATION_LOG = Path("/dev/termination-log")


def _fail(message: str) -> None:
    """Exit 1 with ``message`` on stderr and, inside a pod, as the container's termination message."""
    click.echo(f"error: {message}", err=True)
    if TERMINATION_LOG.parent.is_dir() and TERMINATION_LOG.exists():
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(message[:4000])
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def storage() -> None:
    """Read model repositories published by Fulcrum's builds (s3://bucket/prefix/<key>)."""


@storage.command()
@click.option("--from", "source", required=True, help="A published key: s3://bucket/prefix/<key> (gs://...).")
@click.option(
    "--into",
    "target",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to create with the repository (it appears whole, by rename).",
)
@click.option("--only", multiple=True, help="Fetch only these top-level directories (Triton models); repeatable.")
def pull(source: str, target: Path, only: tuple[str, ...]) -> None:
    """Download a published repository, verifying every file against the key's marker."""
    try:
        uri = ObjectURI.parse(source)
        parent, _, key = uri.key.rstrip("/").rpartition("/")
        store = open_repository(str(ObjectURI(uri.scheme, uri.bucket, parent)))
    except StorageConfigError as error:
        _fail(str(error))
        return
    assert isinstance(store, S3Repository)
    started = time.monotonic()
    try:
        if (target / MARKER).is_file():
            have = Published.from_json((target / MARKER).read_bytes(), key)
            marker = store.published(key)
            if marker is not None and marker.upload == have.upload:
                click.echo(f"{target} already holds {source}", err=True)
                return
            _fail(f"{target} holds another upload of {key} than the published one: remove it first")
        marker = store.pull(key, target, only=set(only) or None)
    except (S3Error, RepositoryError, OSError) as error:
        _fail(f"pulling {source}: {error}")
        return
    finally:
        store.client.close()
    seconds = time.monotonic() - started
    size = sum(f.size for f in marker.files if not only or f.path.split("/", 1)[0] in only or "/" not in f.path)
    click.echo(f"pulled {source} into {target}: {size / 2**20:.1f} MiB in {seconds:.2f}s", err=True)


@storage.command(name="ls")
@click.argument("root")
def list_keys(root: str) -> None:
    """List the keys published under ROOT (s3://bucket/prefix or a directory): key, size, when."""
    try:
        store = open_repository(root)
        for key in store.all_keys():
            marker = store.published(key)
            if marker is None:
                click.echo(f"{key}  (not published: an upload that did not finish)")
            else:
                click.echo(
                    f"{key}  {marker.total_bytes / 2**20:8.1f} MiB  {len(marker.files):4d} files  {marker.published_at}"
                )
    except (StorageConfigError, S3Error, RepositoryError) as error:
        raise click.ClickException(str(error)) from error
