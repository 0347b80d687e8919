"""The MQTT 5 subscriber that ingest and alerting share, on an asyncio Protocol.

paho-mqtt received 10k QoS 1 messages/s here with manual acks, a third of what the
broker delivers; this client parses PUBLISH packets straight out of the socket
buffer and sends many PUBACKs in one write, so the broker is the limit, not us.
It speaks only what a subscriber needs: CONNECT (persistent session, receive
maximum), SUBSCRIBE, PUBLISH in (QoS 0 and 1), PUBACK out, PING, DISCONNECT.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass

from firewatch.contract.settings import MqttSettings

PUBLISH = 3
_CONNACK, _SUBACK, _PINGRESP, _DISCONNECT = 2, 9, 13, 14
_PROP_SESSION_EXPIRY = 0x11
_PROP_RECEIVE_MAXIMUM = 0x21
_REFUSALS = {
    0x84: "unsupported protocol version (the broker needs MQTT 5)",
    0x85: "client id not valid (ingest.client_id)",
    0x86: "bad user name or password (mqtt.username, mqtt.password)",
    0x87: "not authorized (mqtt.username, mqtt.password)",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
}
_PING = b"\xc0\x00"
_BYE = b"\xe0\x00"


class MqttError(ConnectionError):
    """The broker refused us or hung up; ingest reconnects."""


@dataclass(frozen=True, slots=True)
class Session:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    """How long the broker keeps our queue while no ingest process is connected."""
    receive_maximum: int = 65535
    """Unacknowledged messages the broker may send us; ingest holds a batch's acks until it is stored."""

    @classmethod
    def from_settings(cls, m: MqttSettings, client_id: str, receive_maximum: int = 65535) -> Session:
        return cls(m.host, m.port, client_id, m.username, m.password, m.keepalive_s,
                   receive_maximum=receive_maximum)


def tls_context(m: MqttSettings) -> ssl.SSLContext | None:
    """The `[mqtt]` TLS settings as a context, or None for a plain connection."""
    if not m.tls:
        return None
    return ssl.create_default_context(cafile=str(m.ca_file) if m.ca_file else None)


def varint(n: int) -> bytes:
    """MQTT's variable byte integer; public because publishers that pre-encode packets need it."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect_packet(s: Session) -> bytes:
    flags = 0x80 if s.username is not None else 0
    flags |= 0x40 if s.password is not None else 0  # clean start stays 0: resume the session
    props = struct.pack(
        "!BIBH", _PROP_SESSION_EXPIRY, s.session_expiry_s, _PROP_RECEIVE_MAXIMUM, s.receive_maximum
    )
    body = _string(b"MQTT") + bytes([5, flags]) + struct.pack("!H", s.keepalive_s)
    body += varint(len(props)) + props + _string(s.client_id.encode())
    if s.username is not None:
        body += _string(s.username.encode())
    if s.password is not None:
        body += _string(s.password.encode())
    return _packet(0x10, body)


def subscribe_packet(packet_id: int, topic_filter: str) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00" + _string(topic_filter.encode()) + b"\x01"
    return _packet(0x82, body)


OnMessages = Callable[["Connection", list[tuple[str, bytes, bytes | None, bool]]], None]
"""Called with each chunk's messages: (topic, payload, packet id or None for QoS 0, dup)."""


class Connection(asyncio.Protocol):
    """One broker connection; a new one after every reconnect, so acks never cross sessions."""

    def __init__(self, on_messages: OnMessages) -> None:
        self._on_messages = on_messages
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._control: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Fails with MqttError (why the connection ended) once it has."""
        self.closed.add_done_callback(lambda f: f.cancelled() or f.exception())  # unawaited is fine
        self.session_present = False

    @property
    def open(self) -> bool:
        return self._transport is not None and not self.closed.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_exception(MqttError(f"connection lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        end = len(buf)
        pos = 0
        messages: list[tuple[str, bytes, bytes | None, bool]] = []
        while end - pos >= 2:
            first = buf[pos]
            length, shift, i = 0, 0, pos + 1
            while i < end:
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            else:
                break
            if i + length > end:
                break
            stop = i + length
            if first >> 4 == PUBLISH:
                topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
                topic = buf[i + 2 : topic_end].decode(errors="replace")  # parse rejects it
                packet_id = None
                if first & 0x06:
                    packet_id = bytes(buf[topic_end : topic_end + 2])
                    topic_end += 2
                props = buf[topic_end]
                if props < 0x80:
                    start = topic_end + 1 + props
                else:
                    props, start = _read_varint(buf, topic_end)
                    start += props
                messages.append((topic, bytes(buf[start:stop]), packet_id, bool(first & 0x08)))
            else:
                self._control.put_nowait((first >> 4, bytes(buf[i:stop])))
            pos = stop
        del buf[:pos]
        if messages:
            self._on_messages(self, messages)

    def ack(self, packet_ids: list[bytes]) -> None:
        """PUBACK many messages in one write; silently dropped if this connection is gone."""
        if packet_ids and self.open:
            assert self._transport is not None
            self._transport.write(b"".join([b"\x40\x02" + p for p in packet_ids]))

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    async def _expect(self, kind: int, timeout_s: float) -> bytes:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel that arrives as the
        # packet does, and the subscriber would then run on past its service's stop.
        async with asyncio.timeout(timeout_s):
            while True:
                got, body = await self._control.get()
                if got == kind:
                    return body
                if got == _DISCONNECT:
                    raise MqttError(f"broker disconnected us (reason {body[:1].hex() or '00'})")

    async def handshake(self, session: Session, topic_filter: str) -> None:
        assert self._transport is not None
        self._transport.write(connect_packet(session))
        body = await self._expect(_CONNACK, 10)
        if body[1] >= 0x80:
            why = _REFUSALS.get(body[1], "see the broker's log")
            raise MqttError(f"broker refused the connection (0x{body[1]:02x}: {why})")
        self.session_present = bool(body[0] & 1)
        self._transport.write(subscribe_packet(1, topic_filter))
        body = await self._expect(_SUBACK, 10)
        props, pos = _read_varint(body, 2)
        code = body[pos + props]
        if code >= 0x80:
            raise MqttError(
                f"broker refused the subscription {topic_filter!r} (reason 0x{code:02x})"
            )

    async def keepalive(self, interval_s: float) -> None:
        """Ping every interval; a missing answer means a dead link, so close and reconnect."""
        assert self._transport is not None
        while self.open:
            await asyncio.sleep(interval_s)
            self._transport.write(_PING)
            try:
                await self._expect(_PINGRESP, interval_s)
            except (TimeoutError, MqttError):
                self.close()

    def close(self, graceful: bool = False) -> None:
        """Graceful: DISCONNECT first, so the broker knows we left on purpose and keeps the session."""
        if self._transport is not None and not self._transport.is_closing():
            if graceful:
                self._transport.write(_BYE)
            self._transport.close()


def _read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


async def connect(
    session: Session, topic_filter: str, on_messages: OnMessages, tls: ssl.SSLContext | None = None
) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: Connection(on_messages), session.host, session.port, ssl=tls
    )
    try:
        await conn.handshake(session, topic_filter)
    except BaseException:
        conn.close()
        raise
    return conn
