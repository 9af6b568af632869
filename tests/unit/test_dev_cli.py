"""`fulcrum dev` command line: help, validation, status of a home where nothing runs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fulcrum.commands.dev import dev


def test_help_lists_the_sub_commands() -> None:
    result = CliRunner().invoke(dev, ["--help"])
    assert result.exit_code == 0
    for name in ("build", "up", "down", "status"):
        assert name in result.output


def test_bad_pool_is_rejected_before_anything_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(dev, ["up", "--home", str(tmp_path), "--pool", "l4=four"])
    assert result.exit_code != 0
    assert "NAME=NODES" in result.output
    assert not (tmp_path / "run").exists()


def test_status_and_down_of_an_empty_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(dev, ["status", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert {c["state"] for c in info["components"]} == {"stopped"}
    assert info["apiserverReady"] is False
    down = CliRunner().invoke(dev, ["down", "--home", str(tmp_path)])
    assert down.exit_code == 0
    assert "nothing" in down.output
