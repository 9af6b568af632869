"""benchmarks/scenarios.py keeps the oracle's and the baselines' runs between runs, keyed by the simulator's sources."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fulcrum

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scenarios.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scenario_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_second_run_takes_the_shared_runs_from_the_cache_and_gets_the_same_outcomes(
    bench: ModuleType, tmp_path: Path
) -> None:
    job = ("issue-flash-sale", 15.0, (True,), tmp_path, None, None)
    first, cached = bench._job(job)
    assert not cached and (tmp_path / "issue-flash-sale-step15.json").is_file()
    second, cached = bench._job(job)
    assert cached and second[True].figures == first[True].figures and second[True].bound == first[True].bound
    (tmp_path / "issue-flash-sale-step15.json").write_text("{not json")  # a broken entry is simulated again
    third, cached = bench._job(job)
    assert not cached and third[True].figures == first[True].figures
    assert bench._job(("issue-flash-sale", 15.0, (True,), None, None, None))[1] is False  # --no-cache


def test_the_cache_key_changes_with_the_simulator_but_not_with_fulcrums_own_policy(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Path(fulcrum.__file__).parent
    copy = tmp_path / "fulcrum"
    for folder in ("simulate", "policy", "api"):
        shutil.copytree(source / folder, copy / folder)
    monkeypatch.setattr(fulcrum, "__file__", str(copy / "__init__.py"))
    before = bench.simulator_version()
    for name in bench.ONLY_FULCRUM:  # the policy alone changed: the oracle and the baselines are the same
        (copy / name).write_text((copy / name).read_text() + "\n# tuned\n")
    assert bench.simulator_version() == before
    (copy / "policy" / "plan.py").write_text((copy / "policy" / "plan.py").read_text() + "\n# changed\n")
    assert bench.simulator_version() != before


def test_a_tuning_override_changes_fulcrums_run_only(bench: ModuleType, tmp_path: Path) -> None:
    """``--tuning headroom=1.0``: fulcrum sizes every forecast with twice the rate; the oracle and the baselines,
    cached once, are the same runs."""
    default, _ = bench._job(("issue-flash-sale", 15.0, (True,), tmp_path, None, None))
    knobs = bench.parse_tuning(["headroom=1.0"])
    assert knobs.headroom == 1.0 and knobs.envelope_quantile == bench.DEFAULT_TUNING.envelope_quantile
    both = bench.parse_tuning(["headroom=0.5", "burst_recurrence=2"])
    assert (both.headroom, both.burst_recurrence) == (0.5, 2)
    wide, cached = bench._job(("issue-flash-sale", 15.0, (True,), tmp_path, knobs, None))
    assert cached
    fulcrum_default = default[True].figures["fulcrum"]
    fulcrum_wide = wide[True].figures["fulcrum"]
    assert fulcrum_wide.cost > fulcrum_default.cost
    assert wide[True].figures["static"] == default[True].figures["static"]
    assert bench.parse_tuning([]) is None
    for wrong in ("headroom", "nothing=1", "headroom=wide", "correction_bounds=1", "rolling_switch=false"):
        with pytest.raises(SystemExit):
            bench.parse_tuning([wrong])


def test_a_metrics_window_changes_fulcrums_run_only(bench: ModuleType, tmp_path: Path) -> None:
    """``--metrics-window 60``: fulcrum observes a minute's trailing mean and meets less of the flash sale's 10x
    step; the oracle and the baselines, cached once, are the same runs."""
    default, _ = bench._job(("issue-flash-sale", 15.0, (True,), tmp_path, None, None))
    late, cached = bench._job(("issue-flash-sale", 15.0, (True,), tmp_path, None, 60.0))
    assert cached
    assert late[True].figures["fulcrum"].attainment < default[True].figures["fulcrum"].attainment
    assert late[True].figures["static"] == default[True].figures["static"]
    assert late[True].figures["oracle"] == default[True].figures["oracle"]
