"""Images are not pulled: a small map turns a container's image + command into a local argv. Pure.

- ``nvcr.io/nvidia/tritonserver:*`` running ``tritonserver ARGS`` -> ``python -m fulcrum.local_triton ARGS``
  (the tritonserver binary of the ``nvidia-pytriton`` wheel, with its environment);
- images whose name contains ``fulcrum`` -> the command as given, with this virtualenv's ``bin/`` first
  on PATH (``python`` and ``fulcrum`` resolve to this checkout's);
- any other image -> the command as given, run on the host. A container without a command cannot run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver"


class NoLocalCommandError(ValueError):
    pass


@dataclass(frozen=True)
class LocalCommand:
    argv: list[str]
    path_prefix: str | None  # prepended to PATH, or None


def image_name(image: str) -> str:
    """``repo/name:tag@digest`` -> ``repo/name``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def local_command(image: str, command: list[str], args: list[str], python: str, venv_bin: str) -> LocalCommand:
    argv = [*command, *args]
    name = image_name(image)
    if name == TRITON_IMAGE or name.endswith("/tritonserver"):
        if argv and Path(argv[0]).name == "tritonserver":
            return LocalCommand([python, "-m", "fulcrum.local_triton", *argv[1:]], venv_bin)
        if not argv:
            raise NoLocalCommandError(f"image {image}: give the container a `tritonserver ...` command")
        return LocalCommand(argv, venv_bin)
    if not argv:
        raise NoLocalCommandError(
            f"image {image} has no command or args and images are not pulled on local-0: "
            "give the container an explicit command"
        )
    if "fulcrum" in name:
        return LocalCommand(argv, venv_bin)
    return LocalCommand(argv, None)


def with_path(env: dict[str, str], prefix: str | None) -> dict[str, str]:
    if prefix is None:
        return env
    current = env.get("PATH", os.defpath)
    return {**env, "PATH": f"{prefix}{os.pathsep}{current}"}
