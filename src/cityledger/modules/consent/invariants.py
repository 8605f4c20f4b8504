"""Consent invariants: consents reference existing data sets and are indexed exactly once, data
sets name registered devices, every access log's anchors form an unbroken chain, and each gateway's
fleet-wide roots have increasing intervals, the last of them recorded as its last interval."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from ...core.types import ADDRESS_LEN, HASH_LEN
from .anchors import decode_anchor, decode_gateway_root, decode_root, get_gateway_last_interval
from .expected import Devices
from .handlers import compute_data_set_id, decode_consent, decode_data_set, get_data_set
from .keys import (
    BY_CONSUMER_PREFIX,
    BY_DATA_SET_PREFIX,
    CONSENTS_PREFIX,
    DATA_SETS_PREFIX,
    GATEWAY_LASTS_PREFIX,
    GATEWAY_ROOTS_PREFIX,
    LOG_ANCHORS_PREFIX,
    RECORDS_ROOTS_PREFIX,
    VAULT_KEYS_PREFIX,
    by_consumer_key,
    by_data_set_key,
    by_data_set_prefix,
)
from .messages import PURPOSES, ZERO_HEAD
from .vaultkeys import decode_vault_key, is_usable_vault_key, is_vault_subject


def check_data_sets(devices: Devices, state: PrefixReader) -> None:
    """Raise InvariantBroken on a data set whose id, owner, device or consent count disagree."""
    for _, raw in state.iter_prefix(DATA_SETS_PREFIX):
        record = decode_data_set(raw)
        if record.id != compute_data_set_id(record.owner, record.device, record.schema_id, record.commitment):
            raise InvariantBroken(f"consent: data set {record.id} does not have its derived id")
        if len(record.owner) != ADDRESS_LEN or len(record.commitment) != HASH_LEN:
            raise InvariantBroken(f"consent: data set {record.id} has a malformed owner or commitment")
        if devices.get_device(state, record.device) is None:
            raise InvariantBroken(f"consent: data set {record.id} names unregistered device {record.device}")
        granted = sum(1 for _ in state.iter_prefix(by_data_set_prefix(record.id)))
        if granted != record.consents:
            raise InvariantBroken(f"consent: data set {record.id} counts {record.consents} consents, has {granted}")


def check_consents(state: PrefixReader) -> None:
    """Raise InvariantBroken on a consent without its data set, its indexes, or a sane period."""
    count = 0
    for _, raw in state.iter_prefix(CONSENTS_PREFIX):
        consent = decode_consent(raw)
        count += 1
        if get_data_set(state, consent.data_set) is None:
            raise InvariantBroken(f"consent: consent {consent.id} names unknown data set {consent.data_set}")
        if state.get(by_data_set_key(consent.data_set, consent.id)) is None \
                or state.get(by_consumer_key(consent.consumer, consent.id)) is None:
            raise InvariantBroken(f"consent: consent {consent.id} is missing from an index")
        if consent.purpose not in PURPOSES:
            raise InvariantBroken(f"consent: consent {consent.id} has purpose {consent.purpose!r}")
        if not 1 <= consent.from_height <= consent.to_height <= consent.expiry_height \
                or consent.granted_height >= consent.expiry_height \
                or (consent.revoked_height and consent.revoked_height < consent.granted_height):
            raise InvariantBroken(f"consent: consent {consent.id} has an impossible period or life")
    for prefix in (BY_DATA_SET_PREFIX, BY_CONSUMER_PREFIX):
        indexed = sum(1 for _ in state.iter_prefix(prefix))
        if indexed != count:
            raise InvariantBroken(f"consent: {indexed} index entries for {count} consents")


def check_anchors(state: PrefixReader) -> None:
    """Raise InvariantBroken on an access log whose anchors do not link, or a root past its data set."""
    last: dict[tuple[str, str], tuple[int, bytes, int]] = {}
    for _, raw in state.iter_prefix(LOG_ANCHORS_PREFIX):  # keys sort each chain by sequence number
        anchor = decode_anchor(raw)
        seq, head, count = last.get((anchor.service, anchor.subject), (0, ZERO_HEAD, 0))
        if (anchor.seq, anchor.previous) != (seq + 1, head) or anchor.count <= count:
            raise InvariantBroken(f"consent: the access log of {anchor.service} for {anchor.subject} is broken "
                                  f"at anchor {anchor.seq}")
        last[(anchor.service, anchor.subject)] = (anchor.seq, anchor.head, anchor.count)
    for _, raw in state.iter_prefix(RECORDS_ROOTS_PREFIX):
        root = decode_root(raw)
        data_set = get_data_set(state, root.data_set)
        if data_set is None or root.interval > data_set.last_interval:
            raise InvariantBroken(f"consent: records root {root.interval} of {root.data_set} is past its data set")


def check_gateway_roots(state: PrefixReader) -> None:
    """Raise InvariantBroken unless each gateway's roots have increasing intervals up to its last one."""
    last: dict[str, int] = {}
    for _, raw in state.iter_prefix(GATEWAY_ROOTS_PREFIX):  # keys sort each gateway's roots by interval
        root = decode_gateway_root(raw)
        if root.interval <= last.get(root.gateway, 0) or len(root.root) != HASH_LEN or root.count < 1:
            raise InvariantBroken(f"consent: gateway {root.gateway} root of interval {root.interval} does not "
                                  f"increase or is malformed")
        last[root.gateway] = root.interval
    for gateway, interval in last.items():
        if get_gateway_last_interval(state, gateway) != interval:
            raise InvariantBroken(f"consent: gateway {gateway} records a last interval other than {interval}")
    if sum(1 for _ in state.iter_prefix(GATEWAY_LASTS_PREFIX)) != len(last):
        raise InvariantBroken("consent: a gateway's last interval without its roots")


def check_vault_keys(state: PrefixReader) -> None:
    """Raise InvariantBroken on a vault key that is not usable or filed under a malformed subject."""
    for _, raw in state.iter_prefix(VAULT_KEYS_PREFIX):
        record = decode_vault_key(raw)
        if not is_vault_subject(record.subject) or not is_usable_vault_key(record.key):
            raise InvariantBroken(f"consent: the vault key of {record.subject[:80]!r} is malformed")
