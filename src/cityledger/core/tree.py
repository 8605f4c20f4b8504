"""The authenticated state tree: a 16-ary sparse Merkle tree over SHA-256 (Jellyfish style).

Every state key lives in this tree; its root hash is the block's app hash. This docstring is the
specification: another implementation that follows it computes the same hashes and node bytes.

Paths and hashes
----------------
- ``H(x) = SHA-256(x)``. A key's path is ``key_hash = H(key)``, read as 64 nibbles (4-bit digits),
  the most significant nibble of byte 0 first. Nibble d chooses the child of a node at depth d.
- ``leaf_hash = H(0x00 || key_hash || H(value))``.
- ``internal_hash = H(0x01 || bitmap || the hashes of the present children in nibble order)``:
  ``bitmap`` is a u16 big-endian whose bit i (value ``1 << i``; bit 0 is the least significant)
  is set when the child of nibble i is present. An internal node has at least one child.
- The empty tree hashes as 32 zero bytes: ``EMPTY_ROOT``. Absent children are not hashed at all.
- Shape (canonical): a subtree that holds exactly one leaf is that leaf itself, placed at the
  shallowest nibble depth where it is alone; an internal node exists at nibble path P exactly
  when at least two keys start with P. So an internal node has at least two leaves below it,
  and may have a single child (an internal one) when all its keys share the next nibble.
  Leaves sit at depths 0..64, internal nodes at depths 0..63.

Node identity (Jellyfish style)
-------------------------------
- ``NodeKey = (version, path)``. A node written by the batch applied at version V has key
  (V, path of the node). Nodes are immutable: a changed node gets a new key, so every older
  version's root stays readable until the storage layer prunes its stale nodes.
- Path encoding: 1 byte nibble count n (0..64), then ceil(n / 2) bytes holding the n nibbles
  most significant first, the unused low nibble of the last byte zero when n is odd. The root's
  path is ``b"\\x00"``; a node's child of nibble c has the parent's nibbles followed by c.

Node encoding (all integers big-endian)
---------------------------------------
- Leaf:     ``0x00 | key_hash (32) | key_len (u16) | key (key_len) | value (rest of the bytes)``.
- Internal: ``0x01 | bitmap (u16) | leaf_bitmap (u16) | k child versions (u64 each) | k child
  hashes (32 each)``, k = number of bits set in bitmap, both lists in nibble order, so the node
  is ``5 + 40 * k`` bytes. ``leaf_bitmap`` sets bit i when child i is a leaf; it is a subset of
  ``bitmap``. A child's NodeKey is (child_version, child path). Versions come before hashes so
  that the node's hash preimage is the encoding's first 3 bytes followed by its last 32 * k.
  A canonical internal node has k >= 1, and when k == 1 its child is not a leaf.

Applying a batch
----------------
``apply`` takes every change of a block at once; the sorted key hashes are split by nibble down
the tree (bisect), so a node shared by many updated keys is rewritten and hashed once. It returns
the writes (``new_nodes``, all at the batch's version) and ``stale_nodes``: the old tree's nodes
that the new tree no longer reaches, to be pruned once their version leaves the retention window.
A batch that changes nothing (empty, deletes of absent keys, same values) writes nothing and
returns the old root key, whose version is then older than the batch's.

Proofs
------
A proof lists one level per internal node from the root down to the spot where the key's path
ends (a leaf or an absent child), and the (key_hash, H(value)) of the leaf found there, if any.
Level d (``Proof.siblings[d]``) is ``sibling_bitmap (u16) | the hashes of the siblings in
nibble order (32 each)``: every present child of the node at depth d except the one on the key's
path, so its length is 2 + 32 * popcount(sibling_bitmap). To verify, start from
``H(0x00 || key_hash || value_hash)`` of that leaf (or nothing, for an absent child) and fold the
levels from the deepest up: with c the key's nibble at that depth (whose bit must be clear in the
sibling bitmap), the node is ``H(0x01 || bitmap || hashes)`` where the running hash is inserted
among the siblings at nibble c and bit c is set in bitmap (for an absent child the siblings alone,
which must not be empty). A deepest level with no siblings above a leaf is refused (not
canonical). Compare the result with the root. Inclusion needs the leaf's key_hash to be H(key)
and its value_hash H(value); non-inclusion needs no leaf, or a leaf of another key whose hash
shares the first n nibbles (n = number of levels) with H(key).
``Proof.to_bytes``: ``n (u8) | the n levels | 0x00`` or ``... | 0x01 | key_hash (32) | value_hash (32)``.
"""

