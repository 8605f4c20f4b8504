"""Benchmark the authenticated state tree: batched updates/s against raw SHA-256 throughput.

Run: PYTHONPATH=src python bench/tree_bench.py [--keys 100000] [--batch 10000] [--batches 10]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import platform
import random
import statistics
import sys
import time

from cityledger.core.tree import MemoryNodeStore, SparseMerkleTree, compute_root, verify_proof

SHA_SAMPLES = 1_000_000
LOOKUP_SAMPLES = 10_000


def measure_sha256_rate(samples: int) -> float:
    """Raw hashlib.sha256 digests/s of 65-byte messages (the size of an internal node preimage)."""
    message = b"\x01" + bytes(64)
    sha256 = hashlib.sha256
    start = time.perf_counter()
    for _ in range(samples):
        sha256(message).digest()
    return samples / (time.perf_counter() - start)


def make_batch(rng: random.Random, existing: list[bytes], size: int, next_id: int) -> tuple[dict, int]:
    """Half updates of existing keys, half inserts of new keys, with 32..64-byte values."""
    batch: dict[bytes, bytes] = {}
    for key in rng.sample(existing, size // 2):
        batch[key] = rng.randbytes(rng.randint(32, 64))
    while len(batch) < size:
        batch[b"acct/%012d" % next_id] = rng.randbytes(rng.randint(32, 64))
        next_id += 1
    return batch, next_id


def run(keys: int, batch_size: int, batches: int, seed: int) -> dict:
    """Build a tree of `keys` keys, then time `batches` batches of `batch_size` updates."""
    rng = random.Random(seed)
    store = MemoryNodeStore()
    tree = SparseMerkleTree(store)
    model = {b"acct/%012d" % i: rng.randbytes(rng.randint(32, 64)) for i in range(keys)}
    start = time.perf_counter()
    update = tree.apply(None, 1, model)
    build_s = time.perf_counter() - start
    store.put(update.new_nodes)
    root_key, root_hash, existing, next_id = update.root_key, update.root_hash, list(model), keys
    update = None
    apply_times, total_times = [], []
    nodes_written = internal_written = 0
    for version in range(2, batches + 2):
        batch, next_id = make_batch(rng, existing, batch_size, next_id)
        existing.extend(key for key in batch if key not in model)
        model.update(batch)
        start = time.perf_counter()
        update = tree.apply(root_key, version, batch)
        applied = time.perf_counter()
        store.put(update.new_nodes)
        root_key, root_hash = update.root_key, update.root_hash
        nodes_written += len(update.new_nodes)
        internal_written += sum(1 for data in update.new_nodes.values() if data[0] == 1)
        update = None  # as a node does once the block is committed
        total_times.append(time.perf_counter() - start)
        apply_times.append(applied - start)
    if root_hash != compute_root(model):
        raise SystemExit("root hash mismatch against compute_root: the benchmark result is void")
    sample = rng.sample(existing, LOOKUP_SAMPLES)
    start = time.perf_counter()
    for key in sample:
        value, proof = tree.get_with_proof(root_key, key)
    proof_s = time.perf_counter() - start
    if not verify_proof(root_hash, sample[-1], value, proof):
        raise SystemExit("proof does not verify: the benchmark result is void")
    total_updates = batch_size * batches
    sha_rate = round(measure_sha256_rate(SHA_SAMPLES))
    sha_per_update = (internal_written + 2 * total_updates) / total_updates
    return {
        "keys_initial": keys,
        "keys_final": len(model),
        "batch_size": batch_size,
        "batches": batches,
        "initial_build_keys_per_s": round(keys / build_s),
        "updates_per_s": round(total_updates / sum(apply_times)),
        "updates_per_s_median_batch": round(batch_size / statistics.median(apply_times)),
        "updates_per_s_incl_store_put_and_gc": round(total_updates / sum(total_times)),
        "ms_per_batch": round(1000 * sum(apply_times) / batches, 1),
        "nodes_written_per_update": round(nodes_written / total_updates, 2),
        "proofs_per_s": round(LOOKUP_SAMPLES / proof_s),
        "gc_enabled": gc.isenabled(),
        "sha256_per_s": sha_rate,
        # Each internal node written costs one SHA-256, each new or changed leaf two.
        "sha256_per_update": round(sha_per_update, 2),
        "hash_bound_updates_per_s": round(sha_rate / sha_per_update),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print a table and a last-line JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.batch // 2 > args.keys:
        raise SystemExit("--batch: expected at most twice --keys (half of each batch updates existing keys)")
    result = run(args.keys, args.batch, args.batches, args.seed)
    for name, value in result.items():
        print(f"{name:>32}: {value}")
    print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
