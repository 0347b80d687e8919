"""contract.mqtt's packet reader: whole messages out, however TCP cuts the stream; the acks are PUBACKs."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable
from typing import Self

import mqtt5
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firewatch.contract.mqtt import Connection, Message, MqttError, Session, connect, varint
from firewatch.contract.payload import Reason, parse
from firewatch.services import Mosquitto


def _publish(
    topic: str, payload: bytes, packet_id: int | None, props: bytes = b"", dup: bool = False,
    retain: bool = False,
) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t
    if packet_id is not None:
        body += struct.pack("!H", packet_id)
    body += varint(len(props)) + props + payload
    first = 0x30 | (0x02 if packet_id is not None else 0) | (0x08 if dup else 0) | retain
    return bytes([first]) + varint(len(body)) + body


async def test_messages_come_out_whole_whatever_the_chunking() -> None:
    user_property = (
        b"\x26" + struct.pack("!H", 7) + b"gateway" + struct.pack("!H", 300) + b"g" * 300
    )
    expected = [
        ("fire/v1/d1/H1/telemetry", b'{"m": 1}', b"\x40\x02" + struct.pack("!H", 1), False, False),
        ("fire/v1/d1/H2/telemetry", b"x" * 70_000, b"\x40\x02" + struct.pack("!H", 2), True, False),  # 3-byte length
        ("fire/v1/d1/H3/status", b'{"online": true}', None, False, True),  # QoS 0
        ("fire/v1/d1/H4/event", b"{}", b"\x40\x02" + struct.pack("!H", 65535), False, False),  # long properties
    ]
    stream = b"".join(
        [
            _publish(expected[0][0], expected[0][1], 1),
            b"\xd0\x00",  # a PINGRESP between messages
            _publish(expected[1][0], expected[1][1], 2, dup=True),
            _publish(expected[2][0], expected[2][1], None, retain=True),
            _publish(expected[3][0], expected[3][1], 65535, props=user_property),
        ]
    )
    rng = random.Random(7)
    for cuts in ([1] * 40, [2, 3, 5, 7], [len(stream)], [rng.randint(1, 3000) for _ in range(200)]):
        got: list[Message] = []
        conn = Connection(lambda _conn, messages, sink=got: sink.extend(messages))
        pos, i = 0, 0
        while pos < len(stream):
            size = cuts[i % len(cuts)]
            conn.data_received(stream[pos : pos + size])
            pos += size
            i += 1
        assert got == expected, cuts[:4]


async def test_a_subscriber_stopped_as_the_broker_answers_stops(mosquitto: Mosquitto) -> None:
    """A service stops its subscriber by cancelling it: the cancel must win even when the broker's
    CONNACK is read in the same turn of the loop (Python 3.11's wait_for dropped it there, and
    the subscriber went on to subscribe and receive after its service had stopped)."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: Connection(lambda _conn, _messages: None), "127.0.0.1", mosquitto.port
    )
    try:
        session = Session("127.0.0.1", mosquitto.port, "t-stop-at-connack")
        handshake = asyncio.create_task(conn.handshake(session, "fire/v1/#"))
        await asyncio.sleep(0)  # CONNECT is out; the handshake waits for the CONNACK
        conn.data_received(b"\x20\x03\x00\x00\x00")  # pins the broker's CONNACK to this turn
        handshake.cancel()
        await asyncio.wait({handshake}, timeout=15)
        assert handshake.cancelled()
    finally:
        conn.close()


