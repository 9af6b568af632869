"""`fulcrum report`: decision Events read back into a history, the table, the picture; matplotlib stays out of
the operator."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

from fulcrum.commands.report import build_history, parse_duration
from fulcrum.controller.control import format_time
from fulcrum.policy.types import Config
from fulcrum.report import history as hist
from fulcrum.report.plot import plot_history
from tests.support.manifest_cases import BASE

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0


def event(at: float, reason: str, message: str, type_: str = "Normal") -> dict[str, Any]:
    return {"type": type_, "reason": reason, "message": message, "lastTimestamp": format_time(at)}


def decision_event(at: float, action: str, before: Config | None, after: Config, code: str) -> dict[str, Any]:
    return event(at, action, hist.decision_message(before, after, code, f"{code} sentence."))


def model(status: dict[str, Any] | None = None) -> dict[str, Any]:
    md = copy.deepcopy(BASE)
    md["metadata"] = {"name": "ranker", "namespace": "shop", "creationTimestamp": format_time(T0)}
    md["status"] = status or {}
    return md


EVENTS = [
    event(T0 + 5, "BuildStarted", "building 3 tiers on l4"),
    decision_event(T0 + 60, "ScaleUp", None, Config("fp32", "l4", 1), "Placed"),
    decision_event(T0 + 300, "ScaleUp", Config("fp32", "l4", 1), Config("fp32", "l4", 3), "LoadRising"),
    decision_event(T0 + 420, "SwitchTier", Config("fp32", "l4", 3), Config("int8", "l4", 2), "BudgetExhausted"),
    event(T0 + 500, "ScaleDown", "a message from an older operator"),
]


def test_decision_messages_round_trip_even_with_an_x_in_the_pool_name() -> None:
    message = hist.decision_message(Config("fp32", "cpux", 12), Config("fp16", "l4x2", 3), "LoadRising", "Up.")
    assert message == "fp32@cpuxx12 -> fp16@l4x2x3 (LoadRising): Up."
    (decision,) = hist.decisions_of(hist.events_of([event(T0, "ScaleUp", message)]))
    assert decision.before == hist.Placement("fp32", "cpux", 12)
    assert decision.after == hist.Placement("fp16", "l4x2", 3)
    assert (decision.code, decision.reason) == ("LoadRising", "Up.")


def test_without_prometheus_the_history_is_what_the_decisions_set() -> None:
    history, warnings = build_history(model(), EVENTS, now=T0 + 600, since=None, prometheus_url=None)
    assert not warnings and history.source == "events"
    assert [d.action for d in history.decisions] == ["ScaleUp", "ScaleUp", "SwitchTier", "ScaleDown"]
    assert history.decisions[-1].after is None and history.decisions[-1].reason == "a message from an older operator"
    assert set(history.replicas) == {"fp32@l4", "int8@l4"}
    times, stacked = hist.on_one_grid(history.replicas)
    at = {t: (stacked["fp32@l4"][i], stacked["int8@l4"][i]) for i, t in enumerate(times)}
    assert at[T0 + 300] == (3.0, 0.0) and at[T0 + 420] == (0.0, 2.0)
    assert history.cost is not None and max(history.cost.values) == 3 * 0.85
    assert history.budget == 12.5 and history.slo_ms == 25 and history.percentile == "99"
    rows = hist.summary_rows(history)
    assert rows[2][1:4] == ("SwitchTier", "fp32@l4 x3 -> int8@l4 x2", "BudgetExhausted")
    assert hist.to_json(history)["decisions"][1]["to"] == "fp32@l4 x3"


def test_since_limits_the_window_and_a_quiet_model_shows_its_current_placement() -> None:
    status = {"activeTier": "fp16", "activeNodePool": "cpu", "replicas": 2}
    history, _ = build_history(model(status), [], now=T0 + 7200, since=parse_duration("30m"), prometheus_url=None)
    assert history.start == T0 + 7200 - 1800
    assert history.replicas["fp16@cpu"].values == (2.0, 2.0)


def test_the_picture_is_a_png(tmp_path: Path) -> None:
    history, _ = build_history(model(), EVENTS, now=T0 + 600, since=None, prometheus_url=None)
    history.load = {"operator": hist.Series((T0 + 60, T0 + 300, T0 + 600), (10.0, 80.0, 30.0))}
    history.latency_ms = hist.Series((T0 + 60, T0 + 300, T0 + 600), (9.0, 31.0, 12.0))
    path = plot_history(history, tmp_path / "ranker.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000


def test_grid_holds_prometheus_points_only_briefly() -> None:
    gone = hist.Series((0.0, 10.0), (2.0, 2.0))
    new = hist.Series((10.0, 20.0, 30.0), (1.0, 3.0, 3.0))
    times, values = hist.on_one_grid({"old": gone, "new": new}, hold=10.0)
    assert times == (0.0, 10.0, 20.0, 30.0)
    assert values["old"] == (2.0, 2.0, 2.0, 0.0)
    assert values["new"] == (0.0, 1.0, 3.0, 3.0)


def test_operator_startup_never_imports_matplotlib() -> None:
    code = (
        "import sys, fulcrum.handlers, fulcrum.commands.run, fulcrum.commands.report, fulcrum.report.history\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
