"""The GB/T 26875.3 gateway service: an asyncio TCP server for many transmission devices at once.

Per connection a `Session` (an asyncio Protocol: a few hundred bytes of state, no task
of its own) decodes frames, denies bad ones with their reason and goes on, translates
sends into wire-contract messages and confirms a send only after the broker's PUBACK.
Per device address a `Link` outlives reconnects: last frame, online or not, the duty
check waiting for its answer. One housekeeping loop inspects silent links, marks the
dead ones offline (retained status), expires duty checks and runs the shift schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from firewatch.contract.db import Device, Store, now_ms, open_store
from firewatch.contract.settings import Gb26875Settings, Gb26875Variant, Settings
from firewatch.gateway.adaptor import (
    UNASSIGNED,
    Adaptor,
    Target,
    Translation,
    duty_missed_message,
    epoch_ms,
    heartbeat_message,
    status_message,
    unregistered_id,
)
from firewatch.gateway.duty import DutyCheck, DutyRequest, DutyResult, next_shift_checks
from firewatch.gateway.frame import (
    VENDOR_COMMANDS,
    Command,
    Decoder,
    Frame,
    Reason,
    Rejection,
    address_hex,
    deny,
    encode,
    reply,
)
from firewatch.gateway.metrics import Metrics
from firewatch.gateway.publisher import Publisher
from firewatch.gateway.units import (
    ClockSync,
    DataUnit,
    DeviceCommand,
    UnitError,
    UnitType,
    decode_unit,
    encode_unit,
)

log = logging.getLogger("firewatch.gateway")
HEARTBEAT_EVERY_S = 60.0
"""At most one `heartbeat` event per device this often (in the device's time, which the event
carries): alerting's panel offline rule needs to hear from a panel that has nothing to
report, the broker need not hear every 20 s."""
HOUSEKEEPING_S = 1.0
REGISTRY_REFRESH_S = 30.0
CLOCK_SYNC_EVERY_S = 3600.0


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {text!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


def merge(base: Gb26875Variant, *over: Gb26875Variant | None) -> Gb26875Variant:
    """Keys a port or device sets win over the section's; unset ones keep the section's."""
    values = {k: getattr(base, k) for k in Gb26875Variant.model_fields}
    for o in over:
        if o is not None:
            values.update(o.model_dump(exclude_unset=True))
    return Gb26875Variant(**values)


@dataclass(slots=True)
class PendingDuty:
    row_id: int
    sent_ms: int
    deadline_ms: int


@dataclass(slots=True)
class Link:
    """One transmission device, across its reconnections."""

    address: str
    target: Target
    last_ms: int = 0
    online: bool = False
    last_heartbeat_ms: int = 0
    """Device time of the last heartbeat (or online status) published."""
    last_clock_sync_ms: int = 0
    inspecting: bool = False
    session: Session | None = None
    duty: PendingDuty | None = None


class Session(asyncio.Protocol):
    """One TCP connection from a transmission device."""

    def __init__(self, gateway: Gateway, port: int) -> None:
        self.gateway = gateway
        self.port = port
        self.decoder = Decoder(lambda raw: gateway.variant(port, raw))
        self.adaptor = Adaptor()
        self.transport: asyncio.Transport | None = None
        self.link: Link | None = None
        self.serial = random.randrange(0x10000)
        self.waiting: dict[int, asyncio.Future[Frame]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        g = self.gateway
        if len(g.sessions) >= g.config.max_connections:
            log.warning("refusing a connection: %d open (gateway.gb26875.max_connections)", len(g.sessions))
            transport.close()
            return
        g.sessions.add(self)
        g.metrics.connections.set(len(g.sessions))

    def connection_lost(self, exc: Exception | None) -> None:
        g = self.gateway
        g.sessions.discard(self)
        g.metrics.connections.set(len(g.sessions))
        if self.link is not None and self.link.session is self:
            self.link.session = None
        for fut in self.waiting.values():
            fut.cancel()
        for t in self.tasks:
            t.cancel()

    def data_received(self, data: bytes) -> None:
        g = self.gateway
        now = now_ms()
        work: list[tuple[Frame, Translation]] = []
        for item in self.decoder.feed(data):
            if isinstance(item, Rejection):
                self._refuse(item)
                continue
            g.count_frame(item.command)
            link = self._link(item.source, now)
            link.last_ms = now
            if not link.online:
                link.online = True
                # the online status says as much as a heartbeat would; both in the device's time,
                # so a replayed day (firewatch eval) keeps its event clock
                link.last_heartbeat_ms = epoch_ms(item.time, g.zone, now)
                self._spawn(g.came_online(link, link.last_heartbeat_ms))
            if item.command == Command.SEND:
                try:
                    unit = decode_unit(item.data, link.target.variant)
                except UnitError as exc:
                    self._refuse(Rejection(exc.reason, str(exc), item.serial, item.source, item.destination))
                    continue
                self._check_clock(link, item.time, now)
                if unit is None:
                    self._heartbeat(item, link, now)
                else:
                    tr = self.adaptor.translate(unit, link.target, now)
                    for code in tr.unknown_analog:
                        g.metrics.unknown_analog.labels(str(code)).inc()
                    work.append((item, tr))
            else:
                self._answer(item, link, now)
        if work:
            # GB 26875.1: fire before anything else queued on the same connection.
            work.sort(key=lambda w: not w[1].fire)
            self._spawn(self._deliver(work, self.link))

    # --- the device's sends ---
    def _heartbeat(self, frame: Frame, link: Link, now: int) -> None:
        """An empty send carries no event: confirmed at once; alerting hears of it once a minute."""
        g = self.gateway
        self.write(reply(frame, Command.CONFIRM, g.center, link.target.variant, time=g.local_now()))
        g.metrics.confirmed.inc()
        ts = epoch_ms(frame.time, g.zone, now)
        if abs(ts - link.last_heartbeat_ms) >= HEARTBEAT_EVERY_S * 1000:
            link.last_heartbeat_ms = ts
            self._spawn(g.publisher.publish([heartbeat_message(link.target, ts)]))

    async def _deliver(self, work: list[tuple[Frame, Translation]], link: Link | None) -> None:
        """Publish what the frames of one read became, fire first; confirm them once all are acknowledged."""
        g = self.gateway
        assert link is not None
        messages = [m for _, tr in work for m in tr.messages]
        if messages and not await g.publisher.publish(messages):
            g.metrics.unconfirmed.inc(len(work))
            return
        g.metrics.published.inc(len(messages))
        now = now_ms()
        stamp = g.local_now()
        for frame, tr in work:
            self.adaptor.confirm(tr)
            self.write(reply(frame, Command.CONFIRM, g.center, link.target.variant, time=stamp))
            if tr.duty_answered_at is not None:
                await g.duty_answered(link, now)
        g.metrics.confirmed.inc(len(work))

    def _refuse(self, rej: Rejection) -> None:
        g = self.gateway
        g.metrics.rejected.labels(rej.reason.value).inc()
        log.info("refused from %s: %s (%s)", rej.source or "?", rej.reason.value, rej.detail)
        variant = g.variant_hex(self.port, rej.source) if rej.source else g.config
        answer = deny(rej, g.center, variant)
        if answer is not None:
            self.write(answer)

    def _answer(self, frame: Frame, link: Link, now: int) -> None:
        """Confirms, denies and replies end the center's own requests; other commands get an answer."""
        g = self.gateway
        variant = link.target.variant
        if frame.command in (Command.CONFIRM, Command.DENY, Command.REPLY):
            fut = self.waiting.pop(frame.serial, None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
            return
        if frame.command in VENDOR_COMMANDS and variant.vendor_commands == "deny":
            self._refuse(Rejection(Reason.UNKNOWN_COMMAND, f"vendor command {frame.command} (vendor_commands"
                                   " = deny)", frame.serial, frame.source, frame.destination))
            return
        self.write(reply(frame, Command.CONFIRM, g.center, variant, time=g.local_now()))

    def _link(self, address: str, now: int) -> Link:
        if self.link is None or self.link.address != address:
            self.link = self.gateway.link(address, self.port)
            self.link.session = self
        return self.link

    def _check_clock(self, link: Link, device_time: datetime | None, now: int) -> None:
        g = self.gateway
        if device_time is None or now - link.last_clock_sync_ms < CLOCK_SYNC_EVERY_S * 1000:
            return
        off_s = abs((device_time - g.local_now()).total_seconds())
        if off_s > g.config.clock_skew_s:
            link.last_clock_sync_ms = now
            g.metrics.clock_syncs.inc()
            log.info("device %s clock off by %.0f s: syncing", link.address, off_s)
            unit = DataUnit(UnitType.CLOCK_SYNC, [ClockSync(g.local_now())])
            self._spawn(self.request(Command.CONTROL, unit, link.target.variant))

    # --- the center's requests ---
    async def request(self, command: Command, unit: DataUnit, variant: Gb26875Variant) -> Frame | None:
        """Send a control or request; the answer, or None after the standard's tries (<= 10 s each)."""
        g = self.gateway
        link = self.link
        if link is None:
            return None
        data = encode_unit(unit, variant)
        for _ in range(1 + g.config.retries):
            self.serial = (self.serial + 1) & 0xFFFF
            fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
            self.waiting[self.serial] = fut
            self.write(encode(Frame(self.serial, command, g.center, link.address, data, g.local_now()),
                              variant))
            try:
                async with asyncio.timeout(g.config.timeout_s):
                    return await fut
            except TimeoutError:
                self.waiting.pop(self.serial, None)
        return None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)