class HostileBroker:
    """A real TCP server speaking as a broken or hostile broker: it reads our CONNECT, answers with
    the bytes a test gives, and keeps what we send back."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.received = bytearray()
        self.closed = asyncio.Event()
        self.connect: mqtt5.ConnectPacket | None = None

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(65536)
        packet, _ = mqtt5.read(memoryview(first))
        assert isinstance(packet, mqtt5.ConnectPacket)
        self.connect = packet
        writer.write(self.answer)
        while data := await reader.read(65536):
            self.received += data
        self.closed.set()
        writer.close()

    def session(self, **kw: object) -> Session:
        return Session("127.0.0.1", self.port, "t-hostile", connect_timeout_s=2, **kw)  # type: ignore[arg-type]


CONNACK = mqtt5.ConnAckPacket().write()
SUBACK = mqtt5.SubAckPacket(1, [mqtt5.SubAckReasonCode.GRANTED_QOS_AT_LEAST_ONCE]).write()


def _disconnect_reason(sent: bytes) -> int:
    """The reason code of the DISCONNECT among what the client sent last."""
    at = sent.rindex(b"\xe0")
    packet, _ = mqtt5.read(memoryview(sent[at:]))
    assert isinstance(packet, mqtt5.DisconnectPacket)
    return int(packet.reason_code)


async def test_connect_sends_maximum_packet_size_session_expiry_and_receive_maximum() -> None:
    async with HostileBroker(CONNACK + SUBACK) as broker:
        conn = await connect(broker.session(max_packet_size=123_456, receive_maximum=4000), "fire/v1/#",
                             lambda _c, _m: None)
        conn.close()
    assert broker.connect is not None
    assert broker.connect.max_packet_size == 123_456 and broker.connect.receive_max == 4000
    assert broker.connect.session_expiry_interval == 7 * 24 * 3600 and not broker.connect.clean_start


@pytest.mark.parametrize(
    ("stream", "reason", "why"),
    [
        (b"\x30\xff\xff\xff\xff\x01", 0x81, "past 4 bytes"),  # a 5-byte remaining length
        (b"\x30" + varint(3_000_000), 0x95, "Maximum Packet Size"),  # refused before it is read
        (b"\x20\x05\x00\x00\x00\x00\x00", 0x81, "malformed"),  # a second CONNACK, lengths wrong
        (b"\x32\x03\x00\x09a", 0x81, "malformed"),  # topic length past the packet: no packet id
    ],
)
async def test_a_broken_packet_from_the_broker_ends_the_connection_with_its_reason(
    stream: bytes, reason: int, why: str
) -> None:
    async with HostileBroker(CONNACK + SUBACK + stream) as broker:
        conn = await connect(broker.session(max_packet_size=1 << 20), "fire/v1/#", lambda _c, _m: None)
        with pytest.raises(MqttError, match=why):
            await asyncio.wait_for(conn.closed, 5)
        await asyncio.wait_for(broker.closed.wait(), 5)
    assert _disconnect_reason(bytes(broker.received)) == reason


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_publish_the_codec_refuses_is_handed_on_to_be_dead_lettered_and_acknowledged_once() -> None:
    """Invalid UTF-8 in the topic: the message cannot be read, but its packet id can, so it is
    settled like any other and the broker never redelivers it forever. (mqtt5 0.8.0 panics on
    it, and reports the UnicodeDecodeError behind the panic as unraisable: hence the filter.)"""
    bad = b"\x32" + varint(2 + 3 + 2 + 1 + 2) + b"\x00\x03\xff\xfe\xfd" + b"\x00\x07" + b"\x00" + b"{}"
    good = mqtt5.PublishPacket("fire/v1/d/H1/telemetry", b"{}", qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=8).write()
    got: list[Message] = []
    async with HostileBroker(CONNACK + SUBACK + bad + good) as broker:
        conn = await connect(broker.session(), "fire/v1/#", lambda _c, m: got.extend(m))
        await eventually(lambda: len(got) == 2)
        assert got[0][0] == "" and got[0][2] == b"\x40\x02\x00\x07"
        assert got[1][:3] == ("fire/v1/d/H1/telemetry", b"{}", b"\x40\x02\x00\x08")
        assert parse(got[0][0], got[0][1]).rejections[0].reason is Reason.BAD_TOPIC
        conn.ack([got[0][2], got[1][2]])  # type: ignore[list-item]
        assert conn.open
        conn.close()
        await asyncio.wait_for(broker.closed.wait(), 5)
    assert b"\x40\x02\x00\x07\x40\x02\x00\x08" in broker.received


async def test_a_silent_broker_times_out_instead_of_holding_the_part_forever() -> None:
    async with HostileBroker(b"") as broker:
        started = asyncio.get_running_loop().time()
        with pytest.raises(MqttError, match="mqtt.connect_timeout_s"):
            await connect(broker.session(), "fire/v1/#", lambda _c, _m: None)
        assert asyncio.get_running_loop().time() - started < 4


async def test_connack_limits_are_honoured_and_a_refused_share_is_explained() -> None:
    answer = mqtt5.ConnAckPacket(server_keep_alive=7, shared_subscription_available=False,
                                 receive_max=10, max_packet_size=4096).write()
    async with HostileBroker(answer) as broker:
        with pytest.raises(MqttError, match="ingest.share_group"):
            await connect(broker.session(), "$share/g/fire/v1/#", lambda _c, _m: None)
    async with HostileBroker(answer + SUBACK) as broker:
        conn = await connect(broker.session(), "fire/v1/#", lambda _c, _m: None)
        assert (conn.limits.keepalive_s, conn.limits.receive_maximum, conn.limits.max_packet_size) == (7, 10, 4096)
        with pytest.raises(MqttError, match="Maximum Packet Size 4096"):
            await conn.publish("fire/v1/_alerts/d/H1/r", b"x" * 5000)
        conn.close()


async def test_the_brokers_disconnect_reason_is_kept() -> None:
    bye = mqtt5.DisconnectPacket(reason_code=mqtt5.DisconnectReasonCode.SERVER_SHUTTING_DOWN,
                                 reason_str="maintenance").write()
    async with HostileBroker(CONNACK + SUBACK + bye) as broker:
        conn = await connect(broker.session(), "fire/v1/#", lambda _c, _m: None)
        with pytest.raises(MqttError, match="SERVER_SHUTTING_DOWN 'maintenance'"):
            await asyncio.wait_for(conn.closed, 5)
        conn.close()


async def test_qos_2_is_received_once_and_completed_with_a_real_broker(mosquitto: Mosquitto) -> None:
    """QoS 2 used to be answered with a PUBACK, which leaves the broker's exchange open forever:
    the ack is a PUBREC, the broker's PUBREL gets a PUBCOMP, and a reconnect redelivers nothing."""
    got: list[Message] = []
    session = Session("127.0.0.1", mosquitto.port, "t-qos2", max_qos=2, session_expiry_s=60)
    conn = await connect(session, "t/qos2/#", lambda c, m: (got.extend(m), c.ack([x[2] for x in m if x[2]])))
    publisher = await connect(Session("127.0.0.1", mosquitto.port, "t-qos2-pub", session_expiry_s=0), [],
                              lambda _c, _m: None)
    await publisher.publish("t/qos2/x", b"once", qos=2)
    await eventually(lambda: len(got) == 1)
    assert got[0][2] is not None and got[0][2][:1] == b"\x50"  # PUBREC
    await asyncio.sleep(0.3)  # PUBREL in, PUBCOMP out
    conn.close(graceful=True)
    again: list[Message] = []
    conn = await connect(session, "t/qos2/#", lambda _c, m: again.extend(m))
    await asyncio.sleep(0.5)
    assert again == [] and conn.session_present
    conn.close()
    publisher.close()


