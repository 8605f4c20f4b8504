"""SparseMerkleTree: the versioned tree over a NodeReader; applies batches, reads values and proofs.

The specification is the docstring of the package, cityledger/core/tree/__init__.py.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from .apply import _Batch, _sorted_updates
from .nodes import (
    _KEEP, _LEAF_PREFIX, _PATH_SHIFT, _ROOT_PATH, DEFAULT_CACHE_NODES, EMPTY_ROOT, MAX_VERSION, RADIX,
    MissingNodeError, NodeKey, NodeReader, TreeUpdate, _check_key, _check_root_key, _decode_internal_fast,
    _decode_leaf_fast, _gc_paused, _path, _sha256, _tuple_new, compute_leaf_hash,
)
from .proofs import Proof


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
