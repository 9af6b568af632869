"""Rich progress for a build: a spinner on the running stage, a line with its time when it ends, a summary."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.status import Status
from rich.table import Table

from fulcrum.api import BuildManifest

_STATE_STYLE = {"Ready": "green", "Failed": "red", "Unavailable": "yellow"}


class StageProgress:
    """A pipeline ``Reporter``: ``with StageProgress(console) as p: build(options, p.report)``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None

    def __enter__(self) -> StageProgress:
        self._status = self.console.status("starting", spinner="dots")
        self._status.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._status is not None:
            self._status.stop()

    def report(self, stage: str, message: str, seconds: float | None) -> None:
        if seconds is None:
            if self._status is not None:
                self._status.update(f"[cyan]{stage}[/]: {message}")
            return
        self.console.print(f"[green]✓[/] [bold]{stage:<14}[/] {message} [dim]({seconds:.1f}s)[/]")


def summary_table(manifest: BuildManifest) -> Table:
    table = Table(title=f"{manifest.model}: tiers", title_justify="left")
    for column in ("tier", "state", "reason", "MeanAbsError", "MaxAbsError", "Cosine", "points", "message"):
        table.add_column(column, overflow="fold")
    for tier in manifest.tiers:
        style = _STATE_STYLE.get(tier.state, "")
        metrics = [f"{tier.accuracy[m]:.3g}" if m in tier.accuracy else "-" for m in ("MeanAbsError", "MaxAbsError")]
        cosine = f"{tier.accuracy['Cosine']:.6f}" if "Cosine" in tier.accuracy else "-"
        points = str(sum(len(p.points) for p in tier.profiles))
        table.add_row(tier.name, f"[{style}]{tier.state}[/]", tier.reason, *metrics, cosine, points, tier.message)
    return table
