"""Consent messages (versioned), stored records and the module's constants.

Only identifiers, hashes, DIDs, purpose codes, counts and heights reach the ledger: a data set is
its owner's pseudonymous account, a schema name, a 32-byte commitment and the device DID whose
records it holds; the records themselves stay encrypted in the owner's vault, off chain.
"""

from __future__ import annotations

from ...core.encoding import Message, Record
from ...core.types import Address, Height

# The purposes a consent may name: a fixed list, so a consent means the same thing to everybody.
PURPOSE_AD_TRAINING = "ad-training"
PURPOSE_BILLING = "billing"
PURPOSE_INSURANCE_PRICING = "insurance-pricing"
PURPOSE_MAINTENANCE = "maintenance"
PURPOSE_RESEARCH = "research"
PURPOSE_TRAFFIC_PLANNING = "traffic-planning"
PURPOSES = (PURPOSE_AD_TRAINING, PURPOSE_BILLING, PURPOSE_INSURANCE_PRICING, PURPOSE_MAINTENANCE,
            PURPOSE_RESEARCH, PURPOSE_TRAFFIC_PLANNING)  # sorted

# The credential types governance accredits an organisation DID for, to act on data sets.
VAULT_SERVICE_TYPE = "vault-service"  # anchors access logs
GATEWAY_TYPE = "telemetry-gateway"  # anchors records roots: a data set's, or a whole fleet's per interval

DATA_SET_ID_PREFIX = "ds-"
DATA_SET_ID_HEX = 32  # hex digits after the prefix: 16 bytes of a SHA-256
MAX_SCHEMA_ID_LEN = 64
MAX_CONSENTS_PER_DATA_SET = 1024  # grants over a data set's life; past it, register a new data set
MAX_CONSENT_BLOCKS = 6_307_200  # how far ahead a consent may expire: a year of 5-second blocks
MAX_INTERVAL = 2**40  # the largest records-root interval index
MAX_ROOT_RECORDS = 2**32  # the most records one records root may cover
MAX_LOG_ENTRIES = 2**48  # the most entries an access log may count
MAX_LIST_RESULTS = 100  # items per page of a list query
VAULT_KEY_LEN = 32  # an X25519 public key, raw
ZERO_HEAD = bytes(32)  # the `previous` of a log's first anchor

STATUS_ACTIVE = "active"


class RegisterDataSet(Message, tag="consent/1.0/register_data_set"):
    """Register a data set of the sender's device: its schema, a commitment, its gateway."""

    schema_id: str  # e.g. "vehicle-telemetry-1"
    commitment: bytes  # 32-byte hash committing to the data set's description, kept off chain
    device: str  # DID of a device the sender owns
    gateway: str  # DID accredited for "telemetry-gateway": may anchor the data set's records roots
    owner_did: str  # "" or a DID the signer controls, to bind the data set to it


class GrantConsent(Message, tag="consent/1.0/grant"):
    """The data set's owner lets `consumer` read records of [from_height, to_height] for `purpose`."""

    data_set: str
    consumer: str  # an active organisation DID
    purpose: str  # one of PURPOSES
    from_height: Height  # the period of records released: heights at which they were recorded
    to_height: Height
    expiry_height: Height  # the consent is valid below this height


class RevokeConsent(Message, tag="consent/1.0/revoke"):
    """The data set's owner ends a consent at once (from this block's height)."""

    consent_id: int


class AnchorAccessLog(Message, tag="consent/1.0/anchor_access_log"):
    """An accredited vault service anchors the head of its access log for one subject."""

    service: str  # the vault service's organisation DID; the signer is its controller
    subject: str  # a data set id, or an owner's 'city…' account for an owner-wide log
    head: bytes  # 32-byte hash of the log's last entry (a hash chain over every entry)
    count: int  # entries in the log up to `head`
    previous: bytes  # the head this anchor follows: the last anchored head, ZERO_HEAD at first


class RegisterVaultKey(Message, tag="consent/1.0/register_vault_key"):
    """Publish the X25519 key that records are sealed to: an owner account's vault key, or a consumer DID's."""

    subject: str  # the sender's own 'city…' account (an owner), or a DID the signer controls (a consumer)
    key: bytes  # 32-byte X25519 public key; a new registration replaces the last one (rotation)


class AnchorRecordsRoot(Message, tag="consent/1.0/anchor_records_root"):
    """The data set's owner or gateway anchors the Merkle root of one interval's records."""

    data_set: str
    interval: int  # interval index, strictly increasing per data set
    root: bytes  # 32-byte Merkle root over the interval's records
    count: int  # records under the root


class AnchorGatewayRoot(Message, tag="consent/1.0/anchor_gateway_root"):
    """An accredited gateway anchors one Merkle root over every record it received in an interval."""

    gateway: str  # the gateway's organisation DID, accredited for GATEWAY_TYPE; the signer is its controller
    interval: int  # interval index, strictly increasing per gateway
    root: bytes  # 32-byte Merkle root over the interval's records of every device (offchain/telemetry/anchor.py)
    count: int  # records under the root


class DataSetRecord(Record):
    """A registered data set."""

    id: str
    owner: Address
    owner_did: str
    schema_id: str
    commitment: bytes
    device: str
    gateway: str
    consents: int  # consents granted so far
    last_interval: int  # the last anchored records-root interval, 0 before the first
    registered_height: Height


class ConsentRecord(Record):
    """A consent, as granted; `revoked_height` is 0 until revoked."""

    id: int
    data_set: str
    consumer: str
    purpose: str
    from_height: Height
    to_height: Height
    expiry_height: Height
    granted_height: Height
    revoked_height: Height


class AccessLogAnchor(Record):
    """One anchored access-log head: the n-th link of a (service, subject) chain."""

    service: str
    subject: str
    seq: int  # 1 for the first anchor of the chain
    head: bytes
    count: int
    previous: bytes
    height: Height


class VaultKeyRecord(Record):
    """The X25519 key records are sealed to for one subject (a 'city…' account or a DID), since `height`."""

    subject: str
    key: bytes
    height: Height


class RecordsRoot(Record):
    """An anchored records root of one data set's interval."""

    data_set: str
    interval: int
    root: bytes
    count: int
    anchored_by: str  # "owner" or the gateway's DID
    height: Height


class GatewayRoot(Record):
    """An anchored fleet-wide records root: one gateway's interval, all its devices' records."""

    gateway: str
    interval: int
    root: bytes
    count: int
    height: Height
