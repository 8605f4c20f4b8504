"""Nodes of the state tree: constants, nibble paths, hashes, the node encoding and a memory node store.

The specification is the docstring of the package, cityledger/core/tree/__init__.py.
"""

from __future__ import annotations

import gc
import hashlib
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
