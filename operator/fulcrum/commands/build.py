"""``fulcrum build``: the model repository builder (``python -m model_repo_builder build``, the same command).

The builder is imported when the command runs, so ``fulcrum --help`` and the operator never import it.
"""

from __future__ import annotations

import click


@click.command(
    name="build",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "allow_interspersed_args": False},
    help="Build a model's precision tiers into a Triton repository (see `fulcrum build --help`).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def build(args: tuple[str, ...]) -> None:
    from model_repo_builder.cli import build as builder_command  # noqa: PLC0415 - keep `fulcrum` light

    builder_command.main(args=list(args), prog_name="fulcrum build")
