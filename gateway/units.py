"""GB/T 26875.3-2011 data units: type (1) · object count (1) · objects, each of its type's layout.

Uplink types (what a transmission device sends): 1-8 about the fire alarm system,
21-28 about the transmission device itself. Downlink types (what the center asks):
61-68 and 81-88 reads, 89 initialise, 90 clock sync, 91 duty check. A data unit whose
objects do not fill it exactly, or whose type the standard does not define, is refused
with its reason; descriptions are GB18030 (undecodable bytes are replaced, never fatal).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, IntFlag

from firewatch.contract.settings import Gb26875Variant
from firewatch.gateway.frame import STANDARD, Reason, decode_time, encode_time

DESCRIPTION_BYTES = 31
TIME_BYTES = 6


class State(IntFlag):
    """System (type 1) and component (type 2) state word, bit by bit as the standard numbers them."""

    RUNNING = 1 << 0
    """Set: normal operation; clear: test mode."""
    FIRE = 1 << 1
    FAULT = 1 << 2
    SHIELDED = 1 << 3
    SUPERVISORY = 1 << 4
    STARTED = 1 << 5
    FEEDBACK = 1 << 6
    DELAY = 1 << 7
    MAIN_POWER_FAULT = 1 << 8
    BACKUP_POWER_FAULT = 1 << 9
    BUS_FAULT = 1 << 10
    MANUAL = 1 << 11
    CONFIG_CHANGED = 1 << 12
    RESET = 1 << 13


class Operation(IntFlag):
    """Operation flags of a panel (type 4) and of the transmission device (type 24)."""

    RESET = 1 << 0
    MUTE = 1 << 1
    MANUAL_ALARM = 1 << 2
    ALARM_CLEARED = 1 << 3
    SELF_TEST = 1 << 4
    CONFIRM = 1 << 5
    """On the panel: an alarm confirmed. On the transmission device (type 24): duty check answered."""
    TEST = 1 << 6


DUTY_ANSWERED = Operation.CONFIRM


class DeviceState(IntFlag):
    """The transmission device's own state (type 21)."""

    RUNNING = 1 << 0
    FIRE = 1 << 1
    FAULT = 1 << 2
    MAIN_POWER_FAULT = 1 << 3
    BACKUP_POWER_FAULT = 1 << 4
    CENTER_LINK_FAULT = 1 << 5
    PANEL_LINK_FAULT = 1 << 6


class UnitType(IntEnum):
    SYSTEM_STATE = 1
    COMPONENT_STATE = 2
    ANALOG = 3
    OPERATION = 4
    SOFTWARE_VERSION = 5
    SYSTEM_CONFIG = 6
    COMPONENT_CONFIG = 7
    SYSTEM_TIME = 8
    DEVICE_STATE = 21
    DEVICE_OPERATION = 24
    DEVICE_VERSION = 25
    DEVICE_CONFIG = 26
    DEVICE_TIME = 28
    READ_SYSTEM_STATE = 61
    READ_COMPONENT_STATE = 62
    READ_ANALOG = 63
    READ_OPERATION = 64
    READ_SOFTWARE_VERSION = 65
    READ_SYSTEM_CONFIG = 66
    READ_COMPONENT_CONFIG = 67
    READ_SYSTEM_TIME = 68
    READ_DEVICE_STATE = 81
    READ_DEVICE_OPERATION = 84
    READ_DEVICE_VERSION = 85
    READ_DEVICE_CONFIG = 86
    READ_DEVICE_TIME = 88
    INITIALISE = 89
    CLOCK_SYNC = 90
    DUTY_CHECK = 91


@dataclass(frozen=True, slots=True)
class SystemState:
    system_type: int
    system_address: int
    state: int
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ComponentState:
    system_type: int
    system_address: int
    component_type: int
    component_address: int
    state: int
    description: str = ""
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Analog:
    system_type: int
    system_address: int
    component_type: int
    component_address: int
    analog_type: int
    value: int
    """Raw signed 16-bit value; `ANALOG_TYPES` gives its metric and scale."""
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class SystemOperation:
    system_type: int
    system_address: int
    flags: int
    operator: int
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class SoftwareVersion:
    system_type: int
    system_address: int
    major: int
    minor: int


@dataclass(frozen=True, slots=True)
class SystemConfig:
    system_type: int
    system_address: int
    description: str


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    system_type: int
    system_address: int
    component_type: int
    component_address: int
    description: str


@dataclass(frozen=True, slots=True)
class SystemTime:
    system_type: int
    system_address: int
    time: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    state: int
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceOperation:
    flags: int
    operator: int
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceVersion:
    major: int
    minor: int


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    description: str


@dataclass(frozen=True, slots=True)
class DeviceTime:
    time: datetime | None


@dataclass(frozen=True, slots=True)
class ReadSystem:
    """61, 64-66, 68: which system to read."""

    system_type: int
    system_address: int


@dataclass(frozen=True, slots=True)
class ReadComponent:
    """62, 63, 67: which component to read."""

    system_type: int
    system_address: int
    component_address: int


@dataclass(frozen=True, slots=True)
class DeviceCommand:
    """81-89 and 91: a reserved byte (the duty check's carries nothing more)."""

    reserved: int = 0


@dataclass(frozen=True, slots=True)
class ClockSync:
    time: datetime | None


Object = (SystemState | ComponentState | Analog | SystemOperation | SoftwareVersion | SystemConfig
          | ComponentConfig | SystemTime | DeviceStatus | DeviceOperation | DeviceVersion | DeviceConfig
          | DeviceTime | ReadSystem | ReadComponent | DeviceCommand | ClockSync)


@dataclass(frozen=True, slots=True)
class DataUnit:
    type: int
    objects: list[Object] = field(default_factory=list)


