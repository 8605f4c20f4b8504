"""Battery passport state transitions: the life cycle of EU Regulation 2023/1542, enforced.

Every event names the organisation DID that makes it (`operator`); the transaction's signer must
control that DID, and governance must have accredited it for the event's role (TRANSITIONS in
messages.py). The ledger holds identifiers, DIDs and SHA-256 hashes only: the passport documents
and the state-of-health values stay off chain.
"""

from __future__ import annotations

import re

import msgspec

from ...core.encoding import decoder, encode
from ...core.state import StateReader
from ..base import Context
from ..devices.messages import KIND_BATTERY, KIND_VEHICLE, STATUS_ACTIVE
from ..identity.did import is_did
from .errors import (
    ERR_BAD_REPORT,
    ERR_CLOSED,
    ERR_DOCUMENT_VERSION,
    ERR_INVALID_PASSPORT,
    ERR_PASSPORT_EXISTS,
    ERR_UNKNOWN_DEVICE,
    ERR_UNKNOWN_PASSPORT,
    ERR_WRONG_ROLE,
    ERR_WRONG_STAGE,
)
from .expected import Devices, Identity
from .keys import (battery_key, history_key, id_dmc_key, passport_key, report_key, second_life_key, stage_count_key,
                   stage_index_key)
from .messages import (
    CLOSED_STAGES,
    EVENT_COLLECTED,
    EVENT_INSTALLED,
    EVENT_PLACED_ON_MARKET,
    EVENT_REGISTERED,
    EVENT_REMANUFACTURED,
    EVENT_REPAIRED,
    EVENT_REPURPOSED,
    EVENT_SUCCEEDED,
    HASH_LEN,
    MAX_DOCUMENT_VERSIONS,
    MAX_HISTORY,
    MAX_ID_DMC_LEN,
    MAX_REPORTS,
    REPORTING_STAGES,
    SECOND_LIFE_STAGES,
    STAGE_REPURPOSED,
    TIERS,
    TRANSITIONS,
    Collect,
    Documents,
    DocumentVersion,
    HistoryEntry,
    Install,
    PassportRecord,
    PlaceOnMarket,
    RegisterPassport,
    Remanufacture,
    Repair,
    ReportCommitment,
    ReportHealth,
    Repurpose,
    UpdateDocument,
)

DOMAIN_REPORT = b"cityledger/battery-soh-report/1\x00"
MAX_SIGNATURE_BYTES = 128  # an Ed25519 or P-256 signature is 64 bytes
COUNT_BYTES = 8
# A canonical lower-case UUID of version 4 (RFC 9562, variant 10xx); fullmatch admits no "\n".
_UUID4_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_PRINTABLE_RE = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_ID_DMC_LEN)  # printable ASCII, no space
_PASSPORT = decoder(PassportRecord)
_HISTORY = decoder(HistoryEntry)
_REPORT = decoder(ReportCommitment)


# -- pure helpers --------------------------------------------------------------------------------

def is_passport_id(text: object) -> bool:
    """True if `text` is a canonical lower-case UUIDv4, nothing around it."""
    return isinstance(text, str) and _UUID4_RE.fullmatch(text) is not None


def is_printable_id(text: object) -> bool:
    """True if `text` is 1 to MAX_ID_DMC_LEN printable ASCII characters without spaces."""
    return isinstance(text, str) and _PRINTABLE_RE.fullmatch(text) is not None


def compute_report_payload(chain_id: str, passport: str, sequence: int, report_hash: bytes) -> bytes:
    """What the battery's BMS signs (as a device message) to commit to one report."""
    return DOMAIN_REPORT + encode([chain_id, passport, sequence, report_hash])


def check_hash(value: bytes, field: str) -> None:
    """Raise unless `value` is a SHA-256 digest's length."""
    if len(value) != HASH_LEN:
        raise ERR_INVALID_PASSPORT(f"{field}: expected a {HASH_LEN}-byte SHA-256 hash, got {len(value)} bytes", field)


