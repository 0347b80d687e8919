"""Payload parsing and validation: bytes off the wire in, typed records or reasons out.

One message may hold one object or a gateway's array of them; each element is
judged alone, and each metric of a reading too, so one bad reading in a batch,
or one broken probe in a reading, does not cost the good ones. Device text is
cut to the column that keeps it and loses its control characters here, and
integers are held to int64, so nothing a device sends can fail a write further on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

import msgspec

from firewatch.contract.kinds import (
    COMPONENT_CHARS,
    FW_CHARS,
    PANEL_EVENTS,
    SPECS,
    ZONE_CHARS,
    Kind,
    KindSpec,
    Metric,
)
from firewatch.contract.topics import Channel, Topic, TopicError, parse_topic

MAX_PAYLOAD_BYTES = 256 * 1024
"""The largest message parsed; `ingest.max_payload_bytes` may only lower it."""
EARLIEST_TS_MS = 1_420_070_400_000  # 2015-01-01: earlier means seconds sent as ms, or no clock
MAX_FUTURE_MS = 24 * 3600 * 1000
SHOWN_CHARS = 64
"""How much of a device's string a rejection's detail repeats."""

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""What InfluxDB and PostgreSQL store as an integer; JSON allows more."""


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
    ts: Int64 | None = None
    seq: Int64 | None = None
    loop: Int64 | None = None
    point: Int64 | None = None


class _LooseTelemetry(msgspec.Struct, forbid_unknown_fields=True):
    """A reading whose metrics are judged one by one, for when `_Telemetry` refused it."""

    kind: str
    m: dict[str, msgspec.Raw]
    ts: Int64 | None = None
    seq: Int64 | None = None
    loop: Int64 | None = None
    point: Int64 | None = None


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    event: str
    ts: Int64 | None = None
    seq: Int64 | None = None
    loop: Int64 | None = None
    point: Int64 | None = None
    zone: str | None = None
    component: str | None = None


class _Status(msgspec.Struct, forbid_unknown_fields=True):
    online: bool
    ts: Int64 | None = None
    seq: Int64 | None = None
    fw: str | None = None


class _Claim(msgspec.Struct):
    """Only the kind an element claims, to name it in a rejection."""

    kind: object = None


_ITEM_TYPES: dict[Channel, type] = {
    Channel.TELEMETRY: _Telemetry,
    Channel.EVENT: _Event,
    Channel.STATUS: _Status,
}
_DECODERS = {ch: msgspec.json.Decoder(t | list[t]) for ch, t in _ITEM_TYPES.items()}  # type: ignore[valid-type]
_ITEM_DECODERS = {ch: msgspec.json.Decoder(t) for ch, t in _ITEM_TYPES.items()}
_LOOSE = msgspec.json.Decoder(_LooseTelemetry)
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_VALUE = msgspec.json.Decoder(float | bool)
_CLAIM = msgspec.json.Decoder(_Claim)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
"""C0 and C1 controls, Unicode line breaks and bidirectional overrides: nothing a label needs."""
_TOO_DEEP = "nested too deeply"


