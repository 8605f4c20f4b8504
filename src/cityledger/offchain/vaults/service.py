"""The vault service: who may read which records, checked against the ledger at the height it reads at.

    owner     read (own records, sealed, with the owner's wraps: the owner opens them), log, erase
    consumer  read under a consent valid now (consent's rule: data set, consumer, purpose, expiry,
              revocation), only records whose recording height lies in the consent's period, only
              its own wrap; every such read is logged before it is answered

Every request is signed (sdk.vaults builds them) over the chain id and a recent height, at most
MAX_REQUEST_AGE blocks old, so a captured request cannot be replayed long after or on another chain:
an owner by the key of its 'city…' account, a consumer by its DID's controller keys (threshold).

A record's recording height is the height at which the gateway's root over the interval it was
received in was anchored (consent's AnchorGatewayRoot): a fact of the ledger, not of the vault host's
clock. A record not yet anchored is not released to consumers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from ...core.encoding import Message, Record, encode
from ...core.keys import PublicKey, Signer, compute_address, verify_signature
from ...core.state import StateReader
from ...core.tx import MAX_MESSAGES_PER_TX
from ...core.types import address_from_str, address_to_str
from ...modules.consent import (
    ZERO_HEAD,
    AnchorAccessLog,
    ConsentRecord,
    find_valid_consent,
    get_data_set,
    GatewayRoot,
    get_gateway_root,
    get_log_head,
    get_vault_key,
    is_valid_at,
    iter_data_set_consents,
)
from ...modules.consent.handlers import is_data_set_id
from ...modules.identity.handlers import get_did
from ...modules.identity.keeper import KEEPER
from ...modules.identity.messages import KIND_ORGANISATION
from ..telemetry.anchor import FleetProof, InclusionProof
from ..telemetry.format import StoredRecord, WrappedKey
from .accesslog import KIND_ERASE, KIND_READ, AccessLog, SignedEntry
from .store import MAX_LIST_RECORDS
from .vault import VaultError, VaultHost

DOMAIN_REQUEST = b"cityledger/vault-request/1\x00"
MAX_REQUEST_AGE = 20  # blocks: how old the height a request signs may be
MAX_RELEASE_RECORDS = 1_000  # records one read answers; read the next window for more
ACTION_READ = "read"
ACTION_CONSUMER_READ = "consumer-read"
ACTION_LOG = "log"
ACTION_ERASE = "erase"
ACTION_PROOF = "proof"
ACTIONS = (ACTION_CONSUMER_READ, ACTION_ERASE, ACTION_LOG, ACTION_PROOF, ACTION_READ)


class VaultRequest(Record):
    """What a reader signs: the action, who asks, about what, at which height."""

    action: str
    reader: str  # the owner's 'city…' account, or the consumer's DID
    data_set: str  # "" for a log read, or the erasure of the whole vault
    purpose: str  # a consumer read's purpose code; "" otherwise
    start_s: int  # reads: windows starting in [start_s, end_s)
    end_s: int
    after_seq: int  # log reads: entries after this one
    height: int  # a recent height of the ledger
    record_id: bytes = b""  # a proof request: the owner's record (32 bytes)


@dataclass(frozen=True)
class RequestSignature:
    """One signature over a request: the key that made it and the signature."""

    key: PublicKey
    signature: bytes


@dataclass(frozen=True)
class Released:
    """What a read hands out: sealed records, each with the one wrap sealed to the reader's key."""

    owner: str
    data_set: str
    records: list[tuple[bytes, StoredRecord, WrappedKey]]
    consent: ConsentRecord | None  # the consent a consumer read under
    entry: SignedEntry | None  # the log entry of a consumer read: the consumer's receipt


@dataclass(frozen=True)
class Proven:
    """An owner's record, the interval its gateway anchored it in, the anchor, and its inclusion proof."""

    owner: str
    record_id: bytes
    record: bytes  # the stored record's canonical bytes: its id is their digest (format.compute_record_id)
    gateway_did: str
    interval: int
    anchored: GatewayRoot
    proof: InclusionProof | FleetProof


@dataclass(frozen=True)
class ErasureDone:
    """An erasure and its log entry."""

    owner: str
    data_set: str
    keys_destroyed: int
    entry: SignedEntry


