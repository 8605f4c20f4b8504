"""`cityledger sim traffic`: simulated city traffic from Eclipse SUMO (docs/DRIVING_SCORE.md, "Simulated traffic").

A fleet of cautious, normal and aggressive drivers makes consecutive trips on a city grid (or the
network given with --net); each vehicle scores its own trips from its 1 Hz samples. The summary shows,
per driver class, the distance, trips, harsh brakes per 100 km and the mean trip score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (HomeOption, JsonOption, PassphraseEnvOption, console, err_console, fail, print_json,
                     resolve_home)

OFFICE = "issuers/transport-office"  # the node's hosted office that issues vehicle registrations

app = typer.Typer(help="Simulated city traffic (Eclipse SUMO, the `sim` extra).", no_args_is_help=True)


@app.command("traffic")
def traffic(vehicles: int = typer.Option(60, "--vehicles", help="Fleet size (each arrival starts a new trip)"),
            hours: float = typer.Option(1.0, "--hours", help="Simulated hours (1 s steps)"),
            net: Optional[Path] = typer.Option(None, "--net", help="A SUMO .net.xml [default: a generated grid]"),
            seed: int = typer.Option(1, "--seed", help="Everything random follows from it"),
            start_hour: int = typer.Option(7, "--start-hour", help="Local hour the simulation starts at"),
            node: Optional[str] = typer.Option(None, "--node", help="Node API URL: enroll, prove and claim there"),
            sponsor: Optional[str] = typer.Option(None, "--sponsor", help="With --node: keystore key funding the "
                                                  "programme"),
            office: Optional[str] = typer.Option(None, "--office", help="With --node: keystore key of the transport "
                                                 "office (its DID accredited for vehicle-registration)"),
            budget: int = typer.Option(2_000_000, "--budget", min=1, help="With --node: the programme's budget"),
            min_score: int = typer.Option(60, "--min-score", min=0, max=100, help="With --node: points a trip needs"),
            vaults: bool = typer.Option(True, "--vaults/--no-vaults", help="With --node: vehicles registered as "
                                        "devices publish their trips into their owners' vaults through the node's "
                                        "Mosquitto, and owners score their trips from what they read back (needs "
                                        "--home to be the node's home, [telemetry] enabled)"),
            home: Optional[Path] = HomeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
            as_json: bool = JsonOption) -> None:
    """Run the fleet and print each driver class's km, trips, harsh brakes per 100 km and mean trip score;
    with --node, also what each class earned from a programme, the budget check and the ledger scan."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..sim.traffic import TrafficSim, check_args

    try:
        check_args(vehicles, hours, seed, start_hour)
    except ValueError as exc:
        fail(str(exc))
    keys = _node_keys(node, sponsor, office, home, passphrase_env)
    host = _node_host(home) if keys is not None and vaults else None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cityledger-sim-") as tmp:
        try:
            sim = TrafficSim(Path(tmp), vehicles, hours, seed, net, start_hour)
        except (ValueError, RuntimeError) as exc:
            fail(str(exc))
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeRemainingColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            task = progress.add_task("simulating (s)", total=sim.steps)
            on_step = (lambda step: progress.update(task, completed=step))
            try:
                summary = sim.run(on_step=on_step) if keys is None else _rewarded(node, keys, host, sim, budget,
                                                                                   min_score, progress, on_step)
            except (ValueError, RuntimeError) as exc:
                fail(str(exc))
    if as_json:
        print_json(summary)
        return
    _print_table(summary)
    if "rewards" in summary:
        _print_rewards(summary)


def _node_keys(node, sponsor, office, home, passphrase_env):
    """(sponsor key, office key) for a run against --node, or None without it."""
    if node is None:
        if sponsor or office:
            fail("--sponsor / --office: only with --node")
        return None
    if not sponsor or not office:
        fail("--sponsor / --office: both are needed with --node")
    from .payments import _keystore_key

    return (_keystore_key(home, sponsor, passphrase_env, "--sponsor"),
            _keystore_key(home, office, passphrase_env, "--office"))


