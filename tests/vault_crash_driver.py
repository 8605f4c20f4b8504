"""Crash-test load for a vault: seals, verifies and stores windows forever (batches of 1 to 8),
printing `index record-id` for each record once put_verified has returned: what was acknowledged.

    vault_crash_driver.py ROOT KEY_FILE FIRST_INDEX [SEAWEEDFS_FOLDER]

With a SeaweedFS folder (a running SeaweedServer's), the vault is on its S3 bucket instead of SQLite."""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from telemetry_helpers import OWNER, vehicle_samples  # noqa: E402

from cityledger.core.encoding import encode  # noqa: E402
from cityledger.core.keys import SCHEME_ED25519, PrivateKey  # noqa: E402
from cityledger.offchain.telemetry import DeviceConfig, DeviceEntry, seal_window, verify_message  # noqa: E402
from cityledger.offchain.vaults import VaultHost, load_key_file  # noqa: E402
from cityledger.offchain.vaults.s3_store import S3VaultStore, make_client  # noqa: E402
from cityledger.offchain.vaults.seaweedfs import SeaweedServer  # noqa: E402

START = 1_700_000_000
DEVICE_DID = "did:city:crashtest"


def open_host(root: Path, seaweedfs: Path | None) -> VaultHost:
    """SQLite folders under root, or prefixes of the bucket of the SeaweedFS running in that folder."""
    if seaweedfs is None:
        return VaultHost(root)
    server = SeaweedServer(seaweedfs)  # not started here: its ports and credentials are read back
    client = make_client(server.endpoint, server.credentials)
    return VaultHost(root, open_store=lambda name: S3VaultStore(client, server.bucket, name))


def main(root: Path, key_file: Path, first: int, seaweedfs: Path | None) -> None:
    owner_key = load_key_file(key_file)
    device = PrivateKey(SCHEME_ED25519, bytes(32))
    registry = {DEVICE_DID: DeviceEntry(DEVICE_DID, device.public_key, OWNER, owner_key.public)}
    config = DeviceConfig(DEVICE_DID, owner_key.public, "ds-crash", "vehicle/1")
    vault = open_host(root, seaweedfs).vault(OWNER)
    index, batch_sizes = first, random.Random(first)
    while True:
        batch = []
        for _ in range(batch_sizes.randrange(1, 9)):
            start = START + 10 * index
            message = seal_window(device, config, index, start, vehicle_samples(random.Random(index), start))
            batch.append((index, verify_message(encode(message), registry.get, index - 1 if index else None)))
            index += 1
        vault.put_verified([record for _, record in batch])
        sys.stdout.write("".join(f"{i} {record.record_id.hex()}\n" for i, record in batch))
        sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]) if len(sys.argv) > 4 else None)
