"""`cityledger credential request|list|present|account`: a resident's wallet (<home>/wallets/<name>.wallet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import (
    HomeOption,
    JsonOption,
    NodeOption,
    PassphraseEnvOption,
    console,
    fail,
    node_errors,
    print_json,
)
from .identity_common import OutOption, WalletOption, emit_message, open_client, open_wallet, read_message

app = typer.Typer(help="A resident's wallet: obtain credentials, list them, present facts.",
                  no_args_is_help=True)


@app.command("request")
def credential_request(offer_file: str = typer.Option(..., "--offer", help="The offer from the office ('-': stdin)"),
                       wallet: str = WalletOption, home: Optional[Path] = HomeOption,
                       node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                       as_json: bool = JsonOption) -> None:
    """Redeem an offer: request the credential, receive it, check it against the ledger, keep it."""
    offer = read_message(offer_file, "--offer")
    url, client = open_client(node, home)
    with node_errors(url), client:
        held = open_wallet(home, wallet, passphrase_env, client, create=True)
        try:
            local_id = client.obtain_credential(held, offer)
        except (KeyError, TypeError, ValueError, LookupError) as exc:
            fail(f"--offer: {exc}")
    item = held.credentials()[local_id]
    if as_json:
        print_json({"id": local_id, "type": item["type"]})
        return
    console.print(f"stored [bold]{item['type']}[/] credential {local_id} in wallet {wallet}", highlight=False)


@app.command("list")
def credential_list(wallet: str = WalletOption, home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                    passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """The credentials a wallet holds, with their values (for the holder's eyes only)."""
    _, client = open_client(node, home)
    with client:
        held = open_wallet(home, wallet, passphrase_env, client).credentials()
    if as_json:
        print_json(held)
        return
    table = Table("id", "type", "attributes")
    table.columns[2].overflow = "fold"
    for local_id, item in sorted(held.items()):
        table.add_row(local_id, item["type"], ", ".join(f"{k}={v}" for k, v in sorted(item["attributes"].items())))
    console.print(table)


@app.command("present")
def credential_present(request_file: str = typer.Option(..., "--request", help="The verifier's request ('-': stdin)"),
                       verify: bool = typer.Option(False, "--verify", help="Send it to the node's verifier"),
                       wallet: str = WalletOption, out: Optional[Path] = OutOption,
                       home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                       passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Prove what a request asks (revealed attributes, predicates, non-revocation) and nothing else."""
    from ..sdk import WalletError

    request = read_message(request_file, "--request")
    url, client = open_client(node, home)
    with node_errors(url), client:
        held = open_wallet(home, wallet, passphrase_env, client)
        try:
            presentation = client.present(held, request)
        except WalletError as exc:
            fail(str(exc))
        if not verify:
            emit_message(json.loads(presentation), out)
            return
        verdict = client.verify(request, presentation)
    print_json(verdict)
    if not verdict["verified"]:
        raise typer.Exit(1)


@app.command("account")
def credential_account(purpose: str = typer.Option("vehicle", "--purpose", help="What the account is for"),
                       index: int = typer.Option(0, "--index", min=0, help="Several accounts of one purpose"),
                       wallet: str = WalletOption, home: Optional[Path] = HomeOption,
                       node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """A pseudonymous account of the wallet (e.g. the one a vehicle registration names); creates the wallet."""
    from ..core.types import address_to_str

    _, client = open_client(node, home)
    with client:
        key = open_wallet(home, wallet, passphrase_env, client, create=True).account(purpose, index)
    print(address_to_str(key.address()))
