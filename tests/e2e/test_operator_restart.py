"""Killing the operator in the middle of a build loses nothing and duplicates nothing.

The operator runs as the chart installs it; its pod is deleted without grace while the build Job runs (a node
failure), and the Deployment's next pod takes over from what the cluster holds.
"""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.dev.objectstore import ObjectStoreConfig
from tests.support.kube import BUILD_TIMEOUT, Kube, example_manifest, wait_ready
from tests.support.polling import wait_for
from tests.support.release import Release, dev_values

pytestmark = pytest.mark.e2e


def test_operator_killed_during_a_build_ends_with_one_job_and_a_ready_object(
    cluster: Any, kube: Kube, crd_installed: None, model_storage: ObjectStoreConfig, namespace: str
) -> None:
    build_namespace = "fulcrum-e2e-restart"
    # only this test's objects: other tests' leftovers must not build here
    values = dev_values(cluster.images, model_storage, watch=[namespace])
    release = Release(cluster, build_namespace, model_storage, values).install()
    try:
        manifest = example_manifest("restart", tiers=[{"name": "fp32", "precision": "fp32"}])
        kube.create(namespace, manifest)
        wait_for("the build Job", lambda: kube.build_jobs(build_namespace), timeout=120, on_timeout=release.log)
        release.kill()
        wait_ready(kube, release, namespace, "restart", timeout=BUILD_TIMEOUT)
        assert len(kube.build_jobs(build_namespace)) == 1
        assert len(kube.deployments(namespace, "restart")) == 1
    finally:
        release.uninstall()
