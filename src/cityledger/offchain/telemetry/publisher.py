"""A device's MQTT 3.1.1 publisher: QoS 1 only, no thread of its own, made for constrained hardware.

    with Publisher(host, port, client_id, username, password) as publisher:  # connected, or MqttError
        publisher.publish(topic, payloads)   # in order; at most `inflight` unacknowledged at once
        publisher.wait_acked(timeout_s)      # every PUBACK in, or PublisherError
    # leaving the block sends DISCONNECT and closes the socket

Why not paho's client: a device sends a few sealed windows and stops, and paho spends a thread, a
message object with its own lock, and several small socket calls per publish. Here a run of
PUBLISHes is one write, the broker's PUBACKs are read in whatever lumps they arrive, and the caller's
thread does it all. The packets are packets.py's, shared with the gateway's subscriber.

Errors: the broker refusing the login (its CONNACK reason named), closing the connection, a malformed
or unexpected packet, or a PUBACK not arriving within timeout_s raise PublisherError (an MqttError),
and the connection is closed: what was not acknowledged may or may not have reached the broker, and
the device publishes it again on a new connection (the gateway drops replays by sequence number).
"""

from __future__ import annotations

import select
import socket
import time
from typing import Sequence

from .packets import (
    DISCONNECT_PACKET,
    MAX_PACKET_BYTES,
    PINGREQ_PACKET,
    PINGRESP,
    PUBACK,
    MqttError,
    encode_connect,
    encode_publish,
    encode_topic,
    parse_packets,
    read_connack,
)

INFLIGHT = 1_000  # QoS 1 publishes unacknowledged at once, by default (Mosquitto's default takes 20)
MAX_INFLIGHT = 60_000  # under the 65,535 packet ids, so a free one is always there
PUBLISH_CHUNK = 64  # PUBLISHes one write carries at most
ACK_READ_BYTES = 64 * 1024  # one read takes up to this much of the broker's answers (4 bytes a PUBACK)
TIMEOUT_S = 10.0  # how long a connect, a write or the wait for a PUBACK may take by default
MAX_TIMEOUT_S = 3_600.0
KEEPALIVE_S = 60  # the broker drops the connection after 1.5 x this without a packet (ping() keeps it)
_MAX_PACKET_ID = 65_535


class PublisherError(MqttError):
    """The broker refused or dropped the publisher, or did not acknowledge in time: the message says why."""


