"""The one MQTT 5 client of firewatch: ingest, alerting, the api's live feed and the simulators.

Packets are decoded and encoded by `mqtt5` (a sans-I/O MQTT 5 codec in Rust, by
aiomqtt's maintainer), which refuses malformed packets; this module adds what a
codec cannot know: framing on an asyncio Protocol (the remaining length at most
4 bytes, a packet over our Maximum Packet Size refused before it is buffered),
the session (CONNECT with session expiry, receive maximum and Maximum Packet
Size; the CONNACK's server keep-alive, shared-subscription availability and
limits honoured; every refusal and DISCONNECT logged with its reason code and
string), QoS 1 and QoS 2 in both directions, a connect timeout, and one
reconnect supervisor with capped, jittered backoff for every part.

Receiving stays batched because a fire-warning city is many thousand messages a
second: `data_received` hands whole chunks of messages to the caller, which
acknowledges them later in one write (`Connection.ack`) once they are stored.
A PUBLISH the codec refuses but whose packet id can be read is handed on with
an empty topic, so the caller dead-letters it (as `bad_topic`) and acknowledges
it once; the broker never redelivers it forever.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Self

import mqtt5

from firewatch.contract.settings import MqttSettings

log = logging.getLogger("firewatch.mqtt")
PUBLISH = 3
_CONNACK, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP = 2, 4, 5, 6, 7
_SUBACK, _PINGRESP, _DISCONNECT = 9, 13, 14
_PING = b"\xc0\x00"


class _Acks(dict[int, bytes]):
    """By packet id, the packet that settles a message (PUBACK or PUBREC): each made once, when a
    receiver first needs it, not per message; a process that only publishes makes none."""

    def __init__(self, kind: bytes) -> None:
        super().__init__()
        self._kind = kind

    def __missing__(self, packet_id: int) -> bytes:
        ack = self[packet_id] = self._kind + packet_id.to_bytes(2, "big")
        return ack


_ACKS = (None, _Acks(b"\x40\x02"), _Acks(b"\x50\x02"))
"""By QoS."""
_VARINT_MAX_BYTES = 4
_NOT_CODEC_ERRORS = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)
"""All else the codec raises is a packet it refuses. Not only ValueError and IndexError: mqtt5
0.8.0 panics on invalid UTF-8 in a PUBLISH topic, and pyo3's PanicException is a BaseException."""
DEFAULT_MAX_PACKET = 2 * 1024 * 1024
"""Our Maximum Packet Size: above the broker's own limit (1 MiB in deploy/mosquitto) and ingest's
payload limit, so whatever those let through reaches the parser and is judged there."""
_HINTS = {
    0x84: "the broker needs MQTT 5",
    0x85: "ingest.client_id",
    0x86: "mqtt.username, mqtt.password",
    0x87: "mqtt.username, mqtt.password, and the broker's ACL",
    0x9E: "the broker has no shared subscriptions: set ingest.share_group empty",
}


class MqttError(ConnectionError):
    """The broker refused us, hung up, or broke the protocol; the supervisor reconnects."""


def reason_name(code: int) -> str:
    """`0x87 NOT_AUTHORIZED`: the reason code as MQTT 5 names it, for logs a person can act on."""
    for enum in (mqtt5.ConnAckReasonCode, mqtt5.DisconnectReasonCode, mqtt5.SubAckReasonCode,
                 mqtt5.PubAckReasonCode):
        try:
            return f"0x{code:02x} {enum(code).name}"
        except ValueError:
            continue
    return f"0x{code:02x}"


def _why(code: int, reason_str: str | None) -> str:
    hint = _HINTS.get(code)
    return reason_name(code) + (f" {reason_str!r}" if reason_str else "") + (f"; see {hint}" if hint else "")


