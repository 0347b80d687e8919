"""A simulated user information transmission device (GB 26875.1) speaking GB/T 26875.3 over TCP.

It behaves as the field's devices do: it owns the serials of its sends, keeps each one
until the center confirms it and resends it after a silence (so a gateway that cannot
reach its broker costs a resend, not an event), sends a heartbeat when it has nothing to
say, answers the center's reads, confirms its controls, and has a control room that
answers a duty check after `duty_delay_s`, or never (`answers_duty=False`). Vendor
variants come from the same settings the gateway reads; `send_raw` sends bad frames.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from firewatch.contract.settings import Gb26875Variant
from firewatch.gateway.frame import STANDARD, Command, Decoder, Frame, Rejection, encode
from firewatch.gateway.units import (
    Analog,
    ComponentState,
    DataUnit,
    DeviceOperation,
    DeviceState,
    DeviceStatus,
    Object,
    Operation,
    State,
    SystemState,
    UnitError,
    UnitType,
    decode_unit,
    encode_unit,
)

COMPONENT_TYPES = {"smoke": 40, "heat": 30, "manual": 23, "detector": 25}
"""The wire contract's panel components as GB/T 26875.3 component types (what the gateway
reads back as smoke detector, heat detector, manual call point, fire detector); other
equipment (fans, pumps) goes as type 0, general."""
EVENT_BITS = {"fire": State.FIRE, "fault": State.FAULT, "supervisory": State.SUPERVISORY, "shield": State.SHIELDED,
              "start": State.STARTED, "feedback": State.FEEDBACK}


def component_address(loop: int, point: int) -> int:
    """The 4-byte component address in the standard layout: point in bytes 0-1, loop in bytes 2-3."""
    return (loop << 16) | point


def unit_of(doc: dict[str, Any], at: datetime) -> DataUnit | None:
    """The data unit a transmission device sends for one wire-contract panel event, at the
    device's local time `at`: a component state for an event at a point, a system state
    for a reset, nothing (an empty send) for a heartbeat."""
    event = doc.get("event")
    if event == "heartbeat":
        return None
    if event == "reset":
        return DataUnit(UnitType.SYSTEM_STATE, [SystemState(1, 1, int(State.RUNNING | State.RESET), at)])
    bit = EVENT_BITS.get(str(event))
    if bit is None:
        raise ValueError(f"panel event {event!r} has no GB/T 26875.3 state bit in the simulator")
    address = component_address(int(doc.get("loop") or 0), int(doc.get("point") or 0))
    component = COMPONENT_TYPES.get(str(doc.get("component")), 0)
    obj = ComponentState(1, 1, component, address, int(State.RUNNING | bit), str(doc.get("zone") or ""), at)
    return DataUnit(UnitType.COMPONENT_STATE, [obj])


@dataclass(slots=True)
class Outgoing:
    frame: Frame
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    sends: int = 0


class TransmissionDevice:
    def __init__(self, address: str, center: str = "000000000000", variant: Gb26875Variant = STANDARD,
                 resend_s: float = 10.0, answers_duty: bool = True, duty_delay_s: float = 0.5,
                 clock_offset_s: float = 0.0, timezone: str = "Asia/Shanghai") -> None:
        self.address = address
        self.center = center
        self.variant = variant
        self.resend_s = resend_s
        self.answers_duty = answers_duty
        self.duty_delay_s = duty_delay_s
        self.clock_offset_s = clock_offset_s
        self.zone = ZoneInfo(timezone)
        """Device clocks keep local time without a zone, as the gateway's `timezone` expects."""
        self.serial = 0
        self.outgoing: dict[int, Outgoing] = {}
        self.received: list[Frame] = []
        self.denied: list[Frame] = []
        self.duty_checks = 0
        self.clock_syncs = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.decoder = Decoder(variant)

    def now(self) -> datetime:
        return (datetime.now(self.zone).replace(tzinfo=None) + timedelta(seconds=self.clock_offset_s)).replace(microsecond=0)

    async def connect(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.decoder = Decoder(self.variant)
        self._reading = asyncio.create_task(self._read())

    async def close(self) -> None:
        for t in (self._reading, *self._tasks):
            if t is not None:
                t.cancel()
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    # --- sending ---
    def _frame(self, command: int, unit: DataUnit | None, serial: int | None = None,
               to: str | None = None, at: datetime | None = None) -> Frame:
        if serial is None:
            self.serial = (self.serial + 1) & 0xFFFF
            serial = self.serial
        data = encode_unit(unit, self.variant) if unit is not None else b""
        return Frame(serial, command, self.address, to or self.center, data, at or self.now())

    def write(self, frame: Frame) -> None:
        assert self.writer is not None
        self.writer.write(encode(frame, self.variant))

    def send_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def send(self, unit: DataUnit | None, attempts: int = 1_000_000) -> Outgoing:
        """Send data (2) and resend it every `resend_s` until confirmed; returns once confirmed."""
        out = Outgoing(self._frame(Command.SEND, unit))
        self.outgoing[out.frame.serial] = out
        try:
            while out.sends < attempts:
                out.sends += 1
                with contextlib.suppress(ConnectionError, AssertionError):
                    self.write(out.frame)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.resend_s):
                        await out.confirmed.wait()
                        return out
            return out
        finally:
            self.outgoing.pop(out.frame.serial, None)

    def event(self, doc: dict[str, Any]) -> Outgoing:
        """Queue what a wire-contract panel event (`firewatch eval`'s panels) is on this link,
        stamped with the event's own time on the device's local clock (`ts`, epoch ms)."""
        at = datetime.fromtimestamp(doc["ts"] / 1000, self.zone).replace(tzinfo=None, microsecond=0)
        return self.queue(unit_of(doc, at), at)

    def queue(self, unit: DataUnit | None, at: datetime | None = None) -> Outgoing:
        """Send without waiting: written now, once; `confirmed` is set when the center confirms it."""
        out = Outgoing(self._frame(Command.SEND, unit, at=at))
        self.write(out.frame)
        out.sends = 1
        self.outgoing[out.frame.serial] = out
        return out

    async def heartbeat(self) -> Outgoing:
        return await self.send(None)

    async def component(self, state: State, loop: int, point: int, zone: str = "", component_type: int = 40,
                        system_type: int = 1, system_address: int = 1) -> Outgoing:
        obj = ComponentState(system_type, system_address, component_type, component_address(loop, point),
                             int(state), zone, self.now())
        return await self.send(DataUnit(UnitType.COMPONENT_STATE, [obj]))

    async def analog(self, values: list[tuple[int, int, int, int]], component_type: int = 30,
                     system_type: int = 1, system_address: int = 1) -> Outgoing:
        """One send of component analog values (type 3): each (loop, point, analog type, raw 16-bit value)."""
        at = self.now()
        objects: list[Object] = [Analog(system_type, system_address, component_type, component_address(loop, point),
                                     analog_type, raw, at) for loop, point, analog_type, raw in values]
        return await self.send(DataUnit(UnitType.ANALOG, objects))

    # --- answering the center ---
    async def _read(self) -> None:
        assert self.reader is not None
        while True:
            data = await self.reader.read(65536)
            if not data:
                return
            for item in self.decoder.feed(data):
                if not isinstance(item, Rejection):
                    self._handle(item)

    def _handle(self, frame: Frame) -> None:
        self.received.append(frame)
        if frame.command == Command.CONFIRM:
            out = self.outgoing.pop(frame.serial, None)
            if out is not None:
                out.confirmed.set()
            return
        if frame.command == Command.DENY:
            self.denied.append(frame)
            return
        try:
            unit = decode_unit(frame.data, self.variant)
        except UnitError:
            self.write(self._frame(Command.DENY, None, frame.serial, frame.source))
            return
        kind = unit.type if unit is not None else None
        if frame.command == Command.REQUEST and kind == UnitType.READ_DEVICE_STATE:
            state = DataUnit(UnitType.DEVICE_STATE, [DeviceStatus(int(DeviceState.RUNNING), self.now())])
            self.write(self._frame(Command.REPLY, state, frame.serial, frame.source))
            return
        self.write(self._frame(Command.CONFIRM, None, frame.serial, frame.source))
        if kind == UnitType.DUTY_CHECK:
            self.duty_checks += 1
            if self.answers_duty:
                self._spawn(self._answer_duty())
        elif kind == UnitType.CLOCK_SYNC:
            self.clock_syncs += 1
            self.clock_offset_s = 0.0

    async def _answer_duty(self) -> None:
        await asyncio.sleep(self.duty_delay_s)
        op = DeviceOperation(int(Operation.CONFIRM), 1, self.now())
        await self.send(DataUnit(UnitType.DEVICE_OPERATION, [op]))

    def _spawn(self, coro: object) -> None:
        t = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
