"""A bad model fails for good with the builder's message; an interrupted build is retried with backoff."""

from __future__ import annotations

from typing import Any

from fulcrum.controller.control import parse_time
from fulcrum.reconcile.builds import BUILD_ATTEMPTS, BuildResult, job_failure, retry_delay, with_retry

NOW = 1_800_000_000.0


def _failed_job(reason: str, message: str = "") -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": message}]}}


def _pod(name: str, *, reason: str = "", exit_code: int | None = None, terminated: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Failed"}
    if reason:
        status |= {"reason": reason, "message": "The node was low on resource: memory."}
    if exit_code is not None:
        status["containerStatuses"] = [
            {"name": "builder", "state": {"terminated": {"reason": terminated or "Error", "exitCode": exit_code}}}
        ]
    return {"metadata": {"name": name}, "status": status}


def test_the_builder_rejecting_the_model_is_permanent() -> None:
    transient, reason, message = job_failure(
        _failed_job("PodFailurePolicy", "Container builder for pod x failed with exit code 2 matching FailJob rule"),
        [_pod("x", exit_code=2)],
    )
    assert not transient and reason == "BuildFailed" and "exit code 2" in message


def test_the_infrastructure_taking_the_pod_is_transient_and_says_what_happened() -> None:
    transient, reason, message = job_failure(
        _failed_job("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        [_pod("a", exit_code=137, terminated="OOMKilled"), _pod("b", reason="Evicted")],
    )
    assert transient and reason == "BuildInterrupted"
    assert "backoff limit" in message and "pod b: Evicted" in message
    oom, _, oom_message = job_failure(
        _failed_job("BackoffLimitExceeded"), [_pod("c", exit_code=137, terminated="OOMKilled")]
    )
    assert oom and "OOMKilled (exit code 137)" in oom_message
    deadline, _, deadline_message = job_failure(_failed_job("DeadlineExceeded", "Job was active longer than 3600s"), [])
    assert deadline and "3600s" in deadline_message


def test_transient_failures_are_retried_with_growing_backoff_then_given_up() -> None:
    failure = BuildResult("Failed", "BuildInterrupted", "pod evicted")
    record: BuildResult | None = None
    delays = []
    for _attempt in range(BUILD_ATTEMPTS - 1):
        record = with_retry(failure, True, record, NOW)
        assert record.transient and not record.final
        delays.append((parse_time(record.retry_at) or 0) - NOW)
    assert delays == [retry_delay(n) for n in range(1, BUILD_ATTEMPTS)]
    assert delays == sorted(delays) and delays[0] == 60.0
    last = with_retry(failure, True, record, NOW)
    assert last.final and last.attempts == BUILD_ATTEMPTS
    assert last.message.startswith(f"failed {BUILD_ATTEMPTS} times") and "pod evicted" in last.message
    # a record round-trips through its ConfigMap, retry state and Job included
    again = with_retry(failure, True, None, NOW)
    assert BuildResult.from_record({**again.to_record(), "jobUid": "u1"}).retry_at == again.retry_at


def test_a_permanent_failure_and_a_success_are_final_at_once() -> None:
    rejected = with_retry(BuildResult("Failed", "InvalidBuildSpec", "spec.tiers: bad"), False, None, NOW)
    assert rejected.final and rejected.retry_at is None
    built = with_retry(BuildResult("Succeeded", "BuildSucceeded"), False, None, NOW)
    assert built.final and built.attempts == 1
    assert BuildResult.from_record(built.to_record()) == built
