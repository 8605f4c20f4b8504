"""`cityledger testnet` (a local CometBFT network) and `cityledger up --engine cometbft` (one validator).

    cityledger testnet --validators 4 [--full-nodes 1] [--root DIR]   create (first time) and start
    cityledger testnet status [--root DIR] [--json]
    cityledger testnet stop [--root DIR] [--kill]
    cityledger testnet start [--root DIR]                             start a stopped one again

The network lives under --root (default: $CITYLEDGER_HOME/testnet, else ~/.cityledger/testnet);
its processes are detached, so it keeps running after the command returns. See docs/COMETBFT.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from .common import console, default_home, fail, print_json

app = typer.Typer(name="testnet", help="A local CometBFT network of cityledger nodes on the loopback.",
                  add_completion=False)

RootOption = typer.Option(None, "--root", "--home", help="Testnet folder [default: $CITYLEDGER_HOME/testnet, "
                          "else ~/.cityledger/testnet]", show_default=False)
FIRST_BLOCK_WAIT_S = 60.0


def resolve_root(root: Optional[Path]) -> Path:
    return (root or default_home() / "testnet").expanduser()


def _testnet_errors():
    from ..engines.cometbft.setup import CometSetupError
    from ..engines.cometbft.testnet import TestnetError

    return (TestnetError, CometSetupError)


def print_status_table(net) -> list:
    """Print one row per node (name, role, processes, RPC/API ports, height, app hash, peers, power)."""
    statuses = net.status()
    table = Table(title=f"testnet {net.chain_id} at {net.root}", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for column in ("node", "role", "up", "RPC", "API", "height", "app hash", "peers", "power"):
        table.add_column(column, no_wrap=True)
    for spec, status in zip(net.nodes, statuses):
        running = {(True, True): "yes", (False, False): "no"}.get((status.app_running, status.cometbft_running),
                                                                  "app" if status.app_running else "cometbft")
        if net.builtin_app is not None:
            running = "yes" if status.cometbft_running else "no"
        table.add_row(spec.name, spec.role, running, str(spec.ports.rpc), str(spec.ports.api or "-"),
                      str(status.height) if status.cometbft_running else "-",
                      status.app_hash[:8] or ("error" if status.error else "-"), str(status.n_peers),
                      str(status.voting_power))
    console.print(table)
    return statuses


def _status_document(net) -> dict:
    nodes = []
    for spec, status in zip(net.nodes, net.status()):
        nodes.append({"name": spec.name, "role": spec.role, "rpc": spec.rpc_url, "api": spec.api_url or None,
                      "p2p_port": spec.ports.p2p, "app_running": status.app_running,
                      "cometbft_running": status.cometbft_running, "height": status.height,
                      "app_hash": status.app_hash, "catching_up": status.catching_up, "peers": status.n_peers,
                      "voting_power": status.voting_power, "error": status.error or None})
    return {"chain_id": net.chain_id, "root": str(net.root), "nodes": nodes}


@app.callback(invoke_without_command=True)
def testnet(ctx: typer.Context,
            validators: int = typer.Option(4, "--validators", min=1, max=32, help="Validator nodes"),
            full_nodes: int = typer.Option(0, "--full-nodes", min=0, max=32, help="Full (non-validator) nodes"),
            root: Optional[Path] = RootOption,
            chain_id: str = typer.Option("city-testnet-1", "--chain-id", help="Chain id of a new testnet"),
            snapshot_interval: int = typer.Option(10, "--snapshot-interval", min=0,
                                                  help="Heights between state-sync snapshots (0: none)"),
            as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table")) -> None:
    """Create (the first time) and start a local network, then show its nodes."""
    if ctx.invoked_subcommand is not None:
        return
    from ..engines.cometbft.testnet import TESTNET_FILE, Testnet

    folder = resolve_root(root)
    try:
        if (folder / TESTNET_FILE).exists():
            net = Testnet.load(folder)
            have = (sum(n.role == "validator" for n in net.nodes), sum(n.role == "full" for n in net.nodes))
            if have != (validators, full_nodes) and ctx.get_parameter_source("validators").name != "DEFAULT":
                fail(f"--root: {folder} already holds a testnet of {have[0]} validators and {have[1]} full nodes; "
                     "stop it and remove the folder, or choose another --root")
            console.print(f"Starting the testnet at [bold]{folder}[/]")
        else:
            net = Testnet.create(folder, validators=validators, full_nodes=full_nodes, chain_id=chain_id,
                                 snapshot_interval=snapshot_interval)
            console.print(f"Created a testnet of {validators} validators and {full_nodes} full nodes at "
                          f"[bold]{folder}[/] (consortium member keys in {folder / 'keys'})")
        net.start()
        net.wait_for_height(1, timeout_s=FIRST_BLOCK_WAIT_S)
    except _testnet_errors() as exc:
        fail(str(exc))
    _show(net, as_json)
    if not as_json:
        console.print(f"Stop it with [bold]cityledger testnet stop --root {folder}[/]")


def _show(net, as_json: bool) -> None:
    if as_json:
        print_json(_status_document(net))
    else:
        print_status_table(net)


@app.command("start")
def start(root: Optional[Path] = RootOption,
          as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table")) -> None:
    """Start a testnet created before (all its nodes)."""
    from ..engines.cometbft.testnet import Testnet

    try:
        net = Testnet.load(resolve_root(root))
        net.start()
        net.wait_for_height(1, timeout_s=FIRST_BLOCK_WAIT_S)
    except _testnet_errors() as exc:
        fail(str(exc))
    _show(net, as_json)


@app.command("status")
def status(root: Optional[Path] = RootOption,
           as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table")) -> None:
    """Each node's processes, ports, height, app hash, peers and voting power."""
    from ..engines.cometbft.testnet import Testnet

    try:
        net = Testnet.load(resolve_root(root))
    except _testnet_errors() as exc:
        fail(str(exc))
    _show(net, as_json)


