"""Publishing a generated stream over MQTT, paced in live or accelerated event time.

Live: event time is wall time, one device report after the other as their
periods come due. Accelerated: event time starts where you say and runs
`speed` times faster than the wall clock, or as fast as the broker acknowledges
(speed 0), so days of drift replay in minutes.

Connections: with one connection per device (the default for small fleets)
each device carries its own retained `status` and a last will `online: false`,
as a real device does; larger fleets share a few connections (a gateway's view)
and mark their devices offline explicitly when the simulator stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from firewatch.contract.mqtt import MqttError
from firewatch.contract.settings import Settings
from firewatch.contract.topics import Channel, device_topic
from firewatch.simulators.fleet import Fleet
from firewatch.simulators.mqttlink import Link, Will
from firewatch.simulators.stream import Message, Tally, status_payload

log = logging.getLogger("simulators")

PER_DEVICE_LIMIT = 200
"""Up to this many devices, each gets its own connection and last will by default."""
_SLICE = 500


@dataclass(slots=True)
class Pace:
    """How event time maps to wall time: speed 1 is live, 0 is as fast as the broker goes."""

    start_ms: int
    speed: float = 1.0
    end_ms: int | None = None
    """A paced run lasts until this event time even when its last message comes earlier."""

    def due(self, wall_start: float, ts_ms: int) -> float:
        """Seconds to wait before a message of event time `ts_ms` may go."""
        if self.speed <= 0:
            return 0.0
        return wall_start + (ts_ms - self.start_ms) / 1000.0 / self.speed - time.monotonic()

    def now(self, wall_start: float, reached_ms: int) -> int:
        """The event time now: the clock's for a paced run, the last message's for a flat-out one."""
        if self.speed <= 0:
            return reached_ms
        return max(reached_ms, self.start_ms + int((time.monotonic() - wall_start) * 1000 * self.speed))


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if not settings.mqtt.tls:
        return None
    return ssl.create_default_context(cafile=str(settings.mqtt.ca_file) if settings.mqtt.ca_file else None)


class Links:
    """The connections of one simulator run, and which device goes over which."""

    def __init__(self, settings: Settings, fleet: Fleet, connections: int | None) -> None:
        m = settings.mqtt
        per_device = connections == 0 or (connections is None and len(fleet.devices) <= PER_DEVICE_LIMIT)
        self.per_device = per_device
        prefix = f"{m.client_id_prefix}-sim{os.getpid()}"  # two simulators never take over each other
        common = {"password": m.password, "keepalive_s": m.keepalive_s, "tls": _tls(settings)}
        if per_device:
            self.links = [
                Link(m.host, m.port, f"{prefix}-{d.id}", username=m.username or d.id,
                     will=Will(device_topic(d.district, d.id, Channel.STATUS), status_payload(d, False, None)),
                     window=200, **common)
                for d in fleet.devices
            ]
            self._route = {device_topic(d.district, d.id, ch): self.links[i]
                           for i, d in enumerate(fleet.devices) for ch in Channel}
        else:
            count = max(1, connections or 4)
            self.links = [Link(m.host, m.port, f"{prefix}-gw{n}", username=m.username, **common)
                          for n in range(count)]
            self._route: dict[str, Link] = {}

    def of(self, topic: str) -> Link:
        link = self._route.get(topic)
        if link is None:
            link = self._route[topic] = self.links[zlib.crc32(topic.encode()) % len(self.links)]
        return link

    async def connect(self) -> None:
        await asyncio.gather(*(link.connect() for link in self.links))

    async def drain(self, stop: asyncio.Event | None) -> None:
        await self._all(lambda link: link.drain(), stop)

    async def close(self, stop: asyncio.Event | None) -> None:
        """Every QoS-1 message acknowledged (across reconnects), then a clean DISCONNECT."""
        await self._all(lambda link: link.flush(), stop)
        await asyncio.gather(*(link.close() for link in self.links), return_exceptions=True)

    async def _all(self, step: Callable[[Link], Awaitable[None]], stop: asyncio.Event | None) -> None:
        """Run `step` on every link; reconnect the ones that lost the broker and run it again."""
        while True:
            results = await asyncio.gather(*(step(link) for link in self.links), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if not errors:
                return
            lost = [e for e in errors if isinstance(e, MqttError)]
            if len(lost) < len(errors):
                raise next(e for e in errors if not isinstance(e, MqttError))
            await self._recover(lost[0], stop)

    async def _recover(self, error: MqttError, stop: asyncio.Event | None) -> None:
        log.warning("%s; reconnecting", error)
        delay = 0.2
        for link in self.links:
            while link.broken:
                if stop is not None and stop.is_set():
                    raise error
                try:
                    await link.reconnect()
                except MqttError:
                    await _sleep(delay, stop)
                    delay = min(2 * delay, 5.0)
        log.warning("reconnected to %s:%s", self.links[0].host, self.links[0].port)

    def abort(self) -> None:
        for link in self.links:
            link.abort()


class Elsewhere(Protocol):
    """Messages that go another way than MQTT (`firewatch eval`'s `panels: gateway`: the panels'
    events as GB/T 26875.3 frames to a gateway), kept in step with the MQTT ones."""

    step_ms: int
    """Event time between two settles: both ways reach the broker in this order of time."""

    def take(self, m: Message) -> bool:
        """True: `m` is this way's to deliver (sent now, without waiting), not MQTT's."""
        ...

    async def settle(self) -> None:
        """Return once everything taken so far is with the broker."""
        ...


async def publish(
    settings: Settings,
    fleet: Fleet,
    messages: Iterator[Message],
    pace: Pace,
    *,
    qos: int = 1,
    connections: int | None = None,
    on_progress: Callable[[Tally], None] | None = None,
    stop: asyncio.Event | None = None,
    offline_at_end: bool = True,
    elsewhere: Elsewhere | None = None,
) -> Tally:
    """Publish `messages` (from `generate`) to the broker in `settings.mqtt`; returns what was sent.

    Returns after every QoS-1 message is acknowledged, so the tally is what the
    broker accepted. Setting `stop` ends the run early (Ctrl-C). With
    `offline_at_end` every device then publishes a retained `online: false`. What
    `elsewhere` takes goes its way instead, settled every `elsewhere.step_ms` of event time
    (after the MQTT messages before it are written), so neither way runs ahead of the other.
    """
    links = Links(settings, fleet, connections)
    await links.connect()
    tally = Tally()
    wall_start = time.monotonic()
    last_report = 0.0
    paced = pace.speed > 0
    # Generation runs inline: a chunk holds the loop a few ms, and a worker thread cost more in GIL
    # hand-offs than it saved (measured: 44-47 k against 58-69 k msgs per CPU second).
    async def until(ts_ms: int) -> None:
        wait = pace.due(wall_start, ts_ms)
        if wait > 0.002:
            await links.drain(stop)
        while wait > 0.002 and (stop is None or not stop.is_set()):
            if on_progress is not None:
                on_progress(tally)
            await _sleep(min(wait, 0.5), stop)
            wait = pace.due(wall_start, ts_ms)

    settled_ms = pace.start_ms
    try:
        for m in messages:
            if paced:
                await until(m.ts_ms)
            if stop is not None and stop.is_set():
                break
            if elsewhere is not None:
                if m.ts_ms - settled_ms >= elsewhere.step_ms:
                    settled_ms = m.ts_ms
                    await links.drain(stop)
                    await elsewhere.settle()
                if elsewhere.take(m):
                    continue
            links.of(m.topic).publish(m.topic, m.payload, qos, m.retain)
            tally.add(m)
            if tally.published % _SLICE == 0:
                await links.drain(stop)
                if on_progress is not None and time.monotonic() - last_report > 0.2:
                    last_report = time.monotonic()
                    on_progress(tally)
        if paced and pace.end_ms is not None:
            await until(pace.end_ms)
        if offline_at_end:
            now = pace.now(wall_start, tally.last_ts_ms or pace.start_ms)
            for d in fleet.devices:
                bye = Message(device_topic(d.district, d.id, Channel.STATUS), status_payload(d, False, now),
                              now, d.kind.value, retain=True)
                links.of(bye.topic).publish(bye.topic, bye.payload, qos, True)
                tally.add(bye)
        await links.close(stop)
    except BaseException:
        links.abort()
        raise
    if on_progress is not None:
        on_progress(tally)
    return tally


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
