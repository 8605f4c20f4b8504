"""Consent state: data sets, purpose-bound consents, revocation, and the validity rule.

A consent is valid for (data set, consumer, purpose) at height h when it names exactly those,
was granted at or before h, has not expired (h < expiry_height), was not revoked at or before h
(h < revoked_height, when revoked) and its consumer's DID is still active. `find_valid_consent`
is that rule, a pure function of the state; the vault service calls it (through the
/consent/valid query) before it releases a record, and releases only records of the consent's
period [from_height, to_height].
"""

from __future__ import annotations

import re
from typing import Iterator

import msgspec

from ...core.encoding import decoder, encode
from ...core.hashing import sha256
from ...core.state import StateReader
from ...core.types import HASH_LEN
from ..base import Context
from ..devices.messages import STATUS_ACTIVE as DEVICE_ACTIVE
from ..identity.did import is_did
from ..identity.messages import KIND_ORGANISATION
from .errors import (
    ERR_ALREADY_REGISTERED,
    ERR_ALREADY_REVOKED,
    ERR_INVALID_CONSENT,
    ERR_INVALID_DATA_SET,
    ERR_NOT_ACCREDITED,
    ERR_NOT_CONTROLLER,
    ERR_NOT_OWNER,
    ERR_TOO_MANY_CONSENTS,
    ERR_UNKNOWN_CONSENT,
    ERR_UNKNOWN_CONSUMER,
    ERR_UNKNOWN_DATA_SET,
    ERR_UNKNOWN_DEVICE,
    ERR_UNKNOWN_PURPOSE,
)
from .expected import Devices, Identity
from .keys import (
    ID_BYTES,
    NEXT_CONSENT_ID_KEY,
    by_consumer_key,
    by_consumer_prefix,
    by_data_set_key,
    by_data_set_prefix,
    consent_key,
    data_set_key,
)
from .messages import (
    DATA_SET_ID_HEX,
    DATA_SET_ID_PREFIX,
    GATEWAY_TYPE,
    MAX_CONSENT_BLOCKS,
    MAX_CONSENTS_PER_DATA_SET,
    MAX_SCHEMA_ID_LEN,
    PURPOSES,
    ConsentRecord,
    DataSetRecord,
    GrantConsent,
    RegisterDataSet,
    RevokeConsent,
)

DOMAIN_DATA_SET = b"cityledger/data-set/1\x00"
_DATA_SET = decoder(DataSetRecord)
_CONSENT = decoder(ConsentRecord)
_SCHEMA_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,%d}" % (MAX_SCHEMA_ID_LEN - 1))
_DATA_SET_RE = re.compile(re.escape(DATA_SET_ID_PREFIX) + "[0-9a-f]{%d}" % DATA_SET_ID_HEX)


# -- pure helpers --------------------------------------------------------------------------------

