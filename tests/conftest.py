"""Project-wide pytest configuration: shared fixtures for tests that drive the operator."""

pytest_plugins = ["tests.support.kube", "tests.support.objectstore"]
