"""Signature verification, and the modules' stateless checks, in worker processes, so they run
beside the app instead of fighting it.

Threads do not work well here: libsodium releases the GIL while it verifies, but each thread must
take the GIL back after every signature while the app's thread keeps it busy, so verification
crawls (the GIL convoy effect). Worker processes have interpreters of their own. Each worker is
`python -m cityledger.engines.solo.verifier` speaking a tiny framed protocol on its pipes:

    request:  count (4 bytes, big-endian), then per tx: length (4 bytes) + tx bytes
    response: one byte per tx: FLAG_REFUSED if it does not decode, fails the codec's stateless
              checks or a signature; FLAG_SIGNED if it passes those; FLAG_CHECKED if, moreover,
              it has messages with a module's stateless check (a claim's proof) and each passed

A module's stateless check (Module.stateless_checks, a module-level function imported by name) is
the costly part of a handler that needs no state. The engine tells the app of FLAG_CHECKED txs
(CityApp.note_stateless_checked), so their modules can remember the verdict by content; a failed
check refuses nothing here (FLAG_SIGNED): the handler stays the judge and checks again.

Chunks go to the workers round-robin and are written by a feeder thread per worker, so the engine
admits chunk i (state checks, in order) while the workers verify chunks i+1, i+2, ….
"""

from __future__ import annotations

import importlib
import os
import queue
import struct
import subprocess
import sys
import threading
from typing import Callable, Iterator, Sequence

from ...core.tx import TxCodec, verify_tx_signatures

_U32 = struct.Struct(">I")
FLAG_REFUSED, FLAG_SIGNED, FLAG_CHECKED = 0, 1, 2
CHECKS_ARG = "--checks"  # separates the message type names from the "type=check" pairs in a worker's argv


WORKER_NICENESS = 5


def default_workers() -> int:
    """One worker per core. The app's thread runs at normal priority and the workers below it
    (WORKER_NICENESS), so they take what CPU the app's serial work leaves and no more."""
    return max(1, os.cpu_count() or 1)


def _type_name(kind: type) -> str:
    return f"{kind.__module__}:{kind.__qualname__}"


def _worker_args(chain_id: str, message_types: Sequence[type], checks: dict[type, Callable]) -> list[str]:
    pairs = [f"{_type_name(kind)}={_type_name(check)}" for kind, check in checks.items()]
    return [chain_id, *[_type_name(kind) for kind in message_types], CHECKS_ARG, *pairs]


class _Worker:
    """One verifier process and the thread that feeds it."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cityledger.engines.solo.verifier", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._feeder = threading.Thread(target=self._feed, name="verifier-feed", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        while (frame := self._queue.get()) is not None:
            try:
                self.proc.stdin.write(frame)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def send(self, raws: Sequence[bytes]) -> None:
        parts = [_U32.pack(len(raws))]
        for raw in raws:
            parts.append(_U32.pack(len(raw)))
            parts.append(raw)
        self._queue.put(b"".join(parts))

    def receive(self, count: int) -> bytes:
        data = self.proc.stdout.read(count)
        if data is None or len(data) != count:
            raise RuntimeError(f"verifier worker {self.proc.pid} died (exit code {self.proc.poll()})")
        return data

    def close(self) -> None:
        self._queue.put(None)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class SignatureVerifier:
    """A set of verifier processes, started on first use."""

    def __init__(self, message_types: Sequence[type], chain_id: str, workers: int,
                 checks: dict[type, Callable] | None = None) -> None:
        self._args = _worker_args(chain_id, message_types, checks or {})
        self._count = workers
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()  # one batch at a time keeps each worker's replies in order

    def start(self) -> None:
        """Start the worker processes now and wait until each answers (each imports the ledger)."""
        with self._lock:
            self._start()
            for worker in self._workers:
                worker.send([b""])
            for worker in self._workers:
                worker.receive(1)

    def _start(self) -> None:
        if not self._workers:
            self._workers = [_Worker(self._args) for _ in range(self._count)]

    def workers(self) -> int:
        """How many worker processes verify (started or not)."""
        return self._count

    def verify(self, chunks: list[list[bytes]]) -> Iterator[bytes]:
        """Flags (one byte per tx, FLAG_*) for each chunk, in order, yielded as soon as that chunk
        is verified."""
        with self._lock:
            self._start()
            workers = self._workers
            for index, chunk in enumerate(chunks):
                workers[index % len(workers)].send(chunk)
            for index, chunk in enumerate(chunks):
                yield workers[index % len(workers)].receive(len(chunk))

    def shutdown(self) -> None:
        """Stop the workers."""
        with self._lock:
            for worker in self._workers:
                worker.close()
            self._workers = []


def _load(name: str):
    module, _, qualname = name.partition(":")
    return getattr(importlib.import_module(module), qualname)


def _parse_args(args: list[str]) -> tuple[list[type], dict[type, Callable]]:
    """(message types, stateless checks by type) from a worker's argv after the chain id."""
    split = args.index(CHECKS_ARG) if CHECKS_ARG in args else len(args)
    checks = {}
    for pair in args[split + 1:]:
        kind, _, check = pair.partition("=")
        checks[_load(kind)] = _load(check)
    return [_load(name) for name in args[:split]], checks


def _read_exact(stream, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def check_tx_bytes(codec: TxCodec, checks: dict[type, Callable], raw: bytes) -> int:
    """The FLAG_* of one tx: decoded, signatures verified, then the messages' stateless checks."""
    try:
        decoded = codec.decode(raw)
        verify_tx_signatures(decoded)
    except Exception:  # noqa: BLE001 - TxError, or a decoder bug: the app re-checks and rejects it
        return FLAG_REFUSED
    flag = FLAG_SIGNED
    for message in decoded.messages:
        check = checks.get(type(message))
        if check is None:
            continue
        try:
            check(message)
        except Exception:  # noqa: BLE001 - a refusal (TxError) or a bug: the handler judges it again
            return FLAG_SIGNED
        flag = FLAG_CHECKED
    return flag


def serve(chain_id: str, args: list[str]) -> None:
    """Worker main loop: read framed batches on stdin, answer one flag byte per tx on stdout."""
    os.nice(WORKER_NICENESS)
    kinds, checks = _parse_args(args)
    codec = TxCodec(kinds, chain_id)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (header := _read_exact(stdin, 4)) is not None:
        flags = bytearray()
        for _ in range(_U32.unpack(header)[0]):
            size = _U32.unpack(_read_exact(stdin, 4))[0]
            raw = _read_exact(stdin, size)
            flags.append(check_tx_bytes(codec, checks, raw) if raw else FLAG_REFUSED)
        stdout.write(flags)
        stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
