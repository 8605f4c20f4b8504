"""Consent queries: data sets, consents (all, or active at a height), the validity rule, anchors.

Lists are paged: at most MAX_LIST_RESULTS items after {'after'} (an id, sequence number or
interval), with 'next' the value to pass for the following page (null on the last one).
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable

from ...core.state import StateReader
from ...core.types import address_to_str
from ..identity.did import is_did
from .anchors import get_gateway_root, get_log_head, iter_gateway_roots, iter_log_anchors, iter_records_roots
from .expected import Identity
from .handlers import find_valid_consent, get_consent, get_data_set, is_valid_at, iter_consumer_consents, \
    iter_data_set_consents
from .messages import MAX_LIST_RESULTS, AccessLogAnchor, ConsentRecord, DataSetRecord, GatewayRoot, RecordsRoot

MAX_QUERY_NUMBER = 2**63 - 1


def _number(args: dict[str, str], name: str, default: int | None = None) -> int:
    """A non-negative decimal argument, or ValueError naming it."""
    text = args.get(name)
    if text is None and default is not None:
        return default
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 19 \
            or int(text) > MAX_QUERY_NUMBER:
        raise ValueError(f"{name}: expected a decimal number from 0 to {MAX_QUERY_NUMBER}, got {str(text)[:40]!r}")
    return int(text)


def _page(items: Iterable[Any], render, key) -> dict[str, Any]:
    """At most MAX_LIST_RESULTS rendered items, and the 'after' of the next page."""
    taken = list(islice(items, MAX_LIST_RESULTS + 1))
    more = len(taken) > MAX_LIST_RESULTS
    taken = taken[:MAX_LIST_RESULTS]
    return {"items": [render(item) for item in taken], "next": key(taken[-1]) if more else None}


def render_data_set(record: DataSetRecord) -> dict[str, Any]:
    """A data set as queries answer it; the owner appears as a pseudonymous 'city…' account."""
    return {"id": record.id, "owner": address_to_str(record.owner), "owner_did": record.owner_did or None,
            "schema_id": record.schema_id, "commitment": record.commitment.hex(), "device": record.device,
            "gateway": record.gateway, "consents": record.consents, "last_interval": record.last_interval,
            "registered_height": record.registered_height}


def render_consent(record: ConsentRecord) -> dict[str, Any]:
    """A consent as queries answer it."""
    return {"id": record.id, "data_set": record.data_set, "consumer": record.consumer, "purpose": record.purpose,
            "from_height": record.from_height, "to_height": record.to_height,
            "expiry_height": record.expiry_height, "granted_height": record.granted_height,
            "revoked_height": record.revoked_height or None}


def render_anchor(record: AccessLogAnchor) -> dict[str, Any]:
    """An access-log anchor as queries answer it."""
    return {"service": record.service, "subject": record.subject, "seq": record.seq, "head": record.head.hex(),
            "count": record.count, "previous": record.previous.hex(), "height": record.height}


def render_root(record: RecordsRoot) -> dict[str, Any]:
    """A records root as queries answer it."""
    return {"data_set": record.data_set, "interval": record.interval, "root": record.root.hex(),
            "count": record.count, "anchored_by": record.anchored_by, "height": record.height}


def render_gateway_root(record: GatewayRoot) -> dict[str, Any]:
    """A gateway's fleet-wide records root as queries answer it."""
    return {"gateway": record.gateway, "interval": record.interval, "root": record.root.hex(),
            "count": record.count, "height": record.height}


def query_data_set(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A data set by {'id'}."""
    record = get_data_set(state, args.get("id", ""))
    if record is None:
        raise LookupError(f"id: no data set {args.get('id', '')[:80]!r}")
    return render_data_set(record)


def query_consent(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A consent by {'id'}."""
    record = get_consent(state, _number(args, "id"))
    if record is None:
        raise LookupError(f"id: no consent {args.get('id')}")
    return render_consent(record)


def _consents(items: Iterable[ConsentRecord], args: dict[str, str]) -> dict[str, Any]:
    """A page of consents, only those valid at {'height'} when it is given."""
    if "height" in args:
        height = _number(args, "height")
        items = (c for c in items if is_valid_at(c, height))
    return _page(items, render_consent, lambda c: c.id)


def query_data_set_consents(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A data set's consents by {'data_set'}, optionally only those active at {'height'}; paged by {'after'}."""
    data_set = args.get("data_set", "")
    if get_data_set(state, data_set) is None:
        raise LookupError(f"data_set: no data set {data_set[:80]!r}")
    return _consents(iter_data_set_consents(state, data_set, _number(args, "after", 0)), args)


def query_consumer_consents(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A consumer DID's consents by {'consumer'}, optionally only those active at {'height'}; paged by {'after'}."""
    return _consents(iter_consumer_consents(state, args.get("consumer", ""), _number(args, "after", 0)), args)


def query_valid(identity: Identity, state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """May {'consumer'} read {'data_set'} for {'purpose'} at {'height'}? The consent and its period if so."""
    consent = find_valid_consent(identity, state, args.get("data_set", ""), args.get("consumer", ""),
                                 args.get("purpose", ""), _number(args, "height"))
    return {"valid": consent is not None, "consent": None if consent is None else render_consent(consent)}


def query_access_log(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The anchors of the {'service'}, {'subject'} access log, oldest first, paged by {'after'}; and its head."""
    service, subject = args.get("service", ""), args.get("subject", "")
    page = _page(iter_log_anchors(state, service, subject, _number(args, "after", 0)), render_anchor,
                 lambda a: a.seq)
    head = get_log_head(state, service, subject)
    return page | {"head": None if head is None else render_anchor(head)}


def query_records_roots(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A data set's records roots by {'data_set'}, by interval, paged by {'after'}."""
    data_set = args.get("data_set", "")
    if get_data_set(state, data_set) is None:
        raise LookupError(f"data_set: no data set {data_set[:80]!r}")
    return _page(iter_records_roots(state, data_set, _number(args, "after", 0)), render_root, lambda r: r.interval)


def query_gateway_root(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A gateway's fleet-wide records root for one interval by {'gateway', 'interval'}: one key read
    (an owner's inclusion proof checks against it, however many intervals the gateway anchored)."""
    gateway, interval = args.get("gateway", ""), _number(args, "interval")
    if not is_did(gateway):
        raise ValueError(f"gateway: expected a did:city DID, got {gateway[:80]!r}")
    record = get_gateway_root(state, gateway, interval)
    if record is None:
        raise LookupError(f"interval: no root of {gateway[:80]} for interval {interval}")
    return render_gateway_root(record)


def query_gateway_roots(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A gateway's fleet-wide records roots by {'gateway'}, by interval, paged by {'after'}."""
    return _page(iter_gateway_roots(state, args.get("gateway", ""), _number(args, "after", 0)), render_gateway_root,
                 lambda r: r.interval)
