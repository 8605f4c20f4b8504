"""Anchoring the passport service's access log on chain: each anchor follows the passport's last one.

The passport service (offchain/passport) logs every read of a restricted tier in a hash chain; the
passport's responsible operator anchors that chain's head here, so a log later shortened, changed
or reordered no longer reaches the anchored head. Anchors of one passport form a chain of their own:
each names the head it follows (ZERO_HEAD at first) and a larger entry count.
"""

from __future__ import annotations

from ...core.encoding import decoder, encode
from ...core.errors import InvariantBroken
from ...core.state import StateReader
from ..base import Context
from ..identity.did import is_did
from .errors import ERR_LOG_ANCHOR, ERR_UNKNOWN_PASSPORT, ERR_WRONG_ROLE
from .expected import Identity
from .handlers import check_hash, check_passport_id, get_passport
from .keys import (log_anchor_key, log_last_key, log_root_key, log_root_last_key, report_root_key,
                   report_root_last_key)
from .messages import (HASH_LEN, MAX_LOG_ANCHORS, MAX_LOG_COUNT, MAX_LOG_ROOT_LEAVES, MAX_LOG_ROOTS,
                       MAX_REPORT_ROOT_LEAVES, ROLE_PASSPORT_SERVICE, ZERO_HEAD, AnchorAccessLog, AnchorLogRoot,
                       AnchorReportRoot, LogAnchor, LogRoot, PassportRecord)

_ANCHOR = decoder(LogAnchor)
_ROOT = decoder(LogRoot)


def get_last_anchor(state: StateReader, passport: str) -> LogAnchor | None:
    """A passport's latest access-log anchor, or None before the first."""
    raw = state.get(log_last_key(passport))
    return None if raw is None else _ANCHOR.decode_lenient(raw)


def get_anchor(state: StateReader, passport: str, index: int) -> LogAnchor | None:
    """A passport's index-th access-log anchor (1-based), or None."""
    raw = state.get(log_anchor_key(passport, index)) if 0 < index <= MAX_LOG_ANCHORS else None
    return None if raw is None else _ANCHOR.decode_lenient(raw)


def process_anchor_log(identity: Identity, ctx: Context, msg: AnchorAccessLog) -> None:
    """Record the access log's head for a passport, after the passport's last anchored head."""
    # Check: well formed, before any read.
    check_hash(msg.head, "head")
    check_hash(msg.previous, "previous")
    if not 1 <= msg.count <= MAX_LOG_COUNT:
        raise ERR_LOG_ANCHOR(f"count: expected 1 to {MAX_LOG_COUNT}, got {msg.count}", "count")
    # Check: the passport exists (a closed passport's log is still read and anchored).
    check_passport_id(msg.passport)
    record = get_passport(ctx.state, msg.passport)
    if record is None:
        raise ERR_UNKNOWN_PASSPORT(f"passport: no passport {msg.passport}", "passport")
    # Check: the sender controls the passport's responsible operator, as for a document update.
    operator = identity.get_did(ctx.state, msg.operator) if is_did(msg.operator) else None
    if msg.operator != record.operator or operator is None or operator.controller != ctx.signer:
        raise ERR_WRONG_ROLE(f"operator: only the controller of {record.operator} anchors {msg.passport}'s log",
                             "operator")
    # Check: this anchor follows the last one, and the log grew since.
    last = get_last_anchor(ctx.state, msg.passport)
    expected = ZERO_HEAD if last is None else last.head
    if msg.previous != expected:
        raise ERR_LOG_ANCHOR(f"previous: expected the last anchored head {expected.hex()}, got {msg.previous.hex()}",
                             "previous")
    if last is not None and msg.count <= last.count:
        raise ERR_LOG_ANCHOR(f"count: expected more than the last anchored {last.count}, got {msg.count}", "count")
    index = 1 if last is None else last.index + 1
    if index > MAX_LOG_ANCHORS:
        raise ERR_LOG_ANCHOR(f"passport: holds at most {MAX_LOG_ANCHORS} log anchors", "passport")
    anchor = encode(LogAnchor(index, msg.head, msg.count, msg.previous, ctx.height))
    ctx.state.set(log_anchor_key(msg.passport, index), anchor)
    ctx.state.set(log_last_key(msg.passport), anchor)
    ctx.emit("battery_log_anchored", passport=msg.passport, index=index, head=msg.head, count=msg.count)


