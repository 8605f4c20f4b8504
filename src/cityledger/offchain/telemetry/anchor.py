"""One Merkle root over the records of an interval, and inclusion proofs against it.

The tree is RFC 9162's (Certificate Transparency v2): leaves hashed as SHA-256(0x00 || record id),
inner nodes as SHA-256(0x01 || left || right), the left subtree holding the largest power of two
below the count. Leaves and nodes cannot be confused, and a proof is at most log2(n) hashes.
The gateway anchors one root per interval; an owner keeps a record's proof to show later that the
record existed then, even after its keys were erased (the record id does not depend on them).
A proof carries the count of records it was made for, and RFC 9162 binds that count only through
the proof's shape: the anchor must record the count beside the root.

A fleet split over several gateway processes (shards) anchors one root per interval over the shards'
roots (fleet.py): the same tree over shard leaf ids, each SHA-256(FLEET_LEAF_DOMAIN || shard (2 bytes)
|| interval (8) || count (4) || shard root), so the leaf binds the count of its shard's tree. A shard
with no root for the fleet interval stands as (shard, fleet interval, EMPTY_ROOT, 0). A record's
FleetProof is its path to its shard root plus that shard leaf's path to the fleet root; is_included
takes either proof.
"""

from __future__ import annotations

from dataclasses import dataclass

import struct

from ...core.hashing import sha256
from ...core.types import HASH_LEN

MAX_RECORDS_PER_ROOT = 1 << 24  # records one interval's root may cover
MAX_PROOF_HASHES = 64

MAX_SHARD = 0xFFFF
FLEET_LEAF_DOMAIN = b"cityledger/telemetry/shard-root/1"
EMPTY_ROOT = sha256(b"")  # the root of no records (compute_records_root([]))

_LEAF = b"\x00"
_SHARD_LEAF = struct.Struct(">HQI")
_NODE = b"\x01"


@dataclass(frozen=True)
class InclusionProof:
    """Where a record sits among the interval's records, and the sibling hashes up to the root."""

    index: int
    size: int
    path: tuple[bytes, ...]


@dataclass(frozen=True)
class ShardRoot:
    """One shard's root for one of its intervals, as it stands in a fleet root."""

    shard: int
    interval: int
    root: bytes
    count: int


@dataclass(frozen=True)
class FleetProof:
    """A record's path to its shard's root (`record`), that root, and its leaf's path to the fleet root."""

    record: InclusionProof
    shard: ShardRoot
    fleet: InclusionProof


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


def compute_shard_leaf_id(shard: ShardRoot) -> bytes:
    """The 32-byte id a shard's root stands as in the fleet tree (binding shard, interval and count)."""
    if not 0 <= shard.shard <= MAX_SHARD or not 0 <= shard.interval < 1 << 64 \
            or not 0 <= shard.count <= MAX_RECORDS_PER_ROOT or len(shard.root) != HASH_LEN:
        raise ValueError(f"shard root: expected shard 0 to {MAX_SHARD}, a 64-bit interval, count 0 to "
                         f"{MAX_RECORDS_PER_ROOT} and a {HASH_LEN}-byte root, got {shard!r}")
    return sha256(FLEET_LEAF_DOMAIN + _SHARD_LEAF.pack(shard.shard, shard.interval, shard.count) + shard.root)


def compute_fleet_root(shards: list[ShardRoot]) -> bytes:
    """The fleet root over shard roots, in the order given (fleet.py orders them)."""
    return compute_records_root([compute_shard_leaf_id(shard) for shard in shards])


def compute_fleet_proof(shards: list[ShardRoot], index: int, record: InclusionProof) -> FleetProof:
    """The fleet proof of a record whose proof against shards[index].root is `record`."""
    return FleetProof(record, shards[index],
                      compute_inclusion_proof([compute_shard_leaf_id(shard) for shard in shards], index))


def is_included(root: bytes, record_id: bytes, proof: InclusionProof | FleetProof) -> bool:
    """True if proof shows record_id under root: an InclusionProof at proof.index among proof.size
    records (RFC 9162 2.1.3.2); a FleetProof under its shard's root, among exactly that root's count
    of records, that shard root's leaf under the fleet root."""
    if isinstance(proof, FleetProof):
        try:
            leaf = compute_shard_leaf_id(proof.shard)
        except (ValueError, TypeError):
            return False
        return isinstance(proof.record, InclusionProof) and proof.record.size == proof.shard.count \
            and _is_leaf_included(proof.shard.root, record_id, proof.record) \
            and _is_leaf_included(root, leaf, proof.fleet)
    return _is_leaf_included(root, record_id, proof)


def _is_leaf_included(root: bytes, record_id: bytes, proof: InclusionProof) -> bool:
    """RFC 9162 2.1.3.2 for one level: proof shows record_id at proof.index among proof.size leaves."""
    if not isinstance(proof, InclusionProof):
        return False
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