@dataclass(frozen=True, slots=True)
class Session:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    """How long the broker keeps our queue while we are away; 0 ends the session at disconnect."""
    receive_maximum: int = 65535
    """Unacknowledged messages the broker may send us; ingest holds a batch's acks until it is stored."""
    max_packet_size: int = DEFAULT_MAX_PACKET
    connect_timeout_s: float = 10.0
    """TCP, TLS, CONNECT and SUBSCRIBE together, so a broker that accepts and then says nothing
    cannot hold a part forever."""
    reconnect_max_s: float = 0.5
    max_qos: int = 1
    """The QoS we subscribe with; 2 makes the broker use the PUBREC/PUBREL/PUBCOMP exchange."""
    clean_start: bool = False
    will: mqtt5.Will | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, m: MqttSettings, client_id: str, **kw: object) -> Session:
        return cls(m.host, m.port, client_id, m.username, m.password, m.keepalive_s,
                   connect_timeout_s=m.connect_timeout_s, reconnect_max_s=m.reconnect_max_s,
                   **kw)  # type: ignore[arg-type]


def tls_context(m: MqttSettings) -> ssl.SSLContext | None:
    """The `[mqtt]` TLS settings as a context, or None for a plain connection."""
    if not m.tls:
        return None
    return ssl.create_default_context(cafile=str(m.ca_file) if m.ca_file else None)


def varint(n: int) -> bytes:
    """MQTT's variable byte integer; public because publishers that pre-encode packets need it."""
    if not 0 <= n < 1 << 28:
        raise ValueError(f"{n} does not fit MQTT's 4-byte remaining length")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(s: Session) -> bytes:
    return mqtt5.ConnectPacket(
        s.client_id, username=s.username,
        password=s.password.encode() if s.password is not None else None,
        clean_start=s.clean_start, will=s.will, keep_alive=s.keepalive_s,
        session_expiry_interval=s.session_expiry_s, receive_max=s.receive_maximum,
        max_packet_size=s.max_packet_size,
    ).write()


def subscribe_packet(packet_id: int, topic_filters: Sequence[str], max_qos: int = 1) -> bytes:
    """Retain As Published off: a message then carries the retain flag only when the broker sends
    it from its retained store because we subscribed (a copy of the past, maybe long stale), never
    when a device's retained publish is forwarded live, so a receiver can tell the two apart."""
    return mqtt5.SubscribePacket(
        packet_id, [mqtt5.TopicFilter(f, max_qos=mqtt5.QoS(max_qos), retain_as_published=False)
                    for f in topic_filters]
    ).write()


def publish_packet(topic: str, payload: bytes, packet_id: int | None = None, qos: int = 0,
                   retain: bool = False, dup: bool = False) -> bytes:
    return mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS(qos), retain=retain,
                               packet_id=packet_id, duplicate=dup).write()


Message = tuple[str, bytes, bytes | None, bool, bool]
"""(topic, payload, ack or None for QoS 0, dup, retained). The ack is the packet that settles the
message (PUBACK for QoS 1, PUBREC for QoS 2), opaque to the caller, given back to `Connection.ack`.
`retained` is true only for a copy the broker sent from its retained store on subscribing (see
`subscribe_packet`): it was published before `Connection.subscribed_ms`, how long before is unknown."""
OnMessages = Callable[["Connection", list[Message]], None]
"""Called with each chunk's messages, in the order the broker sent them."""


@dataclass(slots=True)
class Limits:
    """What the broker's CONNACK allows us (MQTT 5 §3.2.2.3)."""

    keepalive_s: int = 30
    receive_maximum: int = 65535
    max_packet_size: int = 1 << 28
    max_qos: int = 2
    shared_subscriptions: bool = True
    session_expiry_s: int | None = None


