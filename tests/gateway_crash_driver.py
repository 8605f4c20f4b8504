"""Crash-test gateway: a real Gateway in its own process, on the broker the test runs, until killed.

    gateway_crash_driver.py <folder> <vaults> <registry.json> <host> <port> <password file>
                            <clock file> <anchors file> [<filing pause s>]

The clock is the number in the clock file (the test moves it); each anchor call appends
`interval root-hex count` to the anchors file and fsyncs it before returning (what reached the ledger).
A filing pause holds the filing thread that long before each filing, so batches stay journalled and
acknowledged but not yet in the vaults or the state when the test kills the process.
"""

import json
import os
import sys
import time
from pathlib import Path

from cityledger.core.keys import PublicKey
from cityledger.offchain.telemetry import DeviceEntry
from cityledger.offchain.telemetry.gateway import Gateway
from cityledger.offchain.vaults import VaultHost

INTERVAL_S = 60


def load_registry(path: Path) -> dict[str, DeviceEntry]:
    """The devices as the test registered them: did -> [scheme, key hex, owner, owner vault key hex]."""
    return {did: DeviceEntry(did, PublicKey(scheme, bytes.fromhex(key)), owner, bytes.fromhex(vault_key))
            for did, (scheme, key, owner, vault_key) in json.loads(path.read_text()).items()}


def main(folder, vaults, registry, host, port, password_file, clock_file, anchors_file, pause_s="0") -> None:
    devices = load_registry(Path(registry))

    def clock() -> float:
        return float(Path(clock_file).read_text())

    def anchor(root: bytes, count: int, interval: int) -> None:
        with open(anchors_file, "a") as out:
            out.write(f"{interval} {root.hex()} {count}\n")
            out.flush()
            os.fsync(out.fileno())

    gateway = Gateway(folder, VaultHost(vaults), devices.get, anchor, host, int(port),
                      Path(password_file).read_text(), interval_s=INTERVAL_S, clock=clock)
    if float(pause_s) > 0:
        file_now = gateway._file

        def file_later(batches) -> None:
            time.sleep(float(pause_s))
            file_now(batches)

        gateway._file = file_later
    gateway.start()
    print("ready", flush=True)
    while gateway.failure is None:
        time.sleep(0.1)
    raise SystemExit(f"gateway failed: {gateway.failure}")


if __name__ == "__main__":
    main(*sys.argv[1:10])
