"""What the identity and device command groups share: wallet and message options, the client, keys, sending.

Protocol messages (offers, presentation requests, presentations) travel as JSON files; '-' reads
stdin, and without --out a command prints the message on stdout. The roles are those of
docs/IDENTITY_PROTOCOL.md: did.py, issuer.py, credential.py, verifier.py; devices.py for devices.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .common import (
    console,
    fail,
    keystore_folder,
    print_json,
    read_passphrase,
    resolve_home,
    resolve_node_url,
)

WalletOption = typer.Option("default", "--wallet", help="Wallet name (<home>/wallets/<name>.wallet)")
OutOption = typer.Option(None, "--out", help="Write the message to this file instead of stdout")


def open_client(node: Optional[str], home: Optional[Path], token: str | None = None):
    """The node URL and an identity client for it."""
    from ..sdk import IdentityClient

    url = resolve_node_url(node, home)
    return url, IdentityClient(url, token=token)


def read_message(path: str, what: str) -> Any:
    """A JSON message from a file, or stdin for '-'."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except OSError as exc:
        fail(f"{what}: cannot read {path} ({exc.strerror})")
    except json.JSONDecodeError as exc:
        fail(f"{what}: {path} is not JSON ({exc})")


def emit_message(message: Any, out: Optional[Path]) -> None:
    """Write a protocol message to a file, or print it."""
    if out is None:
        print_json(message)
        return
    out.write_text(json.dumps(message, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {out}", highlight=False)


def load_keys(home: Optional[Path], names: list[str], passphrase_env: Optional[str]):
    """Keystore keys, opened with one passphrase."""
    from ..sdk import Keystore, KeystoreError

    store = Keystore(keystore_folder(home))
    try:
        for name in names:
            store.info(name)
        passphrase = read_passphrase(passphrase_env)
        return [store.load(name, passphrase) for name in names]
    except KeystoreError as exc:
        fail(f"--key: {exc}")


def open_wallet(home: Optional[Path], name: str, passphrase_env: Optional[str], client, create: bool = False):
    """A resident's wallet file under <home>/wallets (created on request, with a confirmed passphrase)."""
    from ..sdk import WalletError

    folder = resolve_home(home) / "wallets"
    path = folder / f"{name}.wallet"
    if not path.exists() and not create:
        fail(f"--wallet: no wallet {path}; `cityledger credential request` or `credential account` creates one")
    folder.mkdir(parents=True, exist_ok=True)
    passphrase = read_passphrase(passphrase_env, confirm=not path.exists(),
                                 prompt="Wallet passphrase" if path.exists() else "New wallet passphrase")
    try:
        return client.open_wallet(path, passphrase, create=create, tails_cache=folder / "tails-cache")
    except WalletError as exc:
        fail(f"--wallet: {exc}")


def send_and_wait(client, keys: list, messages: list, signer=None):
    """Sign with the keys' account, submit, wait for the commit; fail with the ledger's code if refused."""
    from ..core.keys import compute_address
    from ..sdk import sign

    signer = signer or keys[0].signer()
    chain_id = client.status().chain_id
    nonce = client.get_nonce(compute_address(signer))
    result = client.submit(sign(chain_id, keys, nonce, messages, signer=signer), wait=True)
    if result.result is None:
        fail(f"tx: {result.tx_id} not committed in time (status {result.status})")
    if not result.result.ok:
        fail(f"{result.result.codespace}/{result.result.code}: {result.result.log}")
    return result