class Connection(asyncio.Protocol):
    """One broker connection; a new one after every reconnect, so acks never cross sessions."""

    def __init__(self, on_messages: OnMessages, max_packet_size: int = DEFAULT_MAX_PACKET,
                 on_acked: Callable[[int, int], None] | None = None) -> None:
        self._on_messages = on_messages
        self._on_acked = on_acked
        self._max_packet = max_packet_size
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._control: asyncio.Queue[object] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._next_id = 0
        self._room = asyncio.Event()
        self._room.set()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Fails with MqttError (why the connection ended) once it has."""
        self.closed.add_done_callback(lambda f: f.cancelled() or f.exception())  # unawaited is fine
        self.session_present = False
        self.limits = Limits()
        self.subscribed_ms = 0
        """Wall-clock ms when the broker confirmed our subscription: every retained copy it sends
        for it was published before then."""

    @property
    def open(self) -> bool:
        return self._transport is not None and not self.closed.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(MqttError(f"connection lost: {exc or 'closed'}"))

    def _end(self, error: MqttError) -> None:
        if not self.closed.done():
            self.closed.set_exception(error)
            self._control.put_nowait(error)  # wakes whoever waits for a control packet
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(error)
        self._room.set()

    def _fail(self, code: int, why: str) -> None:
        """A protocol error on the broker's side: tell it why (MQTT 5 §4.13), then hang up."""
        log.error("MQTT: %s; disconnecting with %s", why, reason_name(code))
        self._end(MqttError(f"{why} ({reason_name(code)})"))
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(mqtt5.DisconnectPacket(reason_code=mqtt5.DisconnectReasonCode(code)).write())
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        end = len(buf)
        pos = 0
        messages: list[Message] = []
        with memoryview(buf) as view:
            while end - pos >= 2:
                length, shift, i = 0, 0, pos + 1
                if end - pos >= 3 and not buf[pos + 2] & 0x80 and buf[pos + 1] & 0x80:
                    length, i = (buf[pos + 1] & 0x7F) | buf[pos + 2] << 7, pos + 3  # a city's reading: 2 bytes
                else:
                    while i < end and i - pos <= _VARINT_MAX_BYTES:
                        byte = buf[i]
                        length |= (byte & 0x7F) << shift
                        shift += 7
                        i += 1
                        if not byte & 0x80:
                            break
                    else:
                        if i - pos > _VARINT_MAX_BYTES:
                            self._fail(0x81, "a packet's remaining length runs past 4 bytes")
                            return
                        break  # the rest of the length is still on its way
                if length + i - pos > self._max_packet:
                    self._fail(0x95, f"a {length}-byte packet is over our Maximum Packet Size "
                                     f"{self._max_packet}")
                    return
                stop = i + length
                if stop > end:
                    break
                first = buf[pos]
                try:
                    packet, used = mqtt5.read(view[pos:stop])
                    if used != stop - pos:
                        raise ValueError(f"the codec read {used} of {stop - pos} bytes")
                except BaseException as exc:  # see _CODEC_PANICS
                    if isinstance(exc, _NOT_CODEC_ERRORS):
                        raise
                    if first >> 4 != PUBLISH or not self._unreadable(view[pos:stop], first, messages, exc):
                        self._fail(0x81, f"malformed packet of type {first >> 4} from the broker: {exc}")
                        return
                else:
                    if first >> 4 == PUBLISH:  # flags from the fixed header the codec accepted
                        qos = (first >> 1) & 3
                        ack = _ACKS[qos][packet.packet_id] if qos else None
                        messages.append((packet.topic, packet.payload, ack, bool(first & 0x08),
                                         bool(first & 0x01)))
                    else:
                        self._control_packet(packet)
                pos = stop
        del buf[:pos]
        if messages:
            self._on_messages(self, messages)

    def _unreadable(self, frame: memoryview, first: int, messages: list[Message],
                    exc: Exception) -> bool:
        """A PUBLISH the codec refuses: hand it on to be dead-lettered if its packet id can be found."""
        qos = (first >> 1) & 3
        if qos == 3:
            return False
        head = _header_length(frame)
        if head + 2 > len(frame):
            return False
        topic_len = int.from_bytes(frame[head:head + 2], "big")
        pid_at = head + 2 + topic_len
        ack = None
        if qos:
            if pid_at + 2 > len(frame):
                return False
            ack = _ACKS[qos][int.from_bytes(frame[pid_at:pid_at + 2], "big")]
        log.warning("MQTT: a PUBLISH the codec refuses (%s); dead-lettered and acknowledged", exc)
        messages.append(("", bytes(frame), ack, bool(first & 0x08), bool(first & 0x01)))
        return True

    def _control_packet(self, packet: object) -> None:
        if isinstance(packet, mqtt5.PubAckPacket):
            self._settle(packet.packet_id, int(packet.reason_code))
        elif isinstance(packet, mqtt5.PubRelPacket):
            if self._transport is not None:  # the QoS 2 message was stored when we sent PUBREC
                self._transport.write(mqtt5.PubCompPacket(packet.packet_id).write())
        elif isinstance(packet, mqtt5.PubRecPacket):
            if int(packet.reason_code) >= 0x80:
                self._settle(packet.packet_id, int(packet.reason_code))
            elif self._transport is not None:
                self._transport.write(mqtt5.PubRelPacket(packet.packet_id).write())
        elif isinstance(packet, mqtt5.PubCompPacket):
            self._settle(packet.packet_id, int(packet.reason_code))
        elif isinstance(packet, mqtt5.SubAckPacket):
            self.subscribed_ms = int(time.time() * 1000)  # before the retained copies that follow it
            self._control.put_nowait(packet)
        elif isinstance(packet, mqtt5.DisconnectPacket):
            why = _why(int(packet.reason_code), packet.reason_str)
            log.warning("MQTT: the broker disconnected us: %s", why)
            self._end(MqttError(f"broker disconnected us: {why}"))
        else:
            self._control.put_nowait(packet)

    def _settle(self, packet_id: int, code: int) -> None:
        fut = self._waiting.pop(packet_id, None)
        if fut is not None and not fut.done():
            fut.set_result(code)
        if self._on_acked is not None:
            self._on_acked(packet_id, code)
        if len(self._waiting) < self.limits.receive_maximum:
            self._room.set()

    def ack(self, acks: list[bytes]) -> None:
        """Settle many messages in one write; silently dropped if this connection is gone."""
        if acks and self.open:
            assert self._transport is not None
            self._transport.write(b"".join(acks))

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def _packet_id(self) -> int:
        pid = self._next_id % 65535 + 1
        while pid in self._waiting:
            pid = pid % 65535 + 1
        self._next_id = pid
        return pid

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Send one message; for QoS 1 and 2 wait until the broker has it, and raise if it refused.

        The broker's receive maximum bounds how many wait at once; a message over its Maximum
        Packet Size is refused here, since the broker would only drop the connection for it.
        """
        if qos > self.limits.max_qos:
            raise MqttError(f"the broker takes QoS {self.limits.max_qos} at most, not {qos}")
        while qos and len(self._waiting) >= self.limits.receive_maximum:
            self._room.clear()
            await self._room.wait()
            if not self.open:
                break
        if not self.open:
            raise MqttError("not connected")
        pid = self._packet_id() if qos else None
        packet = publish_packet(topic, payload, pid, qos, retain)
        if len(packet) > self.limits.max_packet_size:
            raise MqttError(f"a {len(packet)}-byte message on {topic} is over the broker's "
                            f"Maximum Packet Size {self.limits.max_packet_size}")
        assert self._transport is not None
        if pid is None:
            self._transport.write(packet)
            return
        fut = self._waiting[pid] = asyncio.get_running_loop().create_future()
        self._transport.write(packet)
        code = await fut
        if code >= 0x80:
            raise MqttError(f"the broker refused the message on {topic}: {reason_name(code)}")

    def write(self, data: bytes) -> None:
        """Raw pre-encoded packets, for publishers that encode in bulk (simulators, benchmarks)."""
        if self._transport is not None and not self.closed.done():
            self._transport.write(data)

    def track(self, packet_id: int) -> None:
        """A QoS 1 packet id sent through `write`, so `on_acked` hears of its PUBACK."""
        self._waiting[packet_id] = asyncio.get_running_loop().create_future()

    async def drain(self) -> None:
        """Wait until the socket's buffer is below its high-water mark (back-pressure for bulk writes)."""
        if self._transport is not None and self._transport.get_write_buffer_size() > 1 << 20:
            while self.open and self._transport.get_write_buffer_size() > 1 << 18:
                await asyncio.sleep(0.001)

    async def _expect(self, kind: type, timeout_s: float) -> object:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel that arrives as the
        # packet does, and the subscriber would then run on past its service's stop.
        async with asyncio.timeout(timeout_s):
            while True:
                if self._control.empty() and self.closed.done():
                    self.closed.result()  # raises why the connection ended
                packet = await self._control.get()
                if isinstance(packet, MqttError):
                    raise packet
                if isinstance(packet, kind):
                    return packet

    async def handshake(self, session: Session, topic_filters: Sequence[str]) -> None:
        assert self._transport is not None
        self._transport.write(connect_packet(session))
        connack = await self._expect(mqtt5.ConnAckPacket, session.connect_timeout_s)
        assert isinstance(connack, mqtt5.ConnAckPacket)
        code = int(connack.reason_code)
        if code >= 0x80:
            raise MqttError(f"broker refused the connection ({_why(code, connack.reason_str)})")
        self.session_present = connack.session_present
        self.limits = Limits(
            keepalive_s=connack.server_keep_alive if connack.server_keep_alive is not None
            else session.keepalive_s,
            receive_maximum=connack.receive_max,
            max_packet_size=connack.max_packet_size or 1 << 28,
            max_qos=int(connack.max_qos),
            shared_subscriptions=connack.shared_subscription_available,
            session_expiry_s=connack.session_expiry_interval,
        )
        if self.limits.keepalive_s != session.keepalive_s:
            log.info("MQTT: the broker set keep-alive to %d s", self.limits.keepalive_s)
        if session.session_expiry_s and connack.session_expiry_interval is not None \
                and connack.session_expiry_interval < session.session_expiry_s:
            log.warning("MQTT: the broker keeps our session %d s after a disconnect, not %d s",
                        connack.session_expiry_interval, session.session_expiry_s)
        if not topic_filters:
            return
        if not self.limits.shared_subscriptions and any(f.startswith("$share/") for f in topic_filters):
            raise MqttError(f"broker refused the subscription ({_why(0x9E, None)})")
        self._transport.write(subscribe_packet(1, topic_filters, session.max_qos))
        suback = await self._expect(mqtt5.SubAckPacket, session.connect_timeout_s)
        assert isinstance(suback, mqtt5.SubAckPacket)
        for f, granted in zip(topic_filters, suback.reason_codes, strict=False):
            if int(granted) >= 0x80:
                raise MqttError(f"broker refused the subscription {f!r} ({_why(int(granted), suback.reason_str)})")

    async def keepalive(self) -> None:
        """Ping at the keep-alive the broker granted; a missing answer means a dead link: close."""
        assert self._transport is not None
        interval = max(1, self.limits.keepalive_s) * 0.75
        while self.open:
            await asyncio.sleep(interval)
            if not self.open:
                return
            self._transport.write(_PING)
            try:
                await self._expect(mqtt5.PingRespPacket, interval)
            except (TimeoutError, MqttError):
                log.warning("MQTT: no answer to a ping within %.0f s; reconnecting", interval)
                self.close()

    def close(self, graceful: bool = False) -> None:
        """Graceful: DISCONNECT first, so the broker knows we left on purpose and keeps the session."""
        if self._transport is not None and not self._transport.is_closing():
            if graceful:
                self._transport.write(b"\xe0\x00")
            self._transport.close()


