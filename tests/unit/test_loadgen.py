"""The load generator's pure parts: arrival schedule, request bodies, endpoint selection, statistics."""

from __future__ import annotations

import pytest

from fulcrum.loadgen.generator import Schedule, request_body
from fulcrum.loadgen.stats import Interval, run_summary
from fulcrum.resources.endpoints import ready_addresses, ready_endpoints


def test_arrivals_follow_the_rates_and_are_seeded() -> None:
    schedule = Schedule(times=[0, 10], rates=[100, 400], end=20)
    arrivals = schedule.arrivals(seed=1)
    first = sum(1 for _, i in arrivals if i == 0)
    second = sum(1 for _, i in arrivals if i == 1)
    assert first == pytest.approx(1000, rel=0.1) and second == pytest.approx(4000, rel=0.06)
    assert all(0 <= t < 10 for t, i in arrivals if i == 0) and all(10 <= t < 20 for t, i in arrivals if i == 1)
    assert arrivals == schedule.arrivals(seed=1) and arrivals != schedule.arrivals(seed=2)
    assert Schedule(times=[0], rates=[0], end=5).arrivals() == []


def test_request_body_matches_metadata() -> None:
    metadata = {
        "inputs": [
            {"name": "dense", "datatype": "FP32", "shape": [-1, 13]},
            {"name": "ids", "datatype": "INT64", "shape": [-1, 26]},
        ]
    }
    body = request_body(metadata)
    dense, ids = body["inputs"]
    assert dense["shape"] == [1, 13] and len(dense["data"]) == 13 and dense["datatype"] == "FP32"
    assert ids["shape"] == [1, 26] and all(isinstance(v, int) for v in ids["data"])


def test_ready_addresses_skip_unready_endpoints() -> None:
    slices = [
        {
            "ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 8002}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": False}},
                {"addresses": ["10.244.0.7"]},
            ],
        }
    ]
    assert ready_addresses(slices, "http") == ["10.244.0.5:8000", "10.244.0.7:8000"]
    assert ready_addresses(slices, "metrics") == ["10.244.0.5:8002", "10.244.0.7:8002"]
    assert ready_addresses(slices, "grpc") == []


def test_ready_endpoints_name_the_pod_and_its_uid() -> None:
    """The operator keeps a pod's counters under the pod (name and uid), so it needs both from the slice."""
    ref = {"kind": "Pod", "namespace": "shop", "name": "ranker-7d9f-abcde", "uid": "0b7c5f0e"}
    slices = [
        {"ports": [{"name": "metrics", "port": 8002}], "endpoints": [{"addresses": ["10.0.0.5"], "targetRef": ref}]}
    ]
    (endpoint,) = ready_endpoints(slices, "metrics")
    assert (endpoint.pod, endpoint.pod_uid, endpoint.host_port) == ("ranker-7d9f-abcde", "0b7c5f0e", "10.0.0.5:8002")


def test_slo_attainment_counts_errors_and_drops_as_misses() -> None:
    interval = Interval(0, 10, latencies_ms=[1, 2, 3, 50], errors=1, dropped=1)
    row = interval.summary(10, slo_ms=10)
    assert row["sloAttainment"] == pytest.approx(3 / 6)
    assert row["achievedRps"] == pytest.approx(0.4)
    assert run_summary([interval], slo_ms=10)["requests"] == 6


def test_failed_answers_are_told_apart() -> None:
    from fulcrum.loadgen.generator import error_kind

    unknown = b'{"error":"Request for unknown model: \'ranker\' is not found"}'
    assert error_kind(400, unknown) == "unknown-model"
    assert error_kind(503, b'{"error":"Server not ready"}') == "http-503"
    interval = Interval(0, 10)
    interval.error("unknown-model")
    interval.error("ClientConnectorError")
    interval.error("unknown-model")
    summary = run_summary([interval], slo_ms=None)
    assert summary["errors"] == 3 and summary["errorKinds"] == {"ClientConnectorError": 1, "unknown-model": 2}
