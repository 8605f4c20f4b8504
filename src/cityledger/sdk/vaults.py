"""Vaults for programs: devices learn whom to seal for from the ledger, owners and consumers sign their
requests to the node's vault service, open what it releases, and owners check the access log against
the anchors on the ledger.

    owner, consumers = device_recipients(client, data_set)           # a device, before each window
    body = sign_request(chain_id, [owner_key], "read", address, height, data_set=ds, start_s=0, end_s=2**40)
    windows = open_records(client.vault_read(body), vault_key)        # the owner's samples
    entries = client.vault_log(sign_request(chain_id, [owner_key], "log", address, height))
    verify_vault_log(client, service_did, address, entries.entries)   # raises LogBroken if one was left out
    view = client.vault_proof(sign_request(chain_id, [owner_key], "proof", address, height, record_id=rid))
    verify_inclusion(client, view, record_hex)      # anyone (an insurer): raises ProofRefused unless it holds
    anchor = log_anchor_sender(client, chain_id, service_keys)        # the vault service's batch anchor
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from ..core.encoding import Message, decoder
from ..core.keys import SCHEME_NAMES, PrivateKey
from ..modules.identity.did import parse_multikey
from ..offchain.telemetry.anchor import FleetProof, InclusionProof, ShardRoot, is_included
from ..offchain.telemetry.format import compute_record_id_of_blob
from ..offchain.telemetry import (DeviceSealer, RecordHeader, Sample, StoredRecord, VaultKey, WrappedKey, group_windows,
                                  open_record)
from ..offchain.telemetry.publisher import Publisher, PublisherError
from ..offchain.vaults.accesslog import LogBroken, LogEntry, SignedEntry, verify_log
from ..offchain.vaults.service import VaultRequest, compute_request_bytes
from ..wire.vaults import (ProofPathView, RequestSignatureBody, VaultLogEntryView, VaultProofView, VaultRecordsView,
                           VaultRequestBody)
from .client import DEFAULT_TIMEOUT_S
from .errors import ApiError, CityLedgerError
from .txs import KeyOrKeys, sign

__all__ = ["LogBroken", "ProofRefused", "device_recipients", "entry_from_view", "log_anchor_sender", "open_records",
           "proof_from_view", "publish_sealed", "seal_samples", "service_keys", "sign_request", "verify_inclusion",
           "verify_vault_log"]

_STORED = decoder(StoredRecord)


def sign_request(chain_id: str, keys: Sequence[PrivateKey], action: str, reader: str, height: int, *,
                 data_set: str = "", purpose: str = "", start_s: int = 0, end_s: int = 0,
                 after_seq: int = 0, record_id: str = "") -> VaultRequestBody:
    """A vault request body signed by `keys`: the owner's account key, or the consumer DID's controller keys."""
    request = VaultRequest(action, reader, data_set, purpose, start_s, end_s, after_seq, height,
                           _hex(record_id, "record_id"))
    payload = compute_request_bytes(chain_id, request)
    signatures = [RequestSignatureBody(scheme=SCHEME_NAMES[key.scheme], key=key.public_key.key.hex(),
                                       signature=key.sign(payload).hex()) for key in keys]
    return VaultRequestBody(reader=reader, data_set=data_set, purpose=purpose, start_s=start_s, end_s=end_s,
                            after_seq=after_seq, height=height, record_id=record_id, signatures=signatures)


def _hex(text: str, field: str, error: type[CityLedgerError] = CityLedgerError) -> bytes:
    try:
        return bytes.fromhex(text)
    except (ValueError, TypeError):
        raise error(f"{field}: expected hex, got {str(text)[:80]!r}") from None


def open_records(view: VaultRecordsView, key: VaultKey) -> list[tuple[RecordHeader, list[Sample]]]:
    """Every released record opened with the reader's vault key: (header, samples), in the order released."""
    opened = []
    for item in view.records:
        stored = _STORED.decode(bytes.fromhex(item.record))
        wrap = WrappedKey(bytes.fromhex(item.wrap.recipient), bytes.fromhex(item.wrap.enc), bytes.fromhex(item.wrap.ct))
        opened.append((stored.header, open_record(stored, wrap, key)))
    return opened


