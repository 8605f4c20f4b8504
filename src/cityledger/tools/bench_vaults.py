"""`cityledger bench vaults`: records stored and read per second by the S3 vault backend (a local
SeaweedFS started for the run) against the embedded SQLite store, in the same run, same records.

A record is what the gateway stores for one 10 s window: a blob of --blob-bytes random bytes (a
sealed window's size) and two wrapped keys (the owner's and one consumer's). put: put_many in
batches of --batch records (the gateway stores one batch per owner per delivery; on S3 a batch is
one LIST, one keys object and one batch object); get: the owner's read path, the blob and the
owner's key, one record at a time (two GETs on S3). Each rate is the best of --rounds alternating
rounds, so a slow spell on a shared machine hits both backends alike. CPU per record of the puts
(the bench process, and for S3 also the weed server process) is the sum over all rounds: on a
loaded machine it stays steady where rates do not.

Run: cityledger bench vaults [--records 2000] [--batch 50] [--rounds 3] [--json]
The last line of output is one JSON object: sqlite_put_per_s, s3_put_per_s, sqlite_get_per_s,
s3_get_per_s, put_ratio and get_ratio (s3 / sqlite), sqlite_put_cpu_us, s3_put_cpu_us (client and
server CPU per record stored), load_avg (1 min, at the end), records, batch, blob_bytes, machine, date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path

from ..offchain.vaults import KeyBlob, PutItem, RecordMeta, SqliteVaultStore
from ..offchain.vaults.s3_store import S3VaultStore, make_client
from ..offchain.vaults.seaweedfs import INSTALL_HINT, SeaweedServer, find_weed

BLOB_BYTES = 1_100  # a sealed 10-sample vehicle window with two wraps is about this large
WINDOW_S = 10


def make_items(count: int, blob_bytes: int) -> list[PutItem]:
    """`count` records of random bytes with an owner and a consumer wrap each."""
    owner, consumer = secrets.token_bytes(32), secrets.token_bytes(32)
    items = []
    for index in range(count):
        record_id = secrets.token_bytes(32)
        keys = [KeyBlob(record_id, who, secrets.token_bytes(32), secrets.token_bytes(48)) for who in (owner, consumer)]
        items.append(PutItem(record_id, secrets.token_bytes(blob_bytes), RecordMeta("ds-bench", WINDOW_S * index), keys))
    return items


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_put(store, items: list[PutItem], batch: int, server_pid: int | None) -> tuple[float, float]:
    """Records stored per second, and CPU seconds used (this process, plus the server's if any)."""
    cpu = time.process_time() + (process_cpu_s(server_pid) if server_pid else 0.0)
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        store.put_many(items[start:start + batch])
    elapsed = time.perf_counter() - started
    cpu = time.process_time() + (process_cpu_s(server_pid) if server_pid else 0.0) - cpu
    return len(items) / max(elapsed, 1e-9), cpu


def time_get(store, items: list[PutItem]) -> float:
    """Records read (blob and owner key) per second."""
    owner = items[0].keys[0].recipient
    started = time.perf_counter()
    for item in items:
        if store.get(item.record_id) is None or store.get_key(item.record_id, owner) is None:
            raise RuntimeError("bench: a stored record was not found")
    return len(items) / max(time.perf_counter() - started, 1e-9)


def run(records: int, batch: int, rounds: int, blob_bytes: int, folder: Path) -> dict:
    """Best-of-rounds put and get rates of both backends."""
    server = SeaweedServer(folder / "seaweedfs")
    server.start()
    client = make_client(server.endpoint, server.credentials)
    best = {"sqlite_put": 0.0, "s3_put": 0.0, "sqlite_get": 0.0, "s3_get": 0.0, "sqlite_cpu": 0.0, "s3_cpu": 0.0}
    try:
        for round_no in range(rounds):
            items = make_items(records, blob_bytes)
            sqlite = SqliteVaultStore(folder / f"sqlite-{round_no}")
            s3 = S3VaultStore(client, server.bucket, secrets.token_hex(16), on_delete=server.purge)
            for name, store, pid in (("sqlite", sqlite, None), ("s3", s3, server.process.pid)):
                rate, cpu = time_put(store, items, batch, pid)
                best[f"{name}_put"] = max(best[f"{name}_put"], rate)
                best[f"{name}_cpu"] += cpu / (records * rounds)
                best[f"{name}_get"] = max(best[f"{name}_get"], time_get(store, items))
            sqlite.close()
    finally:
        server.stop()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cityledger bench vaults", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blob-bytes", type=int, default=BLOB_BYTES)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    for name in ("records", "batch", "rounds", "blob_bytes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer")
    if find_weed() is None:
        print(f"bench vaults: SeaweedFS's weed is not installed: {INSTALL_HINT}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-vaults-") as folder:
        best = run(args.records, args.batch, args.rounds, args.blob_bytes, Path(folder))
    result = {f"{key}_per_s": round(best[key], 1) for key in ("sqlite_put", "s3_put", "sqlite_get", "s3_get")}
    result.update(sqlite_put_cpu_us=round(best["sqlite_cpu"] * 1e6, 1), s3_put_cpu_us=round(best["s3_cpu"] * 1e6, 1),
                  load_avg=round(os.getloadavg()[0], 2))
    result.update(put_ratio=round(best["s3_put"] / best["sqlite_put"], 3), get_ratio=round(best["s3_get"] / best["sqlite_get"], 3),
                  records=args.records, batch=args.batch, rounds=args.rounds, blob_bytes=args.blob_bytes,
                  machine=f"{platform.machine()} {os.cpu_count()} cores", python=platform.python_version(),
                  date=time.strftime("%Y-%m-%d", time.gmtime()))
    if not args.json:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
