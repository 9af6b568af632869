"""The quickstart's pure parts: the build progress line and the step load's size."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quickstart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "scripts" / "quickstart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["quickstart"] = module
    spec.loader.exec_module(module)
    return module


def pod(init: list[dict[str, Any]], main: list[dict[str, Any]], phase: str = "Pending") -> dict[str, Any]:
    return {
        "metadata": {"name": "fulcrum-build-abc-x1"},
        "status": {"phase": phase, "initContainerStatuses": init, "containerStatuses": main},
    }


def done(name: str) -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}


def test_build_step_names_the_step_that_runs_now(quickstart: ModuleType) -> None:
    running = pod(
        [done("fetch"), done("build"), {"name": "measure", "state": {"running": {}}}],
        [{"name": "triton", "state": {"running": {}}}],
    )
    assert quickstart.build_step(running) == "fulcrum-build-abc-x1: step measure running"


def test_build_step_is_never_the_triton_sidecar(quickstart: ModuleType) -> None:
    measuring = pod(
        [
            done("fetch"),
            done("build"),
            {"name": "triton", "state": {"running": {}}},
            {"name": "measure", "state": {"running": {}}},
        ],
        [{"name": "publish", "state": {"waiting": {"reason": "PodInitializing"}}}],
    )
    measuring["spec"] = {"initContainers": [{"name": "triton", "restartPolicy": "Always"}]}
    assert quickstart.build_step(measuring) == "fulcrum-build-abc-x1: step measure running"


def test_build_step_shows_why_a_step_waits(quickstart: ModuleType) -> None:
    pulling = pod([{"name": "fetch", "state": {"waiting": {"reason": "ErrImagePull"}}}], [])
    assert quickstart.build_step(pulling) == "fulcrum-build-abc-x1: step fetch waiting (ErrImagePull)"


def test_build_step_before_and_after_the_kubelet_reports(quickstart: ModuleType) -> None:
    assert quickstart.build_step(pod([], [])) == "fulcrum-build-abc-x1: Pending"
    finished = pod([done("fetch"), done("build"), done("measure")], [done("publish")], phase="Succeeded")
    assert quickstart.build_step(finished) == "fulcrum-build-abc-x1: step publish terminated (Completed)"


def test_build_line_selects_build_pods_by_the_operators_label(
    quickstart: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fulcrum.resources import labels

    asked: list[tuple[str, ...]] = []

    def kubectl(*args: str, check: bool = True) -> Any:
        asked.append(args)
        items = [pod([{"name": "fetch", "state": {"running": {}}}], [])]
        return type("Result", (), {"stdout": json.dumps({"items": items})})()

    monkeypatch.setattr(quickstart, "kubectl", kubectl)
    assert quickstart.build_line() == "fulcrum-build-abc-x1: step fetch running"
    selector = asked[0][asked[0].index("-l") + 1]
    assert selector == f"{labels.COMPONENT}={labels.COMPONENT_BUILD}"


@pytest.mark.parametrize("capacity", [40.0, 150.0, 250.0])
def test_the_step_needs_more_replicas_than_one(quickstart: ModuleType, capacity: float, tmp_path: Path) -> None:
    rows = quickstart.step_trace(capacity, tmp_path / "step.csv").read_text().splitlines()[1:]
    rates = [float(row.split(",")[1]) for row in rows]
    assert rates[0] < capacity and rates[-1] < capacity  # low before and after: one replica, then scale down
    assert max(rates) >= 2 * capacity  # the peak needs at least a second replica, with room


def test_the_step_never_asks_more_than_the_generator_sends(quickstart: ModuleType, tmp_path: Path) -> None:
    rows = quickstart.step_trace(1000.0, tmp_path / "step.csv").read_text().splitlines()[1:]
    assert max(float(row.split(",")[1]) for row in rows) == quickstart.MAX_LOAD_RPS
