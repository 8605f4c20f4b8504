"""Bodies and answers of the vault routes (api/routes/vaults.py): signed requests, sealed records, the
access log. Bytes travel as lower-case hex; a record is the canonical bytes of the vault's StoredRecord."""

from __future__ import annotations

import msgspec


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: unknown fields are an error, so typos are reported."""


class _View(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies."""


class RequestSignatureBody(_Body):
    """One key and its signature (hex) over the request (offchain/vaults/service.compute_request_bytes)."""

    scheme: str  # "ed25519" or "p256"
    key: str
    signature: str


class VaultRequestBody(_Body, kw_only=True):
    """A signed vault request; the route names the action. `reader` is the owner's 'city…' account or
    the consumer's DID; `height` a recent height of the ledger."""

    reader: str
    data_set: str = ""
    purpose: str = ""
    start_s: int = 0
    end_s: int = 0
    after_seq: int = 0
    height: int
    record_id: str = ""  # /vaults/proof: the owner's record id (64 hex digits)
    signatures: list[RequestSignatureBody]


class WrapView(_View):
    """A record's data key sealed (HPKE) to one recipient's X25519 key."""

    recipient: str
    enc: str
    ct: str


class SealedRecordView(_View):
    """One record as stored (clear header, ciphertext, signature) and the reader's own wrap."""

    record_id: str
    record: str
    wrap: WrapView


class VaultLogEntryView(_View):
    """One entry of an owner's access log, its hash and the vault service's signature."""

    seq: int
    owner: str
    kind: str
    reader: str
    purpose: str
    consent_id: int
    data_set: str
    record_ids: list[str]
    keys_destroyed: int
    height: int
    time_s: int
    previous: str
    hash: str
    signature: str


class VaultRecordsView(_View):
    """The records a read released; a consumer's read also answers the consent and its log entry."""

    owner: str
    data_set: str
    records: list[SealedRecordView]
    consent_id: int | None = None
    log_entry: VaultLogEntryView | None = None


class VaultLogView(_View):
    """A page of an owner's access log; `next_seq` is the after_seq of the next page, null on the last."""

    owner: str
    service: str
    entries: list[VaultLogEntryView]
    next_seq: int | None = None


class VaultErasureView(_View):
    """What an erasure destroyed, and its log entry."""

    owner: str
    data_set: str
    keys_destroyed: int
    log_entry: VaultLogEntryView


class ProofPathView(_View):
    """A Merkle inclusion proof (RFC 9162): the leaf's index among `size` leaves and the sibling hashes."""

    index: int
    size: int
    path: list[str]


class ShardRootView(_View):
    """A fleet shard's root for one interval, as its leaf in the fleet root binds it."""

    shard: int
    interval: int
    root: str
    count: int


class VaultProofView(_View):
    """An owner's record under the root its gateway anchored on the ledger for (gateway_did, interval):
    `proof` leads from the record's leaf to `root` (one gateway) or to `shard.root` (a fleet), then
    `fleet_proof` from the shard's leaf to `root`. `height` is the block the root was anchored at;
    `record` the stored record (clear header, ciphertext) whose digest is record_id."""

    owner: str
    record_id: str
    record: str
    gateway_did: str
    interval: int
    root: str
    count: int
    height: int
    proof: ProofPathView
    shard: ShardRootView | None = None
    fleet_proof: ProofPathView | None = None


VAULT_BODY_TYPES = (VaultRequestBody, RequestSignatureBody)
VAULT_VIEW_TYPES = (VaultProofView, ProofPathView, ShardRootView, VaultRecordsView, VaultLogView, VaultErasureView,
                    VaultLogEntryView, SealedRecordView, WrapView)