def check_passport_id(value: str, field: str = "passport") -> None:
    """Raise unless `value` is a canonical UUIDv4."""
    if not is_passport_id(value):
        raise ERR_INVALID_PASSPORT(f"{field}: expected a lower-case UUIDv4, got {value[:80]!r}", field)


def check_id_dmc(value: str) -> None:
    """Raise unless `value` is a well-formed idDmc."""
    if not is_printable_id(value):
        raise ERR_INVALID_PASSPORT(f"id_dmc: expected 1 to {MAX_ID_DMC_LEN} printable ASCII characters without "
                                   f"spaces, got {value[:80]!r}", "id_dmc")


# -- reads ---------------------------------------------------------------------------------------

def decode_passport(raw: bytes) -> PassportRecord:
    """A passport record from its stored bytes."""
    return _PASSPORT.decode_lenient(raw)


def get_passport(state: StateReader, passport: str) -> PassportRecord | None:
    """A passport by id, or None (also for anything that is not a UUIDv4)."""
    if not is_passport_id(passport):
        return None
    raw = state.get(passport_key(passport))
    return None if raw is None else decode_passport(raw)


def get_passport_by_dmc(state: StateReader, id_dmc: str) -> PassportRecord | None:
    """The latest passport issued under an idDmc, or None."""
    if not is_printable_id(id_dmc):
        return None
    raw = state.get(id_dmc_key(id_dmc))
    return None if raw is None else get_passport(state, raw.decode())


def get_history(state: StateReader, record: PassportRecord) -> list[HistoryEntry]:
    """A passport's life-cycle events, oldest first."""
    return [_HISTORY.decode_lenient(state.get(history_key(record.passport, index)))
            for index in range(record.history_len)]


def get_report(state: StateReader, passport: str, sequence: int) -> ReportCommitment | None:
    """One report commitment of a passport, or None."""
    raw = state.get(report_key(passport, sequence)) if 0 < sequence <= MAX_REPORTS else None
    return None if raw is None else _REPORT.decode_lenient(raw)


def get_stage_count(state: StateReader, stage: str) -> int:
    """How many passports are in `stage`."""
    raw = state.get(stage_count_key(stage))
    return 0 if raw is None else int.from_bytes(raw, "big")


def is_in_second_life(state: StateReader, predecessor: str, stage: str) -> bool:
    """True for a passport at `stage` in its second life: open, not collected, its predecessor repurposed."""
    if not predecessor or stage not in SECOND_LIFE_STAGES:
        return False
    before = get_passport(state, predecessor)
    return before is not None and before.stage == STAGE_REPURPOSED


# -- writes shared by the handlers ---------------------------------------------------------------

def _add_to_stage(ctx: Context, stage: str, delta: int) -> None:
    count = get_stage_count(ctx.state, stage) + delta
    ctx.state.set(stage_count_key(stage), count.to_bytes(COUNT_BYTES, "big"))


def save_transition(ctx: Context, record: PassportRecord, event: str, actor: str, **changes) -> PassportRecord:
    """Move a passport to the event's stage, append the event to its history, count it."""
    stage = TRANSITIONS[event][1]
    entry = HistoryEntry(event, stage, actor, ctx.height)
    ctx.state.set(history_key(record.passport, record.history_len), encode(entry))
    if record.history_len:  # a new passport enters its first stage without leaving another
        _add_to_stage(ctx, record.stage, -1)
        ctx.state.delete(stage_index_key(record.stage, record.passport))
    _add_to_stage(ctx, stage, 1)
    ctx.state.set(stage_index_key(stage, record.passport), b"")
    if is_in_second_life(ctx.state, record.predecessor, stage):
        ctx.state.set(second_life_key(record.passport), b"")
    elif record.predecessor:
        ctx.state.delete(second_life_key(record.passport))
    record = msgspec.structs.replace(record, stage=stage, history_len=record.history_len + 1,
                                     updated_height=ctx.height, **changes)
    ctx.state.set(passport_key(record.passport), encode(record))
    ctx.emit("battery_" + event, passport=record.passport, stage=stage, actor=actor)
    return record


