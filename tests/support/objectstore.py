"""A real SeaweedFS for integration tests: the dev cluster's object store, started alone on loopback.

``object_store`` (session scope) starts ``weed server`` from the dev cluster's binaries in a private home with
its own keys and buckets, exactly as ``fulcrum dev up`` does, and stops it at the end. No mock of S3 anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fulcrum.dev import build as dev_build
from fulcrum.dev import objectstore
from fulcrum.dev.paths import DevHome
from fulcrum.storage import S3Client, S3Config


@dataclass(frozen=True)
class ObjectStore:
    home: DevHome
    config: objectstore.ObjectStoreConfig

    def env(self, who: str = "admin") -> dict[str, str]:
        return self.config.env(who)

    def client(self, who: str = "admin", **options: float) -> S3Client:
        return S3Client(S3Config.from_environment(self.env(who)), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    bin_dir = dev_build.find_bin_dir()
    if bin_dir is None:
        bin_dir = dev_build.build(dev_build.plan())
    home = DevHome(tmp_path_factory.mktemp("objectstore-home"))
    env = {**os.environ}
    try:
        config = objectstore.start(home, "127.0.0.1", bin_dir, env=env, say=lambda _m: None)
        yield ObjectStore(home, config)
    finally:
        objectstore.stop(home)
