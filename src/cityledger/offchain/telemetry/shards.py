"""Gateway shards as child processes, their interval roots handed to one anchoring point (fleet.py).

    shard = ShardProcess(ShardSpec(k, n, folder, vaults, host, port, password, interval_s, ledger=path), fleet)
    shard.start()   # spawns gateway k of n (its own process, folder, MQTT session, journal, state,
                    # verify workers) and waits until it is subscribed; restarts it if it dies
    shard.stop()    # asks it to stop (it files what it holds), kills it only past STOP_S

The link is the pipe multiprocessing gives a spawned child: no listener, nothing another process can
reach. The child's gateway anchors through ShardLink.anchor, which sends (interval, root, count) and
returns only once the node has kept it durably (FleetAnchor.hand, fleet.sqlite) and acknowledged it;
until then the gateway does not mark the interval anchored in its state.sqlite and hands the same root
again (after a restart too): a crash of either side loses no root, and the fleet keeps a repeat once.
Every TICK_S the child also says which intervals it has closed (every interval before the clock's
with its roots handed), so the fleet anchors an interval as soon as every shard closed it.

A child reads the devices from the node's ledger file (read-only SQLite, LedgerFileDevices), each
device's entry kept until the next block commits. It holds an exclusive lock on its folder while it
runs, so a restarted shard never shares a journal with one still stopping; and it stops when the
node's end of the pipe closes (the node gone, even killed).
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import queue
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .anchor import FleetProof, InclusionProof, ShardRoot, compute_inclusion_proof
from .fleet import FleetAnchor, FleetError
from .registry import LedgerDevices
from .verify import DeviceEntry

log = logging.getLogger(__name__)

MAX_SHARD_PROCESSES = 32  # gateway processes one node runs at most ([telemetry] gateways)
ACK_S = 10.0  # how long a shard waits for the node to keep a root before its gateway retries it
START_S = 120.0  # how long start() waits for a spawned shard to be subscribed (a loaded host is slow)
STOP_S = 30.0  # how long stop() lets a shard file what it holds before killing it
LOCK_S = 60.0  # how long a new shard waits for the one before it to let go of its folder
RESTART_S = 1.0  # pause before a dead shard is started again (no tight loop if it keeps failing)
TICK_S = 0.2
MAX_DEVICE_CACHE = 1_000_000  # device entries a shard keeps between two blocks


def default_gateways() -> int:
    """One gateway process per core (what `cityledger init --telemetry` writes): each checks, journals
    and files its share of the fleet beside its own verify worker, and two interpreters hand the GIL
    between their threads less than one does (docs/SCALING.md)."""
    return max(1, min(os.cpu_count() or 1, MAX_SHARD_PROCESSES))


@dataclass(frozen=True)
class ShardSpec:
    """What a shard process needs: which shard, its folder, the vaults, the broker, where devices are."""

    shard: int
    shards: int
    folder: str
    vaults: str
    host: str
    port: int
    password: str
    interval_s: int
    verify_workers: int = 1
    ledger: str | None = None  # the node's ledger SQLite file (devices read from it)
    registry: dict[str, DeviceEntry] = field(default_factory=dict)  # or a fixed registry (the bench)


class LedgerFile:
    """The node's committed state read from its SQLite file (read only, another process's store)."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        self.lock = threading.Lock()

    def get(self, key: bytes) -> bytes | None:
        """The latest committed value of a key (core.storage's `state` table)."""
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def version(self) -> int:
        """Moves whenever another connection commits (a block): cached reads are stale then."""
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def snapshot(self):
        """A read transaction: the reads inside see one committed block."""
        return _Snapshot(self._db)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


class _Snapshot:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, *exc) -> None:
        self.db.execute("COMMIT")


class LedgerFileDevices:
    """A shard's DeviceLookup: LedgerDevices over the node's ledger file, each answer kept until the
    ledger commits again (no blocks, no queries: the solo engine makes no empty blocks)."""

    def __init__(self, path: str) -> None:
        self.file = LedgerFile(path)
        self._devices = LedgerDevices(self.file)
        self._cache: dict[str, DeviceEntry | None] = {}
        self._version = -1

    def __call__(self, did: str) -> DeviceEntry | None:
        """The device's entry as the last committed block has it, or None."""
        with self.file.lock:
            version = self.file.version()
            if version != self._version:
                self._cache.clear()
                self._version = version
            if did in self._cache:
                return self._cache[did]
            with self.file.snapshot():
                entry = self._devices(did)
            if len(self._cache) < MAX_DEVICE_CACHE:
                self._cache[did] = entry
            return entry


