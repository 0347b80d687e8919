"""From GB/T 26875.3 data units to the wire contract: panel events on `fire/v1/{district}/{device}/event`,
component analog values as that panel's per-point telemetry on `…/telemetry`.

A state word is level-triggered for what is on (every report of a fire is a fire
alarm, so a device resending an unconfirmed frame can never lose one) and
edge-triggered for what went off (`fault_cleared`, `unshield`, `power_restored`),
against the last state the broker has confirmed: `Translation.states` is applied
by the caller only after PUBACK, so a resend after an outage yields the same events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from firewatch.contract.kinds import ANALOG_TYPES, Kind
from firewatch.contract.payload import EARLIEST_TS_MS, MAX_FUTURE_MS
from firewatch.contract.settings import Gb26875Variant
from firewatch.contract.topics import Channel, device_topic
from firewatch.gateway.units import (
    DUTY_ANSWERED,
    Analog,
    ComponentState,
    DataUnit,
    DeviceOperation,
    DeviceState,
    DeviceStatus,
    Operation,
    State,
    SystemOperation,
    SystemState,
)

UNASSIGNED = "unassigned"
"""District of a transmission device not in the registry: accepted, published, counted, shown."""

_ON: tuple[tuple[int, str, str], ...] = (
    (State.FIRE, "fire", ""),
    (State.FAULT, "fault", ""),
    (State.BUS_FAULT, "fault", "bus"),
    (State.SHIELDED, "shield", ""),
    (State.SUPERVISORY, "supervisory", ""),
    (State.STARTED, "start", ""),
    (State.FEEDBACK, "feedback", ""),
    (State.MAIN_POWER_FAULT, "main_power_fault", ""),
    (State.BACKUP_POWER_FAULT, "backup_power_fault", ""),
    (State.RESET, "reset", ""),
)
_DEVICE_ON: tuple[tuple[int, str, str], ...] = (
    (DeviceState.FIRE, "fire", "transmission device"),
    (DeviceState.FAULT, "fault", "transmission device"),
    (DeviceState.MAIN_POWER_FAULT, "main_power_fault", "transmission device"),
    (DeviceState.BACKUP_POWER_FAULT, "backup_power_fault", "transmission device"),
    (DeviceState.PANEL_LINK_FAULT, "fault", "panel link"),
)


@dataclass(frozen=True, slots=True)
class _Word:
    """Which bits of a state word mean what: the panel's (types 1, 2) or the device's own (21)."""

    on: tuple[tuple[int, str, str], ...]
    faults: int
    power: int
    shield: int
    running: int


def _word(on: tuple[tuple[int, str, str], ...], *bits: int) -> _Word:
    """Plain ints: IntFlag arithmetic per reported bit cost a tenth of a frame's time."""
    return _Word(tuple((int(b), e, label) for b, e, label in on), *(int(b) for b in bits))


_PANEL_WORD = _word(_ON, State.FAULT | State.BUS_FAULT, State.MAIN_POWER_FAULT | State.BACKUP_POWER_FAULT,
                    State.SHIELDED, State.RUNNING)
_DEVICE_WORD = _word(_DEVICE_ON, DeviceState.FAULT | DeviceState.PANEL_LINK_FAULT,
                     DeviceState.MAIN_POWER_FAULT | DeviceState.BACKUP_POWER_FAULT, 0, DeviceState.RUNNING)
_OPERATIONS: tuple[tuple[int, str, str], ...] = (
    (Operation.MANUAL_ALARM, "fire", "manual alarm"),
    (Operation.RESET, "reset", ""),
    (Operation.SELF_TEST, "test", "self-test"),
    (Operation.TEST, "test", ""),
)

COMPONENT_TYPES: dict[range, str] = {
    range(1, 2): "fire alarm control panel",
    range(10, 16): "combustible gas detector",
    range(16, 20): "electrical fire monitor",
    range(21, 22): "detection loop",
    range(22, 23): "fire display panel",
    range(23, 24): "manual call point",
    range(24, 25): "hydrant button",
    range(25, 30): "fire detector",
    range(30, 40): "heat detector",
    range(40, 50): "smoke detector",
    range(50, 60): "multi-sensor smoke and heat detector",
    range(60, 70): "flame detector",
}
"""GB/T 26875.3 component types, by the ranges its table groups them in; the words are the
ones correlation looks for (smoke, heat, manual)."""


def component_label(component_type: int) -> str:
    for r, label in COMPONENT_TYPES.items():
        if component_type in r:
            return label
    return f"component type {component_type}"


def _field(address: int, span: tuple[int, int]) -> int:
    raw = address.to_bytes(4, "little")
    lo, hi = sorted(span)
    return int.from_bytes(raw[lo : hi + 1], "little")


def loop_point(address: int, variant: Gb26875Variant) -> tuple[int, int]:
    """Loop and point out of a 4-byte component address, in the vendor's layout."""
    return _field(address, variant.loop_bytes), _field(address, variant.point_bytes)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    fire: bool = False
    retain: bool = False


StateKey = tuple[int, ...]


@dataclass(slots=True)
class Translation:
    messages: list[Message] = field(default_factory=list)
    states: dict[StateKey, int] = field(default_factory=dict)
    """State words to remember once the messages are confirmed by the broker."""
    duty_answered_at: datetime | None = None
    """The control room answered a duty check (type 24, bit 5), at the device's time."""
    clock: datetime | None = None
    """The device's clock as it reported it (types 8 and 28)."""
    fire: bool = False
    unknown_analog: list[int] = field(default_factory=list)
    """Analog types outside the standard's table (reserved or the vendor's): no unit to store them in."""


