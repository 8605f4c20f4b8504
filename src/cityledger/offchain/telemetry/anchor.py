"""One Merkle root over the records of an interval, and inclusion proofs against it.

The tree is RFC 9162's (Certificate Transparency v2): leaves hashed as SHA-256(0x00 || record id),
inner nodes as SHA-256(0x01 || left || right), the left subtree holding the largest power of two
below the count. Leaves and nodes cannot be confused, and a proof is at most log2(n) hashes.
The gateway anchors one root per interval; an owner keeps a record's proof to show later that the
record existed then, even after its keys were erased (the record id does not depend on them).
A proof carries the count of records it was made for, and RFC 9162 binds that count only through
the proof's shape: the anchor must record the count beside the root.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.hashing import sha256
from ...core.types import HASH_LEN

MAX_RECORDS_PER_ROOT = 1 << 24  # records one interval's root may cover
MAX_PROOF_HASHES = 64

_LEAF = b"\x00"
_NODE = b"\x01"


@dataclass(frozen=True)
class InclusionProof:
    """Where a record sits among the interval's records, and the sibling hashes up to the root."""

    index: int
    size: int
    path: tuple[bytes, ...]


def compute_leaf_hash(record_id: bytes) -> bytes:
    """The leaf of a record."""
    return sha256(_LEAF + record_id)


def _node(left: bytes, right: bytes) -> bytes:
    return sha256(_NODE + left + right)


def _check_ids(record_ids: list[bytes]) -> None:
    if len(record_ids) > MAX_RECORDS_PER_ROOT:
        raise ValueError(f"record_ids: expected at most {MAX_RECORDS_PER_ROOT}, got {len(record_ids)}")
    for index, record_id in enumerate(record_ids):
        if not isinstance(record_id, bytes) or len(record_id) != HASH_LEN:
            raise ValueError(f"record_ids[{index}]: expected {HASH_LEN} bytes")


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first: neighbours paired, an odd last node carried up
    unchanged. For RFC 9162's split (left subtree = largest power of two) this is the same tree."""
    levels = [leaves]
    while len(levels[-1]) > 1:
        level = levels[-1]
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        levels.append(paired)
    return levels


def compute_records_root(record_ids: list[bytes]) -> bytes:
    """The root over an interval's record ids, in the order received (SHA-256 of nothing if none)."""
    _check_ids(record_ids)
    if not record_ids:
        return sha256(b"")
    return _levels([compute_leaf_hash(record_id) for record_id in record_ids])[-1][0]


def _proof_from_levels(levels: list[list[bytes]], index: int) -> InclusionProof:
    path: list[bytes] = []
    at = index
    for level in levels[:-1]:
        sibling = at ^ 1
        if sibling < len(level):  # a carried last node has no sibling at this level
            path.append(level[sibling])
        at >>= 1
    return InclusionProof(index, len(levels[0]), tuple(path))


def compute_inclusion_proof(record_ids: list[bytes], index: int) -> InclusionProof:
    """The proof that record_ids[index] is under compute_records_root(record_ids)."""
    _check_ids(record_ids)
    if not 0 <= index < len(record_ids):
        raise ValueError(f"index: expected 0 to {len(record_ids) - 1}, got {index}")
    return _proof_from_levels(_levels([compute_leaf_hash(record_id) for record_id in record_ids]), index)


def compute_inclusion_proofs(record_ids: list[bytes]) -> list[InclusionProof]:
    """The proofs of every record at once: the tree is built once, not once per record."""
    _check_ids(record_ids)
    if not record_ids:
        return []
    levels = _levels([compute_leaf_hash(record_id) for record_id in record_ids])
    return [_proof_from_levels(levels, index) for index in range(len(record_ids))]


def is_included(root: bytes, record_id: bytes, proof: InclusionProof) -> bool:
    """True if proof shows record_id at proof.index among proof.size records under root (RFC 9162 2.1.3.2)."""
    if not 0 <= proof.index < proof.size or len(proof.path) > MAX_PROOF_HASHES:
        return False
    if any(len(step) != HASH_LEN for step in proof.path):
        return False
    fn, sn = proof.index, proof.size - 1
    result = compute_leaf_hash(record_id)
    for step in proof.path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = _node(step, result)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = _node(result, step)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root
