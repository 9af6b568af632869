"""The Argo CD health check (charts/fulcrum/argocd/health.lua) under a real Lua interpreter.

Argo CD runs health checks with gopher-lua, a Lua 5.1; lupa's lua51 module is the reference Lua 5.1, so a
script that uses anything newer fails here. The cases follow Argo CD's own layout (health_test.yaml +
testdata/), and a status the real planner wrote is checked too.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.chart import ARGOCD_HEALTH, CHART, argocd_health

lupa = pytest.importorskip("lupa.lua51")

ARGOCD = CHART / "argocd"
assert ARGOCD_HEALTH.parent == ARGOCD
CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


def health(obj: dict[str, Any]) -> dict[str, str]:
    return argocd_health(obj)


def test_the_interpreter_is_lua_5_1() -> None:
    assert lupa.LuaRuntime().lua_version == (5, 1)


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"].rsplit("/", 1)[-1] for c in CASES])
def test_health_of_sample_objects(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert health(obj) == case["healthStatus"]


def test_every_status_and_every_sample_is_covered() -> None:
    statuses = {c["healthStatus"]["status"] for c in CASES}
    assert statuses == {"Healthy", "Progressing", "Degraded"}
    samples = {p.name for p in (ARGOCD / "testdata").glob("*.yaml")}
    assert samples == {c["inputPath"].rsplit("/", 1)[-1] for c in CASES}


def _md(status: dict[str, Any] | None, generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "fulcrum.dev/v1alpha1", "kind": "ModelDeployment"}
    obj["metadata"] = {"name": "m", "namespace": "n", "generation": generation}
    if status is not None:
        obj["status"] = status
    return obj


def _conditions(**statuses: str) -> list[dict[str, str]]:
    return [{"type": t, "status": s, "reason": f"{t}Reason", "message": ""} for t, s in statuses.items()]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        # Stalled wins over everything the object still claims
        ({"observedGeneration": 2, "conditions": _conditions(Ready="True", Stalled="True")}, "Degraded"),
        ({"observedGeneration": 2, "conditions": _conditions(Ready="True", Reconciling="True")}, "Progressing"),
        ({"observedGeneration": 2, "conditions": _conditions(Ready="False")}, "Progressing"),
        ({"observedGeneration": 2, "conditions": _conditions(Ready="Unknown")}, "Progressing"),
        ({"observedGeneration": 2, "conditions": _conditions(Ready="True", Stalled="False")}, "Healthy"),
        # a newer spec that the operator has not seen: whatever the conditions say, not yet Healthy
        ({"observedGeneration": 1, "conditions": _conditions(Ready="True")}, "Progressing"),
        ({"conditions": _conditions(Ready="True")}, "Progressing"),
        # an empty status object (no conditions yet)
        ({}, "Progressing"),
    ],
)
def test_rules(status: dict[str, Any], expected: str) -> None:
    assert health(_md(status))["status"] == expected


def test_object_without_generation_is_judged_by_its_conditions() -> None:
    obj = _md({"conditions": _conditions(Ready="True")})
    del obj["metadata"]["generation"]
    assert health(obj)["status"] == "Healthy"


def test_the_planners_own_status_reads_as_progressing_while_building() -> None:
    """A status produced by the operator's real planner (not a hand-written sample) is understood."""
    plan_mod = pytest.importorskip("fulcrum.reconcile.plan")
    from fulcrum.api import ModelDeploymentStatus, parse_model_deployment
    from fulcrum.resources.settings import OperatorSettings

    example = yaml.safe_load(
        """
apiVersion: fulcrum.dev/v1alpha1
kind: ModelDeployment
metadata: {name: ranker, namespace: shop, uid: 0b7c6f2e-0000-4000-8000-000000000001, generation: 4}
spec:
  model: {source: {uri: "s3://models/ranker.onnx", format: onnx}}
  tiers: [{name: fp32, precision: fp32, backend: onnxruntime}]
  slo: {latencyMs: 25}
  nodePools: [{name: l4, costPerHour: "0.85"}]
"""
    )
    md = parse_model_deployment(example)
    settings = OperatorSettings()
    builds = plan_mod.pool_builds(md.spec, settings, {}, {})
    result = plan_mod.plan(
        md=example,
        spec=md.spec,
        status=ModelDeploymentStatus(),
        settings=settings,
        builds=builds,
        servers=[],
        now="2026-11-29T10:00:00Z",
    )
    obj = {**example, "status": result.status.to_wire()}
    verdict = health(obj)
    assert verdict["status"] == "Progressing", verdict
    assert verdict["message"].startswith("Building")
