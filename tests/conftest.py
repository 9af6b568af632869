"""Project-wide pytest configuration: shared fixtures for tests that drive the operator."""

pytest_plugins = ["tests.support.kube", "tests.support.objectstore"]


def pytest_configure(config: object) -> None:
    # registered here, not in pyproject.toml: the builder image's dependency layer (gigabytes) is keyed by
    # pyproject.toml, so a marker added there would rebuild it
    config.addinivalue_line(  # type: ignore[attr-defined]
        "markers",
        "held_load: an e2e test that holds a load for minutes; the whole suite runs these on a cluster of their own",
    )
