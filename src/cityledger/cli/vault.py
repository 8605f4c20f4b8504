"""`cityledger vault key-new|key-register|read|log|erase|proof|verify-proof`, `cityledger consent
grant|revoke` and `cityledger telemetry device-add|publish`: owners' vaults (docs/PRIVACY.md), the
consents that release records to consumers (docs/CONSENT.md), and devices publishing sealed windows.

Requests are signed with a keystore key (`--key`): an owner's account key, or the controller key of a
consumer's DID. A vault key is an X25519 private key in an owner-only file (`key-new`); its public
half is put on the ledger by `key-register`, where devices and the gateway learn it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (HomeOption, JsonOption, NodeOption, PassphraseEnvOption, console, fail, node_errors, print_json,
                     resolve_home)
from .identity_common import load_keys, open_client, send_and_wait

app = typer.Typer(help="Owners' vaults: vault keys, reading records, the access log, erasure.", no_args_is_help=True)
consent_app = typer.Typer(help="Consents: grant a consumer a data set for one purpose, revoke it.",
                          no_args_is_help=True)

KeyOption = typer.Option(..., "--key", help="Keystore key: the owner's account key, or the consumer DID's controller key")
VaultKeyOption = typer.Option(..., "--vault-key", help="The X25519 vault key file (cityledger vault key-new)")
END_OF_TIME_S = 2**62  # the default end of a read's window: every record


@app.command("key-new")
def key_new(path: Path = typer.Argument(..., help="Where to write the new vault key (mode 0600)")) -> None:
    """Make an X25519 vault key in an owner-only file; print its public key."""
    from ..offchain.telemetry import VaultKey
    from ..offchain.vaults import save_key_file

    if path.exists():
        fail(f"path: {path} exists; a vault key is never overwritten")
    key = VaultKey.generate()
    save_key_file(path, key)
    console.print(f"wrote {path}; public key {key.public.hex()}", highlight=False)


def _vault_key(path: Path):
    from ..offchain.vaults import load_key_file

    try:
        return load_key_file(path)
    except (OSError, ValueError) as exc:
        fail(f"--vault-key: {exc}")


@app.command("key-register")
def key_register(key: str = KeyOption, vault_key: Path = VaultKeyOption,
                 did: Optional[str] = typer.Option(None, "--did", help="A consumer DID the key controls "
                                                   "[default: the key's own account, as an owner]"),
                 home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
                 passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Put the vault key's public half on the ledger (consent register_vault_key), replacing any before."""
    from ..core.types import address_to_str
    from ..modules.consent import RegisterVaultKey

    [signer] = load_keys(home, [key], passphrase_env)
    public = _vault_key(vault_key).public
    subject = did or address_to_str(signer.address())
    url, client = open_client(node, home)
    with node_errors(url), client:
        result = send_and_wait(client, [signer], [RegisterVaultKey(subject, public)])
    console.print(f"vault key {public.hex()} registered for {subject} at height {result.height}", highlight=False)


def _reader(signer, consumer: Optional[str]) -> str:
    from ..core.types import address_to_str

    return consumer or address_to_str(signer.address())


