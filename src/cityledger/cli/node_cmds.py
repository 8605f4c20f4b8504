"""init, up and status: a node's home folder, running it, and asking it how it is."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import (
    HomeOption,
    JsonOption,
    NodeOption,
    console,
    facts_table,
    fail,
    node_errors,
    print_json,
    resolve_home,
    resolve_node_url,
)

ENGINES = ("solo", "cometbft")


def init(home: Optional[Path] = HomeOption,
         chain_id: str = typer.Option("city-local-1", "--chain-id", help="Chain id written into the genesis"),
         port: int = typer.Option(8080, "--port", min=1, max=65535, help="API port written into config.toml"),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing home (its ledger data is kept)"),
         telemetry: bool = typer.Option(False, "--telemetry", help="Enable [telemetry]: the node's Mosquitto, "
                                        "gateway and vault service, their DIDs accredited in the genesis"),
         as_json: bool = JsonOption) -> None:
    """Write a home folder: config.toml, genesis.json, the node key and the consortium's keys."""
    from ..node.home import init_home

    folder = resolve_home(home)
    try:
        summary = init_home(folder, chain_id=chain_id, port=port, overwrite=force, telemetry=telemetry)
    except FileExistsError as exc:
        fail(f"{exc}; pass --force to overwrite")
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(summary)
        return
    console.print(f"Initialised [bold]{summary['home']}[/] for chain [bold]{summary['chain_id']}[/]")
    table = Table("consortium member", "address", "key file")
    for column in table.columns:
        column.overflow = "fold"
    for member in summary["members"]:
        slug = member["name"].lower().replace(" ", "-")
        table.add_row(member["name"], member["address"], str(folder / "keys" / f"{slug}.json"))
    console.print(table)
    console.print("Start it with [bold]cityledger up[/]" + (f" --home {folder}" if home else ""))


def up(home: Optional[Path] = HomeOption,
       engine: Optional[str] = typer.Option(None, "--engine", help="Consensus engine [default: from config.toml]"),
       host: Optional[str] = typer.Option(None, "--host", help="API host [default: from config.toml]"),
       port: Optional[int] = typer.Option(None, "--port", min=0, max=65535, help="API port [default: config.toml]"),
       chain_id: str = typer.Option("city-local-1", "--chain-id", help="Chain id if the home is created now"),
       log_level: str = typer.Option("info", "--log-level", help="uvicorn log level")) -> None:
    """Run a city node: initialise the home on first run, then serve the ledger and its REST API."""
    from ..node.home import init_home, load_config

    folder = resolve_home(home)
    if not (folder / "config.toml").exists():
        init_home(folder, chain_id=chain_id, port=port or 8080)
        console.print(f"Initialised a new home at [bold]{folder}[/]")
    try:
        config = load_config(folder)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    config.engine = engine or config.engine
    if config.engine not in ENGINES:
        fail(f"--engine: {config.engine!r} is not available in `up` yet; expected one of {', '.join(ENGINES)}")
    config.api_host = host or config.api_host
    config.api_port = config.api_port if port is None else port
    if config.engine == "cometbft":
        from .cometbft_cmds import up_cometbft

        up_cometbft(folder, config.api_host, config.api_port, log_level)
        return
    serve_node(config, log_level)


def serve_node(config, log_level: str, comet=None, banner: str = "") -> None:
    """Assemble the node config names (node/runner.Node), serve it with its REST API until a signal.

    Exits 1 with the reason if the node cannot start, or if its engine dies while it runs (CometBFT
    exited, the app failed): the API then stops with it instead of answering for a dead node.
    """
    from ..api import serve
    from ..node.runner import Node, node_errors

    try:
        node = Node(config, comet, exit_on_failure=True)
    except node_errors(config.engine) as exc:
        fail(str(exc))
    url = f"http://{config.api_host}:{config.api_port}"
    console.print(f"cityledger node [bold]{config.chain_id}[/] ({banner or config.engine}) at height "
                  f"{node.store.last_height()}; home {config.home}")
    console.print(f"REST API {url}  (OpenAPI: {url}/openapi.json, docs: {url}/docs); Ctrl+C stops it")
    if config.charging.enabled:
        scheme = "wss" if config.charging.tls_cert else "ws"
        console.print(f"charging: CSMS at {scheme}://{config.charging.host}:{config.charging.port or '<free port>'}"
                      "/ocpp/<charger id> (docs/CHARGING.md)")
    try:
        serve(node, config.api_host, config.api_port, log_level=log_level)
    except node_errors(config.engine) as exc:
        fail(str(exc))
    failure = node.failure()
    if failure is not None:
        fail(f"the node stopped: {failure}")
    console.print(f"stopped at height {node.store.last_height()}")


def status(home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """Chain id, height, app hash and mempool of a running node."""
    from ..sdk import Client

    url = resolve_node_url(node, home)
    with node_errors(url), Client(url) as client:
        result = client.status()
    if as_json:
        print_json(result)
        return
    console.print(facts_table([(name, getattr(result, name)) for name in result.__struct_fields__]))
