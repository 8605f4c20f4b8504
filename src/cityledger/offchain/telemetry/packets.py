"""MQTT 3.1.1 packets, the few the project's own clients use: the gateway's subscriber (subscriber.py)
and the devices' publisher (publisher.py). Encoding and decoding only; no sockets but the CONNACK read.

    encode_connect / encode_subscribe / encode_publish / encode_pubacks -> bytes to send
    parse_packets(buf, conn) -> (PUBLISHes, other packets, bytes used): whole packets only
    read_connack(sock)       -> returns on acceptance, MqttError naming the broker's reason otherwise
"""

from __future__ import annotations

import socket
import struct
from typing import Sequence

import msgspec

MAX_PACKET_BYTES = 1024 * 1024  # a packet longer than this ends the connection (telemetry is < 4 KiB)
MAX_TOPIC_BYTES = 65_535  # an MQTT string's length is two bytes

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
PINGREQ_PACKET = bytes((PINGREQ << 4, 0))
DISCONNECT_PACKET = bytes((DISCONNECT << 4, 0))
CONNACK_REASONS = {1: "unacceptable protocol version", 2: "client id refused", 3: "server unavailable",
                   4: "bad user name or password", 5: "not authorised"}
_U16 = struct.Struct(">H")


class MqttError(RuntimeError):
    """The broker refused or dropped a connection, or spoke out of protocol: the message says why."""


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """One PUBLISH received: its topic, payload, packet id and QoS, and which connection brought it.
    Untracked by the cyclic garbage collector (it holds no container): a gateway's backlog of tens of
    thousands of them would otherwise be walked by every full collection."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    conn: int


def encode_remaining_length(size: int) -> bytes:
    """A packet's remaining length as MQTT writes it: 7 bits a byte, the high bit saying more follow."""
    out = bytearray()
    while True:
        size, digit = divmod(size, 128)
        out.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    if len(data) > MAX_TOPIC_BYTES:
        raise ValueError(f"an MQTT string of {len(data)} bytes, expected at most {MAX_TOPIC_BYTES}")
    return _U16.pack(len(data)) + data


def encode_connect(client_id: str, username: str, password: str, keepalive_s: int, clean: bool) -> bytes:
    """A CONNECT packet (MQTT 3.1.1, user name and password)."""
    flags = 0xC0 | (0x02 if clean else 0)
    body = _string("MQTT") + bytes((4, flags)) + _U16.pack(keepalive_s) + _string(client_id) + \
        _string(username) + _string(password)
    return bytes((CONNECT << 4,)) + encode_remaining_length(len(body)) + body


def encode_subscribe(packet_id: int, topics: Sequence[str], qos: int) -> bytes:
    """A SUBSCRIBE packet for every topic filter at qos."""
    body = _U16.pack(packet_id) + b"".join(_string(topic) + bytes((qos,)) for topic in topics)
    return bytes((SUBSCRIBE << 4 | 0x02,)) + encode_remaining_length(len(body)) + body


def encode_topic(topic: str) -> bytes:
    """A topic as PUBLISH carries it (length first): encode once, publish many times."""
    return _string(topic)


def encode_publish(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """A QoS 1 PUBLISH of payload to an encode_topic() topic."""
    size = len(topic) + 2 + len(payload)
    if size > MAX_PACKET_BYTES:
        raise ValueError(f"a PUBLISH of {size} bytes, expected at most {MAX_PACKET_BYTES}")
    return b"".join((bytes((PUBLISH << 4 | 0x02,)), encode_remaining_length(size), topic, _U16.pack(packet_id), payload))


def encode_pubacks(mids: Sequence[int]) -> bytes:
    """The PUBACK packets of these packet ids, one after another."""
    return b"".join(b"\x40\x02" + _U16.pack(mid) for mid in mids)


def parse_packets(buf: bytearray, conn: int) -> tuple[list[Delivery], list[tuple[int, bytes]], int]:
    """The PUBLISHes and the other packets (type, body) wholly in buf, and how many bytes they took."""
    deliveries: list[Delivery] = []
    others: list[tuple[int, bytes]] = []
    at, size = 0, len(buf)
    while at + 2 <= size:
        first, length, shift, i = buf[at], 0, 0, at + 1
        while i < size and buf[i] & 0x80 and shift <= 21:
            length |= (buf[i] & 0x7F) << shift
            shift += 7
            i += 1
        if shift > 21:
            raise MqttError("a packet's remaining length runs past 4 bytes")
        if i >= size:
            break
        length |= buf[i] << shift
        start, end = i + 1, i + 1 + length
        if length > MAX_PACKET_BYTES:
            raise MqttError(f"a packet of {length} bytes, expected at most {MAX_PACKET_BYTES}")
        if end > size:
            break
        if first >> 4 == PUBLISH:
            deliveries.append(_publish(buf, first, start, end, conn))
        else:
            others.append((first >> 4, bytes(buf[start:end])))
        at = end
    return deliveries, others, at


def _publish(buf: bytearray, first: int, start: int, end: int, conn: int) -> Delivery:
    """The PUBLISH in buf[start:end]; MqttError if its topic or packet id runs past its end."""
    qos = (first >> 1) & 0x03
    if end - start < 2:
        raise MqttError(f"a PUBLISH of {end - start} bytes, expected its topic's length first")
    topic_end = start + 2 + (buf[start] << 8 | buf[start + 1])
    if topic_end + (2 if qos else 0) > end:
        raise MqttError("a PUBLISH whose topic or packet id runs past the packet's end")
    mid = buf[topic_end] << 8 | buf[topic_end + 1] if qos else 0
    return Delivery(bytes(buf[start + 2:topic_end]).decode(errors="replace"),
                    bytes(buf[topic_end + (2 if qos else 0):end]), mid, qos, conn)


def read_connack(sock: socket.socket) -> None:
    """Read exactly the CONNACK (what follows is the caller's); MqttError if the broker closed the
    connection, sent something else, or refused (naming its reason)."""
    connack = b""
    while len(connack) < 4:
        chunk = sock.recv(4 - len(connack))
        if not chunk:
            raise MqttError("the broker closed the connection before its CONNACK")
        connack += chunk
    if connack[0] != CONNACK << 4 or connack[1] != 2:
        raise MqttError(f"expected a CONNACK, got packet type {connack[0] >> 4} of {connack[1]} bytes")
    if connack[3] != 0:
        raise MqttError(f"the broker refused the connection: {CONNACK_REASONS.get(connack[3], f'code {connack[3]}')}")