class LedgerState(StateReader, Protocol):
    """The committed state as the service reads it, and its height."""

    def last_height(self) -> int: ...


class RecordHeights(Protocol):
    """At which height a record was recorded, or None while its interval is not anchored."""

    def recording_height(self, record_id: bytes) -> int | None: ...


class RecordProofs(Protocol):
    """The gateway DID that anchors the node's intervals, and a received record's (interval, proof)."""

    gateway_did: str

    def inclusion_proof(self, record_id: bytes) -> tuple[int, InclusionProof | FleetProof] | None: ...


class GatewayHeights:
    """Recording heights from the node's gateway (the interval a record was received in) and the ledger
    (the height that interval's root was anchored at)."""

    def __init__(self, gateway, state: StateReader, gateway_did: str) -> None:
        self.gateway, self.state, self.gateway_did = gateway, state, gateway_did

    def recording_height(self, record_id: bytes) -> int | None:
        """The anchoring height of the record's interval, or None."""
        state = self.gateway.state
        found = None if state is None else state.find_record(record_id)
        if found is None:
            return None
        root = get_gateway_root(self.state, self.gateway_did, found[0])
        return None if root is None else root.height

    def inclusion_proof(self, record_id: bytes) -> tuple[int, InclusionProof | FleetProof] | None:
        """The record's (interval, proof) from the node's gateway; None if unknown, not anchored, or pruned."""
        return self.gateway.inclusion_proof(record_id)


def compute_request_bytes(chain_id: str, request: VaultRequest) -> bytes:
    """What a reader signs: domain, chain id, the request."""
    return DOMAIN_REQUEST + encode([chain_id, request])


def _forbidden(field: str, message: str) -> VaultError:
    return VaultError("forbidden", field, message)


def _owner_address(owner: str) -> bytes:
    try:
        address = address_from_str(owner, "reader")
    except (ValueError, TypeError):
        raise VaultError("invalid", "reader", f"expected an owner's 'city…' account, got {str(owner)[:80]!r}") from None
    if owner != owner.lower() or not owner.startswith("city"):
        raise VaultError("invalid", "reader", f"expected an owner's 'city…' account, got {owner[:80]!r}")
    return address


