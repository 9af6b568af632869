"""What the reconciler keeps per ModelDeployment is dropped when it is gone (no leaks over a long-lived process)."""

from __future__ import annotations

from fulcrum.api import ModelDeploymentStatus
from fulcrum.controller import telemetry
from fulcrum.controller.cache import ObjectCache
from fulcrum.controller.control import ControlLoop
from fulcrum.controller.kube import KubeClient
from fulcrum.controller.reconciler import Reconciler
from fulcrum.metrics.sources import ScrapeSource
from fulcrum.metrics.window import SlidingWindow
from fulcrum.resources.settings import OperatorSettings

KEY = ("shop", "ranker")


def _reconciler() -> Reconciler:
    kube = KubeClient("https://unused.invalid", False, {})  # these paths send no request
    return Reconciler(kube, ObjectCache(), OperatorSettings(), control=ControlLoop(), metrics=ScrapeSource())


def _series(gauge: object) -> set[tuple[str, ...]]:
    return set(gauge._metrics)  # type: ignore[attr-defined]


def test_a_deleted_model_deployment_leaves_nothing_behind() -> None:
    reconciler = _reconciler()
    assert reconciler.control is not None and isinstance(reconciler.metrics, ScrapeSource)
    reconciler.control._memory(KEY, ModelDeploymentStatus())
    reconciler.metrics.windows[KEY] = SlidingWindow()
    reconciler.metrics.misses[KEY] = {"http://10.0.0.1:8002/metrics": 1}
    reconciler._wait_on(KEY, {"k1", "k2"})
    telemetry.publish(KEY, telemetry.REPLICAS, {("fp32", "l4"): 3.0})
    telemetry.publish(KEY, telemetry.COST, {(): 1.7})
    assert ("shop", "ranker", "fp32", "l4") in _series(telemetry.REPLICAS)

    reconciler.forget(KEY)

    assert KEY not in reconciler.control.memory
    assert KEY not in reconciler.metrics.windows and KEY not in reconciler.metrics.misses
    assert reconciler.waiting_on_build == {} and reconciler.builders("k1") == set()
    assert not any(s[:2] == KEY for s in _series(telemetry.REPLICAS))
    assert not any(s == KEY for s in _series(telemetry.COST))


def test_a_model_deployment_waits_only_on_the_build_keys_of_its_current_spec() -> None:
    reconciler = _reconciler()
    other = ("ads", "ctr")
    reconciler._wait_on(KEY, {"old"})
    reconciler._wait_on(other, {"old"})
    reconciler._wait_on(KEY, {"new"})  # its spec changed: a new build key
    assert reconciler.builders("old") == {other}
    assert reconciler.builders("new") == {KEY}
    reconciler._wait_on(other, set())
    assert "old" not in reconciler.waiting_on_build
