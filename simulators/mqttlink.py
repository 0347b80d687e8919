"""The simulators' publisher: what a field device needs, on the product's one MQTT client.

A simulated city must outrun ingest, so messages are not published one awaited
call at a time (`contract.mqtt.Publisher`): `publish` encodes a PUBLISH packet
(the `mqtt5` codec, through `contract.mqtt.publish_packet`) into a buffer, and
`drain` hands the buffer to the connection in one write, so one connection
carries tens of thousands of messages a second. PUBACKs are settled by the
connection (`on_acked`); at most `window` QoS 1 messages are unacknowledged,
never more than the broker's Receive Maximum. A device connection carries its
own last will.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, replace

import mqtt5

from firewatch.contract import mqtt
from firewatch.contract.mqtt import MqttError


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Link:
    """One MQTT connection that publishes; `publish` buffers, `drain` sends and applies back-pressure.

    `acked` counts the messages the broker confirmed (QoS 0 counts once
    buffered). If the broker goes away, `reconnect` opens a new connection and
    sends every unacknowledged QoS 1 message again with the DUP flag: at least
    once, as a device with a persistent outbox would. A lost connection is an
    `MqttError` from `drain` or `flush`.
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
        last_will = None if will is None else mqtt5.Will(
            will.topic, payload=will.payload, qos=mqtt5.QoS(will.qos), retain=will.retain)
        # a simulated device starts afresh each run: clean start, no session kept
        self._session = mqtt.Session(host, port, client_id, username, password, keepalive_s,
                                     session_expiry_s=0, clean_start=True, will=last_will)
        self._tls = tls
        self._window = min(window, 60000)
        self._next_id = 0
        self._buf = bytearray()
        self._unacked: dict[int, bytes] = {}
        self._room = asyncio.Event()
        self._done = asyncio.Event()
        self._conn: mqtt.Connection | None = None
        self._pinger: asyncio.Task[None] | None = None
        self.sent = 0
        self.acked = 0

    @property
    def broken(self) -> bool:
        return self._conn is None or not self._conn.open

    async def connect(self, timeout_s: float = 10.0) -> None:
        session = replace(self._session, connect_timeout_s=timeout_s)
        try:
            conn = await mqtt.connect(session, [], lambda _c, _m: None, self._tls, self._settle)
        except OSError as exc:
            raise MqttError(f"cannot reach MQTT broker {self.host}:{self.port}: {exc}") from None
        except MqttError as exc:
            raise MqttError(f"{self.client_id}: {exc}") from None
        self._conn = conn
        self._window = min(self._window, conn.limits.receive_maximum)
        conn.closed.add_done_callback(self._lost)
        self._room.set()
        self._pinger = asyncio.create_task(conn.keepalive(), name=f"{self.client_id}-keepalive")

    def _lost(self, closed: asyncio.Future[None]) -> None:
        if self._conn is not None and self._conn.closed is closed:  # not one `reconnect` replaced
            self._room.set()  # wakes a waiting drain or flush, which then raises
            self._done.set()

    async def reconnect(self) -> None:
        """A new connection; unacknowledged QoS 1 messages go again, QoS 0 ones still buffered are lost."""
        self.abort()
        await self.connect()
        self._buf = bytearray(b"".join(bytes((p[0] | 0x08,)) + p[1:] for p in self._unacked.values()))
        if len(self._unacked) < self._window:
            self._room.set()
        else:
            self._room.clear()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Queue one message; call `drain` often so the window is respected."""
        if qos:
            mid = self._next_id % 65535 + 1
            while mid in self._unacked:
                mid = mid % 65535 + 1
            self._next_id = mid
            packet = mqtt.publish_packet(topic, payload, mid, qos, retain)
            self._unacked[mid] = packet
            if len(self._unacked) >= self._window:
                self._room.clear()
        else:
            packet = mqtt.publish_packet(topic, payload, None, 0, retain)
            self.acked += 1
        self._buf += packet
        self.sent += 1
        if len(self._buf) > 65536:
            self._send()

    def _send(self) -> None:
        """Hand the buffered packets to the socket in one write: one system call for many messages."""
        if self._buf and not self.broken:
            assert self._conn is not None
            self._conn.write(bytes(self._buf))
            self._buf.clear()

    async def drain(self) -> None:
        """Send what is buffered; wait until the socket drains and the broker has room for more."""
        self._raise()
        self._send()
        assert self._conn is not None
        await self._conn.drain()
        await self._wait(self._room)

    async def flush(self) -> None:
        """Wait until every QoS 1 message sent so far is acknowledged."""
        await self.drain()
        if self._unacked:
            self._done.clear()
            await self._wait(self._done)

    def _raise(self) -> None:
        if self.broken:
            why = "never connected"
            if self._conn is not None and self._conn.closed.done():
                why = str(self._conn.closed.exception())
            raise MqttError(f"{self.client_id}: {why}")

    async def _wait(self, event: asyncio.Event) -> None:
        while not event.is_set():
            self._raise()
            await event.wait()
        self._raise()

    async def close(self) -> None:
        """Wait for acknowledgements, then DISCONNECT (so the broker keeps the will unsent)."""
        if self._conn is None:
            return
        try:
            await asyncio.wait_for(self.flush(), 30)
            self._conn.close(graceful=True)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, like a device losing power: the will fires."""
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None
        if self._conn is not None:
            self._conn.close()

    def _settle(self, mid: int, code: int) -> None:
        """A PUBACK: a refusal (reason code >= 0x80, e.g. the ACL) is settled too, never resent."""
        if self._unacked.pop(mid, None) is not None:
            self.acked += 1
            if len(self._unacked) < self._window:
                self._room.set()
            if not self._unacked:
                self._done.set()
