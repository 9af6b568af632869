"""`fulcrum build` is `python -m model_repo_builder build`: same options, same errors (no model is built here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_both_entry_points_show_the_same_options() -> None:
    via_fulcrum = _run("fulcrum", "build", "--help")
    via_module = _run("model_repo_builder", "build", "--help")
    assert via_fulcrum.returncode == 0 and via_module.returncode == 0, via_fulcrum.stderr + via_module.stderr
    for option in ("--spec", "--out", "--target", "--node-pool", "--json", "--profile / --no-profile",
                   "--termination-message", "--profile-server"):  # fmt: skip
        assert option in via_fulcrum.stdout and option in via_module.stdout
    assert via_fulcrum.stdout.replace("fulcrum build", "X") == via_module.stdout.replace(
        "python -m model_repo_builder build", "X"
    ).replace("__main__.py build", "X")


def test_invalid_spec_exits_2_and_writes_the_error(tmp_path: Path) -> None:
    spec = tmp_path / "md.yaml"
    spec.write_text(
        "apiVersion: fulcrum.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: x}\n"
        "spec:\n  model: {source: {uri: 'file:m.pt', format: torchscript}}\n  tiers: [{name: a, precision: fp32}]\n"
        "  slo: {latencyMs: 10}\n  nodePools: [{name: cpu, gpusPerReplica: 0, costPerHour: '1'}]\n"
    )
    message = tmp_path / "termination-log"
    done = _run(
        "fulcrum", "build", "--spec", str(spec), "--out", str(tmp_path / "out"), "--termination-message", str(message)
    )
    assert done.returncode == 2
    error = json.loads(message.read_text())["error"]
    assert "model.inputs and model.outputs are required" in error and str(spec) in error
