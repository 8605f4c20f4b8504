"""Proofs of a key's value (or absence) against a root hash, and the root computed from scratch.

The specification is the docstring of the package, cityledger/core/tree/__init__.py.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Mapping

from cityledger.core.errors import InvariantBroken
from .nodes import (
    _INTERNAL_PREFIX, _LEAF_PREFIX, _PATH_SHIFT, EMPTY_ROOT, HASH_BYTES, KEY_NIBBLES, _check_key,
    _check_value, _sha256, compute_leaf_hash,
)


# -- proofs --------------------------------------------------------------------------------------

def _level_size(level: bytes) -> int:
    """The byte length a proof level starting with its sibling bitmap must have."""
    return 2 + HASH_BYTES * int.from_bytes(level[:2], "big").bit_count()


@dataclass(frozen=True)
class Proof:
    """One level per internal node from the root down (sibling bitmap and hashes), and the leaf at the end.

    siblings[d] is ``sibling_bitmap (u16) | sibling hashes (32 each)`` of the internal node at
    depth d on the key's path (see the module docstring); leaf is the (key_hash, value_hash) of
    the leaf where the path ends, or None for an absent child (or the empty tree).
    """

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    def __post_init__(self) -> None:
        if not isinstance(self.siblings, tuple) or len(self.siblings) > KEY_NIBBLES:
            raise ValueError(f"siblings: expected a tuple of at most {KEY_NIBBLES} levels")
        for level in self.siblings:
            if not isinstance(level, bytes) or len(level) < 2 or len(level) != _level_size(level):
                raise ValueError(
                    f"siblings: expected levels of a u16 bitmap and 32 bytes per bit set, got {level!r:.80}"
                )
        if self.leaf is not None and (
            not isinstance(self.leaf, tuple)
            or len(self.leaf) != 2
            or not all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in self.leaf)
        ):
            raise ValueError(f"leaf: expected None or (key_hash, value_hash) of 32 bytes each, got {self.leaf!r:.80}")

    def to_bytes(self) -> bytes:
        """Canonical transport encoding (see the module docstring)."""
        head = bytes((len(self.siblings),)) + b"".join(self.siblings)
        if self.leaf is None:
            return head + b"\x00"
        return head + b"\x01" + self.leaf[0] + self.leaf[1]

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        """Decode Proof.to_bytes output; raise ValueError if it is not canonical."""
        if not isinstance(data, bytes) or len(data) < 2:
            raise ValueError("data: expected at least 2 bytes of proof")
        count = data[0]
        if count > KEY_NIBBLES:
            raise ValueError(f"data: expected at most {KEY_NIBBLES} levels, got {count}")
        levels, at = [], 1
        for _ in range(count):
            end = at + _level_size(data[at : at + 2])
            if at + 2 > len(data) or end > len(data):
                raise ValueError(f"data: level {len(levels)} runs past the end of the proof")
            levels.append(data[at:end])
            at = end
        if at >= len(data) or data[at] not in (0, 1):
            raise ValueError(f"data: expected a 0/1 leaf flag after {count} levels")
        expected = at + 1 + (2 * HASH_BYTES if data[at] else 0)
        if len(data) != expected:
            raise ValueError(f"data: expected {expected} bytes of proof, got {len(data)}")
        leaf = (data[at + 1 : at + 33], data[at + 33 : at + 65]) if data[at] else None
        return cls(tuple(levels), leaf)

    def to_dict(self) -> dict:
        """JSON-able form: hex strings."""
        return {
            "siblings": [level.hex() for level in self.siblings],
            "leaf": None if self.leaf is None else [self.leaf[0].hex(), self.leaf[1].hex()],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Proof:
        """Inverse of to_dict; raise ValueError on malformed input."""
        try:
            siblings = tuple(bytes.fromhex(s) for s in data["siblings"])
            leaf = data["leaf"]
            if leaf is not None:
                first, second = leaf
                leaf = (bytes.fromhex(first), bytes.fromhex(second))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"data: expected {{'siblings': [hex], 'leaf': null | [hex, hex]}}: {exc}") from exc
        return cls(siblings, leaf)


def verify_proof(root_hash: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True if proof shows key holds value under root_hash (value None: key is absent)."""
    if not isinstance(root_hash, bytes) or len(root_hash) != HASH_BYTES:
        raise ValueError(f"root_hash: expected {HASH_BYTES} bytes, got {root_hash!r:.80}")
    _check_key(key)
    if value is not None and not isinstance(value, bytes):
        raise ValueError(f"value: expected bytes or None, got {type(value).__name__}")
    if not isinstance(proof, Proof):
        raise ValueError(f"proof: expected a Proof, got {type(proof).__name__}")
    key_hash = _sha256(key).digest()
    key_int = int.from_bytes(key_hash, "big")
    depth = len(proof.siblings)
    if proof.leaf is None:
        if value is not None:
            return False
        node = None
    else:
        leaf_key_hash, value_hash = proof.leaf
        if value is not None and (leaf_key_hash != key_hash or value_hash != _sha256(value).digest()):
            return False
        if value is None and leaf_key_hash == key_hash:
            return False
        # The leaf found must lie on the key's path: the first depth nibbles agree.
        if (int.from_bytes(leaf_key_hash, "big") ^ key_int) >> _PATH_SHIFT[depth]:
            return False
        node = _sha256(_LEAF_PREFIX + leaf_key_hash + value_hash).digest()
    return _fold_levels(proof.siblings, key_int, node) == root_hash


