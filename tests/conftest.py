"""Project-wide pytest configuration: shared fixtures for tests that drive the operator, and the e2e lanes."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.kube", "tests.support.objectstore"]

E2E_LANES = ("held", "store", "main")
"""The e2e lanes, each a pytest process with a session cluster of its own that ``scripts/test`` runs side by side
(the e2e tests mostly wait, so the lanes overlap their waits). A test marked ``lane(name)`` runs in that lane; an
unmarked one in ``main``. The lanes are evened by the tests' measured times (see the README's figures)."""
DEFAULT_LANE = "main"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lane",
        choices=E2E_LANES,
        default=None,
        help="run only the e2e tests of this lane (marker `lane(name)`, unmarked tests are in `main`)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # registered here, not in pyproject.toml: the builder image's dependency layer (gigabytes) is keyed by
    # pyproject.toml, so a marker added there would rebuild it
    config.addinivalue_line(
        "markers",
        f"lane(name): the e2e lane this test runs in when scripts/test runs the whole suite, one of {E2E_LANES} "
        f"(unmarked: {DEFAULT_LANE}); each lane is a pytest process with a cluster of its own",
    )


def lane_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("lane")
    if marker is None:
        return DEFAULT_LANE
    name = marker.args[0] if marker.args else marker.kwargs.get("name")
    if name not in E2E_LANES:
        raise pytest.UsageError(f"{item.nodeid}: lane({name!r}) is not one of {E2E_LANES}")
    return str(name)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lanes = {item.nodeid: lane_of(item) for item in items}  # every marker checked, whichever lane runs
    wanted = config.getoption("--lane")
    if wanted is None:
        return
    kept = [item for item in items if lanes[item.nodeid] == wanted]
    deselected = [item for item in items if lanes[item.nodeid] != wanted]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