from __future__ import annotations

import gc
import hashlib
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

from cityledger.core.errors import InvariantBroken

HASH_BYTES = 32
KEY_BITS = 256
KEY_NIBBLES = 64
RADIX = 16  # children per internal node
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1 << 22  # 4 MiB: state values are records, never blobs
MAX_UPDATES_PER_APPLY = 1 << 22
MAX_VERSION = (1 << 64) - 1
# Decoded internal nodes kept between batches. A hexary tree of random keys has about 0.35 internal
# nodes per key (a binary one 1), each entry about 0.9 KiB: ~60 MiB full, the whole upper tree of
# ~190k keys.
DEFAULT_CACHE_NODES = 1 << 16

EMPTY_ROOT = bytes(HASH_BYTES)
LEAF_TAG = 0x00
INTERNAL_TAG = 0x01
INTERNAL_HEADER_BYTES = 5
CHILD_BYTES = 8 + HASH_BYTES  # a child's version and hash in an internal node
LEAF_HEADER_BYTES = 35

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_INTERNAL_PREFIX = b"\x01"
_ZERO = EMPTY_ROOT
_NONE16 = (None,) * RADIX
# A path at nibble depth d is _PATH_HEADER[d] + (prefix << _PATH_PAD[d]).to_bytes(_PATH_BYTES[d]);
# a key's prefix of depth d is key_int >> _PATH_SHIFT[d].
_PATH_HEADER = [bytes((depth,)) for depth in range(KEY_NIBBLES + 1)]
_PATH_BYTES = [(depth + 1) >> 1 for depth in range(KEY_NIBBLES + 1)]
_PATH_PAD = [4 * (depth & 1) for depth in range(KEY_NIBBLES + 1)]
_PATH_SHIFT = [KEY_BITS - 4 * depth for depth in range(KEY_NIBBLES + 1)]
_ROOT_PATH = _PATH_HEADER[0]
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
    """Where a node is stored: the version that wrote it and its encoded nibble path."""

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
    """A decoded internal node: 16 children by nibble, an absent one being None."""

    children: tuple[ChildRef | None, ...]


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
    """Encode the first depth nibbles of a path, given as the integer prefix of 4 * depth bits."""
    if not isinstance(depth, int) or not 0 <= depth <= KEY_NIBBLES:
        raise ValueError(f"depth: expected an int in 0..{KEY_NIBBLES} (nibbles), got {depth!r}")
    if not isinstance(prefix, int) or not 0 <= prefix < (1 << (4 * depth)):
        raise ValueError(f"prefix: expected an int of at most {depth} nibbles, got {prefix!r}")
    return _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")


def decode_path(path: bytes) -> tuple[int, int]:
    """Decode an encoded path into (depth in nibbles, prefix); raise ValueError if it is not canonical."""
    if not isinstance(path, bytes) or not path:
        raise ValueError(f"path: expected at least 1 byte, got {path!r}")
    depth = path[0]
    if depth > KEY_NIBBLES or len(path) != 1 + _PATH_BYTES[depth]:
        raise ValueError(f"path: expected 1 + ceil(depth/2) bytes with depth <= 64, got {path.hex()}")
    padded = int.from_bytes(path[1:], "big")
    if padded & ((1 << _PATH_PAD[depth]) - 1):
        raise ValueError(f"path: expected the unused low nibble to be zero, got {path.hex()}")
    return depth, padded >> _PATH_PAD[depth]


def _path(depth: int, prefix: int) -> bytes:
    """encode_path without the checks (internal callers pass valid arguments)."""
    return _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")


def compute_key_hash(key: bytes) -> bytes:
    """The path of a state key: SHA-256 of the key."""
    return _sha256(key).digest()


def compute_leaf_hash(key_hash: bytes, value: bytes) -> bytes:
    """H(0x00 || key_hash || H(value))."""
    return _sha256(_LEAF_PREFIX + key_hash + _sha256(value).digest()).digest()


