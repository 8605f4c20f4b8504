"""Anchoring the passports' access logs: one Merkle root per interval over the heads that moved.

Each passport's log is a chain of its own (accesslog.py). Once per interval (ANCHOR_INTERVAL_S,
the node's [passports] anchor_interval_s) the service takes every passport whose head moved since
it was last anchored, in passport-id order, makes one leaf per passport,
SHA-256(LEAF_DOMAIN || passport id || 0x00 || count || head), and anchors the RFC 9162 Merkle root
of those leaves (offchain/telemetry/anchor.py) with batteries/1.0/anchor_log_root: one transaction
per interval whatever the number of reads or passports. A passport's owner or operator gets the
log's entries and, for every anchor that covered the passport, its leaf and inclusion proof
(`HeadProof`); `verify_log_against_anchors` checks both against the roots on chain, so an entry
omitted, changed or reordered after an anchor is found.

Crash safety: the next anchor (sequence number, root, leaves) is written to the store before it is
sent and marked confirmed only once the chain holds it; after a crash the same anchor is sent again
or, if the chain already holds it, only confirmed. The chain refuses any sequence but the next, so
an anchor is never recorded twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from ...core.hashing import sha256
from ..telemetry.anchor import InclusionProof, compute_inclusion_proof, compute_records_root, is_included
from .types import AccessEntry, LogBroken

log = logging.getLogger("cityledger.passport.anchoring")

ANCHOR_INTERVAL_S = 60  # default seconds between two anchors of the node's passport logs
MAX_ANCHOR_INTERVAL_S = 86_400  # at most a day between anchors
MAX_ANCHOR_LEAVES = 1 << 16  # passports one root covers; the rest wait for the next interval
LEAF_DOMAIN = b"cityledger/passport-log-head/1\x00"


@dataclass(frozen=True)
class HeadLeaf:
    """A passport's log head as one anchor covers it."""

    passport_id: str
    count: int
    head: str  # hex


@dataclass(frozen=True)
class PendingAnchor:
    """An anchor prepared in the store: its sequence number, its root and its leaves in order."""

    seq: int
    root: bytes
    leaves: list[HeadLeaf]


@dataclass(frozen=True)
class HeadProof:
    """That a passport's head (after `count` entries) is leaf `index` of the `size` under anchor `seq`'s root."""

    seq: int
    height: int
    passport_id: str
    count: int
    head: str
    index: int
    size: int
    path: tuple[str, ...]  # sibling hashes, hex


def compute_leaf_id(leaf: HeadLeaf) -> bytes:
    """The 32-byte id of one head, the Merkle tree's record."""
    return sha256(LEAF_DOMAIN + leaf.passport_id.encode() + b"\x00" + leaf.count.to_bytes(8, "big")
                  + bytes.fromhex(leaf.head))


def compute_heads_root(leaves: list[HeadLeaf]) -> bytes:
    """The Merkle root over the heads, in the given order."""
    return compute_records_root([compute_leaf_id(leaf) for leaf in leaves])


def compute_head_proof(seq: int, height: int, leaves: list[HeadLeaf], passport_id: str) -> HeadProof:
    """The proof of `passport_id`'s leaf among one anchor's leaves."""
    index = next(i for i, leaf in enumerate(leaves) if leaf.passport_id == passport_id)
    proof = compute_inclusion_proof([compute_leaf_id(leaf) for leaf in leaves], index)
    leaf = leaves[index]
    return HeadProof(seq, height, passport_id, leaf.count, leaf.head, index, proof.size,
                     tuple(step.hex() for step in proof.path))


def is_head_anchored(proof: HeadProof, root: bytes, size: int) -> bool:
    """True if the proof's head is under `root`, an anchor of `size` leaves (what the chain holds)."""
    try:
        path = tuple(bytes.fromhex(step) for step in proof.path)
        leaf = compute_leaf_id(HeadLeaf(proof.passport_id, proof.count, proof.head))
    except (ValueError, OverflowError):
        return False
    return proof.size == size and is_included(root, leaf, InclusionProof(proof.index, proof.size, path))