class VaultService:
    """The node's vault service: the owners' vaults, the access log, and the ledger it checks against."""

    def __init__(self, host: VaultHost, log: AccessLog, state: LedgerState, chain_id: str, heights: RecordHeights,
                 clock: Callable[[], float] = time.time) -> None:
        self.host, self.log, self.state, self.chain_id = host, log, state, chain_id
        self.heights, self.clock = heights, clock
        self.service = log.service

    # -- authentication ------------------------------------------------------------------------

    def _check_request(self, request: VaultRequest, action: str) -> int:
        """The ledger's height now, once the request names `action` and a fresh height."""
        if request.action != action:
            raise VaultError("invalid", "action", f"expected {action!r}, got {request.action[:40]!r}")
        last = self.state.last_height()
        if not last - MAX_REQUEST_AGE <= request.height <= last:
            raise _forbidden("height", f"expected a height from {max(0, last - MAX_REQUEST_AGE)} to {last} "
                                       f"(at most {MAX_REQUEST_AGE} blocks old), got {request.height}")
        return last

    def authenticate_owner(self, request: VaultRequest, signatures: Sequence[RequestSignature], action: str) -> int:
        """The height now, once the owner's account key signed the request; else VaultError."""
        height = self._check_request(request, action)
        address = _owner_address(request.reader)
        payload = compute_request_bytes(self.chain_id, request)
        if not any(compute_address(Signer(1, [s.key])) == address and verify_signature(s.key, payload, s.signature)
                   for s in signatures):
            raise _forbidden("signatures", f"no valid signature by the key of {request.reader} over the request")
        return height

    def authenticate_consumer(self, request: VaultRequest, signatures: Sequence[RequestSignature]) -> int:
        """The height now, once the consumer DID's controller keys signed the request (threshold)."""
        height = self._check_request(request, ACTION_CONSUMER_READ)
        did = get_did(self.state, request.reader) if request.reader.startswith("did:") else None
        if did is None or did.deactivated or did.kind != KIND_ORGANISATION:
            raise _forbidden("reader", f"expected an active organisation DID, got {request.reader[:80]!r}")
        payload = compute_request_bytes(self.chain_id, request)
        valid = {s.key.key for s in signatures
                 if s.key in did.controller.keys and verify_signature(s.key, payload, s.signature)}
        if len(valid) < did.controller.threshold:
            raise _forbidden("signatures", f"{len(valid)} valid signature(s) of {request.reader}'s controller keys, "
                                           f"{did.controller.threshold} needed")
        return height

    # -- reads ---------------------------------------------------------------------------------

    def _window(self, request: VaultRequest) -> None:
        if not 0 <= request.start_s < request.end_s:
            raise VaultError("invalid", "end_s", f"expected 0 <= start_s < end_s, got [{request.start_s}, {request.end_s})")

    def read_owner(self, request: VaultRequest, signatures: Sequence[RequestSignature]) -> Released:
        """The owner's records of a data set in a window, with the wraps sealed to its vault key now."""
        self.authenticate_owner(request, signatures, ACTION_READ)
        self._window(request)
        vault_key = get_vault_key(self.state, request.reader)
        if vault_key is None:
            raise VaultError("not_found", "reader", f"no vault key registered for {request.reader} on the ledger")
        vault = self.host.vault(request.reader)
        records = []
        for record_id in vault.list(request.data_set, request.start_s, request.end_s, MAX_RELEASE_RECORDS):
            blob = vault.store.get_key(record_id, vault_key.key)
            if blob is not None:  # erased, or sealed to a key the owner since replaced
                records.append((record_id, vault.get_record(record_id), WrappedKey(blob.recipient, blob.enc, blob.ct)))
        return Released(request.reader, request.data_set, records, None, None)

    def prove_owner(self, request: VaultRequest, signatures: Sequence[RequestSignature],
                    proofs: RecordProofs | None) -> Proven:
        """The inclusion proof of one of the owner's records against the root its gateway anchored; 404
        while unknown, not anchored or pruned, 403 for another owner's record (only its hashes show)."""
        self.authenticate_owner(request, signatures, ACTION_PROOF)
        record_id = request.record_id
        if len(record_id) != 32:
            raise VaultError("invalid", "record_id", f"expected 32 bytes (64 hex digits), got {len(record_id)}")
        if proofs is None:
            raise VaultError("unavailable", "vaults", "this node's vault service runs no gateway to prove from")
        found = proofs.inclusion_proof(record_id)
        blob = self.host.vault(request.reader).store.get(record_id)
        if blob is None:
            if found is not None:
                raise _forbidden("record_id", f"record {record_id.hex()} is not a record of {request.reader}")
            raise VaultError("not_found", "record_id", f"no record {record_id.hex()} in {request.reader}'s vault")
        anchored = None if found is None else get_gateway_root(self.state, proofs.gateway_did, found[0])
        if found is None or anchored is None:
            raise VaultError("not_found", "record_id", f"record {record_id.hex()}: its interval is not anchored yet, "
                                                       "or its place was pruned")
        return Proven(request.reader, record_id, blob, proofs.gateway_did, found[0], anchored, found[1])

    def read_consumer(self, request: VaultRequest, signatures: Sequence[RequestSignature]) -> Released:
        """A consumer's read under a consent valid now; logged (and the entry returned) before it is answered."""
        height = self.authenticate_consumer(request, signatures)
        self._window(request)
        data_set = get_data_set(self.state, request.data_set)
        if data_set is None:
            raise VaultError("not_found", "data_set", f"no data set {request.data_set[:80]!r} on the ledger")
        consent = find_valid_consent(KEEPER, self.state, request.data_set, request.reader, request.purpose, height)
        if consent is None:
            raise self._no_consent(request, height)
        consumer_key = get_vault_key(self.state, request.reader)
        if consumer_key is None:
            raise _forbidden("reader", f"{request.reader} has no vault key registered on the ledger")
        owner = address_to_str(data_set.owner)
        vault = self.host.vault(owner)
        records = []
        for record_id in vault.list(request.data_set, request.start_s, request.end_s, MAX_LIST_RECORDS):
            record = vault.get_record(record_id)
            recorded = self.heights.recording_height(record_id)
            if record.header.device != data_set.device or recorded is None \
                    or not consent.from_height <= recorded <= consent.to_height:
                continue
            blob = vault.store.get_key(record_id, consumer_key.key)
            if blob is not None:  # the device sealed it for this consumer, and it was not erased since
                records.append((record_id, record, WrappedKey(blob.recipient, blob.enc, blob.ct)))
                if len(records) == MAX_RELEASE_RECORDS:
                    break
        entry = self.log.append(owner, KIND_READ, request.reader, request.purpose, consent.id, request.data_set,
                                [r[0] for r in records], 0, height, int(self.clock()))
        return Released(owner, request.data_set, records, consent, entry)

    def _no_consent(self, request: VaultRequest, height: int) -> VaultError:
        """Why no consent lets the consumer read: none for it, another purpose, expired or revoked."""
        mine = [c for c in iter_data_set_consents(self.state, request.data_set) if c.consumer == request.reader]
        if not mine:
            return VaultError("no_consent", "reader", f"no consent of {request.data_set} names {request.reader}")
        same = [c for c in mine if c.purpose == request.purpose]
        if not same:
            return VaultError("no_consent", "purpose", f"{request.reader} holds no consent for purpose "
                                                       f"{request.purpose[:40]!r} on {request.data_set}")
        if any(c.revoked_height and c.revoked_height <= height for c in same):
            return VaultError("no_consent", "consent", f"the consent was revoked (height {height})")
        if any(c.expiry_height <= height for c in same):
            return VaultError("no_consent", "consent", f"the consent expired (height {height})")
        if all(not is_valid_at(c, height) for c in same):
            return VaultError("no_consent", "consent", f"no consent valid at height {height}")
        return VaultError("no_consent", "reader", f"{request.reader} is not an active organisation DID")

    # -- the owner's log and erasure -----------------------------------------------------------

    def read_log(self, request: VaultRequest, signatures: Sequence[RequestSignature], limit: int) -> list[SignedEntry]:
        """The owner's log entries after request.after_seq."""
        self.authenticate_owner(request, signatures, ACTION_LOG)
        if request.after_seq < 0:
            raise VaultError("invalid", "after_seq", f"expected 0 or more, got {request.after_seq}")
        return self.log.entries(request.reader, request.after_seq, limit)

    def erase(self, request: VaultRequest, signatures: Sequence[RequestSignature]) -> ErasureDone:
        """Crypto-shred a data set (or, data_set "", the whole vault) and log the erasure."""
        height = self.authenticate_owner(request, signatures, ACTION_ERASE)
        if request.data_set and not is_data_set_id(request.data_set):
            raise VaultError("invalid", "data_set", f"expected '' or a 'ds-…' id, got {request.data_set[:80]!r}")
        vault = self.host.vault(request.reader)
        done = vault.erase_dataset(request.data_set) if request.data_set else vault.erase_all()
        entry = self.log.append(request.reader, KIND_ERASE, request.reader, "", 0, request.data_set, [],
                                done.keys_destroyed, height, int(self.clock()))
        return ErasureDone(request.reader, request.data_set, done.keys_destroyed, entry)

    # -- anchoring -----------------------------------------------------------------------------

    def anchor_due(self, send: Callable[[list[Message]], None]) -> int:
        """Anchor the head of every log that grew, one transaction for up to MAX_MESSAGES_PER_TX logs;
        the number of logs anchored. The ledger's last head is each anchor's `previous`, so a batch
        lost in a crash is simply made again."""
        messages, counts = [], []
        for owner in self.log.due(MAX_MESSAGES_PER_TX):
            count, head = self.log.head(owner)
            anchored = get_log_head(self.state, self.service, owner)
            if anchored is not None and anchored.count >= count:
                counts.append((owner, anchored.count))  # taken before a crash: only the mark was lost
                continue
            previous = ZERO_HEAD if anchored is None else anchored.head
            messages.append(AnchorAccessLog(self.service, owner, head, count, previous))
            counts.append((owner, count))
        if messages:
            send(messages)
        self.log.mark_anchored(counts)
        return len(messages)