def compute_internal_hash(child_hashes: Sequence[bytes | None]) -> bytes:
    """H(0x01 || bitmap || present hashes) of 16 child hashes by nibble, None for an absent child."""
    if not isinstance(child_hashes, (tuple, list)) or len(child_hashes) != RADIX:
        raise ValueError(f"child_hashes: expected {RADIX} entries (hash or None), got {child_hashes!r:.80}")
    bitmap, present = 0, []
    for nibble, child_hash in enumerate(child_hashes):
        if child_hash is None:
            continue
        if not isinstance(child_hash, bytes) or len(child_hash) != HASH_BYTES:
            raise ValueError(f"child_hashes[{nibble}]: expected {HASH_BYTES} bytes, got {child_hash!r:.80}")
        bitmap |= 1 << nibble
        present.append(child_hash)
    if not bitmap:
        raise ValueError("child_hashes: expected at least one present child, got 16 absent ones")
    return _sha256(_INTERNAL_PREFIX + bitmap.to_bytes(2, "big") + b"".join(present)).digest()


# -- node encoding -------------------------------------------------------------------------------

def encode_leaf(key_hash: bytes, key: bytes, value: bytes) -> bytes:
    """Encode a leaf node (see the module docstring for the layout)."""
    if len(key_hash) != HASH_BYTES:
        raise ValueError(f"key_hash: expected {HASH_BYTES} bytes, got {len(key_hash)}")
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"key: expected at most {MAX_KEY_BYTES} bytes, got {len(key)}")
    return _LEAF_PREFIX + key_hash + len(key).to_bytes(2, "big") + key + value


def encode_internal(children: Sequence[ChildRef | None]) -> bytes:
    """Encode an internal node from its 16 children by nibble (see the module docstring for the layout)."""
    if not isinstance(children, (tuple, list)) or len(children) != RADIX:
        raise ValueError(f"children: expected {RADIX} entries (ChildRef or None), got {children!r:.80}")
    bitmap = leaf_bitmap = 0
    versions, hashes = [], []
    for nibble, child in enumerate(children):
        if child is None:
            continue
        version, child_hash, is_leaf = child
        if (
            not isinstance(version, int)
            or not 0 <= version <= MAX_VERSION
            or not isinstance(child_hash, bytes)
            or len(child_hash) != HASH_BYTES
        ):
            raise ValueError(f"children[{nibble}]: expected a u64 version and a 32-byte hash")
        bitmap |= 1 << nibble
        if is_leaf:
            leaf_bitmap |= 1 << nibble
        versions.append(version.to_bytes(8, "big"))
        hashes.append(child_hash)
    if not bitmap:
        raise ValueError("children: expected at least one child, got 16 empty slots")
    header = _INTERNAL_PREFIX + bitmap.to_bytes(2, "big") + leaf_bitmap.to_bytes(2, "big")
    return header + b"".join(versions) + b"".join(hashes)


def encode_node(node: LeafNode | InternalNode) -> bytes:
    """Encode a decoded node back to its bytes."""
    if isinstance(node, LeafNode):
        return encode_leaf(node.key_hash, node.key, node.value)
    if isinstance(node, InternalNode):
        return encode_internal(node.children)
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
    if data[0] != INTERNAL_TAG or len(data) < INTERNAL_HEADER_BYTES:
        raise ValueError(f"data: expected tag 0 (leaf) or 1 (internal) and a full header, got {data[:5].hex()}")
    bitmap = int.from_bytes(data[1:3], "big")
    leaf_bitmap = int.from_bytes(data[3:5], "big")
    count = bitmap.bit_count()
    if len(data) != INTERNAL_HEADER_BYTES + CHILD_BYTES * count:
        raise ValueError(f"data: expected an internal node of 5 + 40 * {count} bytes, got {len(data)}")
    if leaf_bitmap & ~bitmap:
        raise ValueError(f"data: leaf bitmap {leaf_bitmap:#06x} marks children absent from {bitmap:#06x}")
    if count == 0 or (count == 1 and leaf_bitmap):
        raise ValueError("data: an internal node must hold at least two leaves below it")
    children: list[ChildRef | None] = [None] * RADIX
    hashes_at = INTERNAL_HEADER_BYTES + 8 * count
    index = 0
    for nibble in range(RADIX):
        if bitmap >> nibble & 1:
            at = INTERNAL_HEADER_BYTES + 8 * index
            version = int.from_bytes(data[at : at + 8], "big")
            at = hashes_at + HASH_BYTES * index
            children[nibble] = ChildRef(version, data[at : at + HASH_BYTES], bool(leaf_bitmap >> nibble & 1))
            index += 1
    return InternalNode(tuple(children))


