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
from zoneinfo import ZoneInfo

from firewatch.contract.settings import Gb26875Variant
from firewatch.gateway.frame import STANDARD, Command, Decoder, Frame, Rejection, encode
from firewatch.gateway.units import (
    ComponentState,
    DataUnit,
    DeviceOperation,
    DeviceState,
    DeviceStatus,
    Operation,
    State,
    UnitError,
    UnitType,
    decode_unit,
    encode_unit,
)


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
               to: str | None = None) -> Frame:
        if serial is None:
            self.serial = (self.serial + 1) & 0xFFFF
            serial = self.serial
        data = encode_unit(unit, self.variant) if unit is not None else b""
        return Frame(serial, command, self.address, to or self.center, data, self.now())

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

    def queue(self, unit: DataUnit | None) -> Outgoing:
        """Send without waiting: written now, resent in the background until confirmed."""
        out = Outgoing(self._frame(Command.SEND, unit))
        self.write(out.frame)
        out.sends = 1
        self.outgoing[out.frame.serial] = out
        return out

    async def heartbeat(self) -> Outgoing:
        return await self.send(None)

    async def component(self, state: State, loop: int, point: int, zone: str = "", component_type: int = 40,
                        system_type: int = 1, system_address: int = 1) -> Outgoing:
        address = (loop << 16) | point
        obj = ComponentState(system_type, system_address, component_type, address, int(state), zone, self.now())
        return await self.send(DataUnit(UnitType.COMPONENT_STATE, [obj]))

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
            out = self.outgoing.get(frame.serial)
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