def _command_name(command: int) -> str:
    try:
        return Command(command).name.lower()
    except ValueError:
        return "vendor"


@dataclass(slots=True)
class Registry:
    """Transmission-device address -> (district, registered device id, site), refreshed from the store."""

    by_address: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    async def load(self, store: Store) -> None:
        async with store.session() as s:
            rows = await s.execute(select(Device.transmitter_address, Device.district, Device.id, Device.site)
                                   .where(Device.transmitter_address.is_not(None), Device.retired_ms.is_(None)))
            self.by_address = {a.lower(): (d, i, site) for a, d, i, site in rows}


class Gateway:
    def __init__(self, settings: Settings, store: Store, listen: list[str] | None = None,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.config: Gb26875Settings = settings.gateway.gb26875
        self.listen = [parse_listen(a) for a in (listen or self.config.listen)]
        self.store = store
        self.center = self.config.center_address.lower()
        self.zone = ZoneInfo(self.config.timezone)
        self.metrics = Metrics()
        self.registry = Registry()
        self.publisher = Publisher(settings.mqtt, self.config.timeout_s, self.on_request)
        self.sessions: set[Session] = set()
        self.links: dict[str, Link] = {}
        self.unregistered: set[str] = set()
        self.rng = rng or random.Random()
        self.servers: list[asyncio.Server] = []
        self.ports: list[int] = []
        self._variants: dict[tuple[int, bytes], Gb26875Variant] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._duty_tasks: set[asyncio.Task[Any]] = set()
        self._frame_counters: dict[int, Any] = {}
        self._shift_checks: dict[tuple[str, datetime], datetime | None] = {}
        """Per shift occurrence (shift, its start): when its random check is due, None once sent."""

    # --- settings per port and per device ---
    def variant(self, port: int, raw_source: bytes) -> Gb26875Variant:
        key = (port, raw_source)
        v = self._variants.get(key)
        if v is None:
            base = merge(self.config, self.config.ports.get(port))
            device = None
            for order in (base.address_order, "big" if base.address_order == "little" else "little"):
                device = self.config.devices.get(address_hex(raw_source, order))
                if device is not None:
                    break
            v = self._variants[key] = merge(base, self.config.ports.get(port), device)
            if len(self._variants) > 4 * self.config.max_connections:
                self._variants.clear()
        return v

    def variant_hex(self, port: int, address: str) -> Gb26875Variant:
        return merge(self.config, self.config.ports.get(port), self.config.devices.get(address))

    def count_frame(self, command: int) -> None:
        counter = self._frame_counters.get(command)
        if counter is None:
            counter = self._frame_counters[command] = self.metrics.frames.labels(_command_name(command))
        counter.inc()

    def local_now(self) -> datetime:
        return datetime.now(self.zone).replace(tzinfo=None, microsecond=0)

    # --- links ---
    def link(self, address: str, port: int) -> Link:
        link = self.links.get(address)
        if link is None:
            known = self.registry.by_address.get(address)
            if known is None:
                district, device_id, site = UNASSIGNED, unregistered_id(address), ""
                self.unregistered.add(address)
                self.metrics.unregistered.set(len(self.unregistered))
                log.warning("transmission device %s is not registered: published as %s/%s",
                            address, district, device_id)
            else:
                district, device_id, site = known
            target = Target(district, device_id, self.variant_hex(port, address), self.zone, site)
            link = self.links[address] = Link(address, target)
        return link

    async def came_online(self, link: Link, ts_ms: int) -> None:
        if not await self.publisher.publish([status_message(link.target, True, ts_ms)]):
            link.online = False

    async def went_offline(self, link: Link) -> None:
        link.online = False
        self.metrics.offline.inc()
        log.info("link %s silent past its inspection: offline", link.address)
        if not await self.publisher.publish([status_message(link.target, False)]):
            link.online = True  # said again at the next housekeeping round

    async def inspect(self, link: Link) -> None:
        """Link inspection (巡检): read the device's state (81); an answer counts as a frame."""
        session = link.session
        link.inspecting = True
        try:
            if session is not None:
                answer = await session.request(Command.REQUEST, DataUnit(UnitType.READ_DEVICE_STATE,
                                                                         [DeviceCommand()]), link.target.variant)
                if answer is not None:
                    link.last_ms = now_ms()
        finally:
            link.inspecting = False

    # --- duty checks ---
    async def on_request(self, raw: bytes) -> None:
        try:
            req = DutyRequest.decode(raw)
        except ValueError as exc:
            log.warning("ignored a duty-check request: %s", exc)
            return
        task = asyncio.create_task(self.duty_check(req))  # not in the broker's receive loop: it takes seconds
        self._duty_tasks.add(task)
        task.add_done_callback(self._duty_tasks.discard)

    async def duty_check(self, req: DutyRequest) -> int:
        """Send the duty check to every connected device in scope; how many were asked."""
        links = [lk for lk in self.links.values() if lk.session is not None and lk.duty is None
                 and req.matches(lk.target.device_id, lk.target.district, lk.target.site, lk.address)]
        if not links:
            log.info("duty check %s: no connected device in scope", req.request_id)
            return 0
        sent = now_ms()
        rows = [DutyCheck(request_id=req.request_id, device_id=lk.target.device_id, district=lk.target.district,
                          address=lk.address, requested_by=req.requested_by, sent_ms=sent) for lk in links]
        async with self.store.session() as s, s.begin():
            s.add_all(rows)
        deadline = sent + int(self.config.duty_window_s * 1000)
        for lk, row in zip(links, rows, strict=True):
            lk.duty = PendingDuty(row.id, sent, deadline)
        await asyncio.gather(*(self._duty_one(lk, row.id) for lk, row in zip(links, rows, strict=True)))
        return len(links)

    async def _duty_one(self, link: Link, row_id: int) -> None:
        session = link.session
        answer = None
        if session is not None:
            answer = await session.request(Command.CONTROL, DataUnit(UnitType.DUTY_CHECK, [DeviceCommand()]),
                                           link.target.variant)
        if answer is None or answer.command == Command.DENY:
            if link.duty is not None and link.duty.row_id == row_id:
                link.duty = None
            await self._close_duty(row_id, DutyResult.UNREACHABLE)

    async def duty_answered(self, link: Link, at_ms: int) -> None:
        duty = link.duty
        if duty is None:
            return
        link.duty = None
        await self._close_duty(duty.row_id, DutyResult.ANSWERED, at_ms, (at_ms - duty.sent_ms) / 1000)

    async def _close_duty(self, row_id: int, result: DutyResult, answered_ms: int | None = None,
                          response_s: float | None = None) -> None:
        self.metrics.duty.labels(result.value).inc()
        async with self.store.session() as s, s.begin():
            await s.execute(update(DutyCheck).where(DutyCheck.id == row_id)
                            .values(result=result.value, answered_ms=answered_ms, response_s=response_s))

    async def _expire_duty(self, link: Link, now: int) -> None:
        duty = link.duty
        if duty is None or now < duty.deadline_ms:
            return
        message = duty_missed_message(link.target, duty.sent_ms, self.config.duty_window_s)
        if not await self.publisher.publish([message]):
            return  # the broker is away: try again next round, the check stays open
        link.duty = None
        log.warning("control room of %s did not answer the duty check", link.target.device_id)
        await self._close_duty(duty.row_id, DutyResult.MISSED)

    # --- running ---
    async def start(self) -> None:
        await self.registry.load(self.store)
        loop = asyncio.get_running_loop()
        for host, port in self.listen:
            server = await loop.create_server(lambda p=port: Session(self, p), host, port, backlog=4096,
                                              reuse_address=True)
            bound = server.sockets[0].getsockname()[1]
            self.servers.append(server)
            self.ports.append(bound)
            log.info("accepting GB/T 26875.3 transmission devices on %s:%d", host, bound)
        self._tasks = [asyncio.create_task(self.publisher.run()), asyncio.create_task(self._housekeeping())]
        if self.config.metrics_port:
            self.metrics.serve(self.config.metrics_port)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _housekeeping(self) -> None:
        refreshed = time.monotonic()
        period_ms = int(self.config.inspection_period_s * 1000)
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.metrics.connected.set(1 if self.publisher.connected.is_set() else 0)
            now = now_ms()
            for link in list(self.links.values()):
                silent = now - link.last_ms
                if link.online and silent > period_ms:
                    await self.went_offline(link)
                elif link.online and silent > period_ms // 2 and not link.inspecting and link.session:
                    asyncio.ensure_future(self.inspect(link))
                await self._expire_duty(link, now)
            await self._shift_duty()
            if time.monotonic() - refreshed > REGISTRY_REFRESH_S:
                refreshed = time.monotonic()
                with contextlib.suppress(Exception):
                    await self.registry.load(self.store)

    async def _shift_duty(self) -> None:
        """One duty check at a random moment of every shift, to every connected device."""
        now = self.local_now()
        self._shift_checks.update(next_shift_checks(self.config.duty_shifts, now, self.rng, self._shift_checks))
        for shift, at in list(self._shift_checks.items()):
            if at is not None and at <= now:
                self._shift_checks[shift] = None
                await self.duty_check(DutyRequest(f"shift-{uuid.uuid4().hex[:12]}", "schedule"))


async def run(settings: Settings, listen: list[str] | None = None,
              ready: Callable[[Gateway], None] | None = None) -> None:
    """`firewatch gateway gb26875`: until cancelled."""
    store = await open_store(settings.store.url)
    gateway = Gateway(settings, store, listen)
    await gateway.start()
    if ready is not None:
        ready(gateway)
    try:
        await asyncio.Event().wait()
    finally:
        await gateway.stop()
        await store.aclose()
