"""Identity commands, one group per role of docs/IDENTITY_PROTOCOL.md.

    cityledger did resolve|create|rotate|deactivate          organisations' DIDs (keys from the keystore)
    cityledger issuer list|publish|issue|revoke              an office hosted by the node (token from its folder)
    cityledger credential request|list|present|account       a resident's wallet (<home>/wallets/<name>.wallet)
    cityledger verifier request|verify                       the node's verifier
    cityledger device register|show|bind|transfer|accept|sign|verify

Protocol messages (offers, presentation requests, presentations) travel as JSON files; '-' reads
stdin, and without --out a command prints the message on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

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
    resolve_home,
    resolve_node_url,
)

did_app = typer.Typer(help="Organisation DIDs: resolve, create, rotate keys, deactivate.", no_args_is_help=True)
issuer_app = typer.Typer(help="Issuer offices hosted by the node: publish, issue (pre-authorised offers), revoke.",
                         no_args_is_help=True)
credential_app = typer.Typer(help="A resident's wallet: obtain credentials, list them, present facts.",
                             no_args_is_help=True)
verifier_app = typer.Typer(help="The node's verifier: presentation requests and verdicts.", no_args_is_help=True)
device_app = typer.Typer(help="Devices: register, bind to a wallet account, transfer, verify signed messages.",
                         no_args_is_help=True)

WalletOption = typer.Option("default", "--wallet", help="Wallet name (<home>/wallets/<name>.wallet)")
IssuerOption = typer.Option("id-office", "--issuer", help="Issuer folder in <home>/issuers")
OutOption = typer.Option(None, "--out", help="Write the message to this file instead of stdout")
HeightOption = typer.Option(0, "--height", min=0, help="Read the ledger at this height [default: latest]")


def register(app: typer.Typer) -> None:
    """Add the identity command groups to the `cityledger` command."""
    app.add_typer(did_app, name="did")
    app.add_typer(issuer_app, name="issuer")
    app.add_typer(credential_app, name="credential")
    app.add_typer(verifier_app, name="verifier")
    app.add_typer(device_app, name="device")


# -- shared helpers ------------------------------------------------------------------------------

def _client(node: Optional[str], home: Optional[Path], token: str | None = None):
    from ..sdk import IdentityClient

    url = resolve_node_url(node, home)
    return url, IdentityClient(url, token=token)


def _read_json(path: str, what: str) -> Any:
    """A JSON message from a file, or stdin for '-'."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except OSError as exc:
        fail(f"{what}: cannot read {path} ({exc.strerror})")
    except json.JSONDecodeError as exc:
        fail(f"{what}: {path} is not JSON ({exc})")


