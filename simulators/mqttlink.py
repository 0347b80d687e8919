"""A minimal MQTT 3.1.1 publisher on asyncio streams: what a field device needs and no more.

Why not paho or aiomqtt: both pay per message in Python (callbacks, futures,
locks) and top out near 3-10 k QoS-1 messages/s here, while a simulated city
must outrun ingest. This client encodes PUBLISH packets straight into the
stream buffer and reads PUBACKs in one task, so one connection carries tens of
thousands of messages a second, and a device connection can still carry its
own last will.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass


class LinkError(ConnectionError):
    """The broker refused or dropped the connection."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


def _varint(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _connect_packet(
    client_id: str, keepalive_s: int, username: str | None, password: str | None, will: Will | None
) -> bytes:
    flags = 0x02  # clean session: a simulated device starts afresh each run
    body = _str(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        body += _str(will.topic) + _str(will.payload)
    if username is not None:
        flags |= 0x80
        body += _str(username)
        if password is not None:
            flags |= 0x40
            body += _str(password)
    variable = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
    rest = variable + body
    return b"\x10" + _varint(len(rest)) + rest


class Link:
    """One MQTT connection that publishes; `publish` buffers, `drain` sends and applies back-pressure.

    At most about `window` QoS-1 messages are unacknowledged at a time; `acked`
    counts the ones the broker confirmed (QoS 0 counts once written). If the
    broker goes away, `reconnect` opens a new connection and sends every
    unacknowledged QoS-1 message again with the DUP flag: at least once, as a
    device with a persistent outbox would.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        will: Will | None = None,
        keepalive_s: int = 30,
        tls: ssl.SSLContext | None = None,
        window: int = 2000,
    ) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self._connect = _connect_packet(client_id, keepalive_s, username, password, will)
        self._keepalive_s = keepalive_s
        self._tls = tls
        self._window = min(window, 60000)
        self._next_id = 0
        self._buf = bytearray()
        self._topics: dict[str, bytes] = {}
        self._unacked: dict[int, bytes] = {}
        self._room = asyncio.Event()
        self._done = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._error: BaseException | None = None
        self.sent = 0
        self.acked = 0

    @property
    def broken(self) -> bool:
        return self._error is not None

    async def connect(self, timeout_s: float = 10.0) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._tls), timeout_s
            )
        except (TimeoutError, OSError) as exc:
            raise LinkError(f"cannot reach MQTT broker {self.host}:{self.port}: {exc}") from None
        self._writer.write(self._connect)
        try:
            head = await asyncio.wait_for(self._reader.readexactly(4), timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            self.abort()
            raise LinkError(f"no CONNACK from {self.host}:{self.port}: {exc!r}") from None
        if head[0] != 0x20 or head[3] != 0:
            self.abort()
            raise LinkError(f"broker refused {self.client_id}: {_CONNACK_CODES.get(head[3], head[3])}")
        self._error = None
        self._room.set()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._ping())]

    async def reconnect(self) -> None:
        """A new connection; unacknowledged QoS-1 messages go again, QoS-0 ones still buffered are lost."""
        self.abort()
        await self.connect()
        self._buf = bytearray(b"".join(bytes((p[0] | 0x08,)) + p[1:] for p in self._unacked.values()))
        if len(self._unacked) < self._window:
            self._room.set()
        else:
            self._room.clear()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Queue one message; call `drain` often so the window is respected."""
        name = self._topics.get(topic)
        if name is None:
            name = self._topics[topic] = _str(topic)
        first = 0x30 | (qos << 1) | (1 if retain else 0)
        if qos:
            mid = self._next_id % 65535 + 1
            while mid in self._unacked:
                mid = mid % 65535 + 1
            self._next_id = mid
            packet = bytes((first,)) + _varint(len(name) + 2 + len(payload)) + name + mid.to_bytes(2, "big") + payload
            self._unacked[mid] = packet
            if len(self._unacked) >= self._window:
                self._room.clear()
        else:
            packet = bytes((first,)) + _varint(len(name) + len(payload)) + name + payload
            self.acked += 1
        self._buf += packet
        self.sent += 1
        if len(self._buf) > 65536:
            self._send()

    def _send(self) -> None:
        """Hand the buffered packets to the socket in one write: one system call for many messages."""
        if self._buf and self._writer is not None and self._error is None:
            self._writer.write(bytes(self._buf))
            self._buf.clear()

    async def drain(self) -> None:
        """Send what is buffered; wait until the socket drains and the broker has room for more."""
        self._raise()
        self._send()
        assert self._writer is not None
        try:
            await self._writer.drain()
        except OSError as exc:
            self._error = self._error or exc
            self._raise()
        if not self._room.is_set():
            await self._wait(self._room)

    async def flush(self) -> None:
        """Wait until every QoS-1 message sent so far is acknowledged."""
        await self.drain()
        if self._unacked:
            self._done.clear()
            await self._wait(self._done)

    def _raise(self) -> None:
        if self._error is not None:
            raise LinkError(f"{self.client_id}: connection lost: {self._error!r}")

    async def _wait(self, event: asyncio.Event) -> None:
        while True:
            self._raise()
            if event.is_set():
                return
            try:
                await asyncio.wait_for(event.wait(), 1.0)
            except TimeoutError:
                continue

    async def close(self) -> None:
        """Wait for acknowledgements, then DISCONNECT (so the broker keeps the will unsent)."""
        if self._writer is None:
            return
        try:
            await asyncio.wait_for(self.flush(), 30)
            assert self._writer is not None
            self._writer.write(b"\xe0\x00")
            await self._writer.drain()
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, like a device losing power: the will fires."""
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    async def _read(self) -> None:
        """Read whatever the broker sent and settle every PUBACK in it; other packets are skipped."""
        assert self._reader is not None
        buf = b""
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionResetError("broker closed the connection")
                buf += data
                at = 0
                while len(buf) - at >= 2:
                    length, shift, n = 0, 0, at + 1
                    while n < len(buf):
                        length |= (buf[n] & 0x7F) << shift
                        shift += 7
                        if not buf[n] & 0x80:
                            break
                        n += 1
                    else:
                        break  # remaining-length bytes not all here yet
                    if len(buf) - (n + 1) < length:
                        break
                    if buf[at] >> 4 == 4:  # PUBACK
                        self._settle((buf[n + 1] << 8) | buf[n + 2])
                    at = n + 1 + length
                buf = buf[at:]
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._error = exc
            self._room.set()
            self._done.set()

    def _settle(self, mid: int) -> None:
        if self._unacked.pop(mid, None) is not None:
            self.acked += 1
            if len(self._unacked) < self._window:
                self._room.set()
            if not self._unacked:
                self._done.set()

    async def _ping(self) -> None:
        while self._writer is not None:
            await asyncio.sleep(self._keepalive_s / 2)
            if self._writer is not None and self._error is None:
                self._writer.write(b"\xc0\x00")