def device_recipients(client: Any, data_set: str, height: int | None = None) -> tuple[bytes, list[bytes]]:
    """(owner's vault key, consumers' vault keys) a device seals a new record of `data_set` for: the
    consumers of consents valid at `height` (now by default) whose period covers it and who registered
    a key. A revoked or expired consent drops out at once, so no new record is sealed for it."""
    record = client.query("consent", "data_set", id=data_set)
    owner_key = bytes.fromhex(client.query("consent", "vault_key", subject=record["owner"])["key"])
    if height is None:
        height = client.status().height
    consumers: set[bytes] = set()
    after = "0"
    while after is not None:
        page = client.query("consent", "consents", data_set=data_set, height=str(height), after=after)
        for consent in page["items"]:
            if consent["from_height"] <= height <= consent["to_height"]:
                key = _vault_key_or_none(client, consent["consumer"])
                if key is not None and key != owner_key:
                    consumers.add(key)
        after = None if page["next"] is None else str(page["next"])
    return owner_key, sorted(consumers)


def _vault_key_or_none(client: Any, subject: str) -> bytes | None:
    try:
        return bytes.fromhex(client.query("consent", "vault_key", subject=subject)["key"])
    except (CityLedgerError, LookupError):
        return None


def entry_from_view(view: VaultLogEntryView) -> SignedEntry:
    """A log entry as the API answered it, back in the form its hash covers."""
    entry = LogEntry(view.seq, view.owner, view.kind, view.reader, view.purpose, view.consent_id, view.data_set,
                     [bytes.fromhex(r) for r in view.record_ids], view.keys_destroyed, view.height, view.time_s,
                     bytes.fromhex(view.previous))
    return SignedEntry(entry, bytes.fromhex(view.hash), bytes.fromhex(view.signature))


def service_keys(client: Any, service: str) -> list:
    """The controller keys of the vault service's DID, as the ledger resolves it: the keys it signs with."""
    resolution = client.query("identity", "did", did=service)
    document = resolution.get("didDocument", resolution)
    methods = {m["id"]: m for m in document.get("verificationMethod", [])}
    return [parse_multikey(methods[ref]["publicKeyMultibase"]) for ref in document.get("capabilityInvocation", [])
            if ref in methods]


def log_anchors(client: Any, service: str, owner: str) -> list[tuple[int, bytes]]:
    """Every (count, head) the ledger anchored for the owner's log at this service, oldest first."""
    anchors, after = [], "0"
    while after is not None:
        page = client.query("consent", "access_log", service=service, subject=owner, after=after)
        anchors += [(item["count"], bytes.fromhex(item["head"])) for item in page["items"]]
        after = None if page["next"] is None else str(page["next"])
    return anchors


def verify_vault_log(client: Any, service: str, owner: str, entries: Sequence[VaultLogEntryView]) -> bytes:
    """The head of the owner's whole log once every entry is signed by the service and chained, and every
    head the ledger anchored is the hash at its count; raise LogBroken otherwise."""
    return verify_log([entry_from_view(e) for e in entries], service, service_keys(client, service),
                      log_anchors(client, service, owner), owner)