class Publisher:
    """One device's MQTT connection, publishing at QoS 1 from the caller's thread."""

    def __init__(self, host: str, port: int, client_id: str, username: str, password: str, *,
                 inflight: int = INFLIGHT, timeout_s: float = TIMEOUT_S, keepalive_s: int = KEEPALIVE_S) -> None:
        if not isinstance(inflight, int) or not 1 <= inflight <= MAX_INFLIGHT:
            raise ValueError(f"inflight: expected 1 to {MAX_INFLIGHT}, got {inflight!r}")
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s: expected more than 0 and at most {MAX_TIMEOUT_S}, got {timeout_s!r}")
        if not isinstance(keepalive_s, int) or not 0 <= keepalive_s <= _MAX_PACKET_ID:
            raise ValueError(f"keepalive_s: expected 0 to {_MAX_PACKET_ID}, got {keepalive_s!r}")
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self.password = username, password
        self.inflight, self.timeout_s, self.keepalive_s = inflight, timeout_s, keepalive_s
        self.acked = 0  # PUBACKs received on this publisher, every connection together
        self._sock: socket.socket | None = None
        self._poll = select.poll()
        self._unacked: set[int] = set()
        self._mid = 0
        self._buf = bytearray()
        self._last_sent = 0.0

    def __enter__(self) -> Publisher:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    @property
    def unacked(self) -> int:
        """PUBLISHes sent on this connection that the broker has not acknowledged yet."""
        return len(self._unacked)

    def connect(self) -> None:
        """Open the connection and log in; PublisherError if unreachable or refused (naming the reason)."""
        if self._sock is not None:
            raise PublisherError("already connected")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as exc:
            raise PublisherError(f"broker {self.host}:{self.port}: cannot reach it ({exc})") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(encode_connect(self.client_id, self.username, self.password, self.keepalive_s, True))
            read_connack(sock)
        except (OSError, MqttError) as exc:
            sock.close()
            raise PublisherError(f"broker {self.host}:{self.port}: {exc}") from None
        self._sock, self._unacked, self._buf = sock, set(), bytearray()
        self._poll.register(sock, select.POLLIN)
        self._last_sent = time.monotonic()

    def publish(self, topic: str, payloads: Sequence[bytes]) -> None:
        """Send each payload to topic at QoS 1, in order, keeping at most `inflight` unacknowledged
        (waiting for PUBACKs when the window is full); returns once all are written."""
        encoded = encode_topic(topic)
        for index, payload in enumerate(payloads):  # before any is sent or takes a packet id
            if len(encoded) + 2 + len(payload) > MAX_PACKET_BYTES:
                raise ValueError(f"payloads[{index}]: {len(payload)} bytes, expected at most "
                                 f"{MAX_PACKET_BYTES - len(encoded) - 2} with this topic")
        step = min(PUBLISH_CHUNK, self.inflight)
        for first in range(0, len(payloads), step):
            chunk = payloads[first:first + step]
            while len(self._unacked) + len(chunk) > self.inflight:
                self._read(self.timeout_s)
            self._send(b"".join([encode_publish(encoded, self._next_mid(), payload) for payload in chunk]))
            self._read(0)  # take what PUBACKs came meanwhile, so the broker's answers never pile up

    def wait_acked(self, timeout_s: float | None = None) -> None:
        """Return once every PUBLISH sent is acknowledged; PublisherError after timeout_s (default: the
        publisher's) naming how many are not."""
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        while self._unacked:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"{len(self._unacked)} publish(es) not acknowledged within {wait_s} s")
            self._read(left)

    def ping(self) -> None:
        """Keep an idle connection open: a PINGREQ once keepalive_s / 2 has passed since the last packet."""
        if self.keepalive_s and time.monotonic() - self._last_sent >= self.keepalive_s / 2:
            self._send(PINGREQ_PACKET)
        self._read(0)

    def disconnect(self) -> None:
        """Send DISCONNECT (what is unacknowledged stays unknown) and close; idempotent."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._poll.unregister(sock)
        try:
            sock.sendall(DISCONNECT_PACKET)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _next_mid(self) -> int:
        """A packet id no unacknowledged PUBLISH holds (1 to 65,535, in turn)."""
        mid = self._mid
        while True:
            mid = mid % _MAX_PACKET_ID + 1
            if mid not in self._unacked:
                self._mid = mid
                self._unacked.add(mid)
                return mid

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise PublisherError("not connected")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._fail(f"the connection broke while publishing ({exc})")
        self._last_sent = time.monotonic()

    def _read(self, wait_s: float) -> None:
        """Take the broker's answers that have arrived, waiting up to wait_s for the first (0: none)."""
        if self._sock is None:
            raise PublisherError("not connected")
        if not self._poll.poll(max(0, int(wait_s * 1000))):
            if wait_s > 0:
                self._fail(f"no answer from the broker within {wait_s:.3g} s, {len(self._unacked)} unacknowledged")
            return
        try:
            data = self._sock.recv(ACK_READ_BYTES)
        except OSError as exc:
            self._fail(f"the connection broke ({exc}), {len(self._unacked)} unacknowledged")
        if not data:
            self._fail(f"the broker closed the connection, {len(self._unacked)} unacknowledged")
        self._buf += data
        try:
            self._take(self._buf)
        except MqttError as exc:
            self._fail(str(exc))

    def _take(self, buf: bytearray) -> None:
        """Handle the whole packets in buf (and drop them from it): PUBACKs, PINGRESPs, nothing else."""
        publishes, others, used = parse_packets(buf, 0)
        del buf[:used]
        if publishes:
            raise MqttError(f"an unexpected PUBLISH on {publishes[0].topic!r} (a publisher subscribes to nothing)")
        for kind, body in others:
            if kind == PUBACK:
                if len(body) != 2:
                    raise MqttError(f"a PUBACK of {len(body)} bytes, expected 2")
                mid = body[0] << 8 | body[1]
                if mid not in self._unacked:
                    raise MqttError(f"a PUBACK for packet id {mid}, which is not in flight")
                self._unacked.discard(mid)
                self.acked += 1
            elif kind != PINGRESP:
                raise MqttError(f"unexpected packet type {kind}, expected PUBACK (4) or PINGRESP (13)")

    def _fail(self, reason: str) -> None:
        """Close the connection and raise PublisherError(reason)."""
        self.disconnect()
        raise PublisherError(f"broker {self.host}:{self.port}: {reason}")
