"""`cityledger device register|show|bind|transfer|accept|sign|verify`: the device registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import (
    HomeOption,
    JsonOption,
    NodeOption,
    PassphraseEnvOption,
    console,
    facts_table,
    fail,
    node_errors,
    print_json,
)
from .identity_common import WalletOption, load_keys, open_client, open_wallet, send_and_wait

app = typer.Typer(help="Devices: register, bind to a wallet account, transfer, verify signed messages.",
                  no_args_is_help=True)


@app.command("register")
def device_register(kind: str = typer.Option("vehicle", "--kind", help="vehicle, charger, battery or meter"),
                    model: str = typer.Option(..., "--model", help="Model name"),
                    device_key: str = typer.Option(..., "--device-key", help="Keystore key of the device"),
                    manufacturer_key: str = typer.Option(..., "--manufacturer-key",
                                                         help="Keystore key of the manufacturer's DID"),
                    manufacturer_did: Optional[str] = typer.Option(None, "--manufacturer-did",
                                                                   help="[default: the DID its key generates]"),
                    home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                    passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Register a device: the manufacturer vouches for its key, the device proves it holds it."""
    from ..modules.devices import compute_device_did
    from ..modules.identity import compute_did
    from ..offchain.identity.devices import build_registration

    device, maker = load_keys(home, [device_key, manufacturer_key], passphrase_env)
    maker_did = manufacturer_did or compute_did(maker.signer(), b"")
    url, client = open_client(node, home)
    with node_errors(url), client:
        message = build_registration(client.status().chain_id, kind, model, device, maker_did, maker)
        result = send_and_wait(client, [maker], [message])
    did = compute_device_did(device.public_key)
    if as_json:
        print_json({"did": did, "height": result.height})
        return
    console.print(f"registered [bold]{did}[/] at height {result.height}", highlight=False)


@app.command("show")
def device_show(did: str = typer.Argument(..., help="Device DID"), home: Optional[Path] = HomeOption,
                node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """A device's registry record."""
    url, client = open_client(node, home)
    with node_errors(url), client:
        record = client.get_device(did)
    if as_json:
        print_json(record)
        return
    console.print(facts_table(sorted(record.items())))


def _owner_tx(did: str, wallet: str, purpose: str, index: int, home, node, passphrase_env, build) -> Any:
    """Send a device message from a wallet's pseudonymous account; build(client, held, owner) -> message."""
    url, client = open_client(node, home)
    with node_errors(url), client:
        held = open_wallet(home, wallet, passphrase_env, client)
        owner = held.account(purpose, index)
        try:
            message = build(client, held, owner)
        except (LookupError, ValueError) as exc:  # no such device, no matching credential (WalletError)
            fail(str(exc))
        return send_and_wait(client, [owner], [message])


def _proof(client, held, did: str, owner) -> bytes:
    from ..offchain.identity.devices import prove_ownership

    return prove_ownership(held, client.ledger, client.status().chain_id, did, owner)


PurposeOption = typer.Option("vehicle", "--purpose", help="Wallet account purpose")
IndexOption = typer.Option(0, "--account-index", min=0, help="Wallet account index")


@app.command("bind")
def device_bind(did: str = typer.Argument(..., help="Device DID"), wallet: str = WalletOption,
                purpose: str = PurposeOption, index: int = IndexOption, home: Optional[Path] = HomeOption,
                node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Bind an unowned device to the wallet's account, proven by its registration credential."""
    from ..modules.devices import BindDevice

    result = _owner_tx(did, wallet, purpose, index, home, node, passphrase_env,
                       lambda client, held, owner: BindDevice(did, _proof(client, held, did, owner)))
    console.print(f"bound {did} at height {result.height}", highlight=False)


@app.command("transfer")
def device_transfer(did: str = typer.Argument(..., help="Device DID"),
                    to: str = typer.Option(..., "--to", help="The new owner's account (city…); '' withdraws"),
                    wallet: str = WalletOption, purpose: str = PurposeOption, index: int = IndexOption,
                    home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                    passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Offer the device to a new owner; nothing moves until they accept."""
    from ..modules.devices import OfferTransfer
    from ..sdk import to_address

    try:
        new_owner = to_address(to, "--to") if to else b""
    except ValueError as exc:
        fail(str(exc))
    result = _owner_tx(did, wallet, purpose, index, home, node, passphrase_env,
                       lambda client, held, owner: OfferTransfer(did, new_owner))
    console.print(f"offered {did} to {to or 'nobody'} at height {result.height}", highlight=False)


@app.command("accept")
def device_accept(did: str = typer.Argument(..., help="Device DID"), wallet: str = WalletOption,
                  purpose: str = PurposeOption, index: int = IndexOption, home: Optional[Path] = HomeOption,
                  node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Accept an offered device, proven by the new owner's registration credential."""
    from ..modules.devices import AcceptTransfer

    result = _owner_tx(did, wallet, purpose, index, home, node, passphrase_env,
                       lambda client, held, owner: AcceptTransfer(did, _proof(client, held, did, owner)))
    console.print(f"accepted {did} at height {result.height}", highlight=False)


def _hex(text: str, field: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        fail(f"{field}: expected hex digits")
        return b""  # not reached: fail() exits


@app.command("sign")
def device_sign(did: str = typer.Argument(..., help="Device DID"),
                device_key: str = typer.Option(..., "--device-key", help="Keystore key of the device"),
                payload: str = typer.Option(..., "--payload", help="Hex bytes to sign"),
                home: Optional[Path] = HomeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Sign a message as the device (what the device's firmware does); prints the signature in hex."""
    from ..offchain.identity.devices import sign_device_message

    (key,) = load_keys(home, [device_key], passphrase_env)
    print(sign_device_message(key, did, _hex(payload, "--payload")).hex())


@app.command("verify")
def device_verify(did: str = typer.Argument(..., help="Device DID"),
                  payload: str = typer.Option(..., "--payload", help="Hex bytes that were signed"),
                  signature: str = typer.Option(..., "--signature", help="Hex signature"),
                  home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                  as_json: bool = JsonOption) -> None:
    """Check a device-signed message against the registry (exit status 1 if it does not verify)."""
    url, client = open_client(node, home)
    with node_errors(url), client:
        result = client.verify_device_message(did, _hex(payload, "--payload"), _hex(signature, "--signature"))
    if as_json:
        print_json(result)
    else:
        console.print("valid" if result["valid"] else f"invalid: {result['reason']}", highlight=False)
    if not result["valid"]:
        raise typer.Exit(1)
