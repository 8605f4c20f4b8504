"""PREVIOUS IMPLEMENTATION, kept only so bench/tree_apply.py can compare against it; not used by the ledger.

The authenticated state tree: a binary sparse Merkle tree over SHA-256 (Diem/Jellyfish style).

Every state key lives in this tree; its root hash is the block's app hash. This docstring is the
specification: another implementation that follows it computes the same hashes and node bytes.

Paths and hashes
----------------
- ``H(x) = SHA-256(x)``. A key's path is ``key_hash = H(key)``: 256 bits, read most significant
  bit of byte 0 first. Bit 0 chooses the child of the root: 0 = left, 1 = right.
- ``leaf_hash = H(0x00 || key_hash || H(value))``.
- ``internal_hash = H(0x01 || left_hash || right_hash)``; an empty side hashes as 32 zero bytes.
- The empty tree (and every empty subtree) hashes as 32 zero bytes: ``EMPTY_ROOT``.
- Shape (canonical, as in Diem's SMT): a subtree that holds exactly one leaf is that leaf itself,
  placed at the shallowest depth where it is alone. An internal node always has at least two
  leaves below it, so it may have one empty side (when all its leaves share the next bit).
  Leaves sit at depths 0..256, internal nodes at depths 0..255.

Node identity (Jellyfish style)
-------------------------------
- ``NodeKey = (version, path)``. A node written by the batch applied at version V has key
  (V, path of the node). Nodes are immutable: a changed node gets a new key, so every older
  version's root stays readable until the storage layer prunes its stale nodes.
- Path encoding: 2 bytes big-endian bit count n (0..256; a leaf can sit at depth 256, which does not
  fit one byte), then ceil(n / 8) bytes holding the n bits most significant first, unused low
  bits of the last byte zero. The root's path is ``b"\\x00\\x00"``; a node's child on side b has
  the parent's bits followed by b.

Node encoding (fixed layout, all integers big-endian)
-----------------------------------------------------
- Leaf:     ``0x00 | key_hash (32) | key_len (u16) | key (key_len) | value (rest of the bytes)``.
- Internal: ``0x01 | flags (u8) | left_version (u64) | left_hash (32) | right_version (u64) |
  right_hash (32)``, always 82 bytes. Flags: 0x01 left present, 0x02 right present, 0x04 left
  child is a leaf, 0x08 right child is a leaf; other bits zero. An absent child has version 0,
  hash 32 zero bytes and its flag bits clear. A child's NodeKey is (child_version, child path).

Applying a batch
----------------
``apply`` takes every change of a block at once; the sorted key hashes are split by bit down the
tree, so a node shared by many updated keys is rewritten and hashed once. It returns the writes
(``new_nodes``, all at the batch's version) and ``stale_nodes``: the old tree's nodes that the
new tree no longer reaches, to be pruned once their version leaves the retention window. A batch
that changes nothing (empty, deletes of absent keys, same values) writes nothing and returns the
old root key, whose version is then older than the batch's.

Proofs
------
A proof lists one sibling hash per level from the root down to the spot where the key's path
ends (a leaf or an empty side), and the (key_hash, H(value)) of the leaf found there, if any.
To verify, start from ``H(0x00 || key_hash || value_hash)`` of that leaf (or 32 zero bytes for an
empty spot), fold the siblings from the deepest up, the key's bit at each level saying on which
side the running hash sits, and compare with the root. Inclusion needs the leaf's key_hash to be
H(key) and its value_hash H(value); non-inclusion needs no leaf, or a leaf of another key whose
hash shares the first n bits (n = number of siblings) with H(key).
``Proof.to_bytes``: ``n (u16) | n sibling hashes (32 each) | 0x00`` or
``... | 0x01 | key_hash (32) | value_hash (32)``.
"""

from __future__ import annotations

import gc
import hashlib
import struct
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable, Iterator, Mapping, NamedTuple, Protocol

from cityledger.core.errors import InvariantBroken

HASH_BYTES = 32
KEY_BITS = 256
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1 << 22  # 4 MiB: state values are records, never blobs
MAX_UPDATES_PER_APPLY = 1 << 22
MAX_VERSION = (1 << 64) - 1
DEFAULT_CACHE_NODES = 1 << 18  # decoded internal nodes kept between batches (about 60 MiB)

EMPTY_ROOT = bytes(HASH_BYTES)
LEAF_TAG = 0x00
INTERNAL_TAG = 0x01
FLAG_LEFT = 0x01
FLAG_RIGHT = 0x02
FLAG_LEFT_LEAF = 0x04
FLAG_RIGHT_LEAF = 0x08
INTERNAL_NODE_BYTES = 82
LEAF_HEADER_BYTES = 35

_sha256 = hashlib.sha256
_INTERNAL = struct.Struct(">BBQ32sQ32s")
_LEAF_PREFIX = b"\x00"
_INTERNAL_PREFIX = b"\x01"
_ZERO = EMPTY_ROOT
_PATH_HEADER = [depth.to_bytes(2, "big") for depth in range(KEY_BITS + 1)]
_PATH_BYTES = [(depth + 7) >> 3 for depth in range(KEY_BITS + 1)]
_PATH_PAD = [((depth + 7) >> 3) * 8 - depth for depth in range(KEY_BITS + 1)]
_KEEP = object()  # a subtree the batch leaves exactly as it was
_tuple_new = tuple.__new__
_first = itemgetter(0)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while bulk work allocates many small acyclic objects.

    A batch allocates hundreds of thousands of tuples, none of which can be part of a cycle; left
    running, the collector would rescan them (and at times the whole heap) every few hundred
    allocations, which costs more than the batch itself. Process-wide, but only ever re-enabled
    by the call that disabled it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class MissingNodeError(LookupError):
    """A node the tree refers to is not in the store (its version was pruned, or never written)."""


