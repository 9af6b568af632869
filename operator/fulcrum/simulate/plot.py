"""``--plot``: one panel per policy with load, capacity, replicas by tier and cost (matplotlib, imported lazily)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fulcrum.simulate.engine import Run


def plot_runs(runs: Mapping[str, Run], path: Path, budget: float | None) -> None:
    import matplotlib  # noqa: PLC0415 - optional dependency (the `sim` extra), only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = {name: run for name, run in runs.items() if not name.startswith("_")}
    figure, axes = plt.subplots(len(shown), 1, figsize=(13, 3.2 * len(shown)), sharex=True, squeeze=False)
    for axis, (name, run) in zip(axes[:, 0], shown.items(), strict=True):
        hours = run.times / 3600.0
        axis.plot(hours, run.rates, color="black", linewidth=0.8, label="load (rps)")
        axis.plot(hours, run.capacity, color="tab:green", linewidth=0.8, label="capacity at SLO (rps)")
        axis.set_ylabel("rps")
        axis.set_title(
            f"{name}: SLO {run.slo_attainment:.2%}, cost {run.cost:.1f}, top tier {run.top_tier_share:.1%}",
            fontsize=10,
        )
        replicas = axis.twinx()
        bottom = None
        for tier, counts in run.replicas.items():
            replicas.fill_between(
                hours,
                0 if bottom is None else bottom,
                counts if bottom is None else bottom + counts,
                step="post",
                alpha=0.25,
                label=f"{tier} replicas",
            )
            bottom = counts if bottom is None else bottom + counts
        replicas.plot(hours, run.cost_per_hour, color="tab:red", linewidth=0.8, label="cost/h")
        if budget is not None:
            replicas.axhline(budget, color="tab:red", linestyle="--", linewidth=0.6, label="budget/h")
        replicas.set_ylabel("replicas, cost/h")
        lines, labels = axis.get_legend_handles_labels()
        more_lines, more_labels = replicas.get_legend_handles_labels()
        axis.legend(lines + more_lines, labels + more_labels, loc="upper left", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("hours")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
