"""The authenticated state tree: a 16-ary sparse Merkle tree over SHA-256 (Jellyfish style).

Every state key lives in this tree; its root hash is the block's app hash. This docstring is the
specification: another implementation that follows it computes the same hashes and node bytes.
The code is split by what it does: nodes.py (paths, hashes, node encoding, the memory node store),
apply.py (one batch of changes), sparse.py (SparseMerkleTree: apply, reads, proofs of reads) and
proofs.py (Proof, verify_proof, and compute_root from scratch).

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

from .nodes import (
    DEFAULT_CACHE_NODES,
    EMPTY_ROOT,
    MAX_KEY_BYTES,
    MAX_UPDATES_PER_APPLY,
    MAX_VALUE_BYTES,
    ChildRef,
    InternalNode,
    LeafNode,
    MemoryNodeStore,
    MissingNodeError,
    NodeKey,
    NodeReader,
    TreeUpdate,
    compute_internal_hash,
    compute_key_hash,
    compute_leaf_hash,
    decode_node,
    decode_path,
    encode_internal,
    encode_leaf,
    encode_node,
    encode_path,
)
from .proofs import Proof, compute_root, verify_proof
from .sparse import SparseMerkleTree

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