@app.command("stop")
def stop(root: Optional[Path] = RootOption,
         kill: bool = typer.Option(False, "--kill", help="SIGKILL instead of a clean SIGTERM")) -> None:
    """Stop every node of the testnet (CometBFT first, then the apps); its data stays."""
    from ..engines.cometbft.testnet import Testnet

    try:
        net = Testnet.load(resolve_root(root))
        net.stop(kill=kill)
    except _testnet_errors() as exc:
        fail(str(exc))
    console.print(f"Stopped the testnet at [bold]{net.root}[/]")


# -- cityledger up --engine cometbft -------------------------------------------------------------

def up_cometbft(home: Path, host: Optional[str] = None, port: Optional[int] = None, log_level: str = "info",
                rpc_port: int = 26657, p2p_port: int = 26656, abci_port: int = 26658,
                snapshot_interval: Optional[int] = None) -> None:
    """Run the node of an initialised home as the one validator of a CometBFT chain, with its REST API.

    The node key (home/node_key.json) is the validator's consensus key; genesis.json must list it
    as the only validator (as `cityledger init` writes it). CometBFT's home is home/cometbft, the
    ledger's store home/data/ledger.sqlite. The API submits txs to CometBFT's mempool over its RPC.
    A state-sync snapshot is taken every snapshot_interval heights (default node/runner.DEFAULT_SNAPSHOT_INTERVAL).
    The issuer offices under home/issuers are hosted as a solo node hosts them (node/issuers.py).
    node/runner.Node assembles it; if CometBFT exits or the app fails, the command exits 1 naming why.
    """
    from ..node.home import load_config
    from ..node.runner import CometSettings
    from .node_cmds import serve_node

    try:
        config = load_config(Path(home))
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    config.engine = "cometbft"
    config.api_host = host or config.api_host
    config.api_port = config.api_port if port is None else port
    comet = CometSettings(rpc_port=rpc_port, p2p_port=p2p_port, abci_port=abci_port)
    if snapshot_interval is not None:
        comet.snapshot_interval = snapshot_interval
    serve_node(config, log_level, comet,
               banner=f"cometbft, one validator; CometBFT RPC http://127.0.0.1:{rpc_port}")
