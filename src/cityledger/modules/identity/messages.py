"""Identity messages (versioned), governance actions and stored records.

Anchored AnonCreds objects travel as structured fields; the opaque cryptographic parts (a credential
definition's public keys, a registry's accumulator key) travel as canonical JSON bytes, so that one
object has exactly one encoding and therefore one transaction id.
"""

from __future__ import annotations

from ...core.encoding import Message, Record
from ...core.keys import PublicKey, Signer
from ..governance.messages import Action

DID_METHOD = "city"
DID_PREFIX = "did:city:"
KIND_ORGANISATION = 1
KIND_DEVICE = 2
KIND_NAMES = {KIND_ORGANISATION: "organisation", KIND_DEVICE: "device"}

PURPOSE_AUTHENTICATION = "authentication"
PURPOSE_ASSERTION = "assertionMethod"
PURPOSES = (PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION)  # sorted

MAX_SALT_BYTES = 32
MAX_KEYS = 8
MAX_SERVICES = 8
MAX_FRAGMENT_LEN = 32
MAX_SERVICE_TYPE_LEN = 64
MAX_ENDPOINT_LEN = 256
MAX_NAME_LEN = 64
MAX_ATTRIBUTES = 32
MAX_CRED_DEF_VALUE_BYTES = 48 * 1024
MAX_REV_KEYS_BYTES = 4 * 1024
MAX_ACCUMULATOR_LEN = 1024
MAX_CRED_NUM = 1 << 17  # a status list of 16 KiB
MAX_TAILS_LOCATION_LEN = 256
MAX_CREDENTIAL_TYPE_LEN = 64


class VerificationKey(Record):
    """A verification method of a DID: its fragment, its key and its purposes (sorted)."""

    fragment: str
    key: PublicKey
    purposes: list[str]


class Service(Record):
    """A service endpoint of a DID (e.g. the issuer's tails-file server)."""

    fragment: str
    type: str
    endpoint: str


class CreateDid(Message, tag="identity/1.0/create_did"):
    """Create an organisation DID; the transaction's signer must be `controller`."""

    salt: bytes
    controller: Signer
    keys: list[VerificationKey]
    services: list[Service]


class UpdateDid(Message, tag="identity/1.0/update_did"):
    """Replace a DID's controller, keys and services (key rotation); signed by the current controller."""

    did: str
    version: int  # the DID's current version: an update applies to the document its author saw
    controller: Signer
    keys: list[VerificationKey]
    services: list[Service]


class DeactivateDid(Message, tag="identity/1.0/deactivate_did"):
    """Deactivate an organisation DID for good; signed by its controller."""

    did: str


class AnchorSchema(Message, tag="identity/1.0/anchor_schema"):
    """Anchor an AnonCreds schema; its name is the credential type."""

    issuer: str
    name: str
    version: str
    attr_names: list[str]


class AnchorCredDef(Message, tag="identity/1.0/anchor_cred_def"):
    """Anchor an AnonCreds credential definition (signature type CL); `value` is canonical JSON."""

    issuer: str
    schema_id: str
    tag: str
    value: bytes


class AnchorRevRegDef(Message, tag="identity/1.0/anchor_rev_reg_def"):
    """Anchor a revocation registry definition: accumulator public keys and the tails file's hash."""

    issuer: str
    cred_def_id: str
    tag: str
    max_cred_num: int
    public_keys: bytes  # canonical JSON of the definition's value.publicKeys
    tails_hash: str  # base58 SHA-256 of the tails file
    tails_location: str  # where the issuer serves it


class UpdateStatusList(Message, tag="identity/1.0/update_status_list"):
    """Publish a registry's revocation status list; its timestamp becomes the block height."""

    rev_reg_def_id: str
    revoked: bytes  # bit i (LSB-first in byte i // 8) set when credential index i is revoked
    accumulator: str


class AccreditIssuer(Action, tag="identity/1.0/accredit_issuer"):
    """Governance: allow an organisation DID to issue one credential type."""

    did: str
    credential_type: str


class WithdrawAccreditation(Action, tag="identity/1.0/withdraw_accreditation"):
    """Governance: withdraw an issuer's accreditation for one credential type."""

    did: str
    credential_type: str


class DidRecord(Record):
    """A DID as stored: its document's content and its life cycle."""

    did: str
    kind: int
    controller: Signer
    keys: list[VerificationKey]
    services: list[Service]
    version: int
    created_height: int
    updated_height: int
    deactivated: bool


class SchemaRecord(Record):
    """An anchored schema."""

    issuer: str
    name: str
    version: str
    attr_names: list[str]
    height: int


class CredDefRecord(Record):
    """An anchored credential definition."""

    issuer: str
    schema_id: str
    tag: str
    value: bytes
    height: int


class RevRegDefRecord(Record):
    """An anchored revocation registry definition."""

    issuer: str
    cred_def_id: str
    tag: str
    max_cred_num: int
    public_keys: bytes
    tails_hash: str
    tails_location: str
    height: int


class StatusListRecord(Record):
    """A registry's status list as anchored at `timestamp` (the block height)."""

    rev_reg_def_id: str
    revoked: bytes
    accumulator: str
    timestamp: int


class Accreditation(Record):
    """An issuer's accreditation for one credential type, and the proposal height that granted it."""

    did: str
    credential_type: str
    height: int
