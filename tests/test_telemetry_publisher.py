"""The devices' lean MQTT publisher against a fake broker on a loopback socket: what it sends is MQTT
3.1.1 QoS 1, and a refusal, a broken connection or a hostile frame ends in a PublisherError naming it
(the real Mosquitto is in test_telemetry_mqtt)."""

from __future__ import annotations

import socket
import threading

import pytest

from cityledger.offchain.telemetry.packets import (
    MAX_PACKET_BYTES,
    encode_pubacks,
    encode_remaining_length,
    parse_packets,
)
from cityledger.offchain.telemetry.publisher import MAX_INFLIGHT, Publisher, PublisherError

WAIT_S = 10.0  # hang guard only: nothing below asserts how long a step took


class FakeBroker:
    """A listening socket whose one connection `script(conn, reader)` answers; what it received is kept."""

    def __init__(self, script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.packets: list[tuple[int, bytes]] = []  # (type, body) of every non-PUBLISH received
        self.publishes: list = []
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(WAIT_S)
        try:
            self.script(conn, self)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.failure = exc
        finally:
            conn.close()
            self.listener.close()

    def read_until(self, conn: socket.socket, done) -> None:
        """Read packets until done(self) holds or the client closes."""
        buf = bytearray()
        while not done(self):
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            publishes, others, used = parse_packets(buf, 0)
            del buf[:used]
            self.publishes += publishes
            self.packets += others

    def join(self) -> None:
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive() and self.failure is None, self.failure


def connack(code: int = 0) -> bytes:
    return bytes((0x20, 2, 0, code))


def publisher(broker: FakeBroker, **options) -> Publisher:
    return Publisher("127.0.0.1", broker.port, "car-1-x", "car-1", "secret", **options)


def accept_login(conn: socket.socket, broker: FakeBroker) -> None:
    broker.read_until(conn, lambda b: b.packets)
    conn.sendall(connack())


def test_publishes_in_order_within_the_window_and_disconnects_cleanly():
    payloads = [bytes([i % 256]) * (100 + i) for i in range(150)]

    def script(conn, broker):
        accept_login(conn, broker)
        acked = 0
        while acked < len(payloads):  # acknowledge in lumps, as the broker's answers arrive
            broker.read_until(conn, lambda b: len(b.publishes) > acked)
            conn.sendall(encode_pubacks([p.mid for p in broker.publishes[acked:]]))
            acked = len(broker.publishes)
        broker.read_until(conn, lambda b: b.packets[-1][0] == 14)  # DISCONNECT

    broker = FakeBroker(script)
    with publisher(broker, inflight=10) as pub:
        pub.publish("telemetry/0a/did:city:car-1", payloads)
        pub.wait_acked(WAIT_S)
        assert pub.unacked == 0 and pub.acked == 150
    broker.join()
    kind, body = broker.packets[0]
    assert kind == 1 and body[:7] == b"\x00\x04MQTT\x04" and body[7] == 0xC2  # user, password, clean session
    assert body.endswith(b"\x00\x05car-1\x00\x06secret")
    assert [p.payload for p in broker.publishes] == payloads
    assert {(p.topic, p.qos) for p in broker.publishes} == {("telemetry/0a/did:city:car-1", 1)}
    assert len({p.mid for p in broker.publishes[:10]}) == 10 and 0 not in {p.mid for p in broker.publishes}


def test_packet_ids_wrap_and_never_reuse_one_in_flight():
    pub = Publisher("127.0.0.1", 1, "c", "u", "p", inflight=3)
    pub._mid = 65_534
    pub._unacked = {1}
    assert [pub._next_mid() for _ in range(2)] == [65_535, 2]


@pytest.mark.parametrize("code, reason", [(4, "bad user name or password"), (5, "not authorised"), (9, "code 9")])
def test_a_refused_login_names_the_broker_reason(code, reason):
    broker = FakeBroker(lambda conn, b: (b.read_until(conn, lambda x: x.packets), conn.sendall(connack(code))))
    with pytest.raises(PublisherError, match=f"refused the connection: {reason}"):
        publisher(broker).connect()
    broker.join()


@pytest.mark.parametrize("answer, error", [
    (b"", "closed the connection before its CONNACK"),
    (b"\x20\x02\x00", "closed the connection before its CONNACK"),
    (b"\x90\x03\x00\x01\x01", "expected a CONNACK, got packet type 9"),
    (b"\x20\x05\x00\x00\x00\x00\x00", "expected a CONNACK, got packet type 2 of 5 bytes"),
])
def test_anything_but_a_connack_ends_the_login(answer, error):
    broker = FakeBroker(lambda conn, b: (b.read_until(conn, lambda x: x.packets), conn.sendall(answer)))
    with pytest.raises(PublisherError, match=error):
        publisher(broker).connect()
    broker.join()


def test_an_unreachable_broker_is_named():
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    with pytest.raises(PublisherError, match=f"127.0.0.1:{port}: cannot reach it"):
        Publisher("127.0.0.1", port, "c", "u", "p").connect()


def test_a_broker_closing_mid_publish_is_an_error_naming_what_is_unacknowledged():
    def script(conn, broker):
        accept_login(conn, broker)
        broker.read_until(conn, lambda b: len(b.publishes) >= 5)
        conn.sendall(encode_pubacks([p.mid for p in broker.publishes[:2]]))

    broker = FakeBroker(script)
    pub = publisher(broker)
    pub.connect()
    with pytest.raises(PublisherError, match="closed the connection, 3 unacknowledged"):
        pub.publish("t", [b"x"] * 5)
        pub.wait_acked(WAIT_S)
    broker.join()
    assert pub.acked == 2
    with pytest.raises(PublisherError, match="not connected"):
        pub.publish("t", [b"y"])


def test_no_puback_in_time_is_an_error():
    hold = threading.Event()

    def script(conn, broker):
        accept_login(conn, broker)
        broker.read_until(conn, lambda b: b.publishes)
        hold.wait(WAIT_S)  # never acknowledges

    broker = FakeBroker(script)
    pub = publisher(broker, timeout_s=0.2)
    pub.connect()
    pub.publish("t", [b"x"])
    with pytest.raises(PublisherError, match="1 unacknowledged|not acknowledged within"):
        pub.wait_acked()
    hold.set()
    broker.join()


@pytest.mark.parametrize("frame, error", [
    (b"\x40\x03\x00\x01\x00", "a PUBACK of 3 bytes, expected 2"),
    (b"\x40\x02\x00\x63", "a PUBACK for packet id 99, which is not in flight"),
    (b"\x40\x02\x00\x01\x40\x02\x00\x01", "a PUBACK for packet id 1, which is not in flight"),  # acknowledged twice
    (b"\x90\x03\x00\x01\x00", "unexpected packet type 9"),
    (b"\x32\x07\x00\x01t\x00\x05hi", "an unexpected PUBLISH on 't'"),
    (b"\x32\x03\x00\x09t", "topic or packet id runs past"),
    (b"\x40\xff\xff\xff\xff\x01", "past 4 bytes"),
    (b"\x40" + encode_remaining_length(MAX_PACKET_BYTES + 1), f"expected at most {MAX_PACKET_BYTES}"),
])
def test_a_hostile_frame_ends_the_connection_with_a_clear_error(frame, error):
    def script(conn, broker):
        accept_login(conn, broker)
        broker.read_until(conn, lambda b: len(b.publishes) == 2)
        conn.sendall(frame)
        broker.read_until(conn, lambda b: False)  # until the publisher hangs up

    broker = FakeBroker(script)
    pub = publisher(broker)
    pub.connect()
    with pytest.raises(PublisherError, match=error):  # raised by whichever call reads the frame
        pub.publish("t", [b"x", b"y"])  # packet ids 1 and 2: the frame comes while both are in flight
        pub.wait_acked(WAIT_S)
    broker.join()


def test_a_frame_split_anywhere_is_read_whole():
    def script(conn, broker):
        accept_login(conn, broker)
        broker.read_until(conn, lambda b: len(b.publishes) == 2)
        acks = b"\xd0\x00" + encode_pubacks([p.mid for p in broker.publishes])  # a PINGRESP first
        for byte in acks:
            conn.sendall(bytes((byte,)))

    broker = FakeBroker(script)
    with publisher(broker) as pub:
        pub.publish("t", [b"a", b"b"])
        pub.wait_acked(WAIT_S)
        assert pub.acked == 2
    broker.join()


@pytest.mark.parametrize("options, field", [({"inflight": 0}, "inflight"), ({"inflight": MAX_INFLIGHT + 1}, "inflight"),
                                            ({"timeout_s": 0}, "timeout_s"), ({"keepalive_s": -1}, "keepalive_s")])
def test_bad_options_are_refused_by_name(options, field):
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        Publisher("127.0.0.1", 1, "c", "u", "p", **options)


def test_a_topic_or_payload_past_the_limits_is_refused_before_anything_is_sent():
    broker = FakeBroker(lambda conn, b: (accept_login(conn, b), b.read_until(conn, lambda x: False)))
    with publisher(broker) as pub:
        with pytest.raises(ValueError, match="expected at most 65535"):
            pub.publish("t" * 70_000, [b"x"])
        with pytest.raises(ValueError, match=r"^payloads\[1\]: 1048576 bytes, expected at most 1048571 with this topic"):
            pub.publish("t", [b"x", bytes(MAX_PACKET_BYTES)])
        assert pub.unacked == 0
    broker.join()
    assert [kind for kind, _ in broker.packets] == [1, 14] and not broker.publishes  # CONNECT, DISCONNECT