class NodeKey(NamedTuple):
    """Where a node is stored: the version that wrote it and its encoded bit path."""

    version: int
    path: bytes


class ChildRef(NamedTuple):
    """What an internal node keeps about a child: the child's version, hash and kind."""

    version: int
    hash: bytes
    is_leaf: bool


class LeafNode(NamedTuple):
    """A decoded leaf node."""

    key_hash: bytes
    key: bytes
    value: bytes


class InternalNode(NamedTuple):
    """A decoded internal node; an absent side is None."""

    left: ChildRef | None
    right: ChildRef | None


class NodeReader(Protocol):
    """Read access to encoded nodes; the storage layer implements it."""

    def get_node(self, key: NodeKey) -> bytes | None:
        """The encoded node stored under key, or None."""
        ...


class MemoryNodeStore:
    """A dict-backed NodeReader with put/delete, for tests and tools.

    Keys are kept as plain (version, path) tuples, which compare and hash equal to NodeKeys: the
    garbage collector stops tracking plain tuples of ints and bytes, but never NodeKey instances,
    and a million tracked keys make every full collection slow.
    """

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, bytes], bytes] = {}

    def get_node(self, key: NodeKey) -> bytes | None:
        """The encoded node stored under key, or None."""
        return self.nodes.get(key)

    def put(self, batch: Mapping[NodeKey, bytes]) -> None:
        """Store a batch of encoded nodes (TreeUpdate.new_nodes)."""
        with _gc_paused():
            self.nodes.update(zip(map(tuple, batch), batch.values()))

    def delete(self, keys: Iterable[NodeKey]) -> None:
        """Remove nodes, as pruning does with stale nodes past the retention window."""
        for key in keys:
            self.nodes.pop(key, None)

    def __len__(self) -> int:
        return len(self.nodes)


@dataclass(frozen=True)
class TreeUpdate:
    """The result of applying one batch: the new root and the node writes and stale nodes."""

    root_hash: bytes
    root_key: NodeKey | None
    new_nodes: dict[NodeKey, bytes]
    stale_nodes: list[NodeKey]


# -- paths and hashes ----------------------------------------------------------------------------

def encode_path(depth: int, prefix: int) -> bytes:
    """Encode the first depth bits of a path, given as the integer prefix of depth bits."""
    if not isinstance(depth, int) or not 0 <= depth <= KEY_BITS:
        raise ValueError(f"depth: expected an int in 0..{KEY_BITS}, got {depth!r}")
    if not isinstance(prefix, int) or not 0 <= prefix < (1 << depth):
        raise ValueError(f"prefix: expected an int of at most {depth} bits, got {prefix!r}")
    return _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")


def decode_path(path: bytes) -> tuple[int, int]:
    """Decode an encoded path into (depth, prefix); raise ValueError if it is not canonical."""
    if not isinstance(path, bytes) or len(path) < 2:
        raise ValueError(f"path: expected at least 2 bytes, got {path!r}")
    depth = int.from_bytes(path[:2], "big")
    if depth > KEY_BITS or len(path) != 2 + _PATH_BYTES[depth]:
        raise ValueError(f"path: expected 2 + ceil(depth/8) bytes with depth <= 256, got {path.hex()}")
    padded = int.from_bytes(path[2:], "big")
    if padded & ((1 << _PATH_PAD[depth]) - 1):
        raise ValueError(f"path: expected unused low bits to be zero, got {path.hex()}")
    return depth, padded >> _PATH_PAD[depth]


def compute_key_hash(key: bytes) -> bytes:
    """The path of a state key: SHA-256 of the key."""
    return _sha256(key).digest()


def compute_leaf_hash(key_hash: bytes, value: bytes) -> bytes:
    """H(0x00 || key_hash || H(value))."""
    return _sha256(_LEAF_PREFIX + key_hash + _sha256(value).digest()).digest()


def compute_internal_hash(left_hash: bytes, right_hash: bytes) -> bytes:
    """H(0x01 || left_hash || right_hash); pass EMPTY_ROOT for an empty side."""
    return _sha256(_INTERNAL_PREFIX + left_hash + right_hash).digest()


# -- node encoding -------------------------------------------------------------------------------

def encode_leaf(key_hash: bytes, key: bytes, value: bytes) -> bytes:
    """Encode a leaf node (see the module docstring for the layout)."""
    if len(key_hash) != HASH_BYTES:
        raise ValueError(f"key_hash: expected {HASH_BYTES} bytes, got {len(key_hash)}")
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"key: expected at most {MAX_KEY_BYTES} bytes, got {len(key)}")
    return _LEAF_PREFIX + key_hash + len(key).to_bytes(2, "big") + key + value


def encode_internal(left: ChildRef | None, right: ChildRef | None) -> bytes:
    """Encode an internal node (see the module docstring for the layout)."""
    if left is None and right is None:
        raise ValueError("left, right: expected at least one child, got two empty sides")
    flags, lv, lh, rv, rh = 0, 0, _ZERO, 0, _ZERO
    if left is not None:
        lv, lh = left[0], left[1]
        flags |= FLAG_LEFT | (FLAG_LEFT_LEAF if left[2] else 0)
    if right is not None:
        rv, rh = right[0], right[1]
        flags |= FLAG_RIGHT | (FLAG_RIGHT_LEAF if right[2] else 0)
    for name, version, child_hash in (("left", lv, lh), ("right", rv, rh)):
        if not 0 <= version <= MAX_VERSION or len(child_hash) != HASH_BYTES:
            raise ValueError(f"{name}: expected a u64 version and a 32-byte hash")
    return _INTERNAL.pack(INTERNAL_TAG, flags, lv, lh, rv, rh)


