"""The e2e lanes that scripts/test runs side by side split the e2e tests: each test in exactly one lane."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_LANE, E2E_LANES

ROOT = Path(__file__).resolve().parents[2]


def collected(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in out.splitlines() if "::" in line}


def test_the_lanes_split_the_e2e_tests_and_each_has_some() -> None:
    every = collected()
    lanes = {lane: collected("--lane", lane) for lane in E2E_LANES}
    assert all(lanes.values()), {lane: len(tests) for lane, tests in lanes.items()}
    assert sum(len(tests) for tests in lanes.values()) == len(every)
    assert set().union(*lanes.values()) == every
    assert any("test_closed_loop.py" in test for test in lanes["held"])
    assert any("test_devcluster.py" in test for test in lanes[DEFAULT_LANE])


def test_scripts_test_runs_every_lane() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    match = re.search(r"^e2e_lanes=\(([^)]*)\)", script, re.MULTILINE)
    assert match is not None
    assert tuple(name.strip('"') for name in match.group(1).split()) == E2E_LANES


def test_an_unknown_lane_is_refused() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e", "--collect-only", "-q", "--lane", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0
    assert "invalid choice" in run.stderr


def test_a_test_marked_with_an_unknown_lane_is_refused(tmp_path: Path) -> None:
    """A typo in a marker would otherwise put the test in no lane that scripts/test runs, silently."""
    (tmp_path / "test_typo.py").write_text(
        'import pytest\n\n\n@pytest.mark.lane("stor")\ndef test_typo() -> None:\n    pass\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert f"test_typo.py::test_typo: lane('stor') is not one of {E2E_LANES}" in run.stderr
