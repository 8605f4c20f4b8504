"""Per-block cost of the state tree: the 16-ary tree against the previous binary tree, same batches.

Builds a tree of --keys keys, then applies --batches batches of --batch changes (80% new values of
existing keys, 10% new keys, 10% deletes of existing keys), the two trees in turn on the same
batches, and reports per changed key the microseconds spent in apply() and the new nodes written
(each one an SQLite row in the ledger). The baseline, the previous binary tree, is read from the
project's git history (BASELINE_REV:src/cityledger/core/tree.py) and imported from a temporary file,
so the bench needs a git checkout.

Run: PYTHONPATH=src python bench/tree_apply.py [--keys 4000] [--batch 1567] [--batches 20]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from cityledger.core import tree as hexary

BASELINE_REV = "bfe7577"  # the last commit with the binary tree


def _load_baseline():
    """The previous binary tree module, as committed at BASELINE_REV."""
    import importlib.util
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "-C", str(root), "show", f"{BASELINE_REV}:src/cityledger/core/tree.py"],
                            capture_output=True, text=True)
    if source.returncode != 0:
        sys.exit(f"bench: cannot read the baseline tree from git ({source.stderr.strip()}); run in a git checkout")
    folder = Path(tempfile.mkdtemp(prefix="tree-baseline-"))
    (folder / "binary_tree_baseline.py").write_text(source.stdout)
    spec = importlib.util.spec_from_file_location("binary_tree_baseline", folder / "binary_tree_baseline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


binary = _load_baseline()

EXISTING_SHARE = 0.80
DELETE_SHARE = 0.10  # as many deletes as new keys: the tree stays near --keys


def make_workload(seed: int, keys: int, batch_size: int, batches: int) -> tuple[dict, list[dict]]:
    """The initial items and the batches, every entry of a batch a real change."""
    rng = random.Random(seed)
    model = {b"acct/%012d" % i: rng.randbytes(rng.randint(32, 64)) for i in range(keys)}
    initial, next_id, workload = dict(model), keys, []
    deletes = int(batch_size * DELETE_SHARE)
    for _ in range(batches):
        chosen = rng.sample(sorted(model), int(batch_size * EXISTING_SHARE) + deletes)
        batch: dict[bytes, bytes | None] = {key: None for key in chosen[:deletes]}
        batch.update((key, rng.randbytes(rng.randint(32, 64))) for key in chosen[deletes:])
        while len(batch) < batch_size:
            batch[b"acct/%012d" % next_id] = rng.randbytes(rng.randint(32, 64))
            next_id += 1
        workload.append(batch)
        model.update(batch)
        model = {key: value for key, value in model.items() if value is not None}
    return initial, workload


class Run:
    """One tree implementation going through the workload."""

    def __init__(self, module, initial: dict) -> None:
        self.module = module
        self.store = module.MemoryNodeStore()
        self.tree = module.SparseMerkleTree(self.store)
        update = self.tree.apply(None, 1, initial)
        self.store.put(update.new_nodes)
        self.root_key, self.root_hash = update.root_key, update.root_hash
        self.seconds: list[float] = []
        self.nodes = self.internal = self.stale = 0

    def apply(self, version: int, batch: dict) -> None:
        """Time one apply(), then store its nodes as the ledger would."""
        start = time.perf_counter()
        update = self.tree.apply(self.root_key, version, batch)
        self.seconds.append(time.perf_counter() - start)
        self.store.put(update.new_nodes)
        self.store.delete(update.stale_nodes)
        self.nodes += len(update.new_nodes)
        self.internal += sum(1 for data in update.new_nodes.values() if data[0] == 1)
        self.stale += len(update.stale_nodes)
        self.root_key, self.root_hash = update.root_key, update.root_hash

    def figures(self, changed: int) -> dict:
        """Per changed key figures over the whole run."""
        return {
            "us_per_changed_key": round(1e6 * sum(self.seconds) / changed, 2),
            "us_per_changed_key_median_batch": round(
                1e6 * statistics.median(self.seconds) * len(self.seconds) / changed, 2
            ),
            "ms_per_batch": round(1000 * sum(self.seconds) / len(self.seconds), 2),
            "new_nodes_per_changed_key": round(self.nodes / changed, 3),
            "internal_nodes_per_changed_key": round(self.internal / changed, 3),
            "stale_nodes_per_changed_key": round(self.stale / changed, 3),
        }


def run(keys: int, batch_size: int, batches: int, seed: int) -> dict:
    """Both trees through the same workload, alternating batch by batch so noise hits both alike."""
    initial, workload = make_workload(seed, keys, batch_size, batches)
    runs = {"hexary": Run(hexary, initial), "binary": Run(binary, initial)}
    model = dict(initial)
    for version, batch in enumerate(workload, start=2):
        for one in runs.values():
            one.apply(version, batch)
        model.update(batch)
    model = {key: value for key, value in model.items() if value is not None}
    for name, one in runs.items():
        if one.root_hash != one.module.compute_root(model):
            raise SystemExit(f"{name}: root hash mismatch against compute_root: the benchmark result is void")
    changed = batch_size * batches
    result = {name: one.figures(changed) for name, one in runs.items()}
    new, old = result["hexary"], result["binary"]
    result["speedup_us_per_changed_key"] = round(old["us_per_changed_key"] / new["us_per_changed_key"], 2)
    result["ratio_new_nodes"] = round(old["new_nodes_per_changed_key"] / new["new_nodes_per_changed_key"], 2)
    result["workload"] = {"keys_initial": keys, "keys_final": len(model), "batch": batch_size, "batches": batches,
                          "seed": seed}
    result["python"] = platform.python_version()
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print a table and a last-line JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=1567)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    result = run(args.keys, args.batch, args.batches, args.seed)
    for name in ("binary", "hexary"):
        for figure, value in result[name].items():
            print(f"{name:>7} {figure:>34}: {value}")
    print(f"{'':>7} {'speedup (us per changed key)':>34}: {result['speedup_us_per_changed_key']}x")
    print(f"{'':>7} {'fewer new nodes per changed key':>34}: {result['ratio_new_nodes']}x")
    print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
