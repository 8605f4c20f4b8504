"""Crash-test node side of a sharded gateway: the fleet's anchoring point and its gateway processes, as
a node with `[telemetry] gateways = 2` runs them, in a process of its own until killed.

    fleet_crash_driver.py <home> <registry.json> <host> <port> <password file> <anchors file>

Shard k runs in <home>/gateway-k (the vaults in <home>/vaults), the fleet in <home>/fleet.sqlite; each
anchor call appends `interval root-hex count` to the anchors file and fsyncs it before returning (what
reached the ledger; a repeat of an interval is done, another root for it is refused, as the ledger does).
Prints `ready <pid> <pid> …` (the shard processes) once every shard is subscribed.
"""

import os
import sys
import time
from pathlib import Path

from gateway_crash_driver import load_registry

from cityledger.offchain.telemetry.fleet import FleetAnchor
from cityledger.offchain.telemetry.shards import ShardProcess, ShardSpec

SHARDS = 2
INTERVAL_S = 1


def main(home, registry, host, port, password_file, anchors_file) -> None:
    home, devices = Path(home), load_registry(Path(registry))
    home.mkdir(parents=True, exist_ok=True, mode=0o700)

    def anchored() -> dict[int, tuple[str, int]]:
        lines = Path(anchors_file).read_text().splitlines()
        return {int(i): (root, int(count)) for i, root, count in (line.split() for line in lines)}

    def anchor(root: bytes, count: int, interval: int) -> None:
        held = anchored()
        if interval in held:
            if held[interval] != (root.hex(), count):
                raise RuntimeError(f"interval {interval}: another root")
            return
        if interval <= max(held, default=0):
            raise RuntimeError(f"interval {interval}: going back")
        with open(anchors_file, "a") as out:
            out.write(f"{interval} {root.hex()} {count}\n")
            out.flush()
            os.fsync(out.fileno())

    fleet = FleetAnchor(home / "fleet.sqlite", SHARDS, INTERVAL_S, anchor, lambda: max(anchored(), default=0))
    password = Path(password_file).read_text()
    shards = [ShardProcess(ShardSpec(k, SHARDS, str(home / f"gateway-{k}"), str(home / "vaults"), host, int(port),
                                     password, INTERVAL_S, 1, registry=devices), fleet) for k in range(SHARDS)]
    for shard in shards:
        shard.start()
    print("ready", *(shard.process.pid for shard in shards), flush=True)
    while True:
        fleet.tick()
        time.sleep(0.1)


if __name__ == "__main__":
    main(*sys.argv[1:7])