def _decode_leaf_fast(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Decode a stored leaf without re-validating it (hot path)."""
    if data[0] != LEAF_TAG:
        raise InvariantBroken(f"expected a leaf node, found tag {data[0]}")
    end = LEAF_HEADER_BYTES + ((data[33] << 8) | data[34])
    return data[1:33], data[35:end], data[end:]


def _decode_internal_fast(version: int, data: bytes, node_hash: bytes | None) -> tuple:
    """Decode a stored internal node into a flat cache entry.

    A cached internal node is one flat tuple (version, hash, bitmap, leaf_bitmap, versions,
    hashes): versions and hashes are 16-tuples by nibble holding each present child's version as
    8 big-endian bytes and its hash, None for an absent child. Versions stay bytes because nodes
    are re-encoded far more often than their children are visited.
    """
    bitmap = (data[1] << 8) | data[2]
    count = bitmap.bit_count()
    hashes_at = INTERNAL_HEADER_BYTES + 8 * count
    if data[0] != INTERNAL_TAG or len(data) != hashes_at + HASH_BYTES * count:
        raise InvariantBroken(f"expected an internal node, found tag {data[0]} and {len(data)} bytes")
    versions: list = [None] * RADIX
    hashes: list = [None] * RADIX
    at_version, at_hash = INTERNAL_HEADER_BYTES, hashes_at
    for nibble in range(RADIX):
        if bitmap >> nibble & 1:
            versions[nibble] = data[at_version : at_version + 8]
            hashes[nibble] = data[at_hash : at_hash + HASH_BYTES]
            at_version += 8
            at_hash += HASH_BYTES
    if node_hash is None:
        node_hash = _sha256(data[:3] + data[hashes_at:]).digest()
    return (version, node_hash, bitmap, (data[3] << 8) | data[4], tuple(versions), tuple(hashes))


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
    a written internal node ref (version, hash, False), or a pending leaf (key_hash, key, value,
    hash) that is not written yet because a deletion may still lift it towards the root. The hot
    paths are written out inline on purpose: a batch visits thousands of nodes.
    """

    __slots__ = (
        "tree", "get_node", "version", "version_bytes", "hashes", "ints", "keys", "values", "new_nodes",
        "stale", "cache",
    )

    def __init__(self, tree: SparseMerkleTree, version: int, items: list) -> None:
        self.tree = tree
        self.get_node = tree.reader.get_node
        self.version = version
        self.version_bytes = version.to_bytes(8, "big")  # shared by every child ref this batch writes
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
        """Split the updates (at least two) between the children of an internal node, then rewrite it.

        Most internal nodes of a batch are rewritten here, so the children's results are folded in
        inline, and a pending leaf is written at once (and taken back in collapse() if it is left
        alone under this node).
        """
        path = _PATH_HEADER[depth] + (prefix << _PATH_PAD[depth]).to_bytes(_PATH_BYTES[depth], "big")
        entry = self.cache.get(path)
        if entry is None or entry[1] != ref[1] or entry[0] != ref[0]:
            entry = self.tree._fetch_internal(ref[0], path, ref[1], self.cache)
        _, _, bitmap, leaf_bitmap, versions, hashes = entry
        versions, hashes = list(versions), list(hashes)
        ints, new_nodes, version, version_bytes = self.ints, self.new_nodes, self.version, self.version_bytes
        child_depth = depth + 1
        header, pad, size = _PATH_HEADER[child_depth], _PATH_PAD[child_depth], _PATH_BYTES[child_depth]
        shift = 252 - 4 * depth
        placed = []
        changed = False
        i = lo
        while i < hi:
            nibble = (ints[i] >> shift) & 15
            child_prefix = (prefix << 4) | nibble
            j = bisect_left(ints, (child_prefix + 1) << shift, i, hi)
            child_hash = hashes[nibble]
            if child_hash is None:
                result = self.build(child_depth, child_prefix, i, j) or _KEEP
            elif leaf_bitmap >> nibble & 1:
                child_version = int.from_bytes(versions[nibble], "big")
                if j - i == 1:
                    result = self.update_leaf_one(child_version, child_hash, child_depth, ints[i], i)
                else:
                    result = self.update_leaf((child_version, child_hash, True), child_depth, child_prefix, i, j)
            else:
                child = (int.from_bytes(versions[nibble], "big"), child_hash, False)
                if j - i == 1:
                    result = self.update_one(child, child_depth, i)
                else:
                    result = self.update_internal(child, child_depth, child_prefix, i, j)
            i = j
            if result is _KEEP:
                continue
            changed = True
            bit = 1 << nibble
            if result is None:
                versions[nibble] = hashes[nibble] = None
                bitmap &= ~bit
                leaf_bitmap &= ~bit
            elif len(result) == 4:
                key_hash, key, value, hashes[nibble] = result
                versions[nibble] = version_bytes
                bitmap |= bit
                leaf_bitmap |= bit
                node_key = _tuple_new(NodeKey, (version, header + (child_prefix << pad).to_bytes(size, "big")))
                new_nodes[node_key] = _LEAF_PREFIX + key_hash + len(key).to_bytes(2, "big") + key + value
                placed.append((node_key, result))
            else:
                versions[nibble], hashes[nibble] = version_bytes, result[1]
                bitmap |= bit
                leaf_bitmap &= ~bit
        if not changed:
            return _KEEP
        self.stale.append(_tuple_new(NodeKey, (entry[0], path)))
        if not bitmap & (bitmap - 1):
            return self.collapse(depth, prefix, path, bitmap, leaf_bitmap, versions, hashes, placed)
        return self.write(path, bitmap, leaf_bitmap, versions, hashes)

    def collapse(self, depth: int, prefix: int, path: bytes, bitmap: int, leaf_bitmap: int, versions: list,
                 hashes: list, placed: list):
        """Finish a node left with at most one child: drop it, lift its lone leaf, or keep it over an internal one."""
        if not bitmap:
            return None
        if not leaf_bitmap:
            return self.write(path, bitmap, leaf_bitmap, versions, hashes)
        if placed:  # the lone leaf was written below this node: take it back, it rises
            node_key, leaf = placed[0]
            del self.new_nodes[node_key]
            return leaf
        nibble = bitmap.bit_length() - 1
        child_path = _path(depth + 1, (prefix << 4) | nibble)
        return self.lift(int.from_bytes(versions[nibble], "big"), hashes[nibble], child_path)

    def update_one(self, ref: tuple | None, depth: int, i: int):
        """Apply the single update i below ref: walk down to its spot, then rewrite the path upwards.

        Most nodes a batch touches lie on such single-update paths, so this loop is the hot path.
        """
        key_int = self.ints[i]
        trail = []
        if ref is not None:
            cache = self.cache
            version, node_hash, is_leaf = ref
            while not is_leaf:
                path = _PATH_HEADER[depth] + ((key_int >> _PATH_SHIFT[depth]) << _PATH_PAD[depth]).to_bytes(
                    _PATH_BYTES[depth], "big"
                )
                entry = cache.get(path)
                if entry is None or entry[1] != node_hash or entry[0] != version:
                    entry = self.tree._fetch_internal(version, path, node_hash, cache)
                nibble = (key_int >> (252 - 4 * depth)) & 15
                trail.append((entry, path, nibble))
                depth += 1
                node_hash = entry[5][nibble]
                if node_hash is None:
                    break
                version = int.from_bytes(entry[4][nibble], "big")
                is_leaf = entry[3] >> nibble & 1
            ref = None if node_hash is None else (version, node_hash, True)
        if ref is None:
            value = self.values[i]
            if value is None:
                return _KEEP
            key_hash = self.hashes[i]
            leaf_hash = _sha256(_LEAF_PREFIX + key_hash + _sha256(value).digest()).digest()
            result = (key_hash, self.keys[i], value, leaf_hash)
        else:
            result = self.update_leaf_one(ref[0], ref[1], depth, key_int, i)
            if result is _KEEP:
                return _KEEP
        if not trail:
            return result
        return self.rewrite_trail(trail, result, depth, key_int)

    def rewrite_trail(self, trail: list, result, depth: int, key_int: int):
        """Rewrite the internal nodes passed on the way down, bottom up, over the new result at depth."""
        stale = self.stale
        new_nodes = self.new_nodes
        cache = self.cache
        version = self.version
        version_bytes = self.version_bytes
        for entry, path, nibble in reversed(trail):
            bit = 1 << nibble
            if result is None or (len(result) == 4 and not entry[2] & ~bit):
                # The child vanished, or a lone leaf is left: the node may collapse, the general way.
                depth -= 1
                result = self.rewrite(entry, depth, key_int >> _PATH_SHIFT[depth], path, [(nibble, result)])
                continue
            # The common case, inline: this node keeps at least two leaves, so it is rewritten in place.
            stale.append(_tuple_new(NodeKey, (entry[0], path)))
            if len(result) == 4:
                key_hash, key, value, child_hash = result
                child_path = _PATH_HEADER[depth] + ((key_int >> _PATH_SHIFT[depth]) << _PATH_PAD[depth]).to_bytes(
                    _PATH_BYTES[depth], "big"
                )
                leaf = _LEAF_PREFIX + key_hash + len(key).to_bytes(2, "big") + key + value
                new_nodes[_tuple_new(NodeKey, (version, child_path))] = leaf
                leaf_bitmap = entry[3] | bit
            else:
                child_hash = result[1]
                leaf_bitmap = entry[3] & ~bit
            depth -= 1
            hashes = list(entry[5])
            hashes[nibble] = child_hash
            versions = list(entry[4])
            versions[nibble] = version_bytes
            bitmap = entry[2] | bit
            hashed = b"".join(filter(None, hashes))
            head = _INTERNAL_PREFIX + bitmap.to_bytes(2, "big")
            node_hash = _sha256(head + hashed).digest()
            new_nodes[_tuple_new(NodeKey, (version, path))] = (
                head + leaf_bitmap.to_bytes(2, "big") + b"".join(filter(None, versions)) + hashed
            )
            cache[path] = (version, node_hash, bitmap, leaf_bitmap, tuple(versions), tuple(hashes))
            result = (version, node_hash, False)
        return result

    def rewrite(self, entry: tuple, depth: int, prefix: int, path: bytes, changes: list):
        """Replace the node of entry at (depth, prefix) by one with the changed children (nibble, result)."""
        self.stale.append(_tuple_new(NodeKey, (entry[0], path)))
        return self.seal(depth, prefix, path, entry[2], entry[3], list(entry[4]), list(entry[5]), changes)

    def seal(self, depth: int, prefix: int, path: bytes | None, bitmap: int, leaf_bitmap: int,
             versions: list, hashes: list, changes: list):
        """Apply child results to a node's children, then write it, or lift or drop it if it is no longer needed."""
        version_bytes = self.version_bytes
        pending = []
        for nibble, result in changes:
            bit = 1 << nibble
            if result is None:
                versions[nibble] = hashes[nibble] = None
                bitmap &= ~bit
                leaf_bitmap &= ~bit
            elif len(result) == 4:
                versions[nibble], hashes[nibble] = version_bytes, result[3]
                bitmap |= bit
                leaf_bitmap |= bit
                pending.append((nibble, result))
            else:
                versions[nibble], hashes[nibble] = version_bytes, result[1]
                bitmap |= bit
                leaf_bitmap &= ~bit
        if not bitmap & (bitmap - 1):  # at most one child left
            if not bitmap:
                return None
            if leaf_bitmap:  # a lone leaf rises to where it is alone
                if pending:
                    return pending[0][1]
                nibble = bitmap.bit_length() - 1
                child_path = _path(depth + 1, (prefix << 4) | nibble)
                return self.lift(int.from_bytes(versions[nibble], "big"), hashes[nibble], child_path)
        for nibble, leaf in pending:
            self.place(leaf, _path(depth + 1, (prefix << 4) | nibble))
        return self.write(_path(depth, prefix) if path is None else path, bitmap, leaf_bitmap, versions, hashes)

    def write(self, path: bytes, bitmap: int, leaf_bitmap: int, versions: list, hashes: list) -> tuple:
        """Write the internal node at path (children by nibble) and return its ref."""
        hashed = b"".join(filter(None, hashes))
        head = _INTERNAL_PREFIX + bitmap.to_bytes(2, "big")
        node_hash = _sha256(head + hashed).digest()
        version = self.version
        encoded = head + leaf_bitmap.to_bytes(2, "big") + b"".join(filter(None, versions)) + hashed
        self.new_nodes[_tuple_new(NodeKey, (version, path))] = encoded
        self.cache[path] = (version, node_hash, bitmap, leaf_bitmap, tuple(versions), tuple(hashes))
        return (version, node_hash, False)

    def update_leaf(self, ref: tuple, depth: int, prefix: int, lo: int, hi: int):
        """Apply several updates to a subtree that is a single existing leaf."""
        path = _path(depth, prefix)
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
        return self.build(depth, prefix, lo, hi, (key_hash, key, value, ref[1]))

    def update_leaf_one(self, version: int, leaf_hash: bytes, depth: int, key_int: int, i: int):
        """Apply the single update i to the existing leaf (version, leaf_hash) at depth on its key's path."""
        path = _PATH_HEADER[depth] + ((key_int >> _PATH_SHIFT[depth]) << _PATH_PAD[depth]).to_bytes(
            _PATH_BYTES[depth], "big"
        )
        old_key = _tuple_new(NodeKey, (version, path))
        data = self.get_node(old_key)
        if data is None:
            raise MissingNodeError(f"node {old_key} is not in the store (pruned or never written)")
        if data[0] != LEAF_TAG:
            raise InvariantBroken(f"expected a leaf node, found tag {data[0]}")
        key_hash = data[1:33]
        end = LEAF_HEADER_BYTES + ((data[33] << 8) | data[34])
        key, value = data[35:end], data[end:]
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
        new_leaf = (new_hash, self.keys[i], new_value, new_leaf_hash)
        return self.join_two(depth, (key_hash, key, value, leaf_hash), new_leaf)

    def join_two(self, depth: int, first: tuple, second: tuple) -> tuple:
        """Write the subtree at depth holding exactly two pending leaves that share its path."""
        first_int = int.from_bytes(first[0], "big")
        split = (KEY_BITS - (first_int ^ int.from_bytes(second[0], "big")).bit_length()) >> 2
        if split >= KEY_NIBBLES:
            raise InvariantBroken("two leaves share a full 256-bit key hash")
        shift = 252 - 4 * split
        split_prefix = first_int >> (shift + 4)
        versions, hashes = list(_NONE16), list(_NONE16)
        bitmap = 0
        for leaf in (first, second):
            nibble = (int.from_bytes(leaf[0], "big") >> shift) & 15
            self.place(leaf, _path(split + 1, (split_prefix << 4) | nibble))
            versions[nibble], hashes[nibble] = self.version_bytes, leaf[3]
            bitmap |= 1 << nibble
        node = self.write(_path(split, split_prefix), bitmap, bitmap, versions, hashes)
        # Above the split both leaves share every nibble, so each level is a node with one child.
        for level in range(split - 1, depth - 1, -1):
            nibble = (first_int >> (252 - 4 * level)) & 15
            versions, hashes = list(_NONE16), list(_NONE16)
            versions[nibble], hashes[nibble] = self.version_bytes, node[1]
            node = self.write(_path(level, first_int >> _PATH_SHIFT[level]), 1 << nibble, 0, versions, hashes)
        return node

    def build(self, depth: int, prefix: int, lo: int, hi: int, extra: tuple | None = None):
        """Build a subtree from scratch out of the updates [lo, hi) (deletions vanish) and an extra pending leaf."""
        if extra is None:
            if hi - lo == 1:
                value = self.values[lo]
                if value is None:
                    return None
                key_hash = self.hashes[lo]
                leaf_hash = _sha256(_LEAF_PREFIX + key_hash + _sha256(value).digest()).digest()
                return (key_hash, self.keys[lo], value, leaf_hash)
            if hi == lo:
                return None
        elif hi == lo:
            return extra
        if depth >= KEY_NIBBLES:
            raise InvariantBroken("two keys share a full 256-bit key hash")
        ints = self.ints
        shift = 252 - 4 * depth
        extra_nibble = -1 if extra is None else (int.from_bytes(extra[0], "big") >> shift) & 15
        changes = []
        i = lo
        while i < hi:
            nibble = (ints[i] >> shift) & 15
            child_prefix = (prefix << 4) | nibble
            j = bisect_left(ints, (child_prefix + 1) << shift, i, hi)
            if nibble == extra_nibble:
                result = self.build(depth + 1, child_prefix, i, j, extra)
                extra_nibble = -1
            else:
                result = self.build(depth + 1, child_prefix, i, j)
            if result is not None:
                changes.append((nibble, result))
            i = j
        if extra_nibble >= 0:
            changes.append((extra_nibble, extra))
        return self.seal(depth, prefix, None, 0, 0, list(_NONE16), list(_NONE16), changes)

    def place(self, pending: tuple, path: bytes) -> tuple:
        """Write a pending leaf at path and return its ref."""
        key_hash, key, value, leaf_hash = pending
        version = self.version
        encoded = _LEAF_PREFIX + key_hash + len(key).to_bytes(2, "big") + key + value
        self.new_nodes[_tuple_new(NodeKey, (version, path))] = encoded
        return (version, leaf_hash, True)

    def lift(self, version: int, leaf_hash: bytes, path: bytes) -> tuple:
        """Turn an untouched leaf that must move up into a pending leaf, marking its old node stale."""
        key_hash, key, value = self.tree._load_leaf(version, path)
        self.stale.append(_tuple_new(NodeKey, (version, path)))
        return (key_hash, key, value, leaf_hash)


# -- the tree ------------------------------------------------------------------------------------

class SparseMerkleTree:
    """Versioned 16-ary sparse Merkle tree over a NodeReader; apply() returns writes, never stores them.

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
        self._cache: dict[bytes, tuple] = {}  # path -> flat entry, see _decode_internal_fast
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
            result = batch.place(result, _ROOT_PATH)
        return TreeUpdate(result[1], NodeKey(version, _ROOT_PATH), batch.new_nodes, batch.stale)

    def get(self, root_key: NodeKey | None, key: bytes) -> bytes | None:
        """The value stored under key in the tree at root_key, or None."""
        _check_key(key)
        key_hash = _sha256(key).digest()
        leaf = self._walk(root_key, key_hash, None)
        if leaf is None or leaf[0] != key_hash:
            return None
        return leaf[2]

    def get_with_proof(self, root_key: NodeKey | None, key: bytes) -> tuple[bytes | None, Proof]:
        """The value under key (or None) and a proof of it against the root hash."""
        _check_key(key)
        key_hash = _sha256(key).digest()
        levels: list[bytes] = []
        leaf = self._walk(root_key, key_hash, levels)
        if leaf is None:
            return None, Proof(tuple(levels), None)
        proof = Proof(tuple(levels), (leaf[0], _sha256(leaf[2]).digest()))
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
        """Depth-first, children in nibble order, from the root ref."""
        stack = [] if ref is None else [(ref, 0, 0)]
        while stack:
            ref, depth, prefix = stack.pop()
            path = _path(depth, prefix)
            if ref[2]:
                _, key, value = self._load_leaf(ref[0], path)
                yield key, value
                continue
            _, _, _, leaf_bitmap, versions, hashes = self._load_internal(ref[0], path, ref[1])
            for nibble in range(RADIX - 1, -1, -1):
                if hashes[nibble] is not None:
                    child = (int.from_bytes(versions[nibble], "big"), hashes[nibble], leaf_bitmap >> nibble & 1)
                    stack.append((child, depth + 1, (prefix << 4) | nibble))

    def _walk(self, root_key: NodeKey | None, key_hash: bytes, levels: list | None):
        """Follow key_hash from the root; return the leaf at the end (key_hash, key, value) or None.

        With a list for levels, append each internal node's proof level (sibling bitmap and hashes).
        """
        _check_root_key(root_key)
        ref = self._root_ref(root_key)
        key_int = int.from_bytes(key_hash, "big")
        depth = 0
        while ref is not None:
            path = _path(depth, key_int >> _PATH_SHIFT[depth])
            if ref[2]:
                return self._load_leaf(ref[0], path)
            _, _, bitmap, leaf_bitmap, versions, hashes = self._load_internal(ref[0], path, ref[1])
            nibble = (key_int >> (252 - 4 * depth)) & 15
            if levels is not None:
                siblings = b"".join(filter(None, hashes[:nibble] + hashes[nibble + 1 :]))
                levels.append((bitmap & ~(1 << nibble)).to_bytes(2, "big") + siblings)
            child_hash = hashes[nibble]
            ref = None
            if child_hash is not None:
                ref = (int.from_bytes(versions[nibble], "big"), child_hash, leaf_bitmap >> nibble & 1)
            depth += 1
        return None

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
