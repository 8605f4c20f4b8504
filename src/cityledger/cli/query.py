"""query account, tx, block: read the ledger through a node's API."""

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
    keystore_folder,
    node_errors,
    print_json,
    resolve_node_url,
)

app = typer.Typer(help="Read accounts, transactions and blocks.", no_args_is_help=True)


def _address(text: str, home: Optional[Path]) -> str:
    """An address given as city… / hex, or the name of a keystore key."""
    if text.startswith("city") or len(text) == 40:
        return text
    from ..sdk import Keystore, KeystoreError

    try:
        return Keystore(keystore_folder(home)).info(text).address
    except KeystoreError:
        return text  # let the node name the problem


def _facts(pairs: list[tuple[str, object]]) -> None:
    console.print(facts_table(pairs))


@app.command("account")
def account(address: str = typer.Argument(..., help="Address (city…) or keystore key name"),
            home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """An account's balance (micro-credits) and nonce."""
    from ..sdk import Client

    url = resolve_node_url(node, home)
    with node_errors(url), Client(url) as client:
        result = client.get_account(_address(address, home))
    if as_json:
        print_json(result)
        return
    _facts([("address", result.address), ("balance", f"{result.balance} ucity ({result.balance / 1e6:,.6f} credits)"),
            ("nonce", result.nonce), ("pending nonce", result.pending_nonce), ("height", result.height)])


@app.command("tx")
def tx(tx_id: str = typer.Argument(..., help="Transaction id (64 hex digits)"), home: Optional[Path] = HomeOption,
       node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """A transaction's status and result."""
    from ..sdk import Client

    url = resolve_node_url(node, home)
    with node_errors(url), Client(url) as client:
        result = client.get_tx(tx_id)
    if as_json:
        print_json(result)
        return
    rows: list[tuple[str, object]] = [("tx id", result.tx_id), ("status", result.status)]
    if result.result is not None:
        rows += [("height", result.height), ("index", result.index),
                 ("result", "ok" if result.result.ok else f"{result.result.codespace}/{result.result.code}: "
                  f"{result.result.log}")]
        rows += [(f"event {event.type}", ", ".join(f"{a.key}={a.value}" for a in event.attributes))
                 for event in result.result.events]
    _facts(rows)


@app.command("block")
def block(height: Optional[int] = typer.Argument(None, help="Height [default: latest]", min=0),
          home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """A block's header facts and its transactions."""
    from ..sdk import Client

    url = resolve_node_url(node, home)
    with node_errors(url), Client(url) as client:
        result = client.get_block(height)
    if as_json:
        print_json(result)
        return
    _facts([("height", result.height), ("time_ns", result.time_ns), ("hash", result.hash),
            ("app hash", result.app_hash), ("txs", result.num_txs)])
    if result.tx_ids:
        table = Table("index", "tx id", "result")
        table.columns[1].overflow = "fold"
        for index, (tx_id, outcome) in enumerate(zip(result.tx_ids, result.results)):
            table.add_row(str(index), tx_id, "ok" if outcome.ok else f"{outcome.codespace}/{outcome.code}")
        console.print(table)