class ShardLink:
    """The child's end: hands roots to the node (waiting for its acknowledgement) and says what it closed."""

    def __init__(self, conn: Any, shard: int) -> None:
        self.conn, self.shard = conn, shard
        self.stopping = threading.Event()
        self._send_lock = threading.Lock()
        self._acks: queue.Queue = queue.Queue()
        self._closed_below = -1
        threading.Thread(target=self._read, name="shard-link", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the node is gone: stop, keep what is unacknowledged for later
                self.stopping.set()
                self._acks.put(None)
                return
            if message[0] == "ack":
                self._acks.put(message[1:])
            elif message[0] == "stop":
                self.stopping.set()

    def send(self, *message) -> None:
        """One message to the node (from any thread)."""
        with self._send_lock:
            self.conn.send(message)

    def anchor(self, root: bytes, count: int, interval: int) -> None:
        """The gateway's anchor callable: returns once the node keeps the root; raises otherwise (the
        gateway retries the same root at its next tick)."""
        self.send("root", interval, root, count)
        deadline = time.monotonic() + ACK_S
        while True:
            try:
                answer = self._acks.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise FleetError(f"interval {interval}: the node did not acknowledge the root") from None
            if answer is None:
                self._acks.put(None)
                raise FleetError(f"interval {interval}: the node is gone")
            acked, error = answer
            if acked != interval:
                continue  # the answer to an earlier try that timed out
            if error:
                raise FleetError(error)
            return

    def report_closed(self, gateway) -> None:
        """Tell the node the intervals before the clock's are closed, once their roots are all handed."""
        current = gateway.current_interval()
        if current > self._closed_below and not gateway.state.unanchored_before(current):
            try:
                self.send("closed", current)
            except OSError:  # the node is gone: the reading thread stops the shard
                self.stopping.set()
                return
            self._closed_below = current


def answer_shard(fleet: FleetAnchor, shard: int, message: tuple, send) -> bool:
    """The node's answer to a shard's "root" (kept, then acknowledged) or "closed"; False for other kinds."""
    if message[0] == "root":
        _, interval, root, count = message
        try:
            fleet.hand(ShardRoot(shard, interval, root, count))
            error = ""
        except (FleetError, OSError, sqlite3.Error) as exc:
            log.error("telemetry: gateway %d's root for interval %d: %s", shard, interval, exc)
            error = str(exc)
        send("ack", interval, error)
        return True
    if message[0] == "closed":
        fleet.closed(shard, message[1])
        return True
    return False


def lock_folder(folder: Path, wait_s: float = LOCK_S) -> int:
    """An exclusive lock on the shard's folder (released when the process ends, however it ends)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / "shard.lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise FleetError(f"{folder}: another gateway process still holds it") from None
            time.sleep(TICK_S)


def shard_main(conn: Any, spec: ShardSpec) -> None:
    """A shard process: gateway `spec.shard` of `spec.shards`, anchoring through the node, until told to
    stop or the node is gone."""
    from ..vaults import VaultHost
    from .gateway import Gateway

    link = ShardLink(conn, spec.shard)
    try:
        lock_folder(Path(spec.folder))
        lookup = LedgerFileDevices(spec.ledger) if spec.ledger else spec.registry.get
        vaults = VaultHost(Path(spec.vaults))
        gateway = Gateway(spec.folder, vaults, lookup, link.anchor, spec.host, spec.port, spec.password,
                          spec.interval_s, verify_workers=spec.verify_workers, shard=spec.shard, shards=spec.shards)
        gateway.start()
    except Exception as exc:  # noqa: BLE001 - told to the node, which logs it and starts the shard again
        link.send("failed", f"gateway {spec.shard} of {spec.shards}: {exc}")
        return
    link.send("ready", os.getpid(), gateway.workers.pids() if gateway.workers is not None else [])
    try:
        while not link.stopping.wait(TICK_S):
            if gateway.failure is not None:
                link.send("failed", f"gateway {spec.shard} of {spec.shards}: {gateway.failure!r}")
                break
            link.report_closed(gateway)
    finally:
        gateway.close()
        vaults.close()


class ShardProcess:
    """The node's end of one shard: spawns it, keeps the roots it hands, restarts it if it dies."""

    def __init__(self, spec: ShardSpec, fleet: FleetAnchor) -> None:
        self.spec, self.fleet = spec, fleet
        self.process: Any = None
        self.pids: list[int] = []  # the shard's process and its verify workers, once ready
        self.starts = 0
        self.last_error = ""
        self._conn: Any = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._send_lock = threading.Lock()
        self._server: threading.Thread | None = None

    def start(self, wait_s: float = START_S) -> None:
        """Spawn the shard and wait until it is subscribed; FleetError if it fails or takes too long."""
        self._stopping.clear()
        self._spawn()
        self._server = threading.Thread(target=self._serve, name=f"shard-{self.spec.shard}", daemon=True)
        self._server.start()
        if not self._ready.wait(wait_s):
            self.stop()
            raise FleetError(f"gateway {self.spec.shard} of {self.spec.shards}: not subscribed after {wait_s:.0f} s"
                             + (f" ({self.last_error})" if self.last_error else ""))

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self._ready.clear()
        self.process = context.Process(target=shard_main, args=(theirs, self.spec), daemon=True,
                                       name=f"cityledger-gateway-{self.spec.shard}-of-{self.spec.shards}")
        self.process.start()
        theirs.close()  # the child's end lives in the child only: its death closes the pipe
        self._conn = ours
        self.starts += 1

    def _serve(self) -> None:
        """Answer the shard; when it dies (the pipe closes) start it again, unless stopping."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self.pids = []
                self.process.join(STOP_S)
                if self._stopping.is_set():
                    return
                log.warning("telemetry: gateway %d of %d ended (exit %s); starting it again", self.spec.shard,
                            self.spec.shards, self.process.exitcode)
                if self._stopping.wait(RESTART_S):
                    return
                self._spawn()
                continue
            self._answer(message)

    def _answer(self, message: tuple) -> None:
        kind = message[0]
        if answer_shard(self.fleet, self.spec.shard, message, self._send):
            return
        if kind == "ready":
            self.pids = [message[1], *message[2]]
            self._ready.set()
        elif kind == "failed":
            self.last_error = message[1]
            log.error("telemetry: %s", message[1])

    def _send(self, *message) -> None:
        with self._send_lock:
            try:
                self._conn.send(message)
            except OSError:  # the shard just died: it hands the root again after its restart
                pass

    def kill(self) -> None:
        """SIGKILL the shard process (tests: a crash); it is started again."""
        if self.process is not None and self.process.pid:
            os.kill(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Ask the shard to stop (it files what it holds and disconnects), kill it past STOP_S."""
        self._stopping.set()
        if self.process is None:
            return
        self._send("stop")
        self.process.join(STOP_S)
        if self.process.is_alive():
            log.warning("telemetry: gateway %d did not stop in %.0f s; killing it", self.spec.shard, STOP_S)
            self.process.kill()
            self.process.join()
        if self._server is not None:
            self._server.join(STOP_S)
        self._conn.close()


class FleetRecords:
    """Where a record stands under the fleet's roots, read from the shards' state files: what the vault
    service's GatewayHeights and an owner's inclusion proof ask."""

    def __init__(self, fleet: FleetAnchor, folders: list[Path], single: Path | None = None) -> None:
        """folders: the shards' folders, in shard order; single: the folder of the one gateway the node
        ran before (its records were anchored root by root, with plain proofs)."""
        self.fleet, self.folders, self.single = fleet, folders, single
        self._states: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _state(self, shard: int):
        """Shard `shard`'s state (-1: the single gateway's before), None if it has none."""
        from .gateway import GatewayState

        with self._lock:
            if shard not in self._states:
                folder = self.single if shard < 0 else self.folders[shard]
                if folder is None or not (folder / "state.sqlite").exists():
                    return None
                self._states[shard] = GatewayState(folder / "state.sqlite")
            return self._states[shard]

    def _find(self, record_id: bytes) -> tuple[int, int, int] | None:
        """(shard, shard interval, position) of a record a shard (-1: the single gateway before) has
        filed, or None."""
        for shard in [*range(len(self.folders)), -1]:
            state = self._state(shard)
            found = None if state is None else state.find_record(record_id)
            if found is not None:
                return shard, found[0], found[1]
        return None

    def find_record(self, record_id: bytes) -> tuple[int, int] | None:
        """(fleet interval whose root covers the record, its position in its shard's interval), or None
        while its shard root is not placed in a fleet root."""
        found = self._find(record_id)
        if found is None:
            return None
        if found[0] < 0:  # anchored by the one gateway itself, root by root
            return found[1:]
        fleet = self.fleet.fleet_interval(found[0], found[1])
        return None if fleet is None else (fleet, found[2])

    def inclusion_proof(self, record_id: bytes) -> tuple[int, FleetProof | InclusionProof] | None:
        """(fleet interval, proof against its anchored root) of a record, or None (unknown, not placed
        yet, or pruned from its shard's state after PROOF_RETENTION_S)."""
        found = self._find(record_id)
        if found is None:
            return None
        shard, interval, pos = found
        record = compute_inclusion_proof(self._state(shard).record_ids(interval), pos)
        return (interval, record) if shard < 0 else self.fleet.proof(shard, interval, record)

    def close(self) -> None:
        """Close the shards' state files."""
        with self._lock:
            for state in self._states.values():
                state.close()
            self._states.clear()