def verify_log_against_anchors(entries: list[AccessEntry], proofs: list[HeadProof],
                               roots: dict[int, tuple[bytes, int]]) -> int:
    """Check a passport's whole log against its anchors (roots: seq -> (root, size) from the chain).

    `entries` must already re-hash as a chain (accesslog.verify_chain). Raise LogBroken naming the
    first anchor the log does not reach; answer how many entries the anchors cover.
    """
    covered = 0
    for proof in proofs:
        root, size = roots.get(proof.seq, (b"", 0))
        if not is_head_anchored(proof, root, size):
            raise LogBroken("proof", f"anchor {proof.seq}: the head is not under the root on chain")
        if proof.count > len(entries) or entries[proof.count - 1].hash_hex != proof.head:
            raise LogBroken("entries", f"anchor {proof.seq} covers {proof.count} entries ending in {proof.head}; "
                                       f"the log served does not reach that head (an entry omitted or changed)")
        if proof.count < covered:
            raise LogBroken("proof", f"anchor {proof.seq} covers fewer entries than the one before it")
        covered = proof.count
    return covered


class AnchorChain(Protocol):
    """The ledger as the anchorer uses it: this service's anchors and how to send the next one."""

    def root_at(self, seq: int) -> tuple[bytes, int] | None:
        """(root, height) of this service's anchor `seq` on chain, or None."""
        ...

    def last_seq(self) -> int:
        """This service's last anchor sequence on chain (0 before the first)."""
        ...

    def send(self, seq: int, root: bytes, size: int) -> int:
        """Commit anchor `seq`; the height it landed at (raise if refused)."""
        ...


class AnchorStore(Protocol):
    """What the anchorer needs of the PassportStore."""

    def prepare_anchor(self, max_leaves: int) -> PendingAnchor | None: ...

    def confirm_anchor(self, seq: int, height: int) -> None: ...


def commit_root(chain: AnchorChain, seq: int, root: bytes, size: int) -> int:
    """Put root `seq` on chain unless it is there already (a crash after sending); the height it is at."""
    last = chain.last_seq()
    if last >= seq:
        on_chain = chain.root_at(seq)
        if on_chain is None or on_chain[0] != root:
            raise RuntimeError(f"root {seq}: the chain holds another root; the store and the chain disagree "
                               "(another service key?)")
        return on_chain[1]  # sent before a crash: only the confirmation was lost
    if last != seq - 1:
        raise RuntimeError(f"root {seq}: the chain's last root is {last}, expected {seq - 1}")
    return chain.send(seq, root, size)


class LogAnchorer:
    """Anchors the heads that moved, once per call of anchor_once (run: once per interval)."""

    def __init__(self, store: AnchorStore, chain: AnchorChain, max_leaves: int = MAX_ANCHOR_LEAVES) -> None:
        self.store, self.chain, self.max_leaves = store, chain, max_leaves

    def anchor_once(self) -> PendingAnchor | None:
        """Send (or, after a crash, only confirm) the pending anchor; the anchor, or None if no head moved."""
        pending = self.store.prepare_anchor(self.max_leaves)
        if pending is None:
            return None
        height = commit_root(self.chain, pending.seq, pending.root, len(pending.leaves))
        self.store.confirm_anchor(pending.seq, height)
        return pending

    def run(self, interval_s: float, stop: threading.Event) -> None:
        """anchor_once every `interval_s` until `stop` is set; failures are logged and retried."""
        while not stop.wait(interval_s):
            try:
                while (done := self.anchor_once()) is not None and len(done.leaves) >= self.max_leaves:
                    pass  # more heads moved than one root covers: the rest now, not an interval later
            except Exception:  # a background thread has no caller: log, retry at the next interval
                log.exception("passport log anchoring failed; retrying in %s s", interval_s)