def require_actor(identity: Identity, ctx: Context, operator: str, role: str) -> None:
    """Raise unless the signer controls `operator` and governance accredited it for `role`."""
    if not is_did(operator):
        raise ERR_INVALID_PASSPORT(f"operator: expected a did:city DID, got {operator[:80]!r}", "operator")
    record = identity.get_did(ctx.state, operator)
    if record is None or record.controller != ctx.signer:
        raise ERR_WRONG_ROLE(f"operator: the transaction's signer does not control {operator}", "operator")
    if not identity.is_accredited(ctx.state, operator, role):
        raise ERR_WRONG_ROLE(f"operator: {operator} is not accredited as {role}", "operator")


def require_passport(ctx: Context, passport: str) -> PassportRecord:
    """The open passport `passport`; raise if it is malformed, unknown or closed."""
    check_passport_id(passport)
    record = get_passport(ctx.state, passport)
    if record is None:
        raise ERR_UNKNOWN_PASSPORT(f"passport: no passport {passport}", "passport")
    if record.stage in CLOSED_STAGES:
        succeeded = f" (its successor is {record.successor})" if record.successor else ""
        raise ERR_CLOSED(f"passport: {passport} is closed at stage {record.stage}{succeeded}; "
                         "it takes no further event", "passport")
    return record


def require_event(identity: Identity, ctx: Context, operator: str, passport: str, event: str) -> PassportRecord:
    """The open passport, once the operator's role and the passport's stage allow `event`."""
    record = require_passport(ctx, passport)
    allowed_from, _, role = TRANSITIONS[event]
    require_actor(identity, ctx, operator, role)
    if record.stage not in allowed_from:
        raise ERR_WRONG_STAGE(f"passport: {passport} is at stage {record.stage}; {event} needs one of "
                              f"{list(allowed_from)}", "passport")
    return record


def require_device(devices: Devices, ctx: Context, did: str, kind: str, maker: str, field: str) -> None:
    """Raise unless `did` is an active registered device of `kind` made by `maker`."""
    if not is_did(did):
        raise ERR_INVALID_PASSPORT(f"{field}: expected a did:city device DID, got {did[:80]!r}", field)
    device = devices.get_device(ctx.state, did)
    if device is None or device.kind != kind or device.status != STATUS_ACTIVE:
        raise ERR_UNKNOWN_DEVICE(f"{field}: {did} is not an active registered {kind} device", field)
    if device.manufacturer != maker:
        raise ERR_UNKNOWN_DEVICE(f"{field}: {did} was registered by {device.manufacturer}, not by {maker}", field)


def _check_new_identifiers(ctx: Context, passport: str, id_dmc: str, hashes: tuple[bytes, bytes, bytes],
                           reusable_dmc: str = "") -> None:
    """Raise unless a new passport's id, idDmc and initial document hashes are well formed and free."""
    field = "successor" if reusable_dmc else "passport"
    check_passport_id(passport, field)
    check_id_dmc(id_dmc)
    for value, tier in zip(hashes, ("public_hash", "legitimate_hash", "authority_hash")):
        check_hash(value, tier)
    if ctx.state.get(passport_key(passport)) is not None:
        raise ERR_PASSPORT_EXISTS(f"{field}: {passport} already exists", field)
    if id_dmc != reusable_dmc and ctx.state.get(id_dmc_key(id_dmc)) is not None:
        raise ERR_PASSPORT_EXISTS(f"id_dmc: {id_dmc!r} already identifies another battery", "id_dmc")


def _open_passport(ctx: Context, event: str, actor: str, passport: str, id_dmc: str, battery: str,
                   hashes: tuple[bytes, bytes, bytes], predecessor: str = "") -> None:
    """Write a new passport, its indexes and its first event."""
    public, legitimate, authority = ([DocumentVersion(value, ctx.height)] for value in hashes)
    record = PassportRecord(passport, id_dmc, battery, actor, "", "", predecessor, "",
                            Documents(authority, legitimate, public), 0, 0, "", ctx.height, ctx.height)
    ctx.state.set(id_dmc_key(id_dmc), passport.encode())
    ctx.state.set(battery_key(battery), passport.encode())
    save_transition(ctx, record, event, actor)


# -- handlers ------------------------------------------------------------------------------------

