"""The access log: every read of a restricted tier, one hash chain per passport, its head anchored on chain.

Each passport has a log of its own: entry n of passport P hashes its fields (P and n among them)
and entry n-1's hash, so dropping, changing or reordering any entry changes every later hash of
P's chain and nothing else: reads of other passports never move P's head. The heads are anchored
on chain (anchoring.py): a Merkle root over the heads that moved, one per interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .tiers import canonical_json
from .types import AccessEntry, LogBroken

GENESIS_HEX = "00" * 32  # the `prev` of every passport's first entry
LOG_DOMAIN = "cityledger/passport-access/2"  # /2: per-passport chains (/1 chained the whole node)


def compute_entry_hash(seq: int, passport_id: str, tier: str, version: int, reader_did: str,
                       height: int, time_s: int, prev_hex: str) -> str:
    """SHA-256 (hex) of one entry's canonical JSON, chained to `prev_hex`."""
    body = {"domain": LOG_DOMAIN, "seq": seq, "passport_id": passport_id, "tier": tier,
            "version": version, "reader_did": reader_did, "height": height, "time_s": time_s,
            "prev": prev_hex}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def verify_chain(entries: Iterable[AccessEntry], prev_hex: str = GENESIS_HEX, first_seq: int = 1,
                 passport_id: str | None = None) -> str:
    """The head hash of one passport's `entries` read in order from `first_seq` after `prev_hex`; raise LogBroken."""
    expected_seq = first_seq
    for entry in entries:
        if passport_id is None:
            passport_id = entry.passport_id
        if entry.passport_id != passport_id:
            raise LogBroken("passport_id", f"entry {entry.seq} belongs to passport {entry.passport_id}, "
                                           f"not {passport_id}")
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