def _header_length(frame: memoryview | bytes) -> int:
    """Bytes of a frame's fixed header (type byte and remaining length)."""
    i = 1
    while frame[i] & 0x80:
        i += 1
    return i + 1


async def connect(session: Session, topic_filters: str | Sequence[str], on_messages: OnMessages,
                  tls: ssl.SSLContext | None = None,
                  on_acked: Callable[[int, int], None] | None = None) -> Connection:
    """Connect, log in and subscribe within `session.connect_timeout_s`, or raise."""
    filters = [topic_filters] if isinstance(topic_filters, str) else list(topic_filters)
    loop = asyncio.get_running_loop()
    conn: Connection | None = None
    try:
        async with asyncio.timeout(session.connect_timeout_s):
            _, conn = await loop.create_connection(
                lambda: Connection(on_messages, session.max_packet_size, on_acked),
                session.host, session.port, ssl=tls,
            )
            await conn.handshake(session, filters)
    except TimeoutError:
        if conn is not None:
            conn.close()
        raise MqttError(f"no answer within {session.connect_timeout_s:g} s (mqtt.connect_timeout_s)") from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return conn


class Backoff:
    """Exponential, capped and jittered: reconnect at once when the broker is back, and never all
    of a city's clients in the same millisecond after it restarts."""

    def __init__(self, cap_s: float, first_s: float = 0.02) -> None:
        self.cap_s = cap_s
        self.first_s = min(first_s, cap_s)
        self._n = 0

    def next(self) -> float:
        ceiling = min(self.cap_s, self.first_s * 2**self._n)
        self._n = min(self._n + 1, 32)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self._n = 0