@dataclass(slots=True)
class Target:
    """Where a transmission device's events go: its registered id and district, or `gb-<address>`."""

    district: str
    device_id: str
    variant: Gb26875Variant
    zone: ZoneInfo
    site: str = ""
    seq: int = 0


def unregistered_id(address: str) -> str:
    return f"gb-{address}"


def epoch_ms(t: datetime | None, zone: ZoneInfo, now_ms: int) -> int:
    """The device's own time, unless it has none the platform could store (then receive time)."""
    if t is None:
        return now_ms
    ms = int(t.replace(tzinfo=zone).timestamp() * 1000)
    return ms if EARLIEST_TS_MS <= ms <= now_ms + MAX_FUTURE_MS else now_ms


class Adaptor:
    """Per connection: the last confirmed state words, and the events that follow from new ones."""

    def __init__(self) -> None:
        self.states: dict[StateKey, int] = {}

    def confirm(self, t: Translation) -> None:
        self.states.update(t.states)

    def translate(self, unit: DataUnit | None, target: Target, now_ms: int | None = None) -> Translation:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        out = Translation()
        if unit is None:
            return out
        points: dict[tuple[int, int, int], dict[str, float]] = {}
        for obj in unit.objects:
            if isinstance(obj, Analog):
                analog = ANALOG_TYPES.get(obj.analog_type)
                if analog is None:
                    out.unknown_analog.append(obj.analog_type)
                    continue
                loop, point = loop_point(obj.component_address, target.variant)
                at = points.setdefault((epoch_ms(obj.time, target.zone, now_ms), loop, point), {})
                at[analog.metric.name] = obj.value / 10**analog.decimals
            elif isinstance(obj, ComponentState):
                loop, point = loop_point(obj.component_address, target.variant)
                key = (2, obj.system_type, obj.system_address, obj.component_type, obj.component_address)
                self._state(out, target, key, obj.state, _PANEL_WORD, obj.time, now_ms,
                            loop=loop, point=point, zone=obj.description,
                            component=component_label(obj.component_type))
            elif isinstance(obj, SystemState):
                key = (1, obj.system_type, obj.system_address)
                self._state(out, target, key, obj.state, _PANEL_WORD, obj.time, now_ms,
                            component="system")
            elif isinstance(obj, DeviceStatus):
                self._state(out, target, (21,), obj.state, _DEVICE_WORD, obj.time, now_ms)
            elif isinstance(obj, SystemOperation | DeviceOperation):
                where = "panel" if isinstance(obj, SystemOperation) else "transmission device"
                for bit, event, label in _OPERATIONS:
                    if obj.flags & bit:
                        self._emit(out, target, event, obj.time, now_ms,
                                   component=f"{label} on the {where}" if label else where)
                if isinstance(obj, DeviceOperation) and obj.flags & DUTY_ANSWERED:
                    out.duty_answered_at = obj.time or datetime.now(target.zone).replace(tzinfo=None)
                    self._emit(out, target, "duty_check_answered", obj.time, now_ms,
                               component="control room")
            elif hasattr(obj, "time") and unit.type in (8, 28):
                out.clock = obj.time
        for (ts, loop, point), metrics in points.items():
            target.seq += 1
            doc = {"ts": ts, "seq": target.seq, "kind": Kind.PANEL.value, "loop": loop, "point": point, "m": metrics}
            out.messages.append(
                Message(device_topic(target.district, target.device_id, Channel.TELEMETRY), orjson.dumps(doc))
            )
        return out

    def _state(self, out: Translation, target: Target, key: StateKey, state: int, word: _Word,
               t: datetime | None, now_ms: int, **where: object) -> None:
        prev = out.states.get(key, self.states.get(key, 0))
        for bit, event, label in word.on:
            if state & bit:
                self._emit(out, target, event, t, now_ms, **{**where, **({"component": label} if label else {})})
        for bits, event in ((word.faults, "fault_cleared"), (word.shield, "unshield"),
                            (word.power, "power_restored")):
            if prev & bits and not state & bits:
                self._emit(out, target, event, t, now_ms, **where)
        if target.variant.test_bit and not state & word.running:
            self._emit(out, target, "test", t, now_ms, **where)
        out.states[key] = state

    def _emit(self, out: Translation, target: Target, event: str, t: datetime | None, now_ms: int,
              **where: object) -> None:
        target.seq += 1
        doc = {"ts": epoch_ms(t, target.zone, now_ms), "seq": target.seq, "kind": Kind.PANEL.value,
               "event": event, **{k: v for k, v in where.items() if v not in (None, "")}}
        fire = event == "fire"
        out.fire |= fire
        out.messages.append(
            Message(device_topic(target.district, target.device_id, Channel.EVENT), orjson.dumps(doc), fire)
        )


def status_message(target: Target, online: bool, now_ms: int | None = None) -> Message:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    doc = {"ts": now_ms, "online": online}
    return Message(device_topic(target.district, target.device_id, Channel.STATUS), orjson.dumps(doc),
                   retain=True)


def duty_missed_message(target: Target, sent_ms: int, window_s: float) -> Message:
    """The panel event the alerting part turns into "control room did not answer the duty check"."""
    target.seq += 1
    doc = {"ts": sent_ms + int(window_s * 1000), "seq": target.seq, "kind": Kind.PANEL.value,
           "event": "duty_check_missed", "component": "control room"}
    return Message(device_topic(target.district, target.device_id, Channel.EVENT), orjson.dumps(doc))


def heartbeat_message(target: Target, now_ms: int | None = None) -> Message:
    """The link is alive and the panel has nothing to report (alerting's offline rule listens)."""
    target.seq += 1
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    doc = {"ts": now_ms, "seq": target.seq, "kind": Kind.PANEL.value, "event": "heartbeat"}
    return Message(device_topic(target.district, target.device_id, Channel.EVENT), orjson.dumps(doc))
