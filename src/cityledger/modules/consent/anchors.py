"""Anchors: access-log heads from accredited vault services, records roots of a data set's intervals,
and a gateway's fleet-wide records roots (one per interval over every record it received, so one
transaction per interval whatever the number of devices).

An access log is a hash chain kept off chain by the vault service that holds a subject's records
(a data set, or an owner's whole vault). Each AnchorAccessLog names the head it follows, and the
ledger takes it only if that is the last head anchored for the same (service, subject): the
anchored heads form an unbroken chain, so a log that leaves an entry out cannot match them.
"""

from __future__ import annotations

from typing import Iterator

import msgspec

from ...core.encoding import decoder, encode
from ...core.state import StateReader
from ...core.types import HASH_LEN, address_from_str
from ..base import Context
from ..identity.did import is_did
from .errors import ERR_BROKEN_CHAIN, ERR_INVALID_ANCHOR, ERR_NOT_ACCREDITED, ERR_NOT_CONTROLLER, ERR_NOT_OWNER
from .expected import Identity
from .handlers import is_data_set_id, require_data_set
from .keys import (
    ID_BYTES,
    data_set_key,
    gateway_last_key,
    gateway_root_key,
    gateway_roots_prefix,
    log_anchor_key,
    log_anchors_prefix,
    log_head_key,
    records_root_key,
    records_roots_prefix,
)
from .messages import (
    DATA_SET_ID_PREFIX,
    GATEWAY_TYPE,
    MAX_INTERVAL,
    MAX_LOG_ENTRIES,
    MAX_ROOT_RECORDS,
    VAULT_SERVICE_TYPE,
    ZERO_HEAD,
    AccessLogAnchor,
    AnchorAccessLog,
    AnchorGatewayRoot,
    AnchorRecordsRoot,
    GatewayRoot,
    RecordsRoot,
)

ANCHORED_BY_OWNER = "owner"
_ANCHOR = decoder(AccessLogAnchor)
_ROOT = decoder(RecordsRoot)
_GATEWAY_ROOT = decoder(GatewayRoot)


# -- reads ---------------------------------------------------------------------------------------

def decode_anchor(raw: bytes) -> AccessLogAnchor:
    """An access-log anchor from its stored bytes."""
    return _ANCHOR.decode_lenient(raw)


def decode_root(raw: bytes) -> RecordsRoot:
    """A records root from its stored bytes."""
    return _ROOT.decode_lenient(raw)


def decode_gateway_root(raw: bytes) -> GatewayRoot:
    """A gateway's fleet-wide records root from its stored bytes."""
    return _GATEWAY_ROOT.decode_lenient(raw)


def is_subject(text: str) -> bool:
    """True for an access log's subject: a data set id or a 'city…' account."""
    if is_data_set_id(text):
        return True
    try:
        address_from_str(text)
    except ValueError:
        return False
    return text.startswith("city") and text == text.lower()


def get_log_head(state: StateReader, service: str, subject: str) -> AccessLogAnchor | None:
    """The last anchor of a (service, subject) access log, or None before the first."""
    if not is_did(service) or not is_subject(subject):
        return None
    raw = state.get(log_head_key(service, subject))
    if raw is None:
        return None
    return _ANCHOR.decode_lenient(state.get(log_anchor_key(service, subject, int.from_bytes(raw, "big"))))


def iter_log_anchors(state: StateReader, service: str, subject: str, after: int = 0) -> Iterator[AccessLogAnchor]:
    """A (service, subject) access log's anchors, oldest first (sequence numbers above `after`)."""
    if not is_did(service) or not is_subject(subject):
        return
    for key, raw in getattr(state, "iter_prefix")(log_anchors_prefix(service, subject)):
        if int.from_bytes(key[-ID_BYTES:], "big") > after:
            yield _ANCHOR.decode_lenient(raw)


def iter_records_roots(state: StateReader, data_set: str, after: int = 0) -> Iterator[RecordsRoot]:
    """A data set's records roots, by interval (intervals above `after`)."""
    if not is_data_set_id(data_set):
        return
    for key, raw in getattr(state, "iter_prefix")(records_roots_prefix(data_set)):
        if int.from_bytes(key[-ID_BYTES:], "big") > after:
            yield _ROOT.decode_lenient(raw)