def compute_data_set_id(owner: bytes, device: str, schema_id: str, commitment: bytes) -> str:
    """A data set's id: fixed by its owner, device, schema and commitment, so it cannot be chosen."""
    digest = sha256(DOMAIN_DATA_SET + encode([owner, device, schema_id, commitment]))
    return DATA_SET_ID_PREFIX + digest[:DATA_SET_ID_HEX // 2].hex()


def is_data_set_id(text: str) -> bool:
    """True for 'ds-' followed by 32 lower-case hex digits, nothing around it."""
    return isinstance(text, str) and _DATA_SET_RE.fullmatch(text) is not None


def is_schema_id(text: str) -> bool:
    """True for a schema id: [a-z0-9][a-z0-9._-]{0,63}, nothing around it."""
    return isinstance(text, str) and _SCHEMA_RE.fullmatch(text) is not None


def is_valid_at(consent: ConsentRecord, height: int) -> bool:
    """The consent's own half of the validity rule: granted, not expired, not revoked at `height`."""
    if not consent.granted_height <= height < consent.expiry_height:
        return False
    return consent.revoked_height == 0 or height < consent.revoked_height


# -- reads ---------------------------------------------------------------------------------------

def decode_data_set(raw: bytes) -> DataSetRecord:
    """A data set record from its stored bytes."""
    return _DATA_SET.decode_lenient(raw)


def decode_consent(raw: bytes) -> ConsentRecord:
    """A consent record from its stored bytes."""
    return _CONSENT.decode_lenient(raw)


def get_data_set(state: StateReader, data_set: str) -> DataSetRecord | None:
    """A data set's record, or None (also for anything that is not a data set id)."""
    if not is_data_set_id(data_set):
        return None
    raw = state.get(data_set_key(data_set))
    return None if raw is None else _DATA_SET.decode_lenient(raw)


def get_consent(state: StateReader, consent_id: int) -> ConsentRecord | None:
    """A consent's record, or None."""
    if not isinstance(consent_id, int) or not 1 <= consent_id < 2 ** (8 * ID_BYTES):
        return None
    raw = state.get(consent_key(consent_id))
    return None if raw is None else _CONSENT.decode_lenient(raw)


def _indexed(state: StateReader, prefix: bytes, after: int) -> Iterator[ConsentRecord]:
    """Consents of an index, in id order, with ids above `after`."""
    for key, _ in getattr(state, "iter_prefix")(prefix):
        consent_id = int.from_bytes(key[-ID_BYTES:], "big")
        if consent_id > after:
            yield get_consent(state, consent_id)


def iter_data_set_consents(state: StateReader, data_set: str, after: int = 0) -> Iterator[ConsentRecord]:
    """A data set's consents, in id order (ids above `after`)."""
    return _indexed(state, by_data_set_prefix(data_set), after) if is_data_set_id(data_set) else iter(())


def iter_consumer_consents(state: StateReader, consumer: str, after: int = 0) -> Iterator[ConsentRecord]:
    """A consumer DID's consents, in id order (ids above `after`)."""
    return _indexed(state, by_consumer_prefix(consumer), after) if is_did(consumer) else iter(())


def _consumer_active(identity: Identity, state: StateReader, consumer: str) -> bool:
    record = identity.get_did(state, consumer)
    return record is not None and not record.deactivated and record.kind == KIND_ORGANISATION


def find_valid_consent(identity: Identity, state: StateReader, data_set: str, consumer: str, purpose: str,
                       height: int) -> ConsentRecord | None:
    """The first consent valid for (data set, consumer, purpose) at `height`, or None (module docstring)."""
    if purpose not in PURPOSES or not isinstance(height, int) or height < 1:
        return None
    if get_data_set(state, data_set) is None or not _consumer_active(identity, state, consumer):
        return None
    for consent in iter_data_set_consents(state, data_set):
        if consent.consumer == consumer and consent.purpose == purpose and is_valid_at(consent, height):
            return consent
    return None


def is_consent_valid(identity: Identity, state: StateReader, data_set: str, consumer: str, purpose: str,
                     height: int) -> bool:
    """True if some consent lets `consumer` read `data_set` for `purpose` at `height`."""
    return find_valid_consent(identity, state, data_set, consumer, purpose, height) is not None


# -- handlers ------------------------------------------------------------------------------------

def require_data_set(ctx: Context, data_set: str, field: str = "data_set") -> DataSetRecord:
    """The data set named by a message, or the error saying it is malformed or unknown."""
    if not is_data_set_id(data_set):
        raise ERR_INVALID_DATA_SET(f"{field}: expected 'ds-' and {DATA_SET_ID_HEX} hex digits, got {data_set[:80]!r}",
                                   field)
    record = get_data_set(ctx.state, data_set)
    if record is None:
        raise ERR_UNKNOWN_DATA_SET(f"{field}: no data set {data_set}", field)
    return record


def require_owned(ctx: Context, data_set: str) -> DataSetRecord:
    """The sender's own data set, or why not."""
    record = require_data_set(ctx, data_set)
    if record.owner != ctx.sender:
        raise ERR_NOT_OWNER(f"sender: does not own data set {data_set}", "data_set")
    return record


def _check_data_set_fields(identity: Identity, devices: Devices, ctx: Context, msg: RegisterDataSet) -> None:
    """Raise unless the schema, commitment, device, gateway and owner DID are acceptable."""
    if not is_schema_id(msg.schema_id):
        raise ERR_INVALID_DATA_SET(f"schema_id: expected [a-z0-9][a-z0-9._-]{{0,{MAX_SCHEMA_ID_LEN - 1}}}, "
                                   f"got {msg.schema_id[:80]!r}", "schema_id")
    if len(msg.commitment) != HASH_LEN:
        raise ERR_INVALID_DATA_SET(f"commitment: expected {HASH_LEN} bytes, got {len(msg.commitment)}", "commitment")
    device = devices.get_device(ctx.state, msg.device)
    if device is None or device.status != DEVICE_ACTIVE:
        raise ERR_UNKNOWN_DEVICE(f"device: {msg.device[:80]!r} is not an active registered device", "device")
    if device.owner != ctx.sender:
        raise ERR_NOT_OWNER(f"sender: does not own device {msg.device}", "device")
    if not identity.is_accredited(ctx.state, msg.gateway, GATEWAY_TYPE):
        raise ERR_NOT_ACCREDITED(f"gateway: {msg.gateway[:80]!r} is not accredited for {GATEWAY_TYPE!r}", "gateway")
    if msg.owner_did:
        did = identity.get_did(ctx.state, msg.owner_did)
        if did is None or did.deactivated:
            raise ERR_INVALID_DATA_SET(f"owner_did: {msg.owner_did[:80]!r} is not an active DID", "owner_did")
        if did.controller != ctx.signer:
            raise ERR_NOT_CONTROLLER(f"owner_did: the signer does not control {msg.owner_did}", "owner_did")


def process_register_data_set(identity: Identity, devices: Devices, ctx: Context, msg: RegisterDataSet) -> None:
    """Register a data set of a device the sender owns."""
    # Check: the fields are well formed, the device is the sender's, the gateway accredited.
    _check_data_set_fields(identity, devices, ctx, msg)
    # Check: the data set is new.
    data_set = compute_data_set_id(ctx.sender, msg.device, msg.schema_id, msg.commitment)
    if get_data_set(ctx.state, data_set) is not None:
        raise ERR_ALREADY_REGISTERED(f"data set: already registered as {data_set}", "commitment")
    record = DataSetRecord(data_set, ctx.sender, msg.owner_did, msg.schema_id, msg.commitment, msg.device,
                           msg.gateway, 0, 0, ctx.height)
    ctx.state.set(data_set_key(data_set), encode(record))
    ctx.emit("data_set_registered", data_set=data_set, device=msg.device, schema_id=msg.schema_id)


def _check_period(ctx: Context, msg: GrantConsent) -> None:
    """Raise unless 1 <= from <= to <= expiry and height < expiry <= height + MAX_CONSENT_BLOCKS."""
    if not 1 <= msg.from_height <= msg.to_height:
        raise ERR_INVALID_CONSENT(f"from_height, to_height: expected 1 <= from <= to, got "
                                  f"[{msg.from_height}, {msg.to_height}]", "from_height")
    if not ctx.height < msg.expiry_height <= ctx.height + MAX_CONSENT_BLOCKS:
        raise ERR_INVALID_CONSENT(f"expiry_height: expected above {ctx.height} and at most "
                                  f"{ctx.height + MAX_CONSENT_BLOCKS}, got {msg.expiry_height}", "expiry_height")
    if msg.to_height > msg.expiry_height:
        raise ERR_INVALID_CONSENT(f"to_height: expected at most expiry_height {msg.expiry_height}, "
                                  f"got {msg.to_height}", "to_height")


def process_grant(identity: Identity, ctx: Context, msg: GrantConsent) -> None:
    """Grant a purpose-bound consent over the sender's data set."""
    # Check: the data set is the sender's, with room for one more consent.
    data_set = require_owned(ctx, msg.data_set)
    if data_set.consents >= MAX_CONSENTS_PER_DATA_SET:
        raise ERR_TOO_MANY_CONSENTS(f"data_set: {msg.data_set} already had {MAX_CONSENTS_PER_DATA_SET} consents",
                                    "data_set")
    # Check: the purpose is a listed one, the consumer an active organisation, the period sane.
    if msg.purpose not in PURPOSES:
        raise ERR_UNKNOWN_PURPOSE(f"purpose: expected one of {list(PURPOSES)}, got {msg.purpose[:80]!r}", "purpose")
    if not _consumer_active(identity, ctx.state, msg.consumer):
        raise ERR_UNKNOWN_CONSUMER(f"consumer: {msg.consumer[:80]!r} is not an active organisation DID", "consumer")
    _check_period(ctx, msg)
    raw = ctx.state.get(NEXT_CONSENT_ID_KEY)
    consent_id = 1 if raw is None else int.from_bytes(raw, "big")
    consent = ConsentRecord(consent_id, msg.data_set, msg.consumer, msg.purpose, msg.from_height, msg.to_height,
                            msg.expiry_height, ctx.height, 0)
    ctx.state.set(NEXT_CONSENT_ID_KEY, (consent_id + 1).to_bytes(ID_BYTES, "big"))
    ctx.state.set(consent_key(consent_id), encode(consent))
    ctx.state.set(by_data_set_key(msg.data_set, consent_id), b"")
    ctx.state.set(by_consumer_key(msg.consumer, consent_id), b"")
    updated = msgspec.structs.replace(data_set, consents=data_set.consents + 1)
    ctx.state.set(data_set_key(data_set.id), encode(updated))
    ctx.emit("consent_granted", consent_id=consent_id, data_set=msg.data_set, consumer=msg.consumer,
             purpose=msg.purpose, expiry_height=msg.expiry_height)


def process_revoke(ctx: Context, msg: RevokeConsent) -> None:
    """Revoke a consent at once: it is invalid from this block's height on."""
    # Check: the consent exists, its data set is the sender's, and it was not revoked already.
    consent = get_consent(ctx.state, msg.consent_id)
    if consent is None:
        raise ERR_UNKNOWN_CONSENT(f"consent_id: no consent {msg.consent_id}", "consent_id")
    require_owned(ctx, consent.data_set)
    if consent.revoked_height:
        raise ERR_ALREADY_REVOKED(f"consent_id: {msg.consent_id} was revoked at height {consent.revoked_height}",
                                  "consent_id")
    revoked = msgspec.structs.replace(consent, revoked_height=ctx.height)
    ctx.state.set(consent_key(consent.id), encode(revoked))
    ctx.emit("consent_revoked", consent_id=consent.id, data_set=consent.data_set, consumer=consent.consumer)
