"""The build Job's termination message always fits its share of the kubelet's 12 KiB per pod."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_repo_builder.termination import DEFLATED, LIMIT, compact, error, unpacked


def _noise(n: int, seed: int = 0) -> str:
    """Text that does not deflate (a real message or path does not repeat itself)."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def _manifest(tiers: int, points: int, message: str = "built") -> dict[str, Any]:
    rng = random.Random(points * 31 + tiers)  # measured latencies: no two alike

    def profile() -> dict[str, Any]:
        return {
            "nodePool": "local",
            "points": [
                {
                    "requestsPerSecond": 10.123456 * (i + 1),
                    "latencyMs": {"p50": 1.23456, "p90": 2.3456, "p95": 3.4567, "p99": 4.56789}
                    if i == 0
                    else {q: round(rng.uniform(1, 900), 5) for q in ("p50", "p90", "p95", "p99")},
                }
                for i in range(points)
            ],
        }

    return {
        "model": "ctr",
        "source": {"uri": "file:model.pt2", "sha256": "a" * 64},
        "tiers": [
            {
                "name": f"tier-{i}",
                "precision": "fp32",
                "backend": "onnxruntime",
                "state": "Ready",
                "reason": "Built",
                "message": message,
                "accuracy": {"MaxAbsError": 0.000123456789, "Cosine": 0.99999912345},
                "profiles": [profile()],
                "path": f"tier-{i}",
            }
            for i in range(tiers)
        ],
    }


def test_small_results_are_complete_and_rounded() -> None:
    result = json.loads(unpacked(compact(_manifest(2, 3), "k" * 64, "/repo", reused=False)))
    assert result["truncated"] is False and result["key"] == "k" * 64 and result["repository"] == "/repo"
    tier = result["manifest"]["tiers"][0]
    assert tier["accuracy"] == {"MaxAbsError": 0.0001235, "Cosine": 1.0}
    assert tier["profiles"][0]["points"][0] == {
        "requestsPerSecond": 10.1,
        "latencyMs": {"p50": 1.23, "p90": 2.35, "p95": 3.46, "p99": 4.57},
    }
    assert len(tier["profiles"][0]["points"]) == 3


def test_large_results_thin_profiles_keeping_the_ends() -> None:
    manifest = _manifest(8, 40)
    text = compact(manifest, "k" * 64, "/repo", reused=True)
    assert len(text.encode()) <= LIMIT
    result = json.loads(unpacked(text))
    assert result["truncated"] is True and result["reused"] is True
    points = result["manifest"]["tiers"][0]["profiles"][0]["points"]
    assert 2 <= len(points) < 40
    assert points[0]["requestsPerSecond"] == 10.1  # first point kept
    assert points[-1]["requestsPerSecond"] == round(10.123456 * 40, 1)  # the saturation end kept
    assert manifest["tiers"][0]["profiles"][0]["points"][0]["requestsPerSecond"] == 10.123456  # input untouched


def test_long_messages_are_cut_then_profiles_dropped() -> None:
    result = json.loads(unpacked(compact(_manifest(8, 2, message=_noise(2000)), "k" * 64, "/repo", reused=False)))
    assert result["truncated"] is True
    assert all(len(t["message"]) <= 160 for t in result["manifest"]["tiers"])
    huge = _manifest(8, 2, message=_noise(2000, 1))
    for tier in huge["tiers"]:
        tier["profiles"] = tier["profiles"] * 20  # 20 node pools
    text = compact(huge, "k" * 64, "/r", reused=False)
    assert len(text.encode()) <= LIMIT
    assert [t["name"] for t in json.loads(unpacked(text))["manifest"]["tiers"]] == [f"tier-{i}" for i in range(8)]


def test_impossible_fit_raises() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        compact(_manifest(1, 1), "k" * 64, "/" + _noise(6000), reused=False)