def get_records_root(state: StateReader, data_set: str, interval: int) -> RecordsRoot | None:
    """A data set's records root for one interval, or None."""
    if not is_data_set_id(data_set) or not isinstance(interval, int) or not 1 <= interval <= MAX_INTERVAL:
        return None
    raw = state.get(records_root_key(data_set, interval))
    return None if raw is None else _ROOT.decode_lenient(raw)


def get_gateway_last_interval(state: StateReader, gateway: str) -> int:
    """The last interval a gateway anchored a fleet-wide root for, 0 before the first."""
    if not is_did(gateway):
        return 0
    raw = state.get(gateway_last_key(gateway))
    return 0 if raw is None else int.from_bytes(raw, "big")


def get_gateway_root(state: StateReader, gateway: str, interval: int) -> GatewayRoot | None:
    """A gateway's fleet-wide records root for one interval, or None."""
    if not is_did(gateway) or not isinstance(interval, int) or not 1 <= interval <= MAX_INTERVAL:
        return None
    raw = state.get(gateway_root_key(gateway, interval))
    return None if raw is None else _GATEWAY_ROOT.decode_lenient(raw)


def iter_gateway_roots(state: StateReader, gateway: str, after: int = 0) -> Iterator[GatewayRoot]:
    """A gateway's fleet-wide records roots, by interval (intervals above `after`)."""
    if not is_did(gateway):
        return
    for key, raw in getattr(state, "iter_prefix")(gateway_roots_prefix(gateway)):
        if int.from_bytes(key[-ID_BYTES:], "big") > after:
            yield _GATEWAY_ROOT.decode_lenient(raw)


# -- handlers ------------------------------------------------------------------------------------

def _require_controlled(identity: Identity, ctx: Context, did: str, credential_type: str, field: str) -> None:
    """Raise unless `did` is accredited for `credential_type` and the signer controls it."""
    if not identity.is_accredited(ctx.state, did, credential_type):
        raise ERR_NOT_ACCREDITED(f"{field}: {did[:80]!r} is not accredited for {credential_type!r}", field)
    if identity.get_did(ctx.state, did).controller != ctx.signer:
        raise ERR_NOT_CONTROLLER(f"{field}: the signer does not control {did}", field)


def _check_subject(ctx: Context, subject: str) -> None:
    """Raise unless the subject is a registered data set or a well-formed account."""
    if subject.startswith(DATA_SET_ID_PREFIX):
        require_data_set(ctx, subject, "subject")
    elif not is_subject(subject):
        raise ERR_INVALID_ANCHOR(f"subject: expected a data set id or 'city' and 40 lower-case hex digits, "
                                 f"got {subject[:80]!r}", "subject")


def process_anchor_access_log(identity: Identity, ctx: Context, msg: AnchorAccessLog) -> None:
    """Anchor an access-log head, linked to the last anchored head of the same log."""
    # Check: an accredited vault service, signed by its controller, about a known subject.
    _require_controlled(identity, ctx, msg.service, VAULT_SERVICE_TYPE, "service")
    _check_subject(ctx, msg.subject)
    for field, value in (("head", msg.head), ("previous", msg.previous)):
        if len(value) != HASH_LEN:
            raise ERR_INVALID_ANCHOR(f"{field}: expected {HASH_LEN} bytes, got {len(value)}", field)
    if msg.head in (msg.previous, ZERO_HEAD):
        raise ERR_INVALID_ANCHOR("head: expected a new head, neither zero nor the previous one", "head")
    # Check: the anchor follows the last one, with more entries (an omitted entry breaks the chain).
    last = get_log_head(ctx.state, msg.service, msg.subject)
    last_head, last_count, seq = (ZERO_HEAD, 0, 1) if last is None else (last.head, last.count, last.seq + 1)
    if msg.previous != last_head:
        raise ERR_BROKEN_CHAIN(f"previous: expected the last anchored head {last_head.hex()}, got "
                               f"{msg.previous.hex()}", "previous")
    if not last_count < msg.count <= MAX_LOG_ENTRIES:
        raise ERR_INVALID_ANCHOR(f"count: expected above {last_count} and at most {MAX_LOG_ENTRIES}, "
                                 f"got {msg.count}", "count")
    anchor = AccessLogAnchor(msg.service, msg.subject, seq, msg.head, msg.count, msg.previous, ctx.height)
    ctx.state.set(log_anchor_key(msg.service, msg.subject, seq), encode(anchor))
    ctx.state.set(log_head_key(msg.service, msg.subject), seq.to_bytes(ID_BYTES, "big"))
    ctx.emit("access_log_anchored", service=msg.service, subject=msg.subject, seq=seq, head=msg.head,
             count=msg.count)