def _fold_levels(levels: tuple[bytes, ...], key_int: int, node: bytes | None) -> bytes | None:
    """Hash from the spot where the key's path ends (node, or None if absent) up to the root."""
    if not levels:
        return EMPTY_ROOT if node is None else node
    deepest = len(levels) - 1
    for depth in range(deepest, -1, -1):
        level = levels[depth]
        siblings = (level[0] << 8) | level[1]
        nibble = (key_int >> (252 - 4 * depth)) & 15
        bit = 1 << nibble
        if siblings & bit:
            return None  # the key's own child cannot be its sibling
        if node is None:
            if not siblings:
                return None  # an internal node with no child at all
            node = _sha256(_INTERNAL_PREFIX + level).digest()
            continue
        if not siblings and depth == deepest:
            return None  # a lone leaf under an internal node is not canonical
        at = 2 + HASH_BYTES * (siblings & (bit - 1)).bit_count()
        bitmap = (siblings | bit).to_bytes(2, "big")
        node = _sha256(_INTERNAL_PREFIX + bitmap + level[2:at] + node + level[at:]).digest()
    return node


# -- from scratch --------------------------------------------------------------------------------

def compute_root(items: Mapping[bytes, bytes]) -> bytes:
    """The root hash of the tree holding exactly items, computed from scratch without storage."""
    if not isinstance(items, Mapping):
        raise ValueError(f"items: expected a Mapping[bytes, bytes], got {type(items).__name__}")
    leaves = []
    for key, value in items.items():
        _check_key(key, "items")
        _check_value(value, key, allow_none=False, name="items")
        key_hash = _sha256(key).digest()
        leaves.append((int.from_bytes(key_hash, "big"), compute_leaf_hash(key_hash, value)))
    if not leaves:
        return EMPTY_ROOT
    leaves.sort()
    ints = [leaf[0] for leaf in leaves]
    hashes = [leaf[1] for leaf in leaves]
    return _subtree_hash(ints, hashes, 0, 0, 0, len(leaves))


def _subtree_hash(ints: list[int], hashes: list[bytes], depth: int, prefix: int, lo: int, hi: int) -> bytes:
    """Hash of the subtree at (depth, prefix) holding the sorted leaves [lo, hi), hi > lo."""
    if hi - lo == 1:
        return hashes[lo]
    if depth >= KEY_NIBBLES:
        raise InvariantBroken("two items share a full 256-bit key hash")
    shift = 252 - 4 * depth
    bitmap, children = 0, []
    i = lo
    while i < hi:
        nibble = (ints[i] >> shift) & 15
        child_prefix = (prefix << 4) | nibble
        j = bisect_left(ints, (child_prefix + 1) << shift, i, hi)
        bitmap |= 1 << nibble
        children.append(_subtree_hash(ints, hashes, depth + 1, child_prefix, i, j))
        i = j
    return _sha256(_INTERNAL_PREFIX + bitmap.to_bytes(2, "big") + b"".join(children)).digest()