def check_anchors(state: StateReader, record: PassportRecord) -> None:
    """Raise unless a passport's anchors are gapless, each following the previous head with a larger count."""
    last = get_last_anchor(state, record.passport)
    if last is None:
        return
    if last.index > MAX_LOG_ANCHORS or state.get(log_anchor_key(record.passport, last.index)) != encode(last):
        raise InvariantBroken(f"batteries: {record.passport}'s latest log anchor is not its anchor {last.index}")
    if last.index < MAX_LOG_ANCHORS and get_anchor(state, record.passport, last.index + 1) is not None:
        raise InvariantBroken(f"batteries: {record.passport} has a log anchor past its latest")
    previous, count = ZERO_HEAD, 0
    for index in range(1, last.index + 1):
        anchor = get_anchor(state, record.passport, index)
        if anchor is None or anchor.index != index or anchor.previous != previous or anchor.count <= count \
                or len(anchor.head) != len(ZERO_HEAD):
            raise InvariantBroken(f"batteries: {record.passport}'s log anchor {index} does not follow anchor "
                                  f"{index - 1}")
        previous, count = anchor.head, anchor.count


def get_log_root(state: StateReader, service: str, seq: int | None = None) -> LogRoot | None:
    """A passport service's anchored log root `seq` (default: its latest), or None."""
    return _get_root(state, log_root_key, log_root_last_key, service, seq)


def get_report_root(state: StateReader, service: str, seq: int | None = None) -> LogRoot | None:
    """A passport service's committed SoH report batch root `seq` (default: its latest), or None."""
    return _get_root(state, report_root_key, report_root_last_key, service, seq)


def _get_root(state: StateReader, key, last_key, service: str, seq: int | None) -> LogRoot | None:
    if seq is None:
        raw = state.get(last_key(service))
    else:
        raw = state.get(key(service, seq)) if 0 < seq <= MAX_LOG_ROOTS else None
    return None if raw is None else _ROOT.decode_lenient(raw)


def process_anchor_log_root(identity: Identity, ctx: Context, msg: AnchorLogRoot) -> None:
    """Record one root over a passport service's moved log heads, the service's next in sequence."""
    _record_root(identity, ctx, msg, MAX_LOG_ROOT_LEAVES, log_root_key, log_root_last_key, "battery_log_root_anchored")


def process_anchor_report_root(identity: Identity, ctx: Context, msg: AnchorReportRoot) -> None:
    """Record one root over a batch of SoH reports the service verified, the service's next in sequence."""
    _record_root(identity, ctx, msg, MAX_REPORT_ROOT_LEAVES, report_root_key, report_root_last_key,
                 "battery_report_root_committed")


def _record_root(identity: Identity, ctx: Context, msg: AnchorLogRoot | AnchorReportRoot, max_size: int, key,
                 last_key, event: str) -> None:
    """The shared checks and writes of a service's numbered roots."""
    # Check: well formed, before any read.
    if len(msg.root) != HASH_LEN:
        raise ERR_LOG_ANCHOR(f"root: expected {HASH_LEN} bytes, got {len(msg.root)}", "root")
    if not 1 <= msg.size <= max_size:
        raise ERR_LOG_ANCHOR(f"size: expected 1 to {max_size}, got {msg.size}", "size")
    # Check: an accredited passport service, signed by its DID's controller.
    service = identity.get_did(ctx.state, msg.service) if is_did(msg.service) else None
    if service is None or not identity.is_accredited(ctx.state, msg.service, ROLE_PASSPORT_SERVICE):
        raise ERR_WRONG_ROLE(f"service: {msg.service[:80]!r} is not accredited for {ROLE_PASSPORT_SERVICE!r}",
                             "service")
    if service.controller != ctx.signer:
        raise ERR_WRONG_ROLE(f"service: the signer does not control {msg.service}", "service")
    # Check: the service's next root, so a replayed or skipped one is refused.
    last = _get_root(ctx.state, key, last_key, msg.service, None)
    expected = 1 if last is None else last.seq + 1
    if msg.seq != expected or msg.seq > MAX_LOG_ROOTS:
        raise ERR_LOG_ANCHOR(f"seq: expected {expected}, the service's next root, got {msg.seq}", "seq")
    root = encode(LogRoot(msg.seq, msg.root, msg.size, ctx.height))
    ctx.state.set(key(msg.service, msg.seq), root)
    ctx.state.set(last_key(msg.service), root)
    ctx.emit(event, service=msg.service, seq=msg.seq, root=msg.root, size=msg.size)
