"""`cityledger did resolve|create|rotate|deactivate`: organisations' DIDs (keys from the keystore)."""

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
    node_errors,
    print_json,
)
from .identity_common import load_keys, open_client, send_and_wait

app = typer.Typer(help="Organisation DIDs: resolve, create, rotate keys, deactivate.", no_args_is_help=True)

HeightOption = typer.Option(0, "--height", min=0, help="Read the ledger at this height [default: latest]")


@app.command("resolve")
def did_resolve(did: str = typer.Argument(..., help="A did:city DID"), height: int = HeightOption,
                home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                as_json: bool = JsonOption) -> None:
    """The W3C DID document and its metadata."""
    url, client = open_client(node, home)
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


@app.command("create")
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
    (signing,) = load_keys(home, [key], passphrase_env)
    message = CreateDid(salt_bytes, signing.signer(), _key_methods(signing), _parse_services(service))
    url, client = open_client(node, home)
    with node_errors(url), client:
        result = send_and_wait(client, [signing], [message])
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


@app.command("rotate")
def did_rotate(did: str = typer.Argument(..., help="The DID"),
               key: str = typer.Option(..., "--key", help="Keystore key of the current controller"),
               new_key: str = typer.Option(..., "--new-key", help="Keystore key that takes over"),
               home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
               passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Rotate a DID to a new key: from the next transaction on, the old key can no longer act."""
    from ..modules.identity import UpdateDid

    old, new = load_keys(home, [key, new_key], passphrase_env)
    url, client = open_client(node, home)
    with node_errors(url), client:
        version, services = _current(client, did)
        message = UpdateDid(did, version, new.signer(), _key_methods(new), services)
        result = send_and_wait(client, [old], [message])
    if as_json:
        print_json({"did": did, "version": version + 1, "height": result.height})
        return
    console.print(f"rotated [bold]{did}[/] to version {version + 1} at height {result.height}", highlight=False)


@app.command("deactivate")
def did_deactivate(did: str = typer.Argument(..., help="The DID"),
                   key: str = typer.Option(..., "--key", help="Keystore key of the controller"),
                   home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                   passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """Deactivate a DID for good."""
    from ..modules.identity import DeactivateDid

    (signing,) = load_keys(home, [key], passphrase_env)
    url, client = open_client(node, home)
    with node_errors(url), client:
        result = send_and_wait(client, [signing], [DeactivateDid(did)])
    if as_json:
        print_json({"did": did, "deactivated": True, "height": result.height})
        return
    console.print(f"deactivated [bold]{did}[/] at height {result.height}", highlight=False)
