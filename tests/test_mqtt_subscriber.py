"""contract.mqtt's packet reader: whole messages out, however TCP cuts the stream; the acks are PUBACKs."""

from __future__ import annotations

import asyncio
import random
import struct

from firewatch.contract.mqtt import Connection, Session, varint
from firewatch.services import Mosquitto


def _publish(
    topic: str, payload: bytes, packet_id: int | None, props: bytes = b"", dup: bool = False
) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t
    if packet_id is not None:
        body += struct.pack("!H", packet_id)
    body += varint(len(props)) + props + payload
    first = 0x30 | (0x02 if packet_id is not None else 0) | (0x08 if dup else 0)
    return bytes([first]) + varint(len(body)) + body


async def test_messages_come_out_whole_whatever_the_chunking() -> None:
    user_property = (
        b"\x26" + struct.pack("!H", 7) + b"gateway" + struct.pack("!H", 300) + b"g" * 300
    )
    expected = [
        ("fire/v1/d1/H1/telemetry", b'{"m": 1}', b"\x40\x02" + struct.pack("!H", 1), False),
        ("fire/v1/d1/H2/telemetry", b"x" * 70_000, b"\x40\x02" + struct.pack("!H", 2), True),  # 3-byte length
        ("fire/v1/d1/H3/status", b'{"online": true}', None, False),  # QoS 0
        ("fire/v1/d1/H4/event", b"{}", b"\x40\x02" + struct.pack("!H", 65535), False),  # long properties
    ]
    stream = b"".join(
        [
            _publish(expected[0][0], expected[0][1], 1),
            b"\xd0\x00",  # a PINGRESP between messages
            _publish(expected[1][0], expected[1][1], 2, dup=True),
            _publish(expected[2][0], expected[2][1], None),
            _publish(expected[3][0], expected[3][1], 65535, props=user_property),
        ]
    )
    rng = random.Random(7)
    for cuts in ([1] * 40, [2, 3, 5, 7], [len(stream)], [rng.randint(1, 3000) for _ in range(200)]):
        got: list[tuple[str, bytes, bytes | None, bool]] = []
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
