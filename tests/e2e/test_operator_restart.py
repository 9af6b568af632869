"""Killing the operator in the middle of a build loses nothing and duplicates nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fulcrum.dev import objectstore
from tests.support.kube import BUILD_TIMEOUT, Kube, example_manifest, wait_ready
from tests.support.operator_process import OperatorProcess
from tests.support.polling import wait_for

pytestmark = pytest.mark.e2e


def test_operator_killed_during_a_build_ends_with_one_job_and_a_ready_object(
    cluster: Any, kube: Kube, crd_installed: None, namespace: str, tmp_path: Path
) -> None:
    build_namespace = "fulcrum-e2e-restart"
    watch = ["--namespace", namespace]  # only this test's objects: other tests' leftovers must not build here
    store = objectstore.load(cluster.home)
    first = OperatorProcess(
        Path(cluster.kubeconfig), build_namespace, tmp_path / "models", tmp_path / "op.log", extra_args=watch,
        store=store,
    ).start()  # fmt: skip
    try:
        manifest = example_manifest("restart", tiers=[{"name": "fp32", "precision": "fp32"}])
        kube.create(namespace, manifest)
        wait_for("the build Job", lambda: kube.build_jobs(build_namespace), timeout=120, on_timeout=first.log)
        first.kill()
    finally:
        first.stop()
    second = OperatorProcess(
        Path(cluster.kubeconfig), build_namespace, tmp_path / "models", tmp_path / "op.log", extra_args=watch,
        store=store,
    ).start()  # fmt: skip
    try:
        wait_ready(kube, second, namespace, "restart", timeout=BUILD_TIMEOUT)
        assert len(kube.build_jobs(build_namespace)) == 1
        assert len(kube.deployments(namespace, "restart")) == 1
    finally:
        second.stop()