def process_anchor_records_root(identity: Identity, ctx: Context, msg: AnchorRecordsRoot) -> None:
    """Anchor the Merkle root of one interval's records of a data set: once per interval, in order."""
    # Check: the sender is the data set's owner, or the signer controls its accredited gateway.
    data_set = require_data_set(ctx, msg.data_set)
    if data_set.owner == ctx.sender:
        anchored_by = ANCHORED_BY_OWNER
    else:
        gateway = identity.get_did(ctx.state, data_set.gateway)
        if gateway is None or gateway.controller != ctx.signer:
            raise ERR_NOT_OWNER(f"sender: neither the owner nor the gateway of {msg.data_set}", "data_set")
        _require_controlled(identity, ctx, data_set.gateway, GATEWAY_TYPE, "data_set")
        anchored_by = data_set.gateway
    # Check: a new interval after the last anchored one, a 32-byte root, a sane record count.
    if not data_set.last_interval < msg.interval <= MAX_INTERVAL:
        raise ERR_INVALID_ANCHOR(f"interval: expected above the last anchored {data_set.last_interval} and at "
                                 f"most {MAX_INTERVAL}, got {msg.interval}", "interval")
    if len(msg.root) != HASH_LEN:
        raise ERR_INVALID_ANCHOR(f"root: expected {HASH_LEN} bytes, got {len(msg.root)}", "root")
    if not 1 <= msg.count <= MAX_ROOT_RECORDS:
        raise ERR_INVALID_ANCHOR(f"count: expected 1 to {MAX_ROOT_RECORDS}, got {msg.count}", "count")
    root = RecordsRoot(msg.data_set, msg.interval, msg.root, msg.count, anchored_by, ctx.height)
    ctx.state.set(records_root_key(msg.data_set, msg.interval), encode(root))
    updated = msgspec.structs.replace(data_set, last_interval=msg.interval)
    ctx.state.set(data_set_key(msg.data_set), encode(updated))
    ctx.emit("records_root_anchored", data_set=msg.data_set, interval=msg.interval, root=msg.root, count=msg.count)


def process_anchor_gateway_root(identity: Identity, ctx: Context, msg: AnchorGatewayRoot) -> None:
    """Anchor one root over all the records a gateway received in an interval: once per interval, in order."""
    # Check: an accredited gateway, signed by its controller.
    _require_controlled(identity, ctx, msg.gateway, GATEWAY_TYPE, "gateway")
    # Check: a new interval after the gateway's last anchored one, a 32-byte root, a sane record count.
    last = get_gateway_last_interval(ctx.state, msg.gateway)
    if not last < msg.interval <= MAX_INTERVAL:
        raise ERR_INVALID_ANCHOR(f"interval: expected above the last anchored {last} and at most {MAX_INTERVAL}, "
                                 f"got {msg.interval}", "interval")
    if len(msg.root) != HASH_LEN:
        raise ERR_INVALID_ANCHOR(f"root: expected {HASH_LEN} bytes, got {len(msg.root)}", "root")
    if not 1 <= msg.count <= MAX_ROOT_RECORDS:
        raise ERR_INVALID_ANCHOR(f"count: expected 1 to {MAX_ROOT_RECORDS}, got {msg.count}", "count")
    root = GatewayRoot(msg.gateway, msg.interval, msg.root, msg.count, ctx.height)
    ctx.state.set(gateway_root_key(msg.gateway, msg.interval), encode(root))
    ctx.state.set(gateway_last_key(msg.gateway), msg.interval.to_bytes(ID_BYTES, "big"))
    ctx.emit("gateway_root_anchored", gateway=msg.gateway, interval=msg.interval, root=msg.root, count=msg.count)