def encode_node(node: LeafNode | InternalNode) -> bytes:
    """Encode a decoded node back to its bytes."""
    if isinstance(node, LeafNode):
        return encode_leaf(node.key_hash, node.key, node.value)
    if isinstance(node, InternalNode):
        return encode_internal(node.left, node.right)
    raise ValueError(f"node: expected a LeafNode or InternalNode, got {type(node).__name__}")


def decode_node(data: bytes) -> LeafNode | InternalNode:
    """Decode and validate node bytes; raise ValueError if they are not a canonical node."""
    if not isinstance(data, bytes) or not data:
        raise ValueError("data: expected non-empty node bytes")
    if data[0] == LEAF_TAG:
        if len(data) < LEAF_HEADER_BYTES:
            raise ValueError(f"data: expected a leaf of at least 35 bytes, got {len(data)}")
        key_len = int.from_bytes(data[33:35], "big")
        if key_len > MAX_KEY_BYTES or len(data) < LEAF_HEADER_BYTES + key_len:
            raise ValueError(f"data: leaf key length {key_len} exceeds the limit or the data")
        end = LEAF_HEADER_BYTES + key_len
        return LeafNode(data[1:33], data[35:end], data[end:])
    if data[0] != INTERNAL_TAG or len(data) != INTERNAL_NODE_BYTES:
        raise ValueError(f"data: expected tag 0 (leaf) or an 82-byte internal node, got {data[:1].hex()}")
    _, flags, lv, lh, rv, rh = _INTERNAL.unpack(data)
    left = _decode_child("left", flags & FLAG_LEFT, flags & FLAG_LEFT_LEAF, lv, lh)
    right = _decode_child("right", flags & FLAG_RIGHT, flags & FLAG_RIGHT_LEAF, rv, rh)
    if flags & 0xF0:
        raise ValueError(f"data: expected flag bits 4..7 clear, got flags {flags:#04x}")
    lone = left if right is None else right if left is None else None
    if (left is None and right is None) or (lone is not None and lone.is_leaf):
        raise ValueError("data: an internal node must hold at least two leaves below it")
    return InternalNode(left, right)


def _decode_child(side: str, present: int, leaf: int, version: int, child_hash: bytes) -> ChildRef | None:
    """Decode one side of an internal node, checking that absent sides are zeroed."""
    if present:
        return ChildRef(version, child_hash, bool(leaf))
    if leaf or version or child_hash != _ZERO:
        raise ValueError(f"data: expected the absent {side} child to be zeroed")
    return None