def process_register(identity: Identity, devices: Devices, ctx: Context, msg: RegisterPassport) -> None:
    """A manufacturer opens the first passport of a battery device it registered."""
    # Check: well-formed and unused identifiers; an accredited manufacturer acting through its DID.
    hashes = (msg.public_hash, msg.legitimate_hash, msg.authority_hash)
    _check_new_identifiers(ctx, msg.passport, msg.id_dmc, hashes)
    require_actor(identity, ctx, msg.operator, TRANSITIONS[EVENT_REGISTERED][2])
    # Check: the battery is an active battery device of this manufacturer, without a passport yet
    # (a repurposed or remanufactured battery gets its next passport by Repurpose/Remanufacture).
    require_device(devices, ctx, msg.battery, KIND_BATTERY, msg.operator, "battery")
    current = ctx.state.get(battery_key(msg.battery))
    if current is not None:
        raise ERR_PASSPORT_EXISTS(f"battery: {msg.battery} already has passport {current.decode()}", "battery")
    _open_passport(ctx, EVENT_REGISTERED, msg.operator, msg.passport, msg.id_dmc, msg.battery, hashes)


def process_place_on_market(identity: Identity, ctx: Context, msg: PlaceOnMarket) -> None:
    """The responsible manufacturer places the battery on the market."""
    record = require_event(identity, ctx, msg.operator, msg.passport, EVENT_PLACED_ON_MARKET)
    if record.operator != msg.operator:
        raise ERR_WRONG_ROLE(f"operator: {msg.passport} is the responsibility of {record.operator}", "operator")
    save_transition(ctx, record, EVENT_PLACED_ON_MARKET, msg.operator)


def process_install(identity: Identity, devices: Devices, ctx: Context, msg: Install) -> None:
    """A vehicle maker installs the battery in one of its own registered vehicles."""
    record = require_event(identity, ctx, msg.operator, msg.passport, EVENT_INSTALLED)
    require_device(devices, ctx, msg.vehicle, KIND_VEHICLE, msg.operator, "vehicle")
    save_transition(ctx, record, EVENT_INSTALLED, msg.operator, vehicle=msg.vehicle)


def process_report(devices: Devices, ctx: Context, msg: ReportHealth) -> None:
    """Store a state-of-health report commitment signed by the passport's own battery."""
    # Check: well formed; the passport is open and in service; the next sequence number.
    check_hash(msg.report_hash, "report_hash")
    if len(msg.signature) > MAX_SIGNATURE_BYTES:
        raise ERR_BAD_REPORT(f"signature: expected at most {MAX_SIGNATURE_BYTES} bytes", "signature")
    record = require_passport(ctx, msg.passport)
    if record.stage not in REPORTING_STAGES:
        raise ERR_WRONG_STAGE(f"passport: {msg.passport} is at stage {record.stage}; reports need one of "
                              f"{list(REPORTING_STAGES)}", "passport")
    if msg.sequence != record.report_count + 1:
        raise ERR_BAD_REPORT(f"sequence: expected {record.report_count + 1}, got {msg.sequence}", "sequence")
    if msg.sequence > MAX_REPORTS:
        raise ERR_BAD_REPORT(f"sequence: a passport holds at most {MAX_REPORTS} reports", "sequence")
    # Check: the battery's BMS signed it with the device's current key.
    payload = compute_report_payload(ctx.chain_id, msg.passport, msg.sequence, msg.report_hash)
    reason = devices.check_device_message(ctx.state, record.battery, payload, msg.signature)
    if reason is not None:
        raise ERR_BAD_REPORT(f"signature: {reason}", "signature")
    ctx.state.set(report_key(msg.passport, msg.sequence), encode(ReportCommitment(msg.sequence, msg.report_hash,
                                                                                  ctx.height)))
    record = msgspec.structs.replace(record, report_count=msg.sequence, updated_height=ctx.height)
    ctx.state.set(passport_key(msg.passport), encode(record))
    ctx.emit("battery_report", passport=msg.passport, sequence=msg.sequence, report_hash=msg.report_hash)


