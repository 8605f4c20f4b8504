"""The gateway's MQTT subscriber, its wire format without a broker: packets parsed whole or not at
all, split anywhere; what it sends encoded as MQTT 3.1.1 says (the real broker is in test_telemetry_mqtt)."""

from __future__ import annotations

import struct

import pytest

from cityledger.offchain.telemetry import packets
from cityledger.offchain.telemetry.packets import Delivery, MqttError, parse_packets


def _publish(topic: str, payload: bytes, mid: int | None) -> bytes:
    body = struct.pack(">H", len(topic)) + topic.encode() + (b"" if mid is None else struct.pack(">H", mid)) + payload
    first = 0x30 | (0x02 if mid is not None else 0)
    length, size = bytearray(), len(body)
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            break
    return bytes((first,)) + bytes(length) + body


def test_publishes_parse_whole_at_any_split_and_other_packets_apart():
    stream = (_publish("telemetry/0a/did:city:a", b"x" * 300, 7) + b"\xd0\x00"  # a PINGRESP between
              + _publish("telemetry/0b/did:city:b", b"", None) + _publish("t", b"y" * 20_000, 65535))
    expected = [Delivery("telemetry/0a/did:city:a", b"x" * 300, 7, 1, 3), Delivery("telemetry/0b/did:city:b", b"", 0, 0, 3),
                Delivery("t", b"y" * 20_000, 65535, 1, 3)]
    for cut in [0, 1, 2, 3, 150, 307, 308, 309, len(stream) - 1, len(stream)]:
        buf = bytearray(stream[:cut])
        first, others, used = parse_packets(buf, 3)
        del buf[:used]
        buf += stream[cut:]
        second, more, rest = parse_packets(buf, 3)
        assert first + second == expected and others + more == [(13, b"")] and rest == len(buf)


def test_a_remaining_length_past_four_bytes_or_the_limit_is_refused():
    with pytest.raises(MqttError, match="past 4 bytes"):
        parse_packets(bytearray(b"\x30\xff\xff\xff\xff\x01"), 1)
    with pytest.raises(MqttError, match="expected at most"):
        parse_packets(bytearray(b"\x30\xff\xff\xff\x01"), 1)


def test_connect_subscribe_and_pubacks_are_mqtt_311():
    connect = packets.encode_connect("gw", "gateway", "pw", 30, clean=False)
    assert connect == b"\x10" + bytes((len(connect) - 2,)) + b"\x00\x04MQTT\x04\xc0\x00\x1e" + \
        b"\x00\x02gw" + b"\x00\x07gateway" + b"\x00\x02pw"
    assert packets.encode_connect("gw", "u", "p", 30, clean=True)[9] == 0xC2
    assert packets.encode_subscribe(1, ["a/#", "b"], 1) == b"\x82\x0c\x00\x01\x00\x03a/#\x01\x00\x01b\x01"
    assert packets.encode_pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