def _emit(message: Any, out: Optional[Path]) -> None:
    """Write a protocol message to a file, or print it."""
    if out is None:
        print_json(message)
        return
    out.write_text(json.dumps(message, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {out}", highlight=False)


def _keys(home: Optional[Path], names: list[str], passphrase_env: Optional[str]):
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


def _wallet(home: Optional[Path], name: str, passphrase_env: Optional[str], client, create: bool = False):
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


def _send(client, keys: list, messages: list, signer=None):
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


def _office(home: Optional[Path], name: str) -> tuple[str, str]:
    """(DID, operator token) of an issuer folder in the home."""
    from ..modules.identity import compute_did
    from ..node.home import load_key

    folder = resolve_home(home) / "issuers" / name
    try:
        key = load_key(folder / "key.json")
        token = (folder / "token").read_text().strip()
    except (OSError, KeyError, ValueError) as exc:
        fail(f"--issuer: {folder} is not an issuer folder written by `cityledger init` ({exc})")
    return compute_did(key.signer(), b""), token


# -- did -----------------------------------------------------------------------------------------

@did_app.command("resolve")
def did_resolve(did: str = typer.Argument(..., help="A did:city DID"), height: int = HeightOption,
                home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                as_json: bool = JsonOption) -> None:
    """The W3C DID document and its metadata."""
    url, client = _client(node, home)
    with node_errors(url), client:
        result = client.resolve_did(did, height)
    if as_json:
        print_json(result)
        return
    doc, meta = result["didDocument"], result["didDocumentMetadata"]
    rows: list[tuple[str, object]] = [("id", doc["id"]), ("kind", meta.get("cityledger:kind")),
                                      ("version", meta.get("versionId")), ("deactivated", meta.get("deactivated"))]
    methods = doc.get("verificationMethod", [])
    rows += [(method["id"].split("#", 1)[1], method["publicKeyMultibase"]) for method in methods]
    rows += [(f"service {s['type']}", s["serviceEndpoint"]) for s in doc.get("service", [])]
    console.print(facts_table(rows))


def _parse_services(specs: list[str]) -> list:
    from ..modules.identity import Service

    services = []
    for spec in specs:
        parts = spec.split("=", 2)
        if len(parts) != 3:
            fail(f"--service: expected FRAGMENT=TYPE=URL, got {spec!r}")
        services.append(Service(*parts))
    return sorted(services, key=lambda s: s.fragment)


def _key_methods(key) -> list:
    from ..modules.identity import PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION, VerificationKey

    return [VerificationKey("key-1", key.public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]


@did_app.command("create")
def did_create(key: str = typer.Option(..., "--key", help="Keystore key: the DID's controller and key-1"),
               salt: str = typer.Option("", "--salt", help="Hex salt (another DID for the same key)"),
               service: list[str] = typer.Option([], "--service", help="FRAGMENT=TYPE=URL, repeatable"),
               home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
               passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Create an organisation DID controlled by a keystore key."""
    from ..modules.identity import CreateDid, compute_did

    try:
        salt_bytes = bytes.fromhex(salt)
    except ValueError:
        fail(f"--salt: expected hex digits, got {salt!r}")
    (signing,) = _keys(home, [key], passphrase_env)
    message = CreateDid(salt_bytes, signing.signer(), _key_methods(signing), _parse_services(service))
    url, client = _client(node, home)
    with node_errors(url), client:
        result = _send(client, [signing], [message])
    did = compute_did(signing.signer(), salt_bytes)
    if as_json:
        print_json({"did": did, "height": result.height, "tx_id": result.tx_id})
        return
    console.print(f"created [bold]{did}[/] at height {result.height}", highlight=False)


def _current(client, did: str) -> tuple[int, list]:
    """(version, services) of a DID as resolved now."""
    from ..modules.identity import Service

    result = client.resolve_did(did)
    services = [Service(s["id"].split("#", 1)[1], s["type"], s["serviceEndpoint"])
                for s in result["didDocument"].get("service", [])]
    return int(result["didDocumentMetadata"]["versionId"]), services


@did_app.command("rotate")
def did_rotate(did: str = typer.Argument(..., help="The DID"),
               key: str = typer.Option(..., "--key", help="Keystore key of the current controller"),
               new_key: str = typer.Option(..., "--new-key", help="Keystore key that takes over"),
               home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
               passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Rotate a DID to a new key: from the next transaction on, the old key can no longer act."""
    from ..modules.identity import UpdateDid

    old, new = _keys(home, [key, new_key], passphrase_env)
    url, client = _client(node, home)
    with node_errors(url), client:
        version, services = _current(client, did)
        message = UpdateDid(did, version, new.signer(), _key_methods(new), services)
        result = _send(client, [old], [message])
    if as_json:
        print_json({"did": did, "version": version + 1, "height": result.height})
        return
    console.print(f"rotated [bold]{did}[/] to version {version + 1} at height {result.height}", highlight=False)


@did_app.command("deactivate")
def did_deactivate(did: str = typer.Argument(..., help="The DID"),
                   key: str = typer.Option(..., "--key", help="Keystore key of the controller"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Deactivate a DID for good."""
    from ..modules.identity import DeactivateDid

    (signing,) = _keys(home, [key], passphrase_env)
    url, client = _client(node, home)
    with node_errors(url), client:
        result = _send(client, [signing], [DeactivateDid(did)])
    if as_json:
        print_json({"did": did, "deactivated": True, "height": result.height})
        return
    console.print(f"deactivated [bold]{did}[/] at height {result.height}", highlight=False)


# -- issuer --------------------------------------------------------------------------------------

@issuer_app.command("list")
def issuer_list(home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                as_json: bool = JsonOption) -> None:
    """The issuers the node hosts, and what each has published."""
    url, client = _client(node, home)
    with node_errors(url), client:
        issuers = client.list_issuers()
    if as_json:
        print_json(issuers)
        return
    table = Table("folder", "name", "did", "types", "published")
    for item in issuers:
        table.add_row(item["folder"], item["name"], item["did"], ", ".join(item["credential_types"]),
                      ", ".join(item["published"]) or "-")
    console.print(table)


@issuer_app.command("publish")
def issuer_publish(issuer: str = IssuerOption,
                   credential_type: Optional[str] = typer.Option(None, "--type", help="[default: all its types]"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   as_json: bool = JsonOption) -> None:
    """Anchor the office's schemas, credential definitions and registries (once; takes seconds)."""
    did, token = _office(home, issuer)
    url, client = _client(node, home, token)
    with node_errors(url), client:
        types = [credential_type] if credential_type else client.get_issuer(did)["credential_types"]
        published = {name: client.publish(did, name) for name in types}
    if as_json:
        print_json({"did": did, "published": published})
        return
    for name, ids in published.items():
        console.print(f"[bold]{name}[/]", highlight=False)
        console.print(facts_table(list(ids.items())))


def _values(values_file: Optional[Path], pairs: list[str]) -> dict:
    values: dict[str, Any] = dict(_read_json(str(values_file), "--values")) if values_file else {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            fail(f"--value: expected NAME=VALUE, got {pair!r}")
        values[name] = int(value) if value.isdigit() and not value.startswith("0") else value
    if not values:
        fail("--values: give the credential's values (--values FILE or --value NAME=VALUE ...)")
    return values


@issuer_app.command("issue")
def issuer_issue(credential_type: str = typer.Option(..., "--type", help="Credential type, e.g. resident-id"),
                 reference: str = typer.Option(..., "--reference", help="The office's own key (e.g. ID-card number)"),
                 values_file: Optional[Path] = typer.Option(None, "--values", help="JSON file of the values"),
                 value: list[str] = typer.Option([], "--value", help="NAME=VALUE, repeatable"),
                 issuer: str = IssuerOption, out: Optional[Path] = OutOption,
                 home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption) -> None:
    """Pre-authorise a credential for a checked person: prints the offer the resident redeems once."""
    values = _values(values_file, value)
    did, token = _office(home, issuer)
    url, client = _client(node, home, token)
    with node_errors(url), client:
        offer = client.create_offer(did, credential_type, values, reference)
    _emit(offer, out)


@issuer_app.command("revoke")
def issuer_revoke(references: list[str] = typer.Argument(..., help="The office's references to revoke"),
                  issuer: str = IssuerOption, home: Optional[Path] = HomeOption,
                  node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """Revoke credentials (one status-list update): their next presentation fails."""
    did, token = _office(home, issuer)
    url, client = _client(node, home, token)
    with node_errors(url), client:
        result = client.revoke(did, references)
    if as_json:
        print_json(result)
        return
    console.print(f"revoked {result['revoked']} credential(s) at height {result['height']}", highlight=False)


# -- credential (the resident) -------------------------------------------------------------------

@credential_app.command("request")
def credential_request(offer_file: str = typer.Option(..., "--offer", help="The offer from the office ('-': stdin)"),
                       wallet: str = WalletOption, home: Optional[Path] = HomeOption,
                       node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption,
                       as_json: bool = JsonOption) -> None:
    """Redeem an offer: request the credential, receive it, check it against the ledger, keep it."""
    offer = _read_json(offer_file, "--offer")
    url, client = _client(node, home)
    with node_errors(url), client:
        held = _wallet(home, wallet, passphrase_env, client, create=True)
        try:
            local_id = client.obtain_credential(held, offer)
        except (KeyError, TypeError, ValueError, LookupError) as exc:
            fail(f"--offer: {exc}")
    item = held.credentials()[local_id]
    if as_json:
        print_json({"id": local_id, "type": item["type"]})
        return
    console.print(f"stored [bold]{item['type']}[/] credential {local_id} in wallet {wallet}", highlight=False)


@credential_app.command("list")
def credential_list(wallet: str = WalletOption, home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                    passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """The credentials a wallet holds, with their values (for the holder's eyes only)."""
    _, client = _client(node, home)
    with client:
        held = _wallet(home, wallet, passphrase_env, client).credentials()
    if as_json:
        print_json(held)
        return
    table = Table("id", "type", "attributes")
    table.columns[2].overflow = "fold"
    for local_id, item in sorted(held.items()):
        table.add_row(local_id, item["type"], ", ".join(f"{k}={v}" for k, v in sorted(item["attributes"].items())))
    console.print(table)


@credential_app.command("present")
def credential_present(request_file: str = typer.Option(..., "--request", help="The verifier's request ('-': stdin)"),
                       verify: bool = typer.Option(False, "--verify", help="Send it to the node's verifier"),
                       wallet: str = WalletOption, out: Optional[Path] = OutOption,
                       home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                       passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Prove what a request asks (revealed attributes, predicates, non-revocation) and nothing else."""
    from ..sdk import WalletError

    request = _read_json(request_file, "--request")
    url, client = _client(node, home)
    with node_errors(url), client:
        held = _wallet(home, wallet, passphrase_env, client)
        try:
            presentation = client.present(held, request)
        except WalletError as exc:
            fail(str(exc))
        if not verify:
            _emit(json.loads(presentation), out)
            return
        verdict = client.verify(request, presentation)
    print_json(verdict)
    if not verdict["verified"]:
        raise typer.Exit(1)


@credential_app.command("account")
def credential_account(purpose: str = typer.Option("vehicle", "--purpose", help="What the account is for"),
                       index: int = typer.Option(0, "--index", min=0, help="Several accounts of one purpose"),
                       wallet: str = WalletOption, home: Optional[Path] = HomeOption,
                       node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """A pseudonymous account of the wallet (e.g. the one a vehicle registration names); creates the wallet."""
    from ..core.types import address_to_str

    _, client = _client(node, home)
    with client:
        key = _wallet(home, wallet, passphrase_env, client, create=True).account(purpose, index)
    print(address_to_str(key.address()))


# -- verifier ------------------------------------------------------------------------------------

def _parse_predicate(text: str) -> tuple[str, str, int]:
    for p_type in (">=", "<=", ">", "<"):
        name, sep, value = text.partition(p_type)
        if sep and name and value.strip().lstrip("-").isdigit():
            return name.strip(), p_type, int(value)
    fail(f"--predicate: expected NAME>=N, NAME>N, NAME<=N or NAME<N, got {text!r}")
    return "", "", 0  # not reached: fail() exits


def _today() -> int:
    import time

    from ..offchain.identity import compute_today

    return compute_today(time.time_ns())


@verifier_app.command("request")
def verifier_request(credential_type: str = typer.Option("resident-id", "--type", help="Credential type asked for"),
                     reveal: list[str] = typer.Option([], "--reveal", help="Attribute to reveal, repeatable"),
                     predicate: list[str] = typer.Option([], "--predicate", help="e.g. 'birth_date<=20070615'"),
                     resident_check: bool = typer.Option(False, "--resident-check",
                                                         help="Adult and resident for a year (with --today)"),
                     today: Optional[int] = typer.Option(None, "--today", help="YYYYMMDD [default: today, UTC]"),
                     out: Optional[Path] = OutOption, home: Optional[Path] = HomeOption,
                     node: Optional[str] = NodeOption) -> None:
    """Ask the node's verifier for a presentation request pinned to the current height."""
    url, client = _client(node, home)
    with node_errors(url), client:
        if resident_check:
            request = client.resident_request(today or _today(), reveal=reveal or ("district",))
        else:
            request = client.create_request(credential_type, reveal, [_parse_predicate(p) for p in predicate])
    _emit(request, out)


@verifier_app.command("verify")
def verifier_verify(request_file: str = typer.Option(..., "--request", help="The request this verifier made"),
                    presentation_file: str = typer.Option(..., "--presentation", help="The holder's presentation"),
                    home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                    as_json: bool = JsonOption) -> None:
    """Verify a presentation against the ledger at the request's height (exit status 1 if it fails)."""
    request = _read_json(request_file, "--request")
    presentation = _read_json(presentation_file, "--presentation")
    url, client = _client(node, home)
    with node_errors(url), client:
        verdict = client.verify(request, presentation)
    if as_json:
        print_json(verdict)
    else:
        rows: list[tuple[str, object]] = [("verified", verdict["verified"]), ("height", verdict["height"])]
        rows += [("reason", verdict["reason"])] if verdict["reason"] else []
        rows += [(f"revealed {k}", v) for k, v in sorted(verdict["revealed"].items())]
        console.print(facts_table(rows))
    if not verdict["verified"]:
        raise typer.Exit(1)


# -- device --------------------------------------------------------------------------------------

@device_app.command("register")
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

    device, maker = _keys(home, [device_key, manufacturer_key], passphrase_env)
    maker_did = manufacturer_did or compute_did(maker.signer(), b"")
    url, client = _client(node, home)
    with node_errors(url), client:
        message = build_registration(client.status().chain_id, kind, model, device, maker_did, maker)
        result = _send(client, [maker], [message])
    did = compute_device_did(device.public_key)
    if as_json:
        print_json({"did": did, "height": result.height})
        return
    console.print(f"registered [bold]{did}[/] at height {result.height}", highlight=False)


@device_app.command("show")
def device_show(did: str = typer.Argument(..., help="Device DID"), home: Optional[Path] = HomeOption,
                node: Optional[str] = NodeOption, as_json: bool = JsonOption) -> None:
    """A device's registry record."""
    url, client = _client(node, home)
    with node_errors(url), client:
        record = client.get_device(did)
    if as_json:
        print_json(record)
        return
    console.print(facts_table(sorted(record.items())))


def _owner_tx(did: str, wallet: str, purpose: str, index: int, home, node, passphrase_env, build) -> Any:
    """Send a device message from a wallet's pseudonymous account; build(client, held, owner) -> message."""
    url, client = _client(node, home)
    with node_errors(url), client:
        held = _wallet(home, wallet, passphrase_env, client)
        owner = held.account(purpose, index)
        try:
            message = build(client, held, owner)
        except (LookupError, ValueError) as exc:  # no such device, no matching credential (WalletError)
            fail(str(exc))
        return _send(client, [owner], [message])


def _proof(client, held, did: str, owner) -> bytes:
    from ..offchain.identity.devices import prove_ownership

    return prove_ownership(held, client.ledger, client.status().chain_id, did, owner)


PurposeOption = typer.Option("vehicle", "--purpose", help="Wallet account purpose")
IndexOption = typer.Option(0, "--account-index", min=0, help="Wallet account index")


@device_app.command("bind")
def device_bind(did: str = typer.Argument(..., help="Device DID"), wallet: str = WalletOption,
                purpose: str = PurposeOption, index: int = IndexOption, home: Optional[Path] = HomeOption,
                node: Optional[str] = NodeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Bind an unowned device to the wallet's account, proven by its registration credential."""
    from ..modules.devices import BindDevice

    result = _owner_tx(did, wallet, purpose, index, home, node, passphrase_env,
                       lambda client, held, owner: BindDevice(did, _proof(client, held, did, owner)))
    console.print(f"bound {did} at height {result.height}", highlight=False)


@device_app.command("transfer")
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


@device_app.command("accept")
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


@device_app.command("sign")
def device_sign(did: str = typer.Argument(..., help="Device DID"),
                device_key: str = typer.Option(..., "--device-key", help="Keystore key of the device"),
                payload: str = typer.Option(..., "--payload", help="Hex bytes to sign"),
                home: Optional[Path] = HomeOption, passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Sign a message as the device (what the device's firmware does); prints the signature in hex."""
    from ..offchain.identity.devices import sign_device_message

    (key,) = _keys(home, [device_key], passphrase_env)
    print(sign_device_message(key, did, _hex(payload, "--payload")).hex())


@device_app.command("verify")
def device_verify(did: str = typer.Argument(..., help="Device DID"),
                  payload: str = typer.Option(..., "--payload", help="Hex bytes that were signed"),
                  signature: str = typer.Option(..., "--signature", help="Hex signature"),
                  home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                  as_json: bool = JsonOption) -> None:
    """Check a device-signed message against the registry (exit status 1 if it does not verify)."""
    url, client = _client(node, home)
    with node_errors(url), client:
        result = client.verify_device_message(did, _hex(payload, "--payload"), _hex(signature, "--signature"))
    if as_json:
        print_json(result)
    else:
        console.print("valid" if result["valid"] else f"invalid: {result['reason']}", highlight=False)
    if not result["valid"]:
        raise typer.Exit(1)
