"""Project-wide pytest configuration: shared fixtures for tests that drive the operator."""

pytest_plugins = ["tests.support.kube", "tests.support.objectstore"]


def pytest_configure(config: object) -> None:
    # registered here, not in pyproject.toml: the builder image's dependency layer (gigabytes) is keyed by
    # pyproject.toml, so a marker added there would rebuild it
    config.addinivalue_line(  # type: ignore[attr-defined]
        "markers",
        "held_lane: an e2e test for the suite's second e2e lane, on a cluster of its own: the tests that hold a "
        "load for minutes, and short ones that even the two lanes' times",
    )