def _decode_leaf_fast(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Decode a stored leaf without re-validating it (hot path)."""
    if data[0] != LEAF_TAG:
        raise InvariantBroken(f"expected a leaf node, found tag {data[0]}")
    end = LEAF_HEADER_BYTES + ((data[33] << 8) | data[34])
    return data[1:33], data[35:end], data[end:]


def _decode_internal_fast(version: int, data: bytes, node_hash: bytes | None) -> tuple:
    """Decode a stored internal node into a flat cache entry (see _entry_children)."""
    if data[0] != INTERNAL_TAG or len(data) != INTERNAL_NODE_BYTES:
        raise InvariantBroken(f"expected an internal node, found tag {data[0]} and {len(data)} bytes")
    _, flags, lv, lh, rv, rh = _INTERNAL.unpack(data)
    if node_hash is None:
        node_hash = _sha256(_INTERNAL_PREFIX + lh + rh).digest()
    return (
        version,
        node_hash,
        lv,
        lh if flags & FLAG_LEFT else None,
        bool(flags & FLAG_LEFT_LEAF),
        rv,
        rh if flags & FLAG_RIGHT else None,
        bool(flags & FLAG_RIGHT_LEAF),
    )


def _entry_children(entry: tuple) -> tuple[tuple | None, tuple | None]:
    """The (left, right) refs of a flat cache entry.

    A cached internal node is one flat tuple (version, hash, left_version, left_hash, left_is_leaf,
    right_version, right_hash, right_is_leaf), an absent side having hash None. Flat entries keep
    the refs they were built from short-lived, which spares the garbage collector.
    """
    left = (entry[2], entry[3], entry[4]) if entry[3] is not None else None
    right = (entry[5], entry[6], entry[7]) if entry[6] is not None else None
    return left, right


# -- validation ----------------------------------------------------------------------------------

def _check_key(key: object, name: str = "key") -> None:
    """Raise ValueError unless key is bytes of at most MAX_KEY_BYTES."""
    if not isinstance(key, bytes) or len(key) > MAX_KEY_BYTES:
        raise ValueError(f"{name}: expected bytes of at most {MAX_KEY_BYTES} bytes, got {key!r:.80}")


def _check_value(value: object, key: bytes, allow_none: bool, name: str = "updates") -> None:
    """Raise ValueError unless value is bytes of at most MAX_VALUE_BYTES (or None when allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES:
        raise ValueError(
            f"{name}[{key!r:.80}]: expected bytes of at most {MAX_VALUE_BYTES} bytes"
            f"{' or None' if allow_none else ''}, got {type(value).__name__}"
        )


def _check_root_key(root_key: object) -> None:
    """Raise ValueError unless root_key is None or a (version, path) NodeKey."""
    if root_key is None:
        return
    if (
        not isinstance(root_key, tuple)
        or len(root_key) != 2
        or not isinstance(root_key[0], int)
        or not isinstance(root_key[1], bytes)
    ):
        raise ValueError(f"root_key: expected None or NodeKey(version, path), got {root_key!r}")


def _sorted_updates(updates: Mapping[bytes, bytes | None]) -> list[tuple[bytes, bytes, bytes | None]]:
    """Validate a batch and return (key_hash, key, value) sorted by key_hash."""
    if not isinstance(updates, Mapping):
        raise ValueError(f"updates: expected a Mapping[bytes, bytes | None], got {type(updates).__name__}")
    if len(updates) > MAX_UPDATES_PER_APPLY:
        raise ValueError(f"updates: expected at most {MAX_UPDATES_PER_APPLY} entries, got {len(updates)}")
    items = []
    for key, value in updates.items():
        _check_key(key, "updates")
        if value is not None and (value.__class__ is not bytes or len(value) > MAX_VALUE_BYTES):
            _check_value(value, key, allow_none=True)
        items.append((_sha256(key).digest(), key, value))
    items.sort(key=_first)
    return items


# -- batch application -----------------------------------------------------------------------------

class _Batch:
    """One apply(): the sorted updates, the writes so far and the recursion over the tree.

    Child results flowing up the recursion are one of: _KEEP (subtree unchanged), None (empty),
    a written node ref (version, hash, is_leaf), or a pending leaf (key_hash, key, value, hash)
    that is not written yet because a deletion may still lift it towards the root. The hot paths
    are written out inline on purpose: a batch visits tens of thousands of nodes.
    """

    __slots__ = ("tree", "get_node", "version", "hashes", "ints", "keys", "values", "new_nodes", "stale", "cache")

    def __init__(self, tree: SparseMerkleTree, version: int, items: list) -> None:
        self.tree = tree
        self.get_node = tree.reader.get_node
        self.version = version
        self.hashes = [item[0] for item in items]
        self.ints = [int.from_bytes(item[0], "big") for item in items]
        self.keys = [item[1] for item in items]
        self.values = [item[2] for item in items]
        self.new_nodes: dict[NodeKey, bytes] = {}
        self.stale: list[NodeKey] = []
        self.cache = tree._batch_cache()

    def update(self, ref: tuple | None, depth: int, prefix: int, lo: int, hi: int):
        """Apply the updates [lo, hi) to the subtree at (depth, prefix) whose ref is given."""
        if hi - lo == 1:
            return self.update_one(ref, depth, lo)
        if ref is None:
            return self.build(depth, prefix, lo, hi) or _KEEP
        if ref[2]:
            return self.update_leaf(ref, depth, prefix, lo, hi)
        return self.update_internal(ref, depth, prefix, lo, hi)

    def update_internal(self, ref: tuple, depth: int, prefix: int, lo: int, hi: int):
        """Split the updates (at least two) between the sides of an internal node, then rewrite it."""
        path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
        cache = self.cache
        entry = cache.get(path)
        if entry is None or entry[1] != ref[1] or entry[0] != ref[0]:
            entry = self.tree._fetch_internal(ref[0], path, ref[1], cache)
        left = (entry[2], entry[3], entry[4]) if entry[3] is not None else None
        right = (entry[5], entry[6], entry[7]) if entry[6] is not None else None
        child = prefix << 1
        mid = bisect_left(self.ints, (child | 1) << (255 - depth), lo, hi)
        new_left = self.update(left, depth + 1, child, lo, mid) if mid > lo else _KEEP
        new_right = self.update(right, depth + 1, child | 1, mid, hi) if hi > mid else _KEEP
        if new_left is _KEEP:
            if new_right is _KEEP:
                return _KEEP
            new_left = left
        elif new_right is _KEEP:
            new_right = right
        self.stale.append(_tuple_new(NodeKey, (ref[0], path)))
        return self.combine(new_left, new_right, depth, prefix, path)

    def update_one(self, ref: tuple | None, depth: int, i: int):
        """Apply the single update i below ref: walk down to its spot, then rewrite the path upwards.

        Most nodes a batch touches lie on such single-update paths, so this loop is the hot path.
        """
        key_int = self.ints[i]
        cache = self.cache
        trail = []
        if ref is not None:
            version, node_hash, is_leaf = ref
            while not is_leaf:
                path = _PATH_HEADER[depth] + ((key_int >> (KEY_BITS - depth)) << _PATH_PAD[depth]).to_bytes(
                    _PATH_BYTES[depth], "big"
                )
                entry = cache.get(path)
                if entry is None or entry[1] != node_hash or entry[0] != version:
                    entry = self.tree._fetch_internal(version, path, node_hash, cache)
                if (key_int >> (255 - depth)) & 1:
                    trail.append((entry, path, 1))
                    version, node_hash, is_leaf = entry[5], entry[6], entry[7]
                else:
                    trail.append((entry, path, 0))
                    version, node_hash, is_leaf = entry[2], entry[3], entry[4]
                depth += 1
                if node_hash is None:
                    break
            ref = None if node_hash is None else (version, node_hash, is_leaf)
        if ref is None:
            value = self.values[i]
            if value is None:
                return _KEEP
            key_hash = self.hashes[i]
            leaf_hash = _sha256(_LEAF_PREFIX + key_hash + _sha256(value).digest()).digest()
            result = (key_hash, self.keys[i], value, leaf_hash)
        else:
            result = self.update_leaf_one(ref, depth, key_int >> (KEY_BITS - depth), i)
            if result is _KEEP:
                return _KEEP
        return self.rewrite_trail(trail, result, depth, key_int)

    def rewrite_trail(self, trail: list, result, depth: int, key_int: int):
        """Rewrite the internal nodes passed on the way down, bottom up, over the new result."""
        stale = self.stale
        new_nodes = self.new_nodes
        cache = self.cache
        version = self.version
        for entry, path, bit in reversed(trail):
            depth -= 1
            stale.append(_tuple_new(NodeKey, (entry[0], path)))
            if result is None or len(result) == 4 or entry[6 - 3 * bit] is None:
                left, right = _entry_children(entry)
                if bit:
                    right = result
                else:
                    left = result
                result = self.combine(left, right, depth, key_int >> (KEY_BITS - depth), path)
                continue
            # The common case, inline: two written children, so this node is rewritten in place.
            if bit:
                lv, lh, l_leaf = entry[2], entry[3], entry[4]
                rv, rh, r_leaf = result
            else:
                lv, lh, l_leaf = result
                rv, rh, r_leaf = entry[5], entry[6], entry[7]
            node_hash = _sha256(_INTERNAL_PREFIX + lh + rh).digest()
            packed = _INTERNAL.pack(INTERNAL_TAG, (7 if l_leaf else 3) | (8 if r_leaf else 0), lv, lh, rv, rh)
            new_nodes[_tuple_new(NodeKey, (version, path))] = packed
            cache[path] = (version, node_hash, lv, lh, l_leaf, rv, rh, r_leaf)
            result = (version, node_hash, False)
        return result

    def update_leaf(self, ref: tuple, depth: int, prefix: int, lo: int, hi: int):
        """Apply several updates to a subtree that is a single existing leaf."""
        path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
        key_hash, key, value = self.tree._load_leaf(ref[0], path)
        values = self.values
        j = bisect_left(self.hashes, key_hash, lo, hi)
        found = j < hi and self.hashes[j] == key_hash
        if found and self.keys[j] != key:
            raise InvariantBroken(f"SHA-256 collision between keys {key!r} and {self.keys[j]!r}")
        if not any(values[i] is not None for i in range(lo, hi) if not (found and i == j)):
            new_value = values[j] if found else value
            if new_value == value:
                return _KEEP
            self.stale.append(_tuple_new(NodeKey, (ref[0], path)))
            if new_value is None:
                return None
            return (key_hash, key, new_value, compute_leaf_hash(key_hash, new_value))
        # Other leaves join this subtree, so the old leaf moves deeper under a new internal node.
        self.stale.append(_tuple_new(NodeKey, (ref[0], path)))
        if found:
            return self.build(depth, prefix, lo, hi)
        extra = (key_hash, key, value, ref[1])
        return self.build_with(depth, prefix, lo, hi, extra, int.from_bytes(key_hash, "big"))

    def update_leaf_one(self, ref: tuple, depth: int, prefix: int, i: int):
        """Apply the single update i to the existing leaf ref at (depth, prefix)."""
        path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
        old_key = _tuple_new(NodeKey, (ref[0], path))
        data = self.get_node(old_key)
        if data is None:
            raise MissingNodeError(f"node {old_key} is not in the store (pruned or never written)")
        key_hash, key, value = _decode_leaf_fast(data)
        new_hash = self.hashes[i]
        new_value = self.values[i]
        if new_hash == key_hash:
            if self.keys[i] != key:
                raise InvariantBroken(f"SHA-256 collision between keys {key!r} and {self.keys[i]!r}")
            if new_value == value:
                return _KEEP
            self.stale.append(old_key)
            if new_value is None:
                return None
            return (key_hash, key, new_value, _sha256(_LEAF_PREFIX + key_hash + _sha256(new_value).digest()).digest())
        if new_value is None:
            return _KEEP
        # Another key lands on this leaf: both move below new internal nodes.
        self.stale.append(old_key)
        new_leaf_hash = _sha256(_LEAF_PREFIX + new_hash + _sha256(new_value).digest()).digest()
        return self.join_two(
            depth,
            prefix,
            (key_hash, key, value, ref[1]),
            (new_hash, self.keys[i], new_value, new_leaf_hash),
        )

    def join_two(self, depth: int, prefix: int, first: tuple, second: tuple) -> tuple:
        """Write the subtree at (depth, prefix) holding exactly two pending leaves."""
        first_int = int.from_bytes(first[0], "big")
        split = KEY_BITS - (first_int ^ int.from_bytes(second[0], "big")).bit_length()
        if split >= KEY_BITS:
            raise InvariantBroken("two leaves share a full 256-bit key hash")
        if (first_int >> (255 - split)) & 1:
            first, second = second, first
        split_prefix = first_int >> (KEY_BITS - split)
        left = self.place(first, split + 1, split_prefix << 1)
        right = self.place(second, split + 1, (split_prefix << 1) | 1)
        node = self.pair(split, split_prefix, left, right)
        # Above the split both leaves share every bit, so each level is a node with one empty side.
        for level in range(split - 1, depth - 1, -1):
            if (first_int >> (255 - level)) & 1:
                node = self.pair(level, first_int >> (KEY_BITS - level), None, node)
            else:
                node = self.pair(level, first_int >> (KEY_BITS - level), node, None)
        return node

    def pair(self, depth: int, prefix: int, left: tuple | None, right: tuple | None) -> tuple:
        """Write the internal node at (depth, prefix) over two written refs (one may be None)."""
        flags, lv, lh, l_leaf, rv, rh, r_leaf = 0, 0, None, False, 0, None, False
        if left is not None:
            lv, lh, l_leaf = left
            flags = FLAG_LEFT | FLAG_LEFT_LEAF if l_leaf else FLAG_LEFT
        if right is not None:
            rv, rh, r_leaf = right
            flags |= FLAG_RIGHT | FLAG_RIGHT_LEAF if r_leaf else FLAG_RIGHT
        left_hash = _ZERO if lh is None else lh
        right_hash = _ZERO if rh is None else rh
        node_hash = _sha256(_INTERNAL_PREFIX + left_hash + right_hash).digest()
        path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
        version = self.version
        packed = _INTERNAL.pack(INTERNAL_TAG, flags, lv, left_hash, rv, right_hash)
        self.new_nodes[_tuple_new(NodeKey, (version, path))] = packed
        self.cache[path] = (version, node_hash, lv, lh, l_leaf, rv, rh, r_leaf)
        return (version, node_hash, False)

    def build(self, depth: int, prefix: int, lo: int, hi: int):
        """Build a subtree from scratch out of the updates [lo, hi); deletions vanish."""
        if hi - lo == 1:
            value = self.values[lo]
            if value is None:
                return None
            key_hash = self.hashes[lo]
            leaf_hash = _sha256(_LEAF_PREFIX + key_hash + _sha256(value).digest()).digest()
            return (key_hash, self.keys[lo], value, leaf_hash)
        if hi == lo:
            return None
        if depth >= KEY_BITS:
            raise InvariantBroken("two updates share a full 256-bit key hash")
        child = prefix << 1
        mid = bisect_left(self.ints, (child | 1) << (255 - depth), lo, hi)
        left = self.build(depth + 1, child, lo, mid)
        right = self.build(depth + 1, child | 1, mid, hi)
        return self.combine(left, right, depth, prefix, None)

    def build_with(self, depth: int, prefix: int, lo: int, hi: int, extra: tuple, extra_int: int):
        """Build a subtree from the updates [lo, hi) plus one existing leaf not among them."""
        if hi == lo:
            return extra
        if depth >= KEY_BITS:
            raise InvariantBroken("an update shares a full 256-bit key hash with a leaf")
        child = prefix << 1
        boundary = (child | 1) << (255 - depth)
        mid = bisect_left(self.ints, boundary, lo, hi)
        if extra_int >= boundary:
            left = self.build(depth + 1, child, lo, mid)
            right = self.build_with(depth + 1, child | 1, mid, hi, extra, extra_int)
        else:
            left = self.build_with(depth + 1, child, lo, mid, extra, extra_int)
            right = self.build(depth + 1, child | 1, mid, hi)
        return self.combine(left, right, depth, prefix, None)

    def combine(self, left, right, depth: int, prefix: int, path: bytes | None):
        """Join two child results: lift a lone leaf, or write the internal node at this path."""
        if left is None or right is None:
            lone = right if left is None else left
            if lone is None:
                return None
            if len(lone) == 4:
                return lone
            if lone[2]:
                return self.lift(lone, depth + 1, (prefix << 1) | (left is None))
        if left is not None and len(left) == 4:
            left = self.place(left, depth + 1, prefix << 1)
        if right is not None and len(right) == 4:
            right = self.place(right, depth + 1, (prefix << 1) | 1)
        return self.pair(depth, prefix, left, right)

    def place(self, pending: tuple, depth: int, prefix: int) -> tuple:
        """Write a pending leaf at (depth, prefix) and return its ref."""
        key_hash, key, value, leaf_hash = pending
        path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
        version = self.version
        encoded = _LEAF_PREFIX + key_hash + len(key).to_bytes(2, "big") + key + value
        self.new_nodes[_tuple_new(NodeKey, (version, path))] = encoded
        return (version, leaf_hash, True)

    def lift(self, ref: tuple, depth: int, prefix: int) -> tuple:
        """Turn an untouched leaf that must move up into a pending leaf, marking its old node stale."""
        path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
        old_key = _tuple_new(NodeKey, (ref[0], path))
        key_hash, key, value = self.tree._load_leaf(ref[0], path)
        self.stale.append(old_key)
        return (key_hash, key, value, ref[1])


# -- the tree ------------------------------------------------------------------------------------

_ROOT_PATH = _PATH_HEADER[0]


class SparseMerkleTree:
    """Versioned sparse Merkle tree over a NodeReader; apply() returns writes, never stores them.

    Decoded internal nodes are cached by path between batches (the latest tree's nodes, which the
    next batch walks first). A cached node is used only when its version and hash match the
    parent's reference, so reads of old versions, forks and discarded batches stay correct. One
    apply() at a time; reads may run in other threads meanwhile (cache entries are immutable).
    """

    def __init__(self, reader: NodeReader, cache_size: int = DEFAULT_CACHE_NODES) -> None:
        if not hasattr(reader, "get_node"):
            raise ValueError(f"reader: expected a NodeReader with get_node(), got {type(reader).__name__}")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size: expected an int >= 0, got {cache_size!r}")
        self.reader = reader
        self._cache: dict[bytes, tuple] = {}  # path -> flat entry, see _entry_children
        self._cache_max = cache_size

    def clear_cache(self) -> None:
        """Forget every cached node (after the store was rolled back or swapped)."""
        self._cache.clear()

    def apply(
        self, root_key: NodeKey | None, version: int, updates: Mapping[bytes, bytes | None]
    ) -> TreeUpdate:
        """Apply a batch (None deletes) on top of root_key and return the new root and node writes."""
        _check_root_key(root_key)
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= MAX_VERSION:
            raise ValueError(f"version: expected an int in 0..2**64-1, got {version!r}")
        if root_key is not None and version <= root_key[0]:
            raise ValueError(f"version: expected more than the root's version {root_key[0]}, got {version}")
        items = _sorted_updates(updates)
        root_ref = self._root_ref(root_key)
        batch = _Batch(self, version, items)
        with _gc_paused():
            result = batch.update(root_ref, 0, 0, 0, len(items))
        if len(self._cache) > self._cache_max:
            self._cache.clear()  # a huge batch (genesis, state sync) must not pin its nodes
        if result is _KEEP:
            old_hash = EMPTY_ROOT if root_ref is None else root_ref[1]
            return TreeUpdate(old_hash, root_key, {}, [])
        if result is None:
            return TreeUpdate(EMPTY_ROOT, None, batch.new_nodes, batch.stale)
        if len(result) == 4:
            result = batch.place(result, 0, 0)
        return TreeUpdate(result[1], NodeKey(version, _ROOT_PATH), batch.new_nodes, batch.stale)

    def get(self, root_key: NodeKey | None, key: bytes) -> bytes | None:
        """The value stored under key in the tree at root_key, or None."""
        _check_key(key)
        key_hash = _sha256(key).digest()
        leaf, _ = self._walk(root_key, key_hash, None)
        if leaf is None or leaf[0] != key_hash:
            return None
        return leaf[2]

    def get_with_proof(self, root_key: NodeKey | None, key: bytes) -> tuple[bytes | None, Proof]:
        """The value under key (or None) and a proof of it against the root hash."""
        _check_key(key)
        key_hash = _sha256(key).digest()
        siblings: list[bytes] = []
        leaf, _ = self._walk(root_key, key_hash, siblings)
        if leaf is None:
            return None, Proof(tuple(siblings), None)
        proof = Proof(tuple(siblings), (leaf[0], _sha256(leaf[2]).digest()))
        return (leaf[2] if leaf[0] == key_hash else None), proof

    def root_hash(self, root_key: NodeKey | None) -> bytes:
        """The hash of the tree whose root node is root_key (EMPTY_ROOT for None)."""
        _check_root_key(root_key)
        ref = self._root_ref(root_key)
        return EMPTY_ROOT if ref is None else ref[1]

    def iter_leaves(self, root_key: NodeKey | None) -> Iterator[tuple[bytes, bytes]]:
        """Yield every (key, value) in path order (ascending key hash)."""
        _check_root_key(root_key)
        return self._iter_from(self._root_ref(root_key))

    def _iter_from(self, ref: tuple | None) -> Iterator[tuple[bytes, bytes]]:
        """Depth-first, left before right, from the root ref."""
        stack = [] if ref is None else [(ref, 0, 0)]
        while stack:
            ref, depth, prefix = stack.pop()
            path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
            if ref[2]:
                _, key, value = self._load_leaf(ref[0], path)
                yield key, value
                continue
            left, right = _entry_children(self._load_internal(ref[0], path, ref[1]))
            if right is not None:
                stack.append((right, depth + 1, (prefix << 1) | 1))
            if left is not None:
                stack.append((left, depth + 1, prefix << 1))

    def _walk(self, root_key: NodeKey | None, key_hash: bytes, siblings: list | None):
        """Follow key_hash from the root; return (leaf at the end or None, depth reached)."""
        _check_root_key(root_key)
        ref = self._root_ref(root_key)
        key_int = int.from_bytes(key_hash, "big")
        depth = 0
        while ref is not None:
            prefix = key_int >> (KEY_BITS - depth)
            path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
            if ref[2]:
                return self._load_leaf(ref[0], path), depth
            left, right = _entry_children(self._load_internal(ref[0], path, ref[1]))
            if (key_int >> (255 - depth)) & 1:
                ref, other = right, left
            else:
                ref, other = left, right
            if siblings is not None:
                siblings.append(_ZERO if other is None else other[1])
            depth += 1
        return None, depth

    def _root_ref(self, root_key: NodeKey | None) -> tuple | None:
        """Read the root node straight from the reader and return its ref (version, hash, is_leaf)."""
        if root_key is None:
            return None
        version, path = root_key
        data = self._read(version, path)
        if data[:1] == _LEAF_PREFIX:
            key_hash, _, value = _decode_leaf_fast(data)
            return (version, compute_leaf_hash(key_hash, value), True)
        entry = _decode_internal_fast(version, data, None)
        self._remember(path, entry)
        return (version, entry[1], False)

    def _read(self, version: int, path: bytes) -> bytes:
        """Fetch encoded node bytes from the reader, raising MissingNodeError if absent."""
        key = _tuple_new(NodeKey, (version, path))
        data = self.reader.get_node(key)
        if data is None:
            raise MissingNodeError(f"node {key} is not in the store (pruned or never written)")
        return data

    def _load_leaf(self, version: int, path: bytes) -> tuple[bytes, bytes, bytes]:
        """Read and decode the leaf at (version, path); leaves are not cached, values may be large."""
        return _decode_leaf_fast(self._read(version, path))

    def _fetch_internal(self, version: int, path: bytes, node_hash: bytes, cache: dict) -> tuple:
        """Read and decode an internal node for a batch and put it in the batch's cache."""
        entry = _decode_internal_fast(version, self._read(version, path), node_hash)
        cache[path] = entry
        return entry

    def _load_internal(self, version: int, path: bytes, node_hash: bytes) -> tuple:
        """Read an internal node as a flat cache entry, from the cache when it matches."""
        entry = self._cache.get(path)
        if entry is not None and entry[1] == node_hash and entry[0] == version:
            return entry
        entry = _decode_internal_fast(version, self._read(version, path), node_hash)
        self._remember(path, entry)
        return entry

    def _remember(self, path: bytes, entry: tuple) -> None:
        """Cache a node read outside a batch, unless a newer version of that path is cached."""
        if not self._cache_max:
            return
        cached = self._cache.get(path)
        if cached is not None and cached[0] > entry[0]:
            return
        if len(self._cache) >= self._cache_max:
            self._cache.clear()
        self._cache[path] = entry

    def _batch_cache(self) -> dict:
        """The node cache a batch reads and fills: the shared one, or a throwaway if disabled."""
        if not self._cache_max:
            return {}
        if len(self._cache) >= self._cache_max:
            self._cache.clear()
        return self._cache


# -- proofs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proof:
    """Sibling hashes from the root down, and the (key_hash, value_hash) of the leaf at the end."""

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    def __post_init__(self) -> None:
        if not isinstance(self.siblings, tuple) or len(self.siblings) > KEY_BITS:
            raise ValueError(f"siblings: expected a tuple of at most {KEY_BITS} hashes")
        for sibling in self.siblings:
            if not isinstance(sibling, bytes) or len(sibling) != HASH_BYTES:
                raise ValueError(f"siblings: expected 32-byte hashes, got {sibling!r:.80}")
        if self.leaf is not None and (
            not isinstance(self.leaf, tuple)
            or len(self.leaf) != 2
            or not all(isinstance(h, bytes) and len(h) == HASH_BYTES for h in self.leaf)
        ):
            raise ValueError(f"leaf: expected None or (key_hash, value_hash) of 32 bytes each, got {self.leaf!r:.80}")

    def to_bytes(self) -> bytes:
        """Canonical transport encoding (see the module docstring)."""
        head = len(self.siblings).to_bytes(2, "big") + b"".join(self.siblings)
        if self.leaf is None:
            return head + b"\x00"
        return head + b"\x01" + self.leaf[0] + self.leaf[1]

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        """Decode Proof.to_bytes output; raise ValueError if it is not canonical."""
        if not isinstance(data, bytes) or len(data) < 3:
            raise ValueError("data: expected at least 3 bytes of proof")
        count = int.from_bytes(data[:2], "big")
        end = 2 + count * HASH_BYTES
        if count > KEY_BITS or len(data) < end + 1 or data[end] not in (0, 1):
            raise ValueError(f"data: expected at most {KEY_BITS} siblings then a 0/1 leaf flag")
        expected = end + 1 + (2 * HASH_BYTES if data[end] else 0)
        if len(data) != expected:
            raise ValueError(f"data: expected {expected} bytes of proof, got {len(data)}")
        siblings = tuple(data[i : i + HASH_BYTES] for i in range(2, end, HASH_BYTES))
        leaf = (data[end + 1 : end + 33], data[end + 33 : end + 65]) if data[end] else None
        return cls(siblings, leaf)

    def to_dict(self) -> dict:
        """JSON-able form: hex strings."""
        return {
            "siblings": [sibling.hex() for sibling in self.siblings],
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
        node = _ZERO
    else:
        leaf_key_hash, value_hash = proof.leaf
        if value is not None and (leaf_key_hash != key_hash or value_hash != _sha256(value).digest()):
            return False
        if value is None and leaf_key_hash == key_hash:
            return False
        # The leaf found must lie on the key's path: the first depth bits agree.
        if (int.from_bytes(leaf_key_hash, "big") ^ key_int) >> (KEY_BITS - depth):
            return False
        node = _sha256(_LEAF_PREFIX + leaf_key_hash + value_hash).digest()
    for level in range(depth - 1, -1, -1):
        sibling = proof.siblings[level]
        if (key_int >> (255 - level)) & 1:
            node = _sha256(_INTERNAL_PREFIX + sibling + node).digest()
        else:
            node = _sha256(_INTERNAL_PREFIX + node + sibling).digest()
    return node == root_hash


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
    leaves.sort()
    ints = [leaf[0] for leaf in leaves]
    hashes = [leaf[1] for leaf in leaves]
    return _subtree_hash(ints, hashes, 0, 0, 0, len(leaves))


def _subtree_hash(ints: list[int], hashes: list[bytes], depth: int, prefix: int, lo: int, hi: int) -> bytes:
    """Hash of the subtree at (depth, prefix) holding the sorted leaves [lo, hi)."""
    if hi == lo:
        return _ZERO
    if hi - lo == 1:
        return hashes[lo]
    if depth >= KEY_BITS:
        raise InvariantBroken("two items share a full 256-bit key hash")
    child = prefix << 1
    mid = bisect_left(ints, (child | 1) << (255 - depth), lo, hi)
    left = _subtree_hash(ints, hashes, depth + 1, child, lo, mid)
    right = _subtree_hash(ints, hashes, depth + 1, child | 1, mid, hi)
    return _sha256(_INTERNAL_PREFIX + left + right).digest()


__all__ = [
    "ChildRef",
    "DEFAULT_CACHE_NODES",
    "EMPTY_ROOT",
    "InternalNode",
    "LeafNode",
    "MAX_KEY_BYTES",
    "MAX_UPDATES_PER_APPLY",
    "MAX_VALUE_BYTES",
    "MemoryNodeStore",
    "MissingNodeError",
    "NodeKey",
    "NodeReader",
    "Proof",
    "SparseMerkleTree",
    "TreeUpdate",
    "compute_internal_hash",
    "compute_key_hash",
    "compute_leaf_hash",
    "compute_root",
    "decode_node",
    "decode_path",
    "encode_internal",
    "encode_leaf",
    "encode_node",
    "encode_path",
    "verify_proof",
]