async def test_only_a_copy_from_the_retained_store_is_marked_retained(mosquitto: Mosquitto) -> None:
    """A retained message sent because we subscribed is from the past (a device's last will may be
    days old); the same device's retained publish forwarded live is news. Receivers tell them apart
    by the flag, so Retain As Published must be off in our subscriptions."""
    publisher = await connect(Session("127.0.0.1", mosquitto.port, "t-retain-pub", session_expiry_s=0), [],
                              lambda _c, _m: None)
    await publisher.publish("t/retain/H1/status", b"old", qos=1, retain=True)
    got: list[Message] = []
    conn = await connect(Session("127.0.0.1", mosquitto.port, "t-retain-sub", session_expiry_s=0),
                         "t/retain/#", lambda c, m: (got.extend(m), c.ack([x[2] for x in m if x[2]])))
    await eventually(lambda: len(got) == 1)
    assert conn.subscribed_ms > 0
    await publisher.publish("t/retain/H1/status", b"new", qos=1, retain=True)
    await eventually(lambda: len(got) == 2)
    assert [(m[1], m[4]) for m in got] == [(b"old", True), (b"new", False)]
    await publisher.publish("t/retain/H1/status", b"", qos=1, retain=True)  # clears the retained store
    conn.close()
    publisher.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_any_bytes_from_the_broker_end_in_messages_or_a_reasoned_close_never_a_raise(
    data: bytes, cuts: list[int]
) -> None:
    async def feed() -> None:
        conn = Connection(lambda _c, _m: None, max_packet_size=512)
        pos, i = 0, 0
        while pos < len(data) and not conn.closed.done():
            conn.data_received(data[pos : pos + cuts[i % len(cuts)]])
            pos += cuts[i % len(cuts)]
            i += 1
        if conn.closed.done():
            assert isinstance(conn.closed.exception(), MqttError)

    asyncio.run(feed())


async def eventually(check: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
