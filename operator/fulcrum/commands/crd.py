"""``fulcrum crd``: print the CustomResourceDefinition generated from the API models."""

from __future__ import annotations

import click

from fulcrum.api.crd import crd_yaml


@click.command(help="Print the ModelDeployment CustomResourceDefinition (YAML) generated from the API models.")
def crd() -> None:
    click.echo(crd_yaml(), nl=False)