@app.command("read")
def read(key: str = KeyOption, vault_key: Path = VaultKeyOption,
         data_set: str = typer.Option(..., "--data-set", help="The data set id (ds-…)"),
         consent: Optional[str] = typer.Option(None, "--consent", help="As a consumer: the consent's purpose code"),
         consumer: Optional[str] = typer.Option(None, "--consumer", help="As a consumer: its DID"),
         start_s: int = typer.Option(0, "--start-s", help="Windows starting at or after (unix s)"),
         end_s: int = typer.Option(END_OF_TIME_S, "--end-s", help="Windows starting before (unix s)"),
         home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
         passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Read records and print their samples (JSON): the owner's own, or a consumer's under --consent."""
    from ..sdk.vaults import open_records, sign_request

    if (consent is None) != (consumer is None):
        fail("--consent, --consumer: a consumer's read names both, an owner's neither")
    [signer] = load_keys(home, [key], passphrase_env)
    opener = _vault_key(vault_key)
    url, client = open_client(node, home)
    with node_errors(url), client:
        status = client.status()
        action = "read" if consent is None else "consumer-read"
        body = sign_request(status.chain_id, [signer], action, _reader(signer, consumer), status.height,
                            data_set=data_set, purpose=consent or "", start_s=start_s, end_s=end_s)
        view = client.vault_read(body) if consent is None else client.vault_consumer_read(body)
    try:
        opened = open_records(view, opener)
    except ValueError as exc:
        fail(f"--vault-key: {exc}")
    print_json([{"record_id": item.record_id, "device": header.device, "seq": header.seq,
                 "window_start_s": header.window_start_s, "samples": [[s.t_s, *s.values] for s in samples]}
                for item, (header, samples) in zip(view.records, opened)])


@app.command("log")
def log(key: str = KeyOption, home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
        passphrase_env: Optional[str] = PassphraseEnvOption, as_json: bool = JsonOption) -> None:
    """The owner's access log, checked entry by entry and against the heads anchored on the ledger."""
    from ..sdk.vaults import LogBroken, sign_request, verify_vault_log

    [signer] = load_keys(home, [key], passphrase_env)
    owner = _reader(signer, None)
    url, client = open_client(node, home)
    entries, service = [], ""
    with node_errors(url), client:
        after = 0
        while True:
            status = client.status()
            page = client.vault_log(sign_request(status.chain_id, [signer], "log", owner, status.height,
                                                 after_seq=after))
            entries += page.entries
            service = page.service
            if page.next_seq is None:
                break
            after = page.next_seq
        try:
            verify_vault_log(client, service, owner, entries)
        except LogBroken as exc:
            fail(f"log: does not verify against the ledger's anchors: {exc}")
    if as_json:
        print_json({"service": service, "verified": True, "entries": entries})
        return
    for e in entries:
        what = f"{len(e.record_ids)} record(s) of {e.data_set} for {e.purpose} (consent {e.consent_id})" \
            if e.kind == "read" else f"{e.keys_destroyed} key(s) of {e.data_set or 'the whole vault'} destroyed"
        console.print(f"{e.seq:>5}  height {e.height}  {e.kind:<5} {e.reader}: {what}", highlight=False)
    console.print(f"{len(entries)} entries, verified against the anchors of {service}", highlight=False)


@app.command("erase")
def erase(key: str = KeyOption, data_set: Optional[str] = typer.Option(None, "--data-set", help="The data set to erase"),
          everything: bool = typer.Option(False, "--all", help="Erase every data set of the vault"),
          home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
          passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Crypto-shred a data set (or --all): its wrapped keys are destroyed, the ciphertext left unreadable."""
    from ..sdk.vaults import sign_request

    if bool(data_set) == everything:
        fail("--data-set, --all: name one data set, or --all")
    [signer] = load_keys(home, [key], passphrase_env)
    url, client = open_client(node, home)
    with node_errors(url), client:
        status = client.status()
        done = client.vault_erase(sign_request(status.chain_id, [signer], "erase", _reader(signer, None),
                                               status.height, data_set=data_set or ""))
    console.print(f"erased {done.data_set or 'the whole vault'}: {done.keys_destroyed} key(s) destroyed "
                  f"(log entry {done.log_entry.seq})", highlight=False)


@app.command("proof")
def proof(record_id: str = typer.Argument(..., help="The record's id (64 hex digits, as `vault read` prints it)"),
          key: str = KeyOption, home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
          passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Print (JSON) your record, its anchored root and inclusion proof, for anyone's `vault verify-proof`."""
    from ..sdk.vaults import sign_request

    record_id = record_id.strip().lower()
    [signer] = load_keys(home, [key], passphrase_env)
    url, client = open_client(node, home)
    with node_errors(url), client:
        status = client.status()
        view = client.vault_proof(sign_request(status.chain_id, [signer], "proof", _reader(signer, None),
                                               status.height, record_id=record_id))
    print_json(view)


def _read_file(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"{option}: {exc}")


@app.command("verify-proof")
def verify_proof(proof_file: Path = typer.Option(..., "--proof", help="The JSON `vault proof` printed"),
                 record_file: Optional[Path] = typer.Option(None, "--record", help="The record shown (hex or its "
                                                            "bytes) [default: the one in the proof file]"),
                 home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption) -> None:
    """Check a record's inclusion proof against the root the ledger anchored for its gateway and interval."""
    import msgspec

    from ..sdk.vaults import ProofRefused, verify_inclusion
    from ..wire.vaults import VaultProofView

    try:
        view = msgspec.json.decode(_read_file(proof_file, "--proof"), type=VaultProofView)
    except msgspec.DecodeError as exc:
        fail(f"--proof: expected the JSON `cityledger vault proof` prints: {exc}")
    record: str | bytes = view.record
    if record_file is not None:
        raw = _read_file(record_file, "--record")
        text = raw.strip().decode("ascii", "replace")
        record = text if text and all(c in "0123456789abcdefABCDEF" for c in text) else raw
    url, client = open_client(node, home)
    with node_errors(url), client:
        try:
            verify_inclusion(client, view, record)
        except ProofRefused as exc:
            fail(f"proof: refused: {exc}")
    console.print(f"verified: record {view.record_id} is under the root {view.root} that {view.gateway_did} "
                  f"anchored for interval {view.interval} at height {view.height} ({view.count} records)",
                  highlight=False)


@consent_app.command("grant")
def grant(key: str = KeyOption, data_set: str = typer.Option(..., "--data-set"),
          consumer: str = typer.Option(..., "--consumer", help="The consumer's organisation DID"),
          purpose: str = typer.Option(..., "--purpose", help="A purpose code (docs/CONSENT.md)"),
          from_height: int = typer.Option(1, "--from-height", help="Records recorded from this height"),
          to_height: int = typer.Option(..., "--to-height", help="... up to this height"),
          expiry_height: int = typer.Option(..., "--expiry-height", help="Valid below this height"),
          home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
          passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Grant a consumer the data set's records of a period, for one purpose, until an expiry height."""
    from ..modules.consent import GrantConsent

    [signer] = load_keys(home, [key], passphrase_env)
    url, client = open_client(node, home)
    with node_errors(url), client:
        result = send_and_wait(client, [signer], [GrantConsent(data_set, consumer, purpose, from_height, to_height,
                                                               expiry_height)])
    consent_id = next(e.get("consent_id") for e in result.result.events if e.type == "consent_granted")
    console.print(f"consent {consent_id} granted at height {result.height}", highlight=False)


@consent_app.command("revoke")
def revoke(key: str = KeyOption, consent_id: int = typer.Argument(..., help="The consent's number"),
           home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
           passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Revoke a consent from the next block on (what it released stays released)."""
    from ..modules.consent import RevokeConsent

    [signer] = load_keys(home, [key], passphrase_env)
    url, client = open_client(node, home)
    with node_errors(url), client:
        result = send_and_wait(client, [signer], [RevokeConsent(consent_id)])
    console.print(f"consent {consent_id} revoked at height {result.height}", highlight=False)


telemetry_app = typer.Typer(help="Devices' telemetry: broker credentials, publishing sealed windows.",
                            no_args_is_help=True)


@telemetry_app.command("device-add")
def device_add(did: str = typer.Argument(..., help="The device's DID (registered and bound on the ledger)"),
               out: Path = typer.Option(..., "--out", help="Write the device's broker credentials here (mode 0600)"),
               home: Optional[Path] = HomeOption) -> None:
    """Give a device broker credentials (on the node's host): its password is written once, to --out; a
    running node takes the device up at its next round (files regenerated, Mosquitto reloaded)."""
    import json
    from dataclasses import asdict

    from ..core.files import write_secret_file
    from ..node.home import load_config
    from ..offchain.telemetry.broker import Broker, BrokerError

    if out.exists():
        fail(f"--out: {out} exists; credentials are never overwritten")
    config = load_config(resolve_home(home))
    try:
        creds = Broker(config.telemetry_path / "broker", config.telemetry.host, config.telemetry.port).add_device(did)
    except (ValueError, BrokerError) as exc:
        fail(f"did: {exc}")
    write_secret_file(out, json.dumps(asdict(creds), indent=2))
    console.print(f"broker credentials of {did} written to {out} (topic {creds.topic})", highlight=False)


@telemetry_app.command("publish")
def publish(device_key: str = typer.Option(..., "--device-key", help="Keystore key of the device"),
            data_set: str = typer.Option(..., "--data-set", help="The data set id (ds-…)"),
            samples: Path = typer.Option(..., "--samples", help="JSON: [[t_s, value, ...], ...], in time order"),
            credentials: Path = typer.Option(..., "--credentials", help="The file `telemetry device-add` wrote"),
            schema: str = typer.Option("vehicle/1", "--schema", help="vehicle/1, meter/1 or charger/1"),
            broker: Optional[str] = typer.Option(None, "--broker", help="host:port [default: from the credentials; "
                                                  "give it when the broker picks its port at each start]"),
            counter: Optional[Path] = typer.Option(None, "--counter", help="The device's sequence file "
                                                   "[default: <home>/devices/<DID>.seq]"),
            home: Optional[Path] = HomeOption, node: Optional[str] = NodeOption,
            passphrase_env: Optional[str] = PassphraseEnvOption) -> None:
    """Seal samples per window for the owner and the consenting consumers the ledger lists, and publish them."""
    import json

    from ..modules.devices import compute_device_did
    from ..offchain.telemetry import DeviceConfig, DeviceSealer, Sample, SequenceCounter, TelemetryError
    from ..sdk.vaults import device_recipients, publish_sealed, seal_samples

    try:
        creds = json.loads(credentials.read_text())
        rows = json.loads(samples.read_text())
        readings = [Sample(int(row[0]), tuple(int(v) for v in row[1:])) for row in rows]
    except (OSError, ValueError, TypeError, IndexError) as exc:
        fail(f"--samples, --credentials: expected the JSON described in --help ({exc})")
    [key] = load_keys(home, [device_key], passphrase_env)
    did = compute_device_did(key.public_key)
    host, port = (broker.rsplit(":", 1) if broker else (creds["host"], creds["port"]))
    counter = counter or resolve_home(home) / "devices" / (did.replace(":", "_") + ".seq")
    counter.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    url, client = open_client(node, home)
    with node_errors(url), client:
        owner_key, consumers = device_recipients(client, data_set)
        sealer = DeviceSealer(key, DeviceConfig(did, owner_key, data_set, schema), SequenceCounter(counter))
        try:
            payloads = seal_samples(sealer, readings, consumers)
        except TelemetryError as exc:
            fail(f"--samples: {exc}")
        publish_sealed(host, int(port), creds["username"], creds["password"], creds["topic"], payloads)
    console.print(f"published {len(payloads)} window(s) of {len(readings)} sample(s), sealed for the owner and "
                  f"{len(consumers)} consumer(s)", highlight=False)