def _node_host(home: Optional[Path]):
    """The node host's side of connected simulated cars, read from the node's home (--home)."""
    import re
    from dataclasses import asdict

    from ..modules.identity import compute_did
    from ..node.home import load_config, load_key
    from ..offchain.telemetry.broker import Broker
    from ..sim.vaults import NodeHost

    folder = resolve_home(home)
    try:
        config = load_config(folder)
        maker = load_key(folder / "keys" / "car-maker.json")
        office_key = load_key(folder / OFFICE / "key.json")
        token = (folder / OFFICE / "token").read_text().strip()
    except (OSError, ValueError) as exc:
        fail(f"--home: expected the node's home with its car maker and hosted transport office ({exc}); "
             f"or give --no-vaults")
    if not config.telemetry.enabled or not config.telemetry.gateway_did:
        fail(f"--home: {folder} has telemetry.enabled = false in config.toml: enable it (docs/PRIVACY.md) or "
             f"give --no-vaults")
    broker_folder = config.telemetry_path / "broker"
    port = config.telemetry.port
    if port == 0:  # picked at the node's start: the running broker's configuration says which
        found = re.search(r"^listener (\d+) ", _read(broker_folder / "mosquitto.conf"), re.M)
        if found is None:
            fail(f"--home: no running broker's configuration in {broker_folder}: is the node up?")
        port = int(found.group(1))

    def add_device(did: str) -> dict:
        creds = asdict(Broker(broker_folder, config.telemetry.host, port).add_device(did))
        return dict(creds, port=port)

    return NodeHost(maker, compute_did(maker.signer(), b""), compute_did(office_key.signer(), b""), token,
                    config.telemetry.gateway_did, add_device, ledger_folder=config.db_path.parent)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _rewarded(node, keys, host, sim, budget: int, min_score: int, progress, on_step) -> dict:
    import os

    import httpx

    from ..sdk import CityLedgerError
    from ..sim.rewards import Terms, run_rewarded_traffic

    def phase(name: str, total: int) -> None:
        progress.add_task(name, total=total)

    def on_claim() -> None:
        progress.advance(progress.task_ids[-1])

    terms = Terms(budget=budget, min_score=min_score)
    try:
        return run_rewarded_traffic(node, keys[0], keys[1], os.urandom(32), sim, terms, on_step=on_step,
                                    on_claim=on_claim, on_phase=phase, host=host, say=progress.console.log)
    except (CityLedgerError, OSError, httpx.HTTPError) as exc:
        fail(f"--node: {node}: {exc}")
        return {}


def _print_table(summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['vehicles']} vehicles, {summary['hours']:g} h on {summary['net']} "
                        f"(seed {summary['seed']})")
    for column in ("driver", "vehicles", "trips", "km", "harsh brakes / 100 km", "mean trip score"):
        table.add_column(column, justify="left" if column == "driver" else "right")
    for name, row in summary["classes"].items():
        table.add_row(name, str(row["vehicles"]), str(row["trips"]), f"{row['km']:.1f}",
                      f"{row['harsh_brakes_per_100km']:.1f}",
                      "-" if row["mean_score"] is None else f"{row['mean_score']:.1f}")
    console.print(table)
    console.print(f"{summary['vehicle_steps']:,} vehicle-steps in {summary['wall_s']} s "
                  f"({summary['vehicle_steps_per_s']:,}/s)")


def _print_rewards(summary: dict) -> None:
    from rich.table import Table

    rewards = summary["rewards"]
    table = Table(title=f"programme {rewards['programme_id']}: budget {rewards['budget']:,}, paid {rewards['paid']:,}, "
                        f"remaining {rewards['remaining']:,}")
    for column in ("driver", "enrollees", "trips", "claims paid", "reward", "per enrollee"):
        table.add_column(column, justify="left" if column == "driver" else "right")
    for name, row in rewards["classes"].items():
        table.add_row(name, str(row["enrollees"]), str(row["trips"]), str(row["claimed_trips"]), f"{row['reward']:,}",
                      f"{row['reward_per_enrollee']:,}")
    console.print(table)
    held = "held" if rewards["budget_held"] else "[bold red]EXCEEDED[/]"
    scanned = summary["privacy_scan"]
    console.print(f"budget {held}; claims sent {rewards['claims_sent']}, refused {rewards['claims_refused']}; "
                  f"ledger scan: {scanned['found']} of {scanned['forms']:,} simulated values found in "
                  f"{scanned['api_bytes']:,} bytes served by the node"
                  + (f" and {scanned['store_bytes']:,} of its store's files" if scanned["store_bytes"] else ""))
    if "vaults" in summary:
        vaults = summary["vaults"]
        console.print(f"vaults: {vaults['windows_published']:,} sealed windows published by {vaults['vehicles']} cars; "
                      f"owners read back {vaults['samples_read_back']:,} of {vaults['samples_published']:,} samples, "
                      f"{vaults['trips_matching_commitment']} trip(s) scoring as committed")
