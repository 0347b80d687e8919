"""Payload parsing and validation: bytes off the wire in, typed records or reasons out.

One message may hold one object or a gateway's array of them; each element is
judged alone, so one bad reading in a batch does not cost the good ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec

from firewatch.contract.kinds import PANEL_EVENTS, SPECS, Kind
from firewatch.contract.topics import Channel, TopicError, parse_topic

MAX_PAYLOAD_BYTES = 256 * 1024
EARLIEST_TS_MS = 1_420_070_400_000  # 2015-01-01: earlier means seconds sent as ms, or no clock
MAX_FUTURE_MS = 24 * 3600 * 1000


class Reason(StrEnum):
    """Why a message was rejected; also the label of the rejected-messages counter."""

    BAD_TOPIC = "bad_topic"
    OVERSIZED = "oversized"
    BAD_JSON = "bad_json"
    BAD_SCHEMA = "bad_schema"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_METRIC = "unknown_metric"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_EVENT = "unknown_event"


class _Telemetry(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    m: dict[str, float | bool]
    ts: int | None = None
    seq: int | None = None


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    event: str
    ts: int | None = None
    seq: int | None = None
    loop: int | None = None
    point: int | None = None
    zone: str | None = None
    component: str | None = None


class _Status(msgspec.Struct, forbid_unknown_fields=True):
    online: bool
    ts: int | None = None
    seq: int | None = None
    fw: str | None = None


_DECODERS = {
    Channel.TELEMETRY: msgspec.json.Decoder(_Telemetry | list[_Telemetry]),
    Channel.EVENT: msgspec.json.Decoder(_Event | list[_Event]),
    Channel.STATUS: msgspec.json.Decoder(_Status | list[_Status]),
}
_RAW = msgspec.json.Decoder()


@dataclass(slots=True)
class Reading:
    district: str
    device_id: str
    kind: Kind
    ts_ms: int
    seq: int | None
    metrics: dict[str, float]


@dataclass(slots=True)
class PanelEvent:
    district: str
    device_id: str
    ts_ms: int
    seq: int | None
    event: str
    loop: int | None = None
    point: int | None = None
    zone: str | None = None
    component: str | None = None


@dataclass(slots=True)
class DeviceStatus:
    district: str
    device_id: str
    ts_ms: int
    online: bool
    fw: str | None = None


Record = Reading | PanelEvent | DeviceStatus


@dataclass(slots=True)
class Rejection:
    reason: Reason
    detail: str


@dataclass(slots=True)
class Parsed:
    records: list[Record] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class _Reject(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        self.rejection = Rejection(reason, detail)


def _timestamp(ts: int | None, now_ms: int) -> int:
    if ts is None:
        return now_ms
    if ts < EARLIEST_TS_MS:
        raise _Reject(Reason.BAD_TIMESTAMP, f"ts {ts} is before 2015 (seconds instead of ms?)")
    if ts > now_ms + MAX_FUTURE_MS:
        raise _Reject(Reason.BAD_TIMESTAMP, f"ts {ts} is more than a day in the future")
    return ts


def _reading(district: str, device_id: str, t: _Telemetry, now_ms: int) -> Reading:
    spec = SPECS.get(t.kind)
    if spec is None or not spec.metrics:
        raise _Reject(Reason.UNKNOWN_KIND, f"kind {t.kind!r} sends no telemetry")
    if not t.m:
        raise _Reject(Reason.BAD_SCHEMA, "m holds no metric")
    metrics: dict[str, float] = {}
    for name, value in t.m.items():
        metric = spec.metrics.get(name)
        if metric is None:
            raise _Reject(Reason.UNKNOWN_METRIC, f"{t.kind} has no metric {name!r}")
        v = float(value)
        if not metric.low <= v <= metric.high:  # also false for NaN
            raise _Reject(
                Reason.OUT_OF_RANGE,
                f"{name}={value} outside {metric.low}..{metric.high} {metric.unit}",
            )
        metrics[name] = v
    return Reading(district, device_id, spec.kind, _timestamp(t.ts, now_ms), t.seq, metrics)


def _event(district: str, device_id: str, e: _Event, now_ms: int) -> PanelEvent:
    if e.kind != Kind.PANEL:
        raise _Reject(Reason.UNKNOWN_KIND, f"kind {e.kind!r} sends no events")
    if e.event not in PANEL_EVENTS:
        raise _Reject(Reason.UNKNOWN_EVENT, f"panel event {e.event!r} is not one of the GB 26875 states")
    return PanelEvent(
        district, device_id, _timestamp(e.ts, now_ms), e.seq, e.event, e.loop, e.point, e.zone, e.component
    )


def _status(district: str, device_id: str, s: _Status, now_ms: int) -> DeviceStatus:
    return DeviceStatus(district, device_id, _timestamp(s.ts, now_ms), s.online, s.fw)


_BUILDERS = {Channel.TELEMETRY: _reading, Channel.EVENT: _event, Channel.STATUS: _status}


def _schema_detail(payload: bytes, channel: Channel, err: msgspec.ValidationError) -> Rejection:
    """Tell a malformed document apart from a well-formed one of the wrong shape."""
    try:
        doc = _RAW.decode(payload)
    except msgspec.DecodeError as exc:
        return Rejection(Reason.BAD_JSON, str(exc))
    items = doc if isinstance(doc, list) else [doc]
    kinds = {i.get("kind") for i in items if isinstance(i, dict)}
    unknown = [k for k in kinds if channel != Channel.STATUS and k not in SPECS]
    if unknown:
        return Rejection(Reason.UNKNOWN_KIND, f"kind {unknown[0]!r} is not one of {sorted(SPECS)}")
    return Rejection(Reason.BAD_SCHEMA, f"{channel.value}: {err}")


def parse(topic: str, payload: bytes, now_ms: int | None = None) -> Parsed:
    """Turn one MQTT message into records; never raises for anything a device can send."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    out = Parsed()
    try:
        t = parse_topic(topic)
    except TopicError as exc:
        out.rejections.append(Rejection(Reason.BAD_TOPIC, str(exc)))
        return out
    if len(payload) > MAX_PAYLOAD_BYTES:
        out.rejections.append(
            Rejection(Reason.OVERSIZED, f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
        )
        return out
    try:
        doc = _DECODERS[t.channel].decode(payload)
    except msgspec.ValidationError as exc:
        out.rejections.append(_schema_detail(payload, t.channel, exc))
        return out
    except msgspec.DecodeError as exc:
        out.rejections.append(Rejection(Reason.BAD_JSON, str(exc)))
        return out
    build = _BUILDERS[t.channel]
    for item in doc if isinstance(doc, list) else (doc,):
        try:
            out.records.append(build(t.district, t.device_id, item, now_ms))
        except _Reject as rej:
            out.rejections.append(rej.rejection)
    return out
