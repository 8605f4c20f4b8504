"""The access log: every read of a restricted tier, hash-chained so that its head can be anchored on chain.

Entry n's hash covers its fields and entry n-1's hash, so dropping, changing or reordering any entry
changes every later hash, and the head anchored on chain no longer matches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .tiers import canonical_json
from .types import AccessEntry, LogBroken

GENESIS_HEX = "00" * 32
LOG_DOMAIN = "cityledger/passport-access/1"


def compute_entry_hash(seq: int, passport_id: str, tier: str, version: int, reader_did: str,
                       height: int, time_s: int, prev_hex: str) -> str:
    """SHA-256 (hex) of one entry's canonical JSON, chained to `prev_hex`."""
    body = {"domain": LOG_DOMAIN, "seq": seq, "passport_id": passport_id, "tier": tier,
            "version": version, "reader_did": reader_did, "height": height, "time_s": time_s,
            "prev": prev_hex}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def verify_chain(entries: Iterable[AccessEntry], prev_hex: str = GENESIS_HEX, first_seq: int = 1) -> str:
    """The head hash of `entries` read in order from `first_seq` after `prev_hex`; raise LogBroken."""
    expected_seq = first_seq
    for entry in entries:
        if entry.seq != expected_seq:
            raise LogBroken("seq", f"entry {entry.seq} found where entry {expected_seq} belongs")
        if entry.prev_hex != prev_hex:
            raise LogBroken("prev", f"entry {entry.seq} does not follow the hash of entry {entry.seq - 1}")
        recomputed = compute_entry_hash(entry.seq, entry.passport_id, entry.tier, entry.version,
                                        entry.reader_did, entry.height, entry.time_s, entry.prev_hex)
        if recomputed != entry.hash_hex:
            raise LogBroken("hash", f"entry {entry.seq} does not hash to its recorded hash")
        prev_hex, expected_seq = entry.hash_hex, expected_seq + 1
    return prev_hex
