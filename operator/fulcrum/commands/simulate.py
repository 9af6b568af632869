"""``fulcrum simulate``: replay a traffic trace against Fulcrum's policy and the baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from fulcrum.api import ModelDeploymentSpec, ProfilesFile, format_validation_error, parse_model_deployment, parse_spec
from fulcrum.simulate.engine import all_hot_tiers, make_setting
from fulcrum.simulate.engine import simulate as run_simulation
from fulcrum.simulate.misses import UNFORESEEN_RISE
from fulcrum.simulate.policies import POLICY_NAMES
from fulcrum.simulate.report import json_document, write_fleet, write_timeline
from fulcrum.simulate.trace import TraceError, read_trace

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def load_spec(path: Path) -> ModelDeploymentSpec:
    """A ModelDeployment manifest (or a bare spec) from YAML."""
    try:
        data: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: expected a ModelDeployment mapping")
    try:
        return parse_model_deployment(data).spec if "spec" in data else parse_spec(data)
    except ValidationError as exc:
        raise click.ClickException(f"{path}: {format_validation_error(exc)}") from exc


def load_profiles(path: Path) -> ProfilesFile:
    try:
        return ProfilesFile.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


@click.command()
@click.option("--spec", "spec_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--trace", "trace_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--profiles", "profiles_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--policies", default=",".join(POLICY_NAMES), show_default=True, help="Comma-separated policies.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG.")
@click.option("--timeline", "timeline_path", type=click.Path(dir_okay=False, path_type=Path), help="Write decisions.")
@click.option("--step", "step_seconds", type=click.FloatRange(min=1.0), default=10.0, show_default=True)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Simulated replicas run this many times as fast as profiled (tests the online correction).",
)
@click.option(
    "--hot",
    "hot_text",
    default="none",
    show_default=True,
    help=(
        "Tiers each pool's replicas load together, so a switch among them is hot (no new pods, about 2 s): "
        "none, all (every tier profiled on the pool), or POOL=TIER+TIER[,POOL=TIER+TIER...]."
    ),
)
@click.option(
    "--fleet",
    "fleet_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write what ran, per step, policy and placement: t_seconds,policy,tier,node_pool,ready_replicas,"
    "starting_replicas,serving_tier.",
)
@click.option(
    "--switch",
    "switch_mode",
    type=click.Choice(["rolling", "blue-green"]),
    default="rolling",
    show_default=True,
    help="How the fleet switches tier or pool: rolling (what the operator does), or blue/green (docs/policy.md).",
)
@click.option(
    "--metrics-window",
    "metrics_window",
    type=click.FloatRange(min=1.0),
    default=None,
    help="The reactive policies observe the rate's mean over this trailing window, in seconds (rounded to whole "
    "steps), as the operator's Prometheus source does (30). Default: each step's own rate, as the scrape source.",
)
def simulate(  # noqa: PLR0917 - click passes every option
    spec_path: Path,
    trace_path: Path,
    profiles_path: Path,
    policies: str,
    as_json: bool,
    plot_path: Path | None,
    timeline_path: Path | None,
    step_seconds: float,
    speed: float,
    hot_text: str,
    fleet_path: Path | None,
    switch_mode: str,
    metrics_window: float | None,
) -> None:
    """Replay TRACE against the policies and report SLO attainment, cost and tier use."""
    names = [p.strip() for p in policies.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICY_NAMES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown {', '.join(unknown)}; known: {', '.join(POLICY_NAMES)}", param_hint="--policies"
        )
    spec = load_spec(spec_path)
    profiles = load_profiles(profiles_path)
    try:
        trace = read_trace(trace_path)
    except TraceError as exc:
        raise click.ClickException(str(exc)) from exc
    hot = parse_hot(hot_text, spec, profiles)
    try:
        setting = make_setting(
            spec,
            profiles,
            trace,
            step_seconds,
            speed,
            rolling=switch_mode == "rolling",
            hot=hot,
            metrics_window_seconds=metrics_window,
        )
        runs = run_simulation(setting, names, record_fleet=fleet_path is not None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if timeline_path is not None:
        write_timeline(timeline_path, runs)
    if fleet_path is not None:
        write_fleet(fleet_path, runs)
    if plot_path is not None:
        from fulcrum.simulate.plot import plot_runs  # noqa: PLC0415 - matplotlib only when asked for

        plot_runs(runs, plot_path, setting.budget)
    document = json_document(runs, setting)
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    _table(document, trace_path.name)


def parse_hot(text: str, spec: ModelDeploymentSpec, profiles: ProfilesFile) -> dict[str, tuple[str, ...]]:
    """``--hot``: none, all, or ``POOL=TIER+TIER,...``; names are checked against the spec."""
    text = text.strip()
    if text in ("", "none"):
        return {}
    if text == "all":
        return all_hot_tiers(spec, profiles)
    pools = {p.name for p in spec.node_pools}
    tiers = {t.name for t in spec.tiers}
    hot: dict[str, tuple[str, ...]] = {}
    for part in text.split(","):
        pool, sep, names = part.partition("=")
        loaded = tuple(n for n in names.split("+") if n)
        if not sep or pool not in pools or not loaded or any(n not in tiers for n in loaded):
            raise click.BadParameter(
                f"{part!r}: expected POOL=TIER+TIER with pools from {sorted(pools)} and tiers from {sorted(tiers)}",
                param_hint="--hot",
            )
        hot[pool] = loaded
    return hot


def _table(document: dict[str, Any], title: str) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"fulcrum simulate: {title}")
    for column in ("policy", "in SLO", "cost", "vs oracle", "top tier", "over budget s", "switches", "scales"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in document["policies"].items():
        table.add_row(
            name,
            f"{row['sloAttainment']:.3%}",
            f"{row['cost']:.2f}",
            f"{row['costVsOracle']:.3f}x",
            f"{row['topTierShare']:.1%}",
            f"{row['budgetViolationSeconds']:.0f}",
            str(row["tierSwitches"]),
            str(row["scaleEvents"]),
        )
    late = Table(title=f"late requests by cause, share of all (unforeseen: over {UNFORESEEN_RISE:g}x any load seen)")
    for column in ("policy", "tail", "unforeseen", "at the budget", "other"):
        late.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in document["policies"].items():
        shares = row.get("lateRequests")
        if shares is not None:
            late.add_row(name, *(f"{shares[k]:.3%}" for k in ("tail", "unforeseen", "atBudget", "other")))
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(late)
