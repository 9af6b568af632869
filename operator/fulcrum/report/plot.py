"""Draw a :class:`History`: load, replicas by tier and pool, latency against the SLO, cost against the budget, and
every decision as a marked line across the four panels. matplotlib (the ``sim`` extra) is imported here only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fulcrum.report.history import History, Series, on_one_grid

COLOURS = {
    "ScaleUp": "tab:green",
    "ScaleDown": "tab:blue",
    "SwitchTier": "tab:purple",
    "SwitchPool": "tab:orange",
    "HotSwitch": "tab:pink",
}


def _minutes(series: Series, start: float) -> list[float]:
    return [(t - start) / 60.0 for t in series.times]


def plot_history(history: History, path: Path) -> Path:
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency (the `sim` extra)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("the plot needs matplotlib: pip install 'fulcrum[sim]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    start = history.start
    figure, axes = plt.subplots(4, 1, figsize=(12, 11.5), sharex=True)
    load_axis, replica_axis, latency_axis, cost_axis = axes
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    attainment = "" if history.slo_attainment is None else f", SLO attainment {history.slo_attainment:.1%}"
    figure.suptitle(
        f"{history.namespace}/{history.name}: {len(history.decisions)} decisions from {stamp}{attainment}"
        f" (source: {history.source})",
        fontsize=11,
    )

    if history.load:
        for source, series in history.load.items():
            load_axis.plot(_minutes(series, start), series.values, linewidth=1.0, label=f"load ({source})")
        load_axis.legend(loc="upper left", fontsize=8)
    else:
        _missing(load_axis, "no load history: pass --prometheus URL of a Prometheus that scrapes the operator")
    load_axis.set_ylabel("requests/s")

    grid, stacked = on_one_grid(history.replicas, hold=history.hold_seconds)
    xs = [(t - start) / 60.0 for t in grid]
    bottom = [0.0] * len(grid)
    for label, values in sorted(stacked.items()):
        top = [b + v for b, v in zip(bottom, values, strict=True)]
        replica_axis.fill_between(xs, bottom, top, step="post", alpha=0.45, label=label)
        bottom = top
    if history.replicas:
        replica_axis.legend(loc="upper left", fontsize=8, title="tier@pool", title_fontsize=8)
    kind = "ready" if history.source == "prometheus" else "desired"
    replica_axis.set_ylabel(f"replicas ({kind})")

    if history.latency_ms:
        latency_axis.plot(
            _minutes(history.latency_ms, start), history.latency_ms.values, linewidth=1.0, label="observed (Triton)"
        )
    else:
        _missing(latency_axis, "no latency history: pass --prometheus URL")
    latency_axis.axhline(
        history.slo_ms,
        color="tab:red",
        linestyle="--",
        linewidth=1.0,
        label=f"SLO p{history.percentile} {history.slo_ms:g} ms",
    )
    latency_axis.set_ylabel(f"p{history.percentile} latency (ms)")
    latency_axis.legend(loc="upper left", fontsize=8)

    if history.cost:
        cost_axis.step(_minutes(history.cost, start), history.cost.values, where="post", linewidth=1.2, label="cost/h")
    most = max(history.cost.values, default=0.0) if history.cost else 0.0
    if history.budget is not None and (most == 0.0 or history.budget <= 3 * most):
        cost_axis.axhline(history.budget, color="tab:red", linestyle="--", linewidth=1.0, label="budget/h")
    elif history.budget is not None:  # far above what ran: a line up there would flatten the cost to nothing
        cost_axis.set_ylim(0, most * 1.5)
        cost_axis.text(
            0.99,
            0.95,
            f"budget {history.budget:g}/h (above)",
            transform=cost_axis.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="tab:red",
        )
    cost_axis.set_ylabel("cost per hour")
    cost_axis.legend(loc="upper left", fontsize=8)
    cost_axis.set_xlabel("minutes")
    cost_axis.set_xlim(0, max((history.end - start) / 60.0, 0.1))

    for i, decision in enumerate(history.decisions):
        x = (decision.time - start) / 60.0
        colour = COLOURS.get(decision.action, "grey")
        for axis in axes:
            axis.axvline(x, color=colour, linestyle=":", linewidth=1.0)
        if decision.action == "HotSwitch" and _beside(history, i, "SwitchTier"):
            continue  # the switch's own label says it: " (hot)"
        to = "" if decision.after is None else f" {decision.after.label}x{decision.after.replicas}"
        hot = " (hot)" if decision.action == "SwitchTier" and _beside(history, i, "HotSwitch") else ""
        load_axis.annotate(
            f"{decision.action}{to}{hot}",
            xy=(x, 1.02),
            xycoords=("data", "axes fraction"),
            rotation=60,
            fontsize=7,
            color=colour,
            va="bottom",
            ha="left",
            annotation_clip=False,
        )
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout(rect=(0, 0, 1, 0.93))  # room above the first panel for the decisions' labels
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _beside(history: History, i: int, action: str, seconds: float = 15.0) -> bool:
    """Whether a neighbouring decision (events of one second may come in either order) is ``action``."""
    at = history.decisions[i].time
    return any(
        0 <= j < len(history.decisions)
        and history.decisions[j].action == action
        and abs(history.decisions[j].time - at) <= seconds
        for j in (i - 1, i + 1)
    )


def _missing(axis: Any, text: str) -> None:
    axis.text(0.5, 0.5, text, transform=axis.transAxes, ha="center", va="center", fontsize=9, color="grey")