class UnitError(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Layout:
    cls: type
    fmt: str
    """struct codes of the fixed fields; `d` a 31-byte description, `t` a 6-byte time."""
    variable: bool = False
    """Ends in a length byte and that many description bytes (types 6, 26)."""


_LAYOUTS: dict[int, _Layout] = {
    UnitType.SYSTEM_STATE: _Layout(SystemState, "BBHt"),
    UnitType.COMPONENT_STATE: _Layout(ComponentState, "BBBIHdt"),
    UnitType.ANALOG: _Layout(Analog, "BBBIBht"),
    UnitType.OPERATION: _Layout(SystemOperation, "BBBBt"),
    UnitType.SOFTWARE_VERSION: _Layout(SoftwareVersion, "BBBB"),
    UnitType.SYSTEM_CONFIG: _Layout(SystemConfig, "BB", variable=True),
    UnitType.COMPONENT_CONFIG: _Layout(ComponentConfig, "BBBId"),
    UnitType.SYSTEM_TIME: _Layout(SystemTime, "BBt"),
    UnitType.DEVICE_STATE: _Layout(DeviceStatus, "Bt"),
    UnitType.DEVICE_OPERATION: _Layout(DeviceOperation, "BBt"),
    UnitType.DEVICE_VERSION: _Layout(DeviceVersion, "BB"),
    UnitType.DEVICE_CONFIG: _Layout(DeviceConfig, "", variable=True),
    UnitType.DEVICE_TIME: _Layout(DeviceTime, "t"),
    UnitType.CLOCK_SYNC: _Layout(ClockSync, "t"),
    **{t: _Layout(ReadSystem, "BB") for t in (61, 64, 65, 66, 68)},
    **{t: _Layout(ReadComponent, "BBI") for t in (62, 63, 67)},
    **{t: _Layout(DeviceCommand, "B") for t in (81, 84, 85, 86, 88, 89, 91)},
}
_SIZES = {"B": 1, "H": 2, "h": 2, "I": 4, "d": DESCRIPTION_BYTES, "t": TIME_BYTES}
UPLINK = frozenset(t for t in _LAYOUTS if t < 61)
DOWNLINK = frozenset(t for t in _LAYOUTS if t >= 61)


def _size(layout: _Layout) -> int:
    return sum(_SIZES[c] for c in layout.fmt)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("gb18030", errors="replace").strip()


def _decode_object(layout: _Layout, raw: bytes, at: int, variant: Gb26875Variant) -> tuple[Object, int]:
    values: list[object] = []
    for code in layout.fmt:
        if code == "d":
            values.append(_text(raw[at : at + DESCRIPTION_BYTES]))
            at += DESCRIPTION_BYTES
        elif code == "t":
            values.append(decode_time(raw[at : at + TIME_BYTES], variant.time))
            at += TIME_BYTES
        else:
            values.append(struct.unpack_from("<" + code, raw, at)[0])
            at += _SIZES[code]
    if layout.variable:
        n = raw[at]
        text = raw[at + 1 : at + 1 + n]
        if len(text) < n:
            raise UnitError(Reason.BAD_DATA_UNIT, f"description of {n} bytes runs past the data unit")
        values.append(_text(text))
        at += 1 + n
    return layout.cls(*values), at


def decode_unit(data: bytes, variant: Gb26875Variant = STANDARD) -> DataUnit | None:
    """The data unit of a frame, None for an empty one (a heartbeat or a bare confirm)."""
    if not data:
        return None
    if len(data) < 2:
        raise UnitError(Reason.BAD_DATA_UNIT, "a data unit needs a type and an object count")
    kind, count = data[0], data[1]
    layout = _LAYOUTS.get(kind)
    if layout is None:
        raise UnitError(Reason.UNKNOWN_TYPE, f"data unit type {kind} is not defined by GB/T 26875.3")
    fixed = _size(layout)
    objects: list[Object] = []
    at = 2
    for i in range(count):
        if at + fixed + (1 if layout.variable else 0) > len(data):
            raise UnitError(Reason.BAD_DATA_UNIT,
                            f"type {kind}: object {i + 1} of {count} runs past the {len(data)}-byte data unit")
        obj, at = _decode_object(layout, data, at, variant)
        objects.append(obj)
    if at != len(data):
        raise UnitError(Reason.BAD_DATA_UNIT,
                        f"type {kind}: {count} objects fill {at} of the data unit's {len(data)} bytes")
    return DataUnit(kind, objects)


def _description(text: str, limit: int) -> bytes:
    raw = text.encode("gb18030")
    if len(raw) > limit:
        raise ValueError(f"description {text!r} is {len(raw)} bytes in GB18030, more than {limit}")
    return raw


def encode_unit(unit: DataUnit, variant: Gb26875Variant = STANDARD) -> bytes:
    layout = _LAYOUTS[unit.type]
    out = bytearray((unit.type, len(unit.objects)))
    for obj in unit.objects:
        if not isinstance(obj, layout.cls):
            raise ValueError(  # noqa: TRY004 (an unencodable unit: the codec's one error type)
                f"type {unit.type} holds {layout.cls.__name__}, not {type(obj).__name__}")
        values = [getattr(obj, f) for f in obj.__dataclass_fields__]
        for code, value in zip(layout.fmt, values, strict=False):
            if code == "d":
                out += _description(value, DESCRIPTION_BYTES).ljust(DESCRIPTION_BYTES, b"\0")
            elif code == "t":
                out += encode_time(value, variant.time)
            else:
                out += struct.pack("<" + code, value)
        if layout.variable:
            raw = _description(values[-1], 255)
            out += bytes((len(raw),)) + raw
    return bytes(out)