def process_repair(identity: Identity, ctx: Context, msg: Repair) -> None:
    """An accredited repairer records a repair of a battery in service."""
    record = require_event(identity, ctx, msg.operator, msg.passport, EVENT_REPAIRED)
    if record.history_len >= MAX_HISTORY:
        raise ERR_INVALID_PASSPORT(f"passport: holds at most {MAX_HISTORY} life-cycle events", "passport")
    save_transition(ctx, record, EVENT_REPAIRED, msg.operator)


def _process_successor(identity: Identity, devices: Devices, ctx: Context, msg: Repurpose | Remanufacture,
                       event: str) -> None:
    """Close a passport and open its successor for the same battery, with the actor responsible."""
    record = require_event(identity, ctx, msg.operator, msg.passport, event)
    hashes = (msg.public_hash, msg.legitimate_hash, msg.authority_hash)
    _check_new_identifiers(ctx, msg.successor, msg.id_dmc, hashes, reusable_dmc=record.id_dmc)
    # The same physical battery, still reporting with its own key: its device must still be active.
    device = devices.get_device(ctx.state, record.battery)
    if device is None or device.status != STATUS_ACTIVE:
        raise ERR_UNKNOWN_DEVICE(f"battery: {record.battery} is no longer an active device", "battery")
    save_transition(ctx, record, event, msg.operator, successor=msg.successor)
    _open_passport(ctx, EVENT_SUCCEEDED, msg.operator, msg.successor, msg.id_dmc, record.battery, hashes,
                   predecessor=record.passport)


def process_repurpose(identity: Identity, devices: Devices, ctx: Context, msg: Repurpose) -> None:
    """A second-life operator repurposes the battery: the old passport closes, a successor opens."""
    _process_successor(identity, devices, ctx, msg, EVENT_REPURPOSED)


def process_remanufacture(identity: Identity, devices: Devices, ctx: Context, msg: Remanufacture) -> None:
    """A remanufacturer remanufactures the battery: the old passport closes, a successor opens."""
    _process_successor(identity, devices, ctx, msg, EVENT_REMANUFACTURED)


def process_collect(identity: Identity, ctx: Context, msg: Collect) -> None:
    """An accredited recycler collects the battery: it becomes waste."""
    record = require_event(identity, ctx, msg.operator, msg.passport, EVENT_COLLECTED)
    save_transition(ctx, record, EVENT_COLLECTED, msg.operator)


def process_update_document(identity: Identity, ctx: Context, msg: UpdateDocument) -> None:
    """The responsible operator adds a version of one tier's document (versions only grow)."""
    # Check: well formed; the sender acts for the passport's responsible operator; the next version.
    if msg.tier not in TIERS:
        raise ERR_INVALID_PASSPORT(f"tier: expected one of {list(TIERS)}, got {msg.tier[:80]!r}", "tier")
    check_hash(msg.document_hash, "document_hash")
    record = require_passport(ctx, msg.passport)
    operator = identity.get_did(ctx.state, msg.operator) if is_did(msg.operator) else None
    if msg.operator != record.operator or operator is None or operator.controller != ctx.signer:
        raise ERR_WRONG_ROLE(f"operator: only the controller of {record.operator} updates {msg.passport}", "operator")
    versions: list[DocumentVersion] = getattr(record.documents, msg.tier)
    if msg.version != len(versions) + 1:
        raise ERR_DOCUMENT_VERSION(f"version: expected {len(versions) + 1}, got {msg.version}", "version")
    if len(versions) >= MAX_DOCUMENT_VERSIONS:
        raise ERR_DOCUMENT_VERSION(f"version: a tier holds at most {MAX_DOCUMENT_VERSIONS} versions", "version")
    documents = msgspec.structs.replace(record.documents,
                                        **{msg.tier: versions + [DocumentVersion(msg.document_hash, ctx.height)]})
    record = msgspec.structs.replace(record, documents=documents, updated_height=ctx.height)
    ctx.state.set(passport_key(msg.passport), encode(record))
    ctx.emit("battery_document", passport=msg.passport, tier=msg.tier, version=msg.version,
             document_hash=msg.document_hash)
