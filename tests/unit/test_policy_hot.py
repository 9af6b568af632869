"""Hot tiers: which Ready tiers each replica of a pool loads together, and why the others are served cold."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fulcrum.api import ModelDeploymentSpec, parse_spec
from fulcrum.api.spec import memory_bytes
from fulcrum.policy.hot import LOAD_FACTOR, hot_layout, hot_tiers
from tests.support.manifest_cases import BASE

MiB = 2**20
GiB = 2**30


def spec(serving: dict[str, Any] | None = None, **pool: Any) -> ModelDeploymentSpec:
    data = copy.deepcopy(BASE["spec"])
    data["nodePools"] = [{"name": "l4", "costPerHour": "0.85", **pool}]
    if serving is not None:
        data["serving"] = serving
    return parse_spec(data)


SIZES = {"fp32": 400 * MiB, "fp16": 200 * MiB, "int8": 100 * MiB}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("24Gi", 24 * GiB), ("1.5G", 1_500_000_000), ("512Mi", 512 * MiB), ("1000", 1000), ("0.5Ki", 512)],
)
def test_memory_quantities(text: str, expected: int) -> None:
    assert memory_bytes(text) == expected


def test_memory_quantity_refuses_what_kubernetes_would_not_mean() -> None:
    with pytest.raises(ValueError, match="not a memory quantity"):
        memory_bytes("24GB")


def test_without_a_known_memory_every_ready_tier_is_hot_in_spec_order() -> None:
    s = spec()
    pool = s.node_pools[0]
    assert hot_tiers(s, pool, {"int8": None, "fp32": 1}) == ("fp32", "int8")
    assert hot_layout(s, pool, {"fp32": 1}).hot is False  # one tier: nothing to switch among


def test_memory_bounds_the_tiers_kept_in_spec_order() -> None:
    # fp32 (800 MiB loaded) fits; fp16 would need 400 more than the 1 GiB leaves; int8 (200) fits beside fp32
    s = spec(memoryPerReplica="1Gi")
    layout = hot_layout(s, s.node_pools[0], SIZES)
    assert layout.tiers == ("fp32", "int8")
    assert [(x.tier, x.reason) for x in layout.left_out] == [("fp16", "DoesNotFit")]
    assert (
        "fp16 takes 400 MiB" in layout.left_out[0].message
        and "1 GiB per replica on pool l4" in layout.left_out[0].message
    )
    assert LOAD_FACTOR * (SIZES["fp32"] + SIZES["int8"]) <= GiB


def test_a_tier_that_fits_nowhere_is_left_out_alone() -> None:
    s = spec(memoryPerReplica="600Mi")
    layout = hot_layout(s, s.node_pools[0], SIZES)
    assert layout.tiers == ("fp16", "int8")
    assert [x.tier for x in layout.left_out] == ["fp32"]


def test_an_unknown_size_is_never_assumed_to_fit() -> None:
    s = spec(memoryPerReplica="80Gi")
    layout = hot_layout(s, s.node_pools[0], {"fp32": 1 * GiB, "fp16": None, "int8": 1 * GiB})
    assert layout.tiers == ("fp32", "int8")
    assert [(x.tier, x.reason) for x in layout.left_out] == [("fp16", "SizeUnknown")]


def test_a_cpu_pool_is_bounded_by_the_containers_memory_limit() -> None:
    s = spec({"resources": {"limits": {"memory": "1Gi"}}}, gpusPerReplica=0)
    assert hot_tiers(s, s.node_pools[0], SIZES) == ("fp32", "int8")
    gpu = spec({"resources": {"limits": {"memory": "1Gi"}}}, gpusPerReplica=1)
    assert hot_tiers(gpu, gpu.node_pools[0], SIZES) == ("fp32", "fp16", "int8"), "host RAM does not bound a GPU"


def test_the_spec_can_choose_the_hot_tiers_or_turn_them_off() -> None:
    s = spec({"hotTiers": ["int8", "fp32"]})
    layout = hot_layout(s, s.node_pools[0], SIZES)
    assert layout.tiers == ("fp32", "int8")
    assert [(x.tier, x.reason) for x in layout.left_out] == [("fp16", "NotListed")]
    off = spec({"hotTiers": []})
    assert hot_tiers(off, off.node_pools[0], SIZES) == ()
    # a listed tier still has to fit
    tight = spec({"hotTiers": ["fp32", "fp16"]}, memoryPerReplica="1Gi")
    assert hot_tiers(tight, tight.node_pools[0], SIZES) == ("fp32",)


def test_only_ready_tiers_are_candidates() -> None:
    s = spec()
    assert hot_tiers(s, s.node_pools[0], {"int8": 5}) == ("int8",)
    assert hot_tiers(s, s.node_pools[0], {}) == ()
