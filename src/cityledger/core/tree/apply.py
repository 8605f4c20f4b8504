"""Applying one batch of changes to the state tree: the sorted updates split by nibble down the tree.

The specification is the docstring of the package, cityledger/core/tree/__init__.py.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Mapping

from cityledger.core.errors import InvariantBroken
from .nodes import (
    _INTERNAL_PREFIX, _KEEP, _LEAF_PREFIX, _NONE16, _PATH_BYTES, _PATH_HEADER, _PATH_PAD, _PATH_SHIFT,
    KEY_BITS, KEY_NIBBLES, LEAF_HEADER_BYTES, LEAF_TAG, MAX_UPDATES_PER_APPLY, MAX_VALUE_BYTES,
    MissingNodeError, NodeKey, _check_key, _check_value, _first, _path, _sha256, _tuple_new,
    compute_leaf_hash,
)

if TYPE_CHECKING:
    from .sparse import SparseMerkleTree


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
