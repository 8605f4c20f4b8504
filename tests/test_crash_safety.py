"""Crash safety: SIGKILL a loaded node at random moments; it must resume with nothing lost."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cityledger.core.storage import Store
from cityledger.node.home import init_home
from cityledger.node.runner import Node
from cityledger.node.home import load_config

DRIVER = Path(__file__).parent / "crash_driver.py"


def _reported(report: Path) -> tuple[int, list[bytes]]:
    height, ids = 0, []
    for line in report.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue  # a torn last line: the kill came mid-write, before the fsync
        height = max(height, int(parts[0]))
        ids += [bytes.fromhex(p) for p in parts[1:] if len(p) == 64]
    return height, ids


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    home = tmp_path / "home"
    init_home(home, members=3)
    report = tmp_path / "committed.txt"
    report.touch()
    rng = random.Random(20261125)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    last_seen = 0
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, str(DRIVER), str(home), str(report)], env=env,
                                stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.0, 3.0))
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reported_height, reported_ids = _reported(report)
        store = Store(load_config(home).db_path)
        height = store.last_height()
        # It holds (at least) the last height it reported, and never goes backwards. What it
        # reported may lag the store: a kill between a commit and its report line, then a next round
        # killed before its first block (a loaded machine can take the whole wait to start).
        assert height >= reported_height, f"round {round_}: reported {reported_height}, store has {height}"
        assert height >= last_seen, f"round {round_}: store went back from {last_seen} to {height}"
        last_seen = height
        # Every tx it reported committed is still there.
        missing = [tx_id.hex() for tx_id in reported_ids if store.find_tx(tx_id) is None]
        assert not missing, f"round {round_}: {len(missing)} reported txs lost"
        # The stored state is consistent: recomputed root equals the stored app hash (a kill before
        # the first block, which a loaded machine can take longer than the wait to reach, has none).
        if height:
            assert store.recompute_app_hash() == store.height_info(height).app_hash
        store.close()
    assert last_seen > 3
    node = Node(load_config(home))
    node.app.check_invariants()
    node.stop()