def _shown(value: object) -> str:
    """A device's value as a rejection repeats it: quoted, escaped and short."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def one_line(text: str) -> str:
    """Text without control characters (NUL, line breaks, bidirectional overrides): each run one space.

    For device text at parse time, and for any stored text a message puts on one line of its own.
    """
    return _CONTROL.sub(" ", text).strip()


def _text(value: str | None, limit: int) -> str | None:
    """Device text as stored: on one line, cut at `limit`."""
    return None if value is None else one_line(value)[:limit]


@dataclass(slots=True)
class Reading:
    district: str
    device_id: str
    kind: Kind
    ts_ms: int
    seq: int | None
    metrics: dict[str, float]
    loop: int | None = None
    """With `point`: the reading is of one point of the device (a panel's component)."""
    point: int | None = None


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
    kind: str = ""
    """The device kind the rejected element claimed, when it named a known one."""


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


def _unknown_metric(kind: str, name: str) -> Rejection:
    return Rejection(Reason.UNKNOWN_METRIC, f"{kind} has no metric {_shown(name)}", kind)


def _catalog(t: _Telemetry | _LooseTelemetry) -> tuple[KindSpec, dict[str, Metric]]:
    """The metrics a reading may hold: the device's own, or one point's when it names loop and point."""
    spec = SPECS.get(t.kind)
    if spec is None or not (spec.metrics or spec.point_metrics):
        raise _Reject(Reason.UNKNOWN_KIND, f"kind {_shown(t.kind)} sends no telemetry")
    if t.loop is None and t.point is None:
        if not spec.metrics:
            raise _Reject(Reason.BAD_SCHEMA, f"{t.kind} telemetry is per point: it needs loop and point")
        return spec, spec.metrics
    if not spec.point_metrics:
        raise _Reject(Reason.BAD_SCHEMA, f"{t.kind} telemetry has no loop or point")
    if t.loop is None or t.point is None:
        raise _Reject(Reason.BAD_SCHEMA, "a point's telemetry needs both loop and point")
    return spec, spec.point_metrics


_RANGES = {(spec.kind, point): {n: (m.low, m.high) for n, m in c.items()}
           for spec in SPECS.values() for point, c in ((False, spec.metrics), (True, spec.point_metrics))}
"""(kind, per point) → (low, high) by metric name: the check every metric of every reading passes
through, without a `Metric`'s attributes read each time."""


def _reading(district: str, device_id: str, t: _Telemetry, now_ms: int, out: Parsed) -> None:
    spec, catalog = _catalog(t)
    if not t.m:
        raise _Reject(Reason.BAD_SCHEMA, "m holds no metric")
    ts = _timestamp(t.ts, now_ms)
    ranges = _RANGES[spec.kind, catalog is spec.point_metrics]
    metrics: dict[str, float] = {}
    for name, value in t.m.items():
        bounds = ranges.get(name)
        if bounds is None:
            out.rejections.append(_unknown_metric(t.kind, name))
            continue
        v = float(value)
        if bounds[0] <= v <= bounds[1]:  # false for NaN too
            metrics[name] = v
            continue
        metric = catalog[name]
        out.rejections.append(
            Rejection(
                Reason.OUT_OF_RANGE,
                f"{name}={value} outside {metric.low}..{metric.high} {metric.unit}",
                t.kind,
            )
        )
    if metrics:
        out.records.append(Reading(district, device_id, spec.kind, ts, t.seq, metrics, t.loop, t.point))


def _loose_reading(district: str, device_id: str, t: _LooseTelemetry, now_ms: int, out: Parsed) -> None:
    """A reading some of whose metric values are not numbers: those are rejected, the rest judged."""
    _, catalog = _catalog(t)
    values: dict[str, float | bool] = {}
    for name, raw in t.m.items():
        if name not in catalog:
            out.rejections.append(_unknown_metric(t.kind, name))
            continue
        try:
            values[name] = _VALUE.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            out.rejections.append(
                Rejection(Reason.BAD_SCHEMA, f"{name}: expected a number or a boolean", t.kind)
            )
    if values:
        _reading(district, device_id, _Telemetry(t.kind, values, t.ts, t.seq, t.loop, t.point), now_ms, out)


def _event(district: str, device_id: str, e: _Event, now_ms: int, out: Parsed) -> None:
    if e.kind != Kind.PANEL:
        raise _Reject(Reason.UNKNOWN_KIND, f"kind {_shown(e.kind)} sends no events")
    if e.event not in PANEL_EVENTS:
        raise _Reject(
            Reason.UNKNOWN_EVENT, f"panel event {_shown(e.event)} is not one of the GB 26875 states"
        )
    out.records.append(
        PanelEvent(
            district,
            device_id,
            _timestamp(e.ts, now_ms),
            e.seq,
            e.event,
            e.loop,
            e.point,
            _text(e.zone, ZONE_CHARS),
            _text(e.component, COMPONENT_CHARS),
        )
    )


def _status(district: str, device_id: str, s: _Status, now_ms: int, out: Parsed) -> None:
    out.records.append(
        DeviceStatus(district, device_id, _timestamp(s.ts, now_ms), s.online, _text(s.fw, FW_CHARS))
    )


_BUILDERS = {Channel.TELEMETRY: _reading, Channel.EVENT: _event, Channel.STATUS: _status}


def _refused(raw: bytes | msgspec.Raw, channel: Channel, err: Exception) -> Rejection:
    """Why one element was refused: a kind we do not know, or the shape msgspec complained of."""
    try:
        claimed = _CLAIM.decode(raw).kind
    except (msgspec.DecodeError, RecursionError):
        claimed = None
    known = isinstance(claimed, str) and claimed in SPECS
    if channel != Channel.STATUS and claimed is not None and not known:
        return Rejection(Reason.UNKNOWN_KIND, f"kind {_shown(claimed)} is not one of {sorted(SPECS)}")
    return Rejection(Reason.BAD_SCHEMA, f"{channel.value}: {err}", str(claimed) if known else "")


def _element(t: Topic, raw: bytes | msgspec.Raw, now_ms: int, out: Parsed) -> None:
    """Judge one element alone, after the message as a whole did not fit the schema."""
    try:
        item = _ITEM_DECODERS[t.channel].decode(raw)
    except msgspec.ValidationError as exc:
        if t.channel is not Channel.TELEMETRY:
            out.rejections.append(_refused(raw, t.channel, exc))
            return
        try:
            loose = _LOOSE.decode(raw)
        except msgspec.ValidationError:
            out.rejections.append(_refused(raw, t.channel, exc))
            return
        _loose_reading(t.district, t.device_id, loose, now_ms, out)
        return
    _BUILDERS[t.channel](t.district, t.device_id, item, now_ms, out)


def _one_by_one(t: Topic, payload: bytes, now_ms: int, out: Parsed) -> None:
    first = payload.lstrip()[:1]
    items: list[bytes | msgspec.Raw] = list(_ITEMS.decode(payload)) if first == b"[" else [payload]
    for raw in items:
        try:
            _element(t, raw, now_ms, out)
        except _Reject as rej:
            out.rejections.append(rej.rejection)


def parse(topic: str, payload: bytes, now_ms: int | None = None) -> Parsed:
    """Turn one MQTT message into records; never raises for anything a device can send.

    The common case, a message that fits the schema, is decoded in one pass; only a
    message that does not is taken apart element by element to keep what is good.
    """
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
        try:
            doc = _DECODERS[t.channel].decode(payload)
        except msgspec.ValidationError:
            _one_by_one(t, payload, now_ms, out)
            return out
    except msgspec.DecodeError as exc:
        out.rejections.append(Rejection(Reason.BAD_JSON, str(exc)))
        return out
    except RecursionError:
        out.rejections.append(Rejection(Reason.BAD_JSON, _TOO_DEEP))
        return out
    build = _BUILDERS[t.channel]
    for item in doc if isinstance(doc, list) else (doc,):
        try:
            build(t.district, t.device_id, item, now_ms, out)
        except _Reject as rej:
            out.rejections.append(rej.rejection)
    return out
