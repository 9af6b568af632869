"""A TensorRT tier that its pool's build gated and profiled is a candidate like any other, end to end in pure code:
the builder's termination message -> the build record -> merged tier status -> the policy's profile table ->
``decide`` -> the serving Deployment (pinned to the GPU model and Triton image the plan was measured with)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fulcrum.api import ModelDeploymentStatus, TierProfiles, parse_model_deployment
from fulcrum.policy import Observation, PolicyState, ProfileTable, decide
from fulcrum.reconcile.builds import result_from_termination_message
from fulcrum.reconcile.plan import Choice, plan, pool_builds, servable
from fulcrum.resources.settings import OperatorSettings
from model_repo_builder.termination import compact
from tests.unit.test_policy_support import model_profile

SETTINGS = OperatorSettings()
IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"
BODY: dict[str, Any] = {
    "apiVersion": "fulcrum.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "ranker", "namespace": "shop", "uid": "u1", "generation": 1},
    "spec": {
        "model": {"source": {"uri": "s3://b/m.onnx", "format": "onnx"}},
        "tiers": [
            {"name": "fp32", "precision": "fp32"},
            {"name": "fp16-trt", "precision": "fp16", "backend": "tensorrt"},
        ],
        "slo": {"latencyMs": 25},
        "budget": {"maxCostPerHour": "4.00"},
        "nodePools": [{"name": "l4", "gpusPerReplica": 1, "costPerHour": "1.00", "nodeSelector": {"pool": "l4"}}],
        "scaling": {"maxReplicas": 10},
    },
}


def _tier(name: str, backend: str, capacity: float) -> dict[str, Any]:
    profile = model_profile("l4", capacity).model_dump(mode="json", by_alias=True)
    profile["config"] = {"instances": 2, "maxQueueDelayMicroseconds": 1250, "preferredBatchSizes": [16, 32]}
    return {
        "name": name,
        "precision": "fp16" if "fp16" in name else "fp32",
        "backend": backend,
        "state": "Ready",
        "reason": "Built",
        "message": "built",
        "accuracy": {"MeanAbsError": 0.0004},
        "validation": {"gateRows": [256, 512], "gatedOn": "tritonserver 2.51.0 on NVIDIA-L4"},
        "profiles": [profile],
        "path": name,
    }


def test_a_profiled_tensorrt_tier_is_chosen_when_fp32_does_not_fit_the_budget() -> None:
    md = parse_model_deployment(BODY)
    spec = md.spec
    (build,) = pool_builds(spec, SETTINGS, {}, {})
    assert build.serving_image == SETTINGS.triton_image
    manifest = {
        "model": "ranker",
        "source": {"uri": "s3://b/m.onnx", "sha256": "0" * 64},
        "gpuProduct": "NVIDIA-L4",
        "tiers": [_tier("fp32", "onnxruntime", 1000.0), _tier("fp16-trt", "tensorrt", 4000.0)],
    }
    message = compact(manifest, build.key, f"/models/{build.key}", reused=False)
    result = result_from_termination_message(message, succeeded=True, storage=SETTINGS.storage)
    result = dataclasses.replace(result, serving_image=IMAGE)  # as the operator harvests it from the Job
    (build,) = pool_builds(spec, SETTINGS, {build.key: result}, {})

    first = plan(
        md=BODY, spec=spec, status=ModelDeploymentStatus(), settings=SETTINGS, builds=[build], servers=[], now="t0"
    )
    trt = next(t for t in first.tiers if t.name == "fp16-trt")
    assert trt.state == "Ready" and trt.backend == "tensorrt"
    assert ("fp16-trt", "l4") in {(t, p.name) for t, p in servable(spec, first.tiers)}
    status_tier = next(t for t in first.status.tiers if t.name == "fp16-trt")
    assert status_tier.validation is not None and "NVIDIA-L4" in status_tier.validation.gated_on
    assert status_tier.profiles[0].config is not None  # the config that serves travels with the profile

    # the policy reads the Ready tiers' profiles from status, as the operator does
    table = ProfileTable.from_tiers(
        TierProfiles(name=t.name, profiles=t.profiles) for t in first.status.tiers if t.state == "Ready"
    )
    decision = decide(spec, table, Observation(6000.0), PolicyState(), 0.0)
    assert (decision.tier, decision.node_pool) == ("fp16-trt", "l4"), decision.reason
    assert decision.replicas * 1.00 <= 4.00  # fp32 would need about 7 replicas: over the budget

    choice = Choice(decision.tier, decision.node_pool, decision.replicas)
    served = plan(
        md=BODY, spec=spec, status=first.status, settings=SETTINGS, builds=[build], servers=[], now="t1", choice=choice
    )
    deployment = next(m for m in served.apply if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "l4", "nvidia.com/gpu.product": "NVIDIA-L4"}
    assert pod["containers"][0]["image"] == IMAGE
    assert "--load-model=fp16-trt" in pod["containers"][0]["args"]
    record = json.loads(json.dumps(result.to_record()))
    assert record["servingImage"] == IMAGE


def test_a_tensorrt_plan_whose_image_or_gpu_was_not_recorded_does_not_serve() -> None:
    """Rather than let a plan meet another TensorRT or GPU and crash-loop, the tier is Unavailable with a reason."""
    md = parse_model_deployment(BODY)
    (build,) = pool_builds(md.spec, SETTINGS, {}, {})
    manifest = {
        "model": "ranker",
        "source": {"uri": "s3://b/m.onnx", "sha256": "0" * 64},
        "tiers": [_tier("fp32", "onnxruntime", 1000.0), _tier("fp16-trt", "tensorrt", 4000.0)],
    }  # no gpuProduct: the builder could not name the GPU
    message = compact(manifest, build.key, f"/models/{build.key}", reused=False)
    result = dataclasses.replace(
        result_from_termination_message(message, succeeded=True, storage=SETTINGS.storage), serving_image=IMAGE
    )
    (build,) = pool_builds(md.spec, SETTINGS, {build.key: result}, {})
    p = plan(
        md=BODY, spec=md.spec, status=ModelDeploymentStatus(), settings=SETTINGS, builds=[build], servers=[], now="t"
    )
    tiers = {t.name: t for t in p.status.tiers}
    assert (tiers["fp16-trt"].state, tiers["fp16-trt"].reason) == ("Unavailable", "EngineUnpinned")
    assert "GPU model" in tiers["fp16-trt"].message and "l4" in tiers["fp16-trt"].message
    assert tiers["fp32"].state == "Ready"
    assert [t for t, _ in servable(md.spec, p.tiers)] == ["fp32"]
