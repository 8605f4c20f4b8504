"""The gateway's MQTT 3.1.1 subscriber: QoS 1, a persistent session, acknowledgements sent a batch at
a time. Only what the gateway uses: CONNECT, SUBSCRIBE, PUBLISH in, PUBACK out, PINGREQ, DISCONNECT.

    subscriber = Subscriber(host, port, client_id, user, password, topics, on_messages)
    subscriber.start()                 # connected and subscribed, or MqttError (packets.py)
    subscriber.ack(deliveries)         # one write for the batch's PUBACKs
    subscriber.stop()

Why not paho's client: it reads each packet with several small recv calls and builds an MQTTMessage
(with its own lock) per message, and each manual ack is a packet queued and a wake-up of its thread;
that was a third of the gateway's CPU per message. Here one recv takes whatever has arrived, every
whole PUBLISH in it becomes a small tuple, and the batch goes to `on_messages` in one call. The
packets are packets.py's, shared with the devices' publisher (publisher.py).

A lost connection is made again (every RECONNECT_MAX_S at most) until stop(); the broker then
delivers again what was not acknowledged. Acknowledgements of deliveries from an earlier connection
are never sent on a later one (their packet ids may name other messages there).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Sequence

from .packets import (
    DISCONNECT_PACKET,
    PINGREQ_PACKET,
    PINGRESP,
    PUBACK,
    SUBACK,
    Delivery,
    MqttError,
    encode_connect,
    encode_pubacks,
    encode_subscribe,
    parse_packets,
    read_connack,
)

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024  # one read takes up to this much of what has arrived
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0
READ_TIMEOUT_S = 1.0  # how often the reading thread looks at the keepalive clock while idle


class SubscriberError(MqttError):
    """The broker refused or dropped the subscriber, or spoke out of protocol: the message says why."""


class Subscriber:
    """One MQTT connection that subscribes to `topics` at QoS 1 and hands batches of deliveries to
    `on_messages` on its reading thread."""

    def __init__(self, host: str, port: int, client_id: str, username: str, password: str, topics: Sequence[str],
                 on_messages: Callable[[list[Delivery]], None], keepalive_s: int = 30, clean: bool = False) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.username, self.password, self.topics = username, password, list(topics)
        self.on_messages, self.keepalive_s, self.clean = on_messages, keepalive_s, clean
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._conn = 0  # which connection is current: deliveries of another are never acknowledged
        self._last_sent = 0.0
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.sub_failure: str | None = None

    def start(self, timeout_s: float) -> None:
        """Connect and subscribe; MqttError if the broker refuses or does not answer in time."""
        self._stopping.clear()
        self._connect(timeout_s)
        self._thread = threading.Thread(target=self._read_loop, name="telemetry-gateway-mqtt", daemon=True)
        self._thread.start()
        if not self._subscribed.wait(timeout_s) or self.sub_failure:
            self.stop()
            raise SubscriberError(self.sub_failure or f"no SUBACK within {timeout_s} s")

    def _connect(self, timeout_s: float) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(encode_connect(self.client_id, self.username, self.password, self.keepalive_s, self.clean))
            read_connack(sock)  # exactly the CONNACK: what follows is the reading thread's
            self._subscribed.clear()
            sock.sendall(encode_subscribe(1, self.topics, 1))
            sock.settimeout(READ_TIMEOUT_S)
        except BaseException:
            sock.close()
            raise
        with self._send_lock:
            self._sock, self._conn, self._last_sent = sock, self._conn + 1, time.monotonic()

    def ack(self, deliveries: Sequence) -> None:
        """Acknowledge the QoS 1 deliveries of the current connection, in one write; the others are
        dropped (the broker delivers them again on this connection)."""
        with self._send_lock:
            mids = [d.mid for d in deliveries if d.qos and d.conn == self._conn]
            if mids and self._sock is not None:
                self._send(encode_pubacks(mids))

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
            self._last_sent = time.monotonic()
        except OSError as exc:  # the reading thread sees the connection gone and makes a new one
            log.warning("gateway subscriber: send failed: %s", exc)

    def _read_loop(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._stopping.is_set():
            try:
                self._read_connection()
                delay = RECONNECT_MIN_S
            except (OSError, MqttError) as exc:
                if self._stopping.is_set():
                    return
                log.warning("gateway subscriber: connection lost: %s; reconnecting", exc)
            self._drop_socket()
            while not self._stopping.wait(delay):
                try:
                    self._connect(RECONNECT_MAX_S)
                    break
                except (OSError, MqttError) as exc:
                    log.warning("gateway subscriber: reconnect failed: %s", exc)
                    delay = min(RECONNECT_MAX_S, delay * 2)

    def _read_connection(self) -> None:
        """Read the current connection until it ends (raises) or stop()."""
        sock, conn, buf = self._sock, self._conn, bytearray()
        while not self._stopping.is_set():
            try:
                data = sock.recv(RECV_BYTES)
            except socket.timeout:
                data = None
            if data == b"":
                raise SubscriberError("the broker closed the connection")
            if data:
                buf += data
                deliveries, others, used = parse_packets(buf, conn)
                del buf[:used]
                for kind, body in others:
                    self._handle(kind, body)
                if deliveries:
                    self.on_messages(deliveries)
            if time.monotonic() - self._last_sent >= self.keepalive_s / 2:
                with self._send_lock:
                    self._send(PINGREQ_PACKET)

    def _handle(self, kind: int, body: bytes) -> None:
        if kind == SUBACK:
            refused = [topic for topic, code in zip(self.topics, body[2:]) if code == 0x80]
            if refused:
                self.sub_failure = f"the broker refused the subscription to {refused[0]!r}"
            self._subscribed.set()
        elif kind not in (PINGRESP, PUBACK):
            raise SubscriberError(f"unexpected packet type {kind}")

    def _drop_socket(self) -> None:
        with self._send_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def stop(self) -> None:
        """Disconnect cleanly and end the reading thread; unacknowledged messages stay with the broker."""
        self._stopping.set()
        with self._send_lock:
            if self._sock is not None:
                try:
                    self._sock.sendall(DISCONNECT_PACKET)
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        self._drop_socket()
