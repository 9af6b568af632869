"""The ``fulcrum`` command.

Sub-commands live in ``fulcrum.commands.<name>`` and are imported only when invoked, so
``fulcrum --help`` stays fast and never drags in the Kubernetes client, onnxruntime or torch.
"""

from __future__ import annotations

import importlib

import click

from fulcrum import __version__

# name -> (module, attribute, one-line help). The order is the order `fulcrum --help` shows.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("fulcrum.commands.run", "run", "Run the operator against the current kubeconfig (or in a pod)."),
    "crd": ("fulcrum.commands.crd", "crd", "Print the ModelDeployment CustomResourceDefinition."),
    "build": ("fulcrum.commands.build", "build", "Build a model's precision tiers into a Triton repository."),
    "serve": ("fulcrum.commands.serve", "serve", "Serve a local model repository with the bundled tritonserver."),
    "storage": ("fulcrum.commands.storage", "storage", "Read published model repositories (s3://...)."),
    "simulate": ("fulcrum.commands.simulate", "simulate", "Replay a traffic trace against Fulcrum and baselines."),
    "load": ("fulcrum.commands.load", "load", "Drive open-loop load at a Triton Service from a trace."),
    "report": (
        "fulcrum.commands.report",
        "report",
        "What Fulcrum decided for a ModelDeployment and why, as a table and a PNG.",
    ),
    "dev": ("fulcrum.commands.dev", "dev", "Run a real local Kubernetes control plane with kwok GPU pools."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, _ = entry
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # pragma: no cover - a programming error
            raise TypeError(f"{module_name}.{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table, so listing commands imports none of them.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, _, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fulcrum")
def main() -> None:
    """Fulcrum: serve models on Triton at the lowest cost that meets a latency SLO."""


if __name__ == "__main__":  # pragma: no cover
    main()
