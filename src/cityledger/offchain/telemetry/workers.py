"""The gateway's signature checks in worker processes, so they run beside its MQTT and storage work.

Threads would not help: every check must take the GIL back from the thread that receives, stores
and acknowledges. Each worker is `python -m cityledger.offchain.telemetry.workers` speaking a small
framed protocol on its pipes, one batch at a time (the pipe's cost is paid per batch, not per
message):

    request:  count (4 bytes, big-endian), body length (4 bytes), then the body: per check scheme
              (1 byte), key length (1 byte), key, message length (2 bytes), message, signature
              length (1 byte), signature
    response: one byte per check, 1 if the signature verifies

A batch is cut into one slice per worker; each worker answers in the order it was asked, so the
gateway's sequence checks, done afterwards in arrival order, see every message in order.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Sequence

from ...core.keys import PublicKey, verify_signature

MAX_VERIFY_WORKERS = 64  # worker processes one gateway may start

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


class WorkerError(RuntimeError):
    """A worker process died or answered out of protocol: the message says which."""


def default_verify_workers() -> int:
    """One worker per core."""
    return max(1, os.cpu_count() or 1)


def encode_checks(checks: Sequence[tuple[PublicKey, bytes, bytes]]) -> bytes:
    """One request frame for (public key, message, signature) checks."""
    parts = []
    for key, message, signature in checks:
        parts += [bytes((key.scheme, len(key.key))), key.key, _U16.pack(len(message)), message,
                  bytes((len(signature),)), signature]
    body = b"".join(parts)
    return _U32.pack(len(checks)) + _U32.pack(len(body)) + body


@dataclass(frozen=True)
class Ticket:
    """Which workers hold which slices of a submitted batch, in order."""

    slices: tuple[tuple[int, int], ...]  # (worker index, count)


class SignatureWorkers:
    """`count` verifier processes, started by start(), stopped by close()."""

    def __init__(self, count: int) -> None:
        if not 1 <= count <= MAX_VERIFY_WORKERS:
            raise ValueError(f"verify_workers: expected 1 to {MAX_VERIFY_WORKERS}, got {count}")
        self.count = count
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()  # submissions from one thread at a time keep each pipe in order

    def start(self) -> None:
        """Start the processes and wait until each has answered an empty batch."""
        if self._procs:
            return
        self._procs = [subprocess.Popen([sys.executable, "-m", "cityledger.offchain.telemetry.workers"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                       for _ in range(self.count)]
        ticket = self.submit([])
        self.result(ticket)

    def submit(self, checks: Sequence[tuple[PublicKey, bytes, bytes]]) -> Ticket:
        """Send a batch of checks, a slice to each worker; result(ticket) answers them in order."""
        if not self._procs:
            raise WorkerError("signature workers: not started")
        size = -(-len(checks) // self.count) if checks else 0
        slices = []
        with self._lock:
            for index, proc in enumerate(self._procs):
                part = checks[index * size:(index + 1) * size] if size else []
                if not part and slices:
                    break
                self._write(proc, encode_checks(part))
                slices.append((index, len(part)))
        return Ticket(tuple(slices))

    def _write(self, proc: subprocess.Popen, frame: bytes) -> None:
        try:
            proc.stdin.write(frame)
            proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise WorkerError(f"signature worker {proc.pid} died (exit code {proc.poll()})") from None

    def result(self, ticket: Ticket) -> list[bool]:
        """The verdicts of a submitted batch, in the order submitted (tickets taken in submission order)."""
        verdicts: list[bool] = []
        for index, count in ticket.slices:
            proc = self._procs[index]
            data = proc.stdout.read(count) if count else b""
            if data is None or len(data) != count:
                raise WorkerError(f"signature worker {proc.pid} died (exit code {proc.poll()})")
            verdicts += [flag == 1 for flag in data]
        return verdicts

    def pids(self) -> list[int]:
        """The worker processes' ids (for a benchmark's CPU accounting)."""
        return [proc.pid for proc in self._procs]

    def close(self) -> None:
        """Stop the processes (end of input makes each exit; killed if it does not)."""
        for proc in self._procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        self._procs = []


def _read_exact(stream, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def check_frame(count: int, body: bytes) -> bytes:
    """One flag byte per check of a request body (read whole: one read per batch, not per field);
    raise ValueError if the body is not `count` well-framed checks."""
    flags = bytearray()
    at = 0
    for _ in range(count):
        scheme, key_len = body[at], body[at + 1]
        key = body[at + 2:at + 2 + key_len]
        at += 2 + key_len
        (msg_len,) = _U16.unpack_from(body, at)
        message = body[at + 2:at + 2 + msg_len]
        at += 2 + msg_len
        sig_len = body[at]
        signature = body[at + 1:at + 1 + sig_len]
        at += 1 + sig_len
        if at > len(body):
            raise ValueError("frame: cut short")
        try:
            flags.append(int(verify_signature(PublicKey(scheme, key), message, signature)))
        except Exception:  # noqa: BLE001 - a key the registry should never hold: not a valid signature
            flags.append(0)
    if at != len(body):
        raise ValueError("frame: bytes left over")
    return bytes(flags)


def serve() -> None:
    """Worker main loop: read framed batches on stdin, answer one flag byte per check on stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (header := _read_exact(stdin, 8)) is not None:
        count, size = _U32.unpack_from(header)[0], _U32.unpack_from(header, 4)[0]
        body = _read_exact(stdin, size)
        if body is None:
            return
        try:
            flags = check_frame(count, body)
        except (ValueError, IndexError, struct.error):
            return  # out of protocol: exit, the gateway sees a dead worker
        stdout.write(flags)
        stdout.flush()


if __name__ == "__main__":
    serve()
