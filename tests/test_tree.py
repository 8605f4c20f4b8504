"""The authenticated state tree: against a dict model, an independent reference hash, proofs and storage."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityledger.core.tree import (
    EMPTY_ROOT,
    MAX_KEY_BYTES,
    ChildRef,
    InternalNode,
    LeafNode,
    MemoryNodeStore,
    MissingNodeError,
    NodeKey,
    Proof,
    SparseMerkleTree,
    compute_internal_hash,
    compute_leaf_hash,
    compute_root,
    decode_node,
    decode_path,
    encode_internal,
    encode_leaf,
    encode_node,
    encode_path,
    verify_proof,
)


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _nibble(digest: bytes, index: int) -> int:
    return int(digest.hex()[index], 16)


def _shared_nibbles(first: bytes, second: bytes) -> int:
    return next(i for i, (a, b) in enumerate(zip(first.hex() + "x", second.hex() + "y")) if a != b)


def _reference_root(items: dict[bytes, bytes]) -> bytes:
    """The root hash straight from the spec in the module docstring, written independently."""

    def subtree(group: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if len(group) == 1:
            key_hash, value = group[0]
            return _sha(b"\x00" + key_hash + _sha(value))
        bitmap, hashes = 0, b""
        for nibble in range(16):
            child = [leaf for leaf in group if _nibble(leaf[0], depth) == nibble]
            if child:
                bitmap += 2**nibble
                hashes += subtree(child, depth + 1)
        return _sha(b"\x01" + bitmap.to_bytes(2, "big") + hashes)

    if not items:
        return bytes(32)
    return subtree([(_sha(key), value) for key, value in items.items()], 0)


def _near_keys(count: int) -> list[bytes]:
    """Keys whose hashes share long prefixes (5 or 6 nibbles), to grow chains of one-child nodes."""
    candidates = sorted((_sha(b"near/%d" % i), b"near/%d" % i) for i in range(1 << 13))
    pairs = []
    for (first_hash, first), (second_hash, second) in zip(candidates, candidates[1:]):
        pairs.append((_shared_nibbles(first_hash, second_hash), first, second))
    pairs.sort(reverse=True)
    keys: list[bytes] = []
    for _, first, second in pairs[: count // 2]:
        keys += [first, second]
    return keys


NEAR_KEYS = _near_keys(6)
KEYS = [b"k%d" % i for i in range(40)] + [b"", b"\x00" * MAX_KEY_BYTES] + NEAR_KEYS
VALUES = st.one_of(st.none(), st.binary(max_size=3))
BATCH = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=14)


def _walk(store: MemoryNodeStore, root_key: NodeKey | None) -> dict[NodeKey, int]:
    """Every node reachable from root_key with its leaf count, checking hashes and canonical shape."""
    found: dict[NodeKey, int] = {}

    def visit(key: NodeKey) -> tuple[bytes, int]:
        data = store.nodes[key]
        node = decode_node(data)
        if encode_node(node) != data:
            raise AssertionError(f"node {key} is not canonically encoded")
        depth, prefix = decode_path(key.path)
        if isinstance(node, LeafNode):
            if node.key_hash != _sha(node.key) or int.from_bytes(node.key_hash, "big") >> (256 - 4 * depth) != prefix:
                raise AssertionError(f"leaf {key} is not on its key's path")
            found[key] = 1
            return _sha(b"\x00" + node.key_hash + _sha(node.value)), 1
        bitmap, hashes, leaves = 0, b"", 0
        for nibble, child in enumerate(node.children):
            if child is None:
                continue
            child_key = NodeKey(child.version, encode_path(depth + 1, prefix * 16 + nibble))
            child_hash, child_leaves = visit(child_key)
            if child_hash != child.hash or child.is_leaf != isinstance(decode_node(store.nodes[child_key]), LeafNode):
                raise AssertionError(f"child reference of {key} does not match node {child_key}")
            bitmap += 2**nibble
            hashes += child_hash
            leaves += child_leaves
        if leaves < 2:
            raise AssertionError(f"internal node {key} has fewer than two leaves below it")
        found[key] = leaves
        return _sha(b"\x01" + bitmap.to_bytes(2, "big") + hashes), leaves

    if root_key is not None:
        visit(root_key)
    return found


def _apply(tree: SparseMerkleTree, store: MemoryNodeStore, root_key, version: int, updates: dict):
    """Apply and store a batch; return the update."""
    update = tree.apply(root_key, version, updates)
    store.put(update.new_nodes)
    return update


def _build(items: dict[bytes, bytes], version: int = 1):
    store = MemoryNodeStore()
    tree = SparseMerkleTree(store)
    update = _apply(tree, store, None, version, items)
    return store, tree, update


def _check_proofs(tree: SparseMerkleTree, root_key, root_hash: bytes, model: dict, keys) -> None:
    for key in keys:
        value, proof = tree.get_with_proof(root_key, key)
        assert value == model.get(key)
        assert verify_proof(root_hash, key, value, proof)
        assert Proof.from_bytes(proof.to_bytes()) == proof
        assert Proof.from_dict(proof.to_dict()) == proof


# -- the tree against a dict model -------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(BATCH, min_size=1, max_size=10))
def test_tree_matches_dict_model_across_versions(batches):
    store = MemoryNodeStore()
    tree = SparseMerkleTree(store)
    model: dict[bytes, bytes] = {}
    root_key = None
    history = []
    for version, batch in enumerate(batches, start=1):
        old_nodes = _walk(store, root_key)
        update = _apply(tree, store, root_key, version, batch)
        for key, value in batch.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        new_nodes = _walk(store, update.root_key)
        # The root is the model's hash, however it was reached, and the tree is canonical.
        assert update.root_hash == compute_root(model) == _reference_root(model)
        assert tree.root_hash(update.root_key) == update.root_hash
        assert (update.root_key is None) == (not model) == (update.root_hash == EMPTY_ROOT)
        # Stale nodes are exactly the old tree's nodes the new tree no longer reaches; new nodes the rest.
        assert len(update.stale_nodes) == len(set(update.stale_nodes))
        assert set(update.stale_nodes) == set(old_nodes) - set(new_nodes)
        assert set(update.new_nodes) == set(new_nodes) - set(old_nodes)
        assert all(key.version == version for key in update.new_nodes)
        leaves = list(tree.iter_leaves(update.root_key))
        assert dict(leaves) == model
        assert [_sha(key) for key, _ in leaves] == sorted(_sha(key) for key in model)
        _check_proofs(tree, update.root_key, update.root_hash, model, KEYS)
        root_key = update.root_key
        history.append((root_key, dict(model)))
    # Old versions stay readable: nodes are never overwritten.
    for old_root, old_model in history:
        assert dict(tree.iter_leaves(old_root)) == old_model
        assert all(tree.get(old_root, key) == old_model.get(key) for key in KEYS)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), st.binary(max_size=3), max_size=30), st.randoms(use_true_random=False))
def test_root_is_independent_of_order_and_batching(items, rnd):
    expected = compute_root(items)
    keys = list(items)
    rnd.shuffle(keys)
    store = MemoryNodeStore()
    tree = SparseMerkleTree(store)
    root_key, version = None, 0
    # Insert in random batches, with detours: extra keys inserted then deleted, values overwritten.
    while keys:
        size = rnd.randint(1, 5)
        chunk, keys = keys[:size], keys[size:]
        detour = b"detour/%d" % version
        wrong = {key: items[key] + b"~" for key in chunk} | {detour: b"x"}
        right = {key: items[key] for key in chunk} | {detour: None}
        root_key = _apply(tree, store, root_key, version + 1, wrong).root_key
        root_key = _apply(tree, store, root_key, version + 2, right).root_key
        version += 2
    assert tree.root_hash(root_key) == expected == _reference_root(items)
    _, _, in_one_batch = _build(items)
    assert in_one_batch.root_hash == expected


def test_many_keys_in_batches_match_compute_root():
    rng = random.Random(5)
    store = MemoryNodeStore()
    tree = SparseMerkleTree(store)
    model: dict[bytes, bytes] = {}
    root_key = None
    for version in range(1, 9):
        batch: dict[bytes, bytes | None] = {}
        for _ in range(400):
            key = b"acct/%d" % rng.randrange(1500)
            batch[key] = None if rng.random() < 0.25 else rng.randbytes(rng.randrange(0, 40))
        update = _apply(tree, store, root_key, version, batch)
        model.update(batch)
        model = {key: value for key, value in model.items() if value is not None}
        assert update.root_hash == compute_root(model)
        root_key = update.root_key
    assert set(_walk(store, root_key)) <= set(store.nodes)
    sample = rng.sample(sorted(model), 50) + [b"absent/%d" % i for i in range(50)]
    _check_proofs(tree, root_key, tree.root_hash(root_key), model, sample)


def test_deleting_every_key_gives_the_empty_root():
    items = {key: b"v" for key in KEYS}
    store, tree, first = _build(items)
    update = _apply(tree, store, first.root_key, 2, {key: None for key in KEYS})
    assert update.root_hash == EMPTY_ROOT
    assert update.root_key is None
    assert update.new_nodes == {}
    assert set(update.stale_nodes) == set(_walk(store, first.root_key))
    assert list(tree.iter_leaves(None)) == []
    assert tree.root_hash(None) == EMPTY_ROOT
    value, proof = tree.get_with_proof(None, b"k1")
    assert value is None and proof == Proof((), None)
    assert verify_proof(EMPTY_ROOT, b"k1", None, proof)


def test_lone_leaf_rises_to_the_root_when_its_near_neighbour_is_deleted():
    first, second = NEAR_KEYS[0], NEAR_KEYS[1]
    store, tree, update = _build({first: b"1", second: b"2"})
    deep = _walk(store, update.root_key)
    shared = _shared_nibbles(_sha(first), _sha(second))
    assert shared >= 5
    assert len(deep) == shared + 3  # a chain of one-child internal nodes down to the split, two leaves
    update = _apply(tree, store, update.root_key, 2, {second: None})
    assert update.root_hash == compute_leaf_hash(_sha(first), b"1")
    assert decode_node(store.nodes[update.root_key]) == LeafNode(_sha(first), first, b"1")
    assert set(update.stale_nodes) == set(deep)


def test_batches_that_change_nothing_write_nothing():
    items = {key: b"v" + key for key in KEYS[:20]}
    store, tree, first = _build(items, version=3)
    for version, batch in enumerate(
        [{}, {b"absent": None}, {KEYS[0]: b"v" + KEYS[0]}, {KEYS[1]: b"v" + KEYS[1], b"absent": None}], start=4
    ):
        update = tree.apply(first.root_key, version, batch)
        assert update.root_key == first.root_key
        assert update.root_hash == first.root_hash
        assert update.new_nodes == {} and update.stale_nodes == []
    empty = tree.apply(None, 9, {b"absent": None})
    assert empty.root_key is None and empty.root_hash == EMPTY_ROOT and empty.new_nodes == {}


def test_known_answer_vectors():
    # One key: the root is the leaf itself.
    _, _, one = _build({b"a": b"1"})
    assert one.root_hash == _sha(b"\x00" + _sha(b"a") + _sha(b"1"))
    assert one.root_key == NodeKey(1, b"\x00")
    # Pinned: any change to hashing, shape or key derivation must show up here.
    items = {b"a": b"1", b"b": b"2", b"c": b"3", b"bank/balance/alice": b"\x00\x10"}
    assert compute_root(items).hex() == _reference_root(items).hex() == PINNED_ROOT
    # These four differ in their first nibble; two keys sharing six nibbles add a chain of one-child nodes.
    deep = items | {b"near/4607": b"4", b"near/6100": b"5"}
    assert _shared_nibbles(_sha(b"near/4607"), _sha(b"near/6100")) == 6
    assert compute_root(deep).hex() == _reference_root(deep).hex() == PINNED_ROOT_DEEP


PINNED_ROOT = "995b79511741d0b8455001033313a447a525ed86c18bfcf8a058b9b4bf9c67f0"
PINNED_ROOT_DEEP = "702867c8a429a86371f1f707f23ee0229e98de8f01c24e2a4ff2f9eb1ec7c2a8"


def test_old_versions_stay_readable_until_pruned():
    store, tree, first = _build({key: b"1" for key in KEYS[:30]})
    second = _apply(tree, store, first.root_key, 2, {key: b"2" for key in KEYS[:10]})
    third = _apply(tree, store, second.root_key, 3, {key: None for key in KEYS[5:15]})
    assert tree.get(first.root_key, KEYS[0]) == b"1"
    assert tree.get(second.root_key, KEYS[0]) == b"2"
    assert tree.get(third.root_key, KEYS[6]) is None
    # Pruning what versions 2 and 3 made stale keeps the latest tree whole.
    store.delete(second.stale_nodes + third.stale_nodes)
    assert set(_walk(store, third.root_key)) <= set(store.nodes)
    assert tree.get(third.root_key, KEYS[20]) == b"1"
    fresh = SparseMerkleTree(store)  # no cached nodes: every read goes to the store
    with pytest.raises(MissingNodeError):
        dict(fresh.iter_leaves(first.root_key))


def test_cache_never_changes_results():
    rng = random.Random(11)
    batches = [{b"k%d" % rng.randrange(300): rng.choice([None, b"a", b"bb"]) for _ in range(60)} for _ in range(12)]
    runs = []
    for cache_size in (0, 7, 1 << 16):
        store = MemoryNodeStore()
        tree = SparseMerkleTree(store, cache_size=cache_size)
        root_key, updates = None, []
        for version, batch in enumerate(batches, start=1):
            update = _apply(tree, store, root_key, version, batch)
            updates.append((update.root_hash, update.root_key, update.new_nodes, sorted(update.stale_nodes)))
            root_key = update.root_key
        runs.append(updates)
    assert runs[0] == runs[1] == runs[2]


def test_a_discarded_apply_does_not_affect_the_next_one():
    items = {b"k%d" % i: b"v" for i in range(200)}
    store, tree, first = _build(items)
    discarded = tree.apply(first.root_key, 2, {b"k%d" % i: b"discarded" for i in range(0, 200, 3)})
    store.put(discarded.new_nodes)  # staged by the storage layer, then the block was abandoned
    batch = {b"k%d" % i: None for i in range(0, 200, 7)} | {b"new": b"n"}
    kept = _apply(tree, store, first.root_key, 2, batch)
    clean_store = MemoryNodeStore()
    clean_store.put(store.nodes)
    expected = SparseMerkleTree(clean_store, cache_size=0).apply(first.root_key, 2, batch)
    assert kept == expected
    _check_proofs(tree, kept.root_key, kept.root_hash, {**items, **batch}, list(items)[:50] + [b"new"])


def test_apply_on_an_older_root_forks_without_touching_newer_nodes():
    items = {b"k%d" % i: b"v" for i in range(100)}
    store, tree, first = _build(items)
    second = _apply(tree, store, first.root_key, 2, {b"k1": b"changed"})
    # Version 3 restores version 1's content: same hashes at the same paths, newer versions.
    third = _apply(tree, store, second.root_key, 3, {b"k1": b"v"})
    assert third.root_hash == first.root_hash and third.root_key != first.root_key
    fork = _apply(tree, store, first.root_key, 4, {b"k1": b"fork", b"k2": None})
    expected = SparseMerkleTree(store, cache_size=0).apply(first.root_key, 4, {b"k1": b"fork", b"k2": None})
    assert fork == expected
    assert set(fork.stale_nodes) == set(_walk(store, first.root_key)) - set(_walk(store, fork.root_key))


# -- proofs ------------------------------------------------------------------------------------

def _proof_fixture():
    items = {b"k%d" % i: b"value %d" % i for i in range(64)} | {key: b"near" for key in NEAR_KEYS}
    store, tree, update = _build(items)
    return tree, update, items


def _level_variants(level: bytes):
    """Well-formed changes of one proof level: a flipped hash byte, a sibling moved, dropped or added."""
    bitmap, hashes = int.from_bytes(level[:2], "big"), level[2:]
    for at in range(2, len(level), 32):
        yield level[:at] + bytes([level[at] ^ 1]) + level[at + 1 :]
    present = [nibble for nibble in range(16) if bitmap >> nibble & 1]
    for nibble in range(16):
        if bitmap >> nibble & 1:
            continue
        if present:  # the first sibling moved to another nibble (the hashes stay in place)
            yield (bitmap ^ (1 << present[0]) | (1 << nibble)).to_bytes(2, "big") + hashes
        # One more sibling: insert its hash at its place in nibble order.
        at = 32 * sum(1 for other in present if other < nibble)
        yield (bitmap | (1 << nibble)).to_bytes(2, "big") + hashes[:at] + b"\x05" * 32 + hashes[at:]
    for index, nibble in enumerate(present):
        yield (bitmap ^ (1 << nibble)).to_bytes(2, "big") + hashes[: 32 * index] + hashes[32 * index + 32 :]


def _tampered(proof: Proof):
    """Every single-step tampering of a proof."""
    siblings = proof.siblings
    for i, level in enumerate(siblings):
        for changed in _level_variants(level):
            yield Proof(siblings[:i] + (changed,) + siblings[i + 1 :], proof.leaf)
        yield Proof(siblings[:i] + siblings[i + 1 :], proof.leaf)
    for extra in (b"\x00\x00", b"\x00\x01" + bytes(32), b"\x80\x00" + b"\x01" * 32):
        yield Proof(siblings + (extra,), proof.leaf)
        yield Proof((extra,) + siblings, proof.leaf)
    if proof.leaf is None:
        yield Proof(siblings, (_sha(b"k1"), _sha(b"value 1")))
    else:
        key_hash, value_hash = proof.leaf
        yield Proof(siblings, None)
        yield Proof(siblings, (bytes([key_hash[0] ^ 0x80]) + key_hash[1:], value_hash))
        yield Proof(siblings, (key_hash, bytes([value_hash[0] ^ 1]) + value_hash[1:]))


def test_every_tampered_inclusion_proof_fails():
    tree, update, items = _proof_fixture()
    for key in [b"k3", b"k40", NEAR_KEYS[0], NEAR_KEYS[1]]:
        value, proof = tree.get_with_proof(update.root_key, key)
        assert value == items[key] and verify_proof(update.root_hash, key, value, proof)
        assert len(proof.siblings) >= 1
        for bad in _tampered(proof):
            assert not verify_proof(update.root_hash, key, value, bad), bad
        assert not verify_proof(update.root_hash, key, value + b"!", proof)
        assert not verify_proof(update.root_hash, key, None, proof)
        assert not verify_proof(update.root_hash, key + b"!", value, proof)
        assert not verify_proof(bytes(32), key, value, proof)


def test_every_tampered_non_inclusion_proof_fails():
    tree, update, items = _proof_fixture()
    absent = [b"absent/%d" % i for i in range(40)]
    kinds = set()
    for key in absent:
        value, proof = tree.get_with_proof(update.root_key, key)
        assert value is None and verify_proof(update.root_hash, key, None, proof)
        kinds.add(proof.leaf is None)
        for bad in _tampered(proof):
            assert not verify_proof(update.root_hash, key, None, bad), bad
        assert not verify_proof(update.root_hash, key, b"value", proof)
    assert kinds == {True, False}  # both an empty spot and another key's leaf were exercised
    # A proof for a present key does not show a different key absent, and vice versa.
    _, present_proof = tree.get_with_proof(update.root_key, b"k5")
    assert not verify_proof(update.root_hash, b"k6", None, present_proof)
    assert not verify_proof(update.root_hash, b"k5", None, present_proof)


def _proof_along(key_hash: bytes, depth: int, leaf: tuple[bytes, bytes]) -> tuple[bytes, Proof]:
    """A root and proof with `depth` levels along key_hash, one made-up sibling each, ending at leaf."""
    siblings = []
    node = _sha(b"\x00" + leaf[0] + leaf[1])
    for level in range(depth - 1, -1, -1):
        own = _nibble(key_hash, level)
        other = (own + 1) % 16
        sibling = bytes([level + 1]) * 32
        siblings.insert(0, (1 << other).to_bytes(2, "big") + sibling)
        pair = sibling + node if other < own else node + sibling
        node = _sha(b"\x01" + ((1 << own) | (1 << other)).to_bytes(2, "big") + pair)
    return node, Proof(tuple(siblings), leaf)


def test_non_inclusion_proof_with_a_leaf_off_the_key_path_fails():
    # A leaf can only sit on its own key's path, so a proof placing it elsewhere is refused even
    # when the root it implies is consistent.
    key, other = b"k1", b"k2"
    key_hash, other_hash = _sha(key), _sha(other)
    depth = _shared_nibbles(key_hash, other_hash) + 1
    root, proof = _proof_along(key_hash, depth, (other_hash, _sha(b"v")))
    assert not verify_proof(root, key, None, proof)
    # The same construction along the leaf's own path verifies: only the path check refused it.
    root, proof = _proof_along(other_hash, depth, (other_hash, _sha(b"v")))
    assert verify_proof(root, other, b"v", proof)


def test_proof_of_an_old_version_verifies_against_its_own_root():
    store, tree, first = _build({b"a": b"1", b"b": b"2", b"c": b"3"})
    second = _apply(tree, store, first.root_key, 2, {b"a": b"9"})
    value, proof = tree.get_with_proof(first.root_key, b"a")
    assert value == b"1" and verify_proof(first.root_hash, b"a", b"1", proof)
    assert not verify_proof(second.root_hash, b"a", b"1", proof)


# -- encodings ---------------------------------------------------------------------------------

@given(st.integers(0, 64).flatmap(lambda depth: st.tuples(st.just(depth), st.integers(0, 16**depth - 1))))
def test_paths_round_trip(depth_prefix):
    depth, prefix = depth_prefix
    path = encode_path(depth, prefix)
    assert len(path) == 1 + (depth + 1) // 2
    assert decode_path(path) == (depth, prefix)
    assert path[1:].hex()[:depth] == (f"{prefix:0{depth}x}" if depth else "")


def _children(by_nibble: dict) -> list:
    return [by_nibble.get(nibble) for nibble in range(16)]


def test_node_encodings_round_trip_and_hash_as_specified():
    leaf = encode_leaf(_sha(b"key"), b"key", b"value")
    assert len(leaf) == 35 + 3 + 5
    assert decode_node(leaf) == LeafNode(_sha(b"key"), b"key", b"value")
    first, last = ChildRef(7, b"\x11" * 32, True), ChildRef(2**64 - 1, b"\x22" * 32, False)
    full = {nibble: ChildRef(nibble, bytes([nibble]) * 32, nibble % 2 == 0) for nibble in range(16)}
    for by_nibble in ({0: first, 15: last}, {3: last}, {4: first, 5: ChildRef(1, b"\x33" * 32, True)}, full):
        node = InternalNode(tuple(_children(by_nibble)))
        data = encode_node(node)
        assert len(data) == 5 + 40 * len(by_nibble) and decode_node(data) == node
    # The layout: tag, bitmap (bit i = nibble i), leaf bitmap, the versions, then the hashes.
    data = encode_internal(_children({0: first, 15: last}))
    versions = (7).to_bytes(8, "big") + (2**64 - 1).to_bytes(8, "big")
    assert data == b"\x01" + b"\x80\x01" + b"\x00\x01" + versions + b"\x11" * 32 + b"\x22" * 32
    node_hash = compute_internal_hash(_children({0: b"\x11" * 32, 15: b"\x22" * 32}))
    assert node_hash == _sha(b"\x01\x80\x01" + b"\x11" * 32 + b"\x22" * 32) == _sha(data[:3] + data[-64:])
    assert compute_internal_hash(_children({9: b"\x11" * 32})) == _sha(b"\x01\x02\x00" + b"\x11" * 32)
    assert compute_leaf_hash(b"\x11" * 32, b"v") == _sha(b"\x00" + b"\x11" * 32 + _sha(b"v"))


# -- invalid input -----------------------------------------------------------------------------

def test_invalid_version_is_rejected():
    store, tree, first = _build({b"a": b"1"}, version=5)
    for version in (5, 4, -1, 2**64, True, "6", 6.0):
        with pytest.raises(ValueError, match="version"):
            tree.apply(first.root_key, version, {b"b": b"2"})


def test_invalid_updates_are_rejected():
    tree = SparseMerkleTree(MemoryNodeStore())
    for updates in ([(b"a", b"1")], {"a": b"1"}, {b"a": "1"}, {b"a": 1}, {b"x" * (MAX_KEY_BYTES + 1): b"1"}):
        with pytest.raises(ValueError, match="updates"):
            tree.apply(None, 1, updates)
    with pytest.raises(ValueError, match="items"):
        compute_root({b"a": None})


def test_invalid_root_key_and_reader_are_rejected():
    tree = SparseMerkleTree(MemoryNodeStore())
    with pytest.raises(ValueError, match="root_key"):
        tree.get((1,), b"a")
    with pytest.raises(ValueError, match="key"):
        tree.get(None, "a")
    with pytest.raises(ValueError, match="reader"):
        SparseMerkleTree(object())
    with pytest.raises(ValueError, match="cache_size"):
        SparseMerkleTree(MemoryNodeStore(), cache_size=-1)
    with pytest.raises(MissingNodeError):
        tree.get(NodeKey(1, b"\x00"), b"a")


def test_invalid_proof_bytes_are_rejected():
    level = b"\x00\x01" + b"\x01" * 32
    good = Proof((level, b"\x00\x00"), (b"\x02" * 32, b"\x03" * 32)).to_bytes()
    assert good == b"\x02" + level + b"\x00\x00" + b"\x01" + b"\x02" * 32 + b"\x03" * 32
    assert Proof.from_bytes(good).to_bytes() == good
    for bad in (
        b"",
        b"\x00",
        good[:-1],
        good + b"\x00",
        b"\x00\x02",  # leaf flag 2
        b"\x41" + b"\x00\x00" * 65 + b"\x00",  # 65 levels
        b"\x01\x00\x03" + b"\x01" * 32 + b"\x00",  # the bitmap claims two hashes, one follows
        b"\x01\x00",  # a level cut short
    ):
        with pytest.raises(ValueError, match="data"):
            Proof.from_bytes(bad)
    for levels in ((b"\x00\x01" + b"\x01" * 31,), (b"\x00\x00",) * 65, (b"\x01",), (b"\x00\x03" + bytes(32),), ("00",)):
        with pytest.raises(ValueError, match="siblings"):
            Proof(levels, None)
    with pytest.raises(ValueError, match="leaf"):
        Proof((), (b"\x01" * 32,))
    for bad_dict in ({"siblings": ["zz"], "leaf": None}, {"siblings": []}, {"siblings": [], "leaf": ["00"] * 3}):
        with pytest.raises(ValueError, match="data"):
            Proof.from_dict(bad_dict)


def test_invalid_verify_arguments_are_rejected():
    proof = Proof((), None)
    with pytest.raises(ValueError, match="root_hash"):
        verify_proof(b"\x00" * 31, b"a", None, proof)
    with pytest.raises(ValueError, match="value"):
        verify_proof(EMPTY_ROOT, b"a", "v", proof)
    with pytest.raises(ValueError, match="proof"):
        verify_proof(EMPTY_ROOT, b"a", None, proof.to_bytes())


def test_invalid_node_bytes_are_rejected():
    child = ChildRef(1, b"\x11" * 32, False)
    internal = encode_internal(_children({0: child, 1: child}))
    bad_nodes = [
        b"",
        b"\x02" + internal[1:],
        internal[:-1],
        internal[:4],  # the header cut short
        internal[:3] + b"\x00\x04" + internal[5:],  # the leaf bitmap marks an absent child
        internal[:1] + b"\x00\x07" + internal[3:],  # the bitmap claims three children, two follow
        b"\x01\x00\x00\x00\x00",  # no child at all
        encode_internal(_children({1: ChildRef(1, b"\x11" * 32, True)})),  # one leaf alone under an internal node
        encode_leaf(bytes(32), b"k", b"")[:33],
        encode_leaf(bytes(32), b"k", b"")[:35],  # key length runs past the data
    ]
    for data in bad_nodes:
        with pytest.raises(ValueError, match="data"):
            decode_node(data)
    with pytest.raises(ValueError, match="children"):
        encode_internal([None] * 16)
    with pytest.raises(ValueError, match="children"):
        encode_internal([child, child])
    with pytest.raises(ValueError, match="children"):
        encode_internal(_children({2: ChildRef(-1, b"\x11" * 32, False)}))
    with pytest.raises(ValueError, match="child_hashes"):
        compute_internal_hash([None] * 16)


def test_invalid_paths_are_rejected():
    for depth, prefix in ((65, 0), (-1, 0), (3, 16**3), (0, 1)):
        with pytest.raises(ValueError):
            encode_path(depth, prefix)
    for path in (b"", b"\x03", b"\x03\x10", b"\x01\x11", b"\x41" + bytes(33), b"\x00\x00"):
        with pytest.raises(ValueError, match="path"):
            decode_path(path)