def log_anchor_sender(client: Any, chain_id: str, keys: KeyOrKeys, *,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> Callable[[list[Message]], None]:
    """The vault service's `send(messages)`: one transaction of AnchorAccessLog messages, committed before it
    returns (VaultService.anchor_due)."""
    first = keys if isinstance(keys, PrivateKey) else keys[0]
    address = first.address()

    def send(messages: list[Message]) -> None:
        tx = sign(chain_id, keys, client.get_nonce(address), messages)
        outcome = client.submit(tx, wait=True, timeout_s=timeout_s)
        if not outcome.check.ok:
            raise CityLedgerError(f"access-log anchors refused: {outcome.check.log}")
        if outcome.timed_out or outcome.result is None or not outcome.result.ok:
            reason = "not committed in time" if outcome.result is None else outcome.result.log
            raise CityLedgerError(f"access-log anchors failed: {reason}")

    return send



class ProofRefused(CityLedgerError):
    """A record's inclusion proof that does not hold against the ledger; the message says why."""


def _proof_path(view: ProofPathView, field: str) -> InclusionProof:
    path = tuple(_hex(step, f"{field}.path", ProofRefused) for step in view.path)
    return InclusionProof(view.index, view.size, path)


def proof_from_view(view: VaultProofView) -> InclusionProof | FleetProof:
    """The proof a /vaults/proof answer carries, back in the form anchor.is_included checks."""
    record = _proof_path(view.proof, "proof")
    if view.shard is None and view.fleet_proof is None:
        return record
    if view.shard is None or view.fleet_proof is None:
        raise ProofRefused("shard, fleet_proof: expected both (a fleet proof) or neither")
    s = view.shard
    return FleetProof(record, ShardRoot(s.shard, s.interval, _hex(s.root, "shard.root", ProofRefused), s.count),
                      _proof_path(view.fleet_proof, "fleet_proof"))


def anchored_root(client: Any, gateway_did: str, interval: int) -> dict:
    """The root the ledger anchored for (gateway DID, interval), as the consent module's query answers it."""
    if interval < 1:
        raise ProofRefused(f"interval: expected a positive interval, got {interval}")
    try:
        return client.query("consent", "gateway_root", gateway=gateway_did, interval=str(interval))
    except ApiError as exc:
        if exc.status == 404:
            raise ProofRefused(f"interval: the ledger holds no root of {gateway_did} for interval {interval}") from None
        raise


def verify_inclusion(client: Any, view: VaultProofView, record: str | bytes) -> bytes:
    """The record's id once `record` (the stored record's canonical bytes or their hex, as /vaults/read
    released it) is the one the proof names, the proof leads to `view.root`, and that root and count are
    what the ledger anchored for the record's data set's gateway and view.interval; raise ProofRefused otherwise."""
    blob = record if isinstance(record, bytes) else _hex(record, "record", ProofRefused)
    record_id = compute_record_id_of_blob(blob)
    if record_id.hex() != view.record_id:
        raise ProofRefused(f"record: its id is {record_id.hex()}, the proof is of {view.record_id[:80]}")
    try:
        data_set = _STORED.decode(blob).header.dataset
    except ValueError:
        raise ProofRefused("record: expected a stored record's canonical bytes") from None
    gateway = client.query("consent", "data_set", id=data_set)["gateway"]
    if gateway != view.gateway_did:
        raise ProofRefused(f"gateway_did: the record's data set {data_set} names gateway {gateway}, "
                           f"the proof {view.gateway_did[:80]}")
    anchored = anchored_root(client, view.gateway_did, view.interval)
    if anchored["root"] != view.root or anchored["count"] != view.count:
        raise ProofRefused(f"root: the ledger anchored {anchored['root']} ({anchored['count']} records) for "
                           f"{view.gateway_did} interval {view.interval}, the proof names {view.root[:80]}")
    proof = proof_from_view(view)
    # One gateway's root covers `count` records, which RFC 9162 binds only through the proof's size; a
    # fleet's count sums its shards', each bound in its shard's leaf (is_included checks the record's).
    root = _hex(view.root, "root", ProofRefused)
    if (isinstance(proof, InclusionProof) and proof.size != view.count) or not is_included(root, record_id, proof):
        raise ProofRefused(f"proof: does not lead from record {record_id.hex()} to root {view.root}")
    return record_id


def seal_samples(sealer: DeviceSealer, samples: Sequence[Sample], consumer_keys: Sequence[bytes]) -> list[bytes]:
    """A device's samples (in time order) cut into windows and sealed, one message each, for the owner and
    the consumers (device_recipients)."""
    return [sealer.seal(start, window, consumer_keys)
            for start, window in group_windows(samples, sealer.config.window_s)]


def publish_sealed(host: str, port: int, username: str, password: str, topic: str, payloads: Sequence[bytes],
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Publish sealed messages as the device (its broker credentials, its topic) at QoS 1; return once the
    broker acknowledged each, or raise CityLedgerError."""
    publisher = Publisher(host, port, f"{username}-{os.urandom(4).hex()}", username, password, timeout_s=timeout_s)
    try:
        publisher.connect()
    except PublisherError as exc:
        raise CityLedgerError(str(exc)) from None
    try:
        publisher.publish(topic, payloads)
        publisher.wait_acked()
    except PublisherError as exc:
        raise CityLedgerError(f"payloads: {publisher.acked} of {len(payloads)} acknowledged; {exc}") from None
    finally:
        publisher.disconnect()