@settings(max_examples=60, deadline=None)
@given(
    tiers=st.integers(min_value=1, max_value=8),
    points=st.integers(min_value=0, max_value=60),
    pools=st.integers(min_value=1, max_value=16),
    message=st.text(max_size=600),
)
def test_always_fits_and_keeps_every_tier(tiers: int, points: int, pools: int, message: str) -> None:
    manifest = _manifest(tiers, points, message=message)
    for tier in manifest["tiers"]:
        tier["profiles"] = [dict(tier["profiles"][0], nodePool=f"pool-{i}") for i in range(pools)]
    text = compact(manifest, "k" * 64, "/var/lib/fulcrum/repos/ctr-ranker/0123456789abcdef", reused=False)
    assert len(text.encode()) <= LIMIT
    result = json.loads(unpacked(text))
    assert [t["name"] for t in result["manifest"]["tiers"]] == [t["name"] for t in manifest["tiers"]]
    assert [t["state"] for t in result["manifest"]["tiers"]] == ["Ready"] * tiers


def test_search_candidates_go_before_the_last_points_and_the_chosen_config_stays() -> None:
    manifest = _manifest(4, 12)
    config = {"instances": 2, "maxQueueDelayMicroseconds": 1250, "preferredBatchSizes": [16, 32]}
    rng = random.Random(3)
    for tier in manifest["tiers"]:
        tier["profiles"][0]["config"] = config
        tier["profiles"][0]["search"] = {
            "seconds": 41.0,
            "candidates": [
                {
                    "config": dict(config, instances=rng.randint(1, 8), maxQueueDelayMicroseconds=rng.randint(0, 9999)),
                    "requestsPerSecond": rng.uniform(10, 900),
                }
                for _ in range(40)
            ],
        }
    result = json.loads(unpacked(compact(manifest, "k" * 64, "/repo", reused=False)))
    assert result["truncated"] is True
    profile = result["manifest"]["tiers"][0]["profiles"][0]
    assert profile["config"] == config and profile["search"] == {"seconds": 41.0, "candidates": []}
    assert 3 <= len(profile["points"]) <= 5  # thinned to five or fewer first, then the candidates went
    small = _manifest(3, 10)
    for tier in small["tiers"]:
        tier["profiles"][0]["search"] = {"seconds": 20.0, "candidates": [{"config": config, "requestsPerSecond": 1.0}]}
    kept = json.loads(unpacked(compact(small, "k" * 64, "/repo", reused=False)))["manifest"]["tiers"][0]["profiles"][0]
    assert len(kept["search"]["candidates"]) == 1  # thinning the points was enough


def test_a_result_longer_than_the_limit_is_deflated_before_anything_is_dropped() -> None:
    """Three tiers with searched profiles of eight points (what ctr-ranker's build reports) are 4 to 5 KB of JSON:
    deflated they fit whole, and the operator reads them back (fulcrum.reconcile.builds)."""
    from fulcrum.reconcile.builds import result_from_termination_message
    from fulcrum.resources.settings import RepositoryStorage

    manifest = _manifest(3, 8)
    plain = json.dumps(manifest)
    assert len(plain) > LIMIT
    text = compact(manifest, "k" * 64, "s3://models/repositories/" + "k" * 64, reused=False)
    assert text.startswith(DEFLATED) and len(text.encode()) <= LIMIT
    result = json.loads(unpacked(text))
    assert result["truncated"] is False
    assert [len(t["profiles"][0]["points"]) for t in result["manifest"]["tiers"]] == [8, 8, 8]
    parsed = result_from_termination_message(
        text, succeeded=True, storage=RepositoryStorage.parse("s3://models/repositories")
    )
    assert parsed.phase == "Succeeded" and parsed.manifest is not None
    assert [len(t.profiles[0].points) for t in parsed.manifest.tiers] == [8, 8, 8]


def test_errors_are_cut_to_fit() -> None:
    text = error("SourceFailed", '\u00e9"' * 3000)  # escapes make JSON longer than the text
    assert len(text.encode()) <= LIMIT and json.loads(text)["error"]["reason"] == "SourceFailed"
    assert len(error(None, "x" * 10).encode()) < LIMIT
