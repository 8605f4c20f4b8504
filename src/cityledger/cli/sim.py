"""`cityledger sim traffic`: simulated city traffic from Eclipse SUMO (docs/DRIVING_SCORE.md, "Simulated traffic").

A fleet of cautious, normal and aggressive drivers makes consecutive trips on a city grid (or the
network given with --net); each vehicle scores its own trips from its 1 Hz samples. The summary shows,
per driver class, the distance, trips, harsh brakes per 100 km and the mean trip score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import JsonOption, console, err_console, fail, print_json

app = typer.Typer(help="Simulated city traffic (Eclipse SUMO, the `sim` extra).", no_args_is_help=True)


@app.command("traffic")
def traffic(vehicles: int = typer.Option(60, "--vehicles", help="Fleet size (constant: each arrival starts a new trip)"),
            hours: float = typer.Option(1.0, "--hours", help="Simulated hours (1 s steps)"),
            net: Optional[Path] = typer.Option(None, "--net", help="A SUMO .net.xml [default: a generated grid]"),
            seed: int = typer.Option(1, "--seed", help="Everything random follows from it"),
            start_hour: int = typer.Option(7, "--start-hour", help="Local hour the simulation starts at"),
            as_json: bool = JsonOption) -> None:
    """Run the fleet and print each driver class's km, trips, harsh brakes per 100 km and mean trip score."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..sim.traffic import TrafficSim, check_args

    try:
        check_args(vehicles, hours, seed, start_hour)
    except ValueError as exc:
        fail(str(exc))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cityledger-sim-") as tmp:
        try:
            sim = TrafficSim(Path(tmp), vehicles, hours, seed, net, start_hour)
        except (ValueError, RuntimeError) as exc:
            fail(str(exc))
        columns = (TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total} s"),
                   TimeRemainingColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            task = progress.add_task("traffic", total=sim.steps)
            try:
                summary = sim.run(on_step=lambda step: progress.update(task, completed=step))
            except (ValueError, RuntimeError) as exc:
                fail(str(exc))
    if as_json:
        print_json(summary)
        return
    _print_table(summary)


def _print_table(summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['vehicles']} vehicles, {summary['hours']:g} h on {summary['net']} "
                        f"(seed {summary['seed']})")
    for column in ("driver", "vehicles", "trips", "km", "harsh brakes / 100 km", "mean trip score"):
        table.add_column(column, justify="left" if column == "driver" else "right")
    for name, row in summary["classes"].items():
        table.add_row(name, str(row["vehicles"]), str(row["trips"]), f"{row['km']:.1f}",
                      f"{row['harsh_brakes_per_100km']:.1f}", "-" if row["mean_score"] is None else f"{row['mean_score']:.1f}")
    console.print(table)
    console.print(f"{summary['vehicle_steps']:,} vehicle-steps in {summary['wall_s']} s "
                  f"({summary['vehicle_steps_per_s']:,}/s)")
