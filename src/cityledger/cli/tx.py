"""tx send: sign a transfer with a keystore key and submit it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (
    HomeOption,
    JsonOption,
    NodeOption,
    PassphraseEnvOption,
    console,
    facts_table,
    fail,
    keystore_folder,
    node_errors,
    print_json,
    read_passphrase,
    resolve_node_url,
)

app = typer.Typer(help="Sign and submit transactions.", no_args_is_help=True)


@app.command("send")
def send(from_key: str = typer.Option(..., "--from", help="Keystore key that signs and pays"),
         to: str = typer.Option(..., "--to", help="Recipient address (city…)"),
         amount: int = typer.Option(..., "--amount", min=1, help="Micro-credits to send (1 credit = 1,000,000)"),
         wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the tx is committed"),
         timeout_s: float = typer.Option(30.0, "--timeout-s", min=0.1, help="How long to wait for the commit"),
         expiry_height: int = typer.Option(0, "--expiry-height", min=0, help="Last height the tx is valid (0: none)"),
         home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
         passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Transfer credits: `cityledger tx send --from alice --to city… --amount 5000000`."""
    from ..sdk import Client, Keystore, KeystoreError, to_address, transfer

    try:
        to_address(to, "--to")
    except ValueError as exc:
        fail(str(exc))
    store = Keystore(keystore_folder(home))
    try:
        store.info(from_key)
        key = store.load(from_key, read_passphrase(passphrase_env))
    except KeystoreError as exc:
        fail(f"--from: {exc}")
    url = resolve_node_url(node, home)
    with node_errors(url), Client(url) as client:
        chain_id = client.status().chain_id
        nonce = client.get_nonce(key.address())
        tx = transfer(chain_id, key, nonce, to, amount, expiry_height=expiry_height)
        result = client.submit(tx, wait=wait, timeout_s=timeout_s)
    if as_json:
        print_json(result)
    else:
        _print_result(result)
    if result.result is not None and not result.result.ok:
        raise typer.Exit(1)


def _print_result(result) -> None:
    rows: list[tuple[str, object]] = [("tx id", result.tx_id),
                                      ("status", result.status + (" (timed out waiting)" if result.timed_out else ""))]
    if result.height is not None:
        rows.append(("height", result.height))
    if result.result is not None:
        outcome = "ok" if result.result.ok else f"failed {result.result.codespace}/{result.result.code}"
        rows.append(("result", outcome + (f": {result.result.log}" if result.result.log else "")))
    console.print(facts_table(rows))
