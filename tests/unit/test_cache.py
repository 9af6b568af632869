"""The object cache, how watch events change it, and where changes are routed (tests/e2e/test_controller_kube.py
has the listing and watching against the real API server)."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.controller.cache import Body, ObjectCache
from fulcrum.controller.informer import Informer
from fulcrum.controller.kube import KubeError
from fulcrum.handlers import keys_for
from fulcrum.resources import labels


def _obj(name: str, namespace: str = "shop", version: str = "1", owner: str | None = None, **extra: Any) -> Body:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "resourceVersion": version}
    if owner:
        meta["labels"] = {labels.MODEL_DEPLOYMENT: owner}
    return {"metadata": meta, **extra}


def test_children_are_found_by_their_model_deployment_without_a_scan() -> None:
    cache = ObjectCache()
    cache.put("Deployment", _obj("a-fp32-l4", owner="a"))
    cache.put("Deployment", _obj("a-fp16-l4", owner="a"))
    cache.put("Deployment", _obj("ab-fp32-l4", owner="ab"))  # shares the prefix, not the owner
    cache.put("Deployment", _obj("a-fp32-l4", namespace="other", owner="a"))
    assert [d["metadata"]["name"] for d in cache.owned_by("Deployment", "shop", "a")] == ["a-fp16-l4", "a-fp32-l4"]
    cache.put("Deployment", _obj("a-fp16-l4", owner="b"))  # relabelled
    assert [d["metadata"]["name"] for d in cache.owned_by("Deployment", "shop", "a")] == ["a-fp32-l4"]
    cache.remove("Deployment", "shop", "a-fp32-l4")
    assert cache.owned_by("Deployment", "shop", "a") == []


def test_managed_fields_are_not_kept() -> None:
    cache = ObjectCache()
    body = _obj("x")
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    cache.put("ConfigMap", body)
    assert "managedFields" not in cache.get("ConfigMap", "shop", "x")["metadata"]  # type: ignore[index]


def test_a_listing_replaces_what_the_cache_knew_in_its_namespace_only() -> None:
    cache = ObjectCache()
    for name in ("a", "b", "c"):
        cache.put("Deployment", _obj(name))
    cache.put("Deployment", _obj("z", namespace="other"))
    removed = cache.replace("Deployment", "shop", [_obj("a", version="2"), _obj("d")])
    assert sorted(b["metadata"]["name"] for b in removed) == ["b", "c"]
    assert sorted(cache.keys("Deployment")) == [("other", "z"), ("shop", "a"), ("shop", "d")]
    assert cache.replace("Deployment", None, []) and cache.keys("Deployment") == []


class _Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str | None, str | None]] = []

    def __call__(self, kind: str, old: Body | None, new: Body | None) -> None:
        def name(b: Body | None) -> str | None:
            return None if b is None else f"{b['metadata']['name']}@{b['metadata']['resourceVersion']}"

        self.changes.append((kind, name(old), name(new)))


def test_events_update_the_cache_and_report_old_and_new() -> None:
    cache = ObjectCache()
    recorder = _Recorder()
    informer = Informer(None, cache, "ConfigMap", "shop", recorder)  # type: ignore[arg-type]
    informer._handle("ADDED", _obj("r", version="5"))
    informer._handle("MODIFIED", _obj("r", version="6"))
    informer._handle("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    informer._handle("DELETED", _obj("r", version="10"))
    assert recorder.changes == [
        ("ConfigMap", None, "r@5"),
        ("ConfigMap", "r@5", "r@6"),
        ("ConfigMap", "r@6", None),
    ]
    assert informer.resource_version == "10" and cache.get("ConfigMap", "shop", "r") is None


def test_an_expired_watch_is_an_error_that_makes_the_informer_list_again() -> None:
    informer = Informer(None, ObjectCache(), "ConfigMap", "shop", _Recorder())  # type: ignore[arg-type]
    with pytest.raises(KubeError) as error:
        informer._handle("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"})
    assert error.value.status == 410


def test_a_410_from_the_watch_makes_the_informer_list_again_and_other_errors_watch_again() -> None:
    """The reflector's control flow: list, watch; on 410 (the version expired) list again; on a connection error
    watch again from the same version after a backoff."""
    import asyncio
    import contextlib

    import aiohttp

    from fulcrum.controller import informer as informer_module

    steps: list[str] = []
    script: list[BaseException | None] = [KubeError(410, "Expired", "too old"), aiohttp.ClientError("reset"), None]

    class Scripted(Informer):
        async def _list(self) -> None:
            steps.append("list")
            self.resource_version = str(len(steps))

        async def _watch(self) -> None:
            steps.append(f"watch from {self.resource_version}")
            outcome = script.pop(0) if script else asyncio.CancelledError()
            if outcome is not None:
                raise outcome

    async def no_wait(failures: int, exc: BaseException) -> None:
        steps.append("backoff")

    async def scenario() -> None:
        informer = Scripted(None, ObjectCache(), "Job", "ns", _Recorder())  # type: ignore[arg-type]
        informer._backoff = no_wait  # type: ignore[method-assign]
        with contextlib.suppress(asyncio.CancelledError):
            await informer.run()

    assert informer_module.BACKOFF_START > 0
    asyncio.run(scenario())
    assert steps == [
        "list",
        "watch from 1",
        "list",  # 410: the version expired, list again
        "watch from 3",
        "backoff",  # a connection error: watch again from the same version
        "watch from 3",
        "watch from 3",  # the server ended the watch normally: watch again
    ]


def test_changes_are_routed_to_the_model_deployments_they_concern() -> None:
    cache = ObjectCache()
    cache.put("ModelDeployment", _obj("ranker"))
    waiting = {"k1": {("shop", "ranker"), ("ads", "other")}}
    builders = lambda key: waiting.get(key, set())  # noqa: E731
    deployment = _obj("ranker-fp32-l4", owner="ranker")
    assert keys_for("Deployment", None, deployment, cache, builders) == {("shop", "ranker")}
    relabelled = _obj("ranker-fp32-l4", owner="ranker2")
    assert keys_for("Deployment", deployment, relabelled, cache, builders) == {("shop", "ranker"), ("shop", "ranker2")}
    job = _obj("fulcrum-build-k1", namespace="fulcrum-system")
    job["metadata"]["labels"] = {labels.BUILD_KEY: "k1"}
    assert keys_for("Job", None, job, cache, builders) == {("shop", "ranker"), ("ads", "other")}
    endpoint_slice = _obj("ranker-abcde")
    endpoint_slice["metadata"]["labels"] = {"kubernetes.io/service-name": "ranker"}
    assert keys_for("EndpointSlice", None, endpoint_slice, cache, builders) == {("shop", "ranker")}
    endpoint_slice["metadata"]["labels"] = {"kubernetes.io/service-name": "unrelated"}
    assert keys_for("EndpointSlice", None, endpoint_slice, cache, builders) == set()
    assert keys_for("ModelDeployment", _obj("ranker"), None, cache, builders) == {("shop", "ranker")}


def test_the_answer_to_a_write_never_replaces_a_later_version_the_watch_brought() -> None:
    """Apply a Deployment; before the answer is handled, the watch brings it Ready (a later version). The answer
    must not put the cache back to not-ready: nothing would ever correct it for a Deployment that does not change."""
    cache = ObjectCache()
    cache.put("Deployment", _obj("d", version="105", status={"readyReplicas": 1}))  # the watch was first
    assert not cache.record("Deployment", _obj("d", version="103"))  # the apply's answer, older
    assert cache.get("Deployment", "shop", "d")["status"] == {"readyReplicas": 1}  # type: ignore[index]
    assert cache.record("Deployment", _obj("d", version="107", status={"readyReplicas": 2}))
    assert cache.record("Deployment", _obj("new", version="1"))  # unknown before: taken
    assert cache.get("Deployment", "shop", "d")["metadata"]["resourceVersion"] == "107"  # type: ignore[index]