async def supervise(
    session: Session,
    topic_filters: str | Sequence[str],
    on_messages: OnMessages,
    *,
    tls: ssl.SSLContext | None = None,
    on_up: Callable[[Connection], None] | None = None,
    on_down: Callable[[Connection], None] | None = None,
    on_acked: Callable[[int, int], None] | None = None,
    name: str = "mqtt",
) -> None:
    """Stay connected until cancelled: connect, keep alive, and reconnect with backoff.

    The log gets one line when the broker goes away and one when it is back, with how long it
    was gone, not a line per try; the reason of the first failure is in the first line.
    """
    backoff = Backoff(session.reconnect_max_s)
    down_since: float | None = None
    last_reported = 0.0
    while True:
        try:
            conn = await connect(session, topic_filters, on_messages, tls, on_acked)
        except (OSError, MqttError) as exc:
            now = time.monotonic()
            if down_since is None or now - last_reported > 60:
                log.warning("%s: broker %s:%d: %s; retrying (at most every %.2g s)", name,
                            session.host, session.port, exc, session.reconnect_max_s)
                last_reported = now
                down_since = down_since or now
            await asyncio.sleep(backoff.next())
            continue
        backoff.reset()
        if down_since is not None:
            log.info("%s: broker %s:%d is back after %.1f s", name, session.host, session.port,
                     time.monotonic() - down_since)
            down_since = None
        log.info("%s: connected as %s (session %s)%s", name, session.client_id,
                 "resumed" if conn.session_present else "new",
                 f", subscribed to {topic_filters}" if topic_filters else "")
        if on_up is not None:
            on_up(conn)
        pinger = asyncio.create_task(conn.keepalive(), name=f"{name}-keepalive")
        try:
            await conn.closed
        except MqttError as exc:
            log.warning("%s: %s; reconnecting", name, exc)
            down_since = last_reported = time.monotonic()
        finally:
            pinger.cancel()
            if on_down is not None:
                on_down(conn)


class Publisher:
    """A supervised connection that publishes: `publish` waits for the broker while it is away,
    and a message whose connection dropped before the broker confirmed it goes again on the next
    one (at least once). `async with Publisher(...) as p:` closes it cleanly."""

    def __init__(self, session: Session, tls: ssl.SSLContext | None = None, name: str = "publisher") -> None:
        self._session = session
        self._tls = tls
        self._name = name
        self._conn: Connection | None = None
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(
            supervise(self._session, [], lambda _c, _m: None, tls=self._tls, on_up=self._on_up,
                      on_down=self._on_down, name=self._name), name=self._name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            self._conn.close(graceful=True)

    def _on_up(self, conn: Connection) -> None:
        self._conn = conn
        self._up.set()

    def _on_down(self, conn: Connection) -> None:
        self._up.clear()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Raise MqttError only if the broker refused this message; a lost connection is waited out."""
        while True:
            await self._up.wait()
            conn = self._conn
            assert conn is not None
            try:
                await conn.publish(topic, payload, qos, retain)
                return
            except MqttError:
                if conn.open:
                    raise
