"""The dev object store's ports keep clear of the cluster's own fixed ports (``ClusterConfig.ports``)."""

from __future__ import annotations

import pytest

from fulcrum.dev import objectstore
from fulcrum.dev.config import ClusterConfig


def test_ports_never_take_the_clusters_own_even_while_they_are_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objectstore, "_bindable", lambda _address, _port: True)  # a quiet machine: all free
    cfg = ClusterConfig(port_base=30000)
    reserved = cfg.ports.all()  # 30000..30007, Prometheus at base+7
    # the only blocks in range: 29990.. (clear) and 30000.. (the cluster's own)
    for _ in range(20):
        ports = objectstore.choose_ports("127.0.0.1", None, low=29990, high=30018, reserved=reserved)
        assert sorted(ports.values()) == list(range(29990, 29998))
    # a previous block that now overlaps the cluster's ports is given up; one that does not is kept
    previous = dict(zip(objectstore.PORT_NAMES, range(30000, 30008), strict=True))
    assert objectstore.choose_ports("127.0.0.1", previous, low=29990, high=30018, reserved=reserved) != previous
    assert objectstore.choose_ports("127.0.0.1", previous, reserved=()) == previous
