"""InfluxDB line protocol for the storage schema of DESIGN.md, in millisecond precision.

Every record becomes exactly one point keyed by its tags and device timestamp, so
a redelivered message overwrites itself instead of counting twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from firewatch.contract.kinds import SPECS, STATUS_MEASUREMENT
from firewatch.contract.payload import DeviceStatus, PanelEvent, Reading, Record

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\ ", "\\": "\uff3c"})
"""A backslash in a tag value becomes the full-width reverse solidus (＼): InfluxDB 1.x has
no escape for it, and one before a space or at the end refuses the whole line."""
_STR_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": " "})


def tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def string_field(value: str) -> str:
    return '"' + value.translate(_STR_ESCAPES) + '"'


def field_value(value: float | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return string_field(value)


def _series(measurement: str, tags: dict[str, str]) -> str:
    return tag(measurement) + "".join(f",{k}={tag(v)}" for k, v in sorted(tags.items()) if v)


def _fields(fields: Mapping[str, Any]) -> str:
    # Floats are nearly every value ingest writes, so they skip field_value's type ladder.
    return ",".join(
        [
            f"{k}={v!r}" if type(v) is float else f"{k}={field_value(v)}"
            for k, v in fields.items()
            if v is not None
        ]
    )


def line(measurement: str, tags: dict[str, str], fields: dict[str, object], ts_ms: int) -> str:
    """One point; tags with empty values are left out (InfluxDB refuses them)."""
    return f"{_series(measurement, tags)} {_fields(fields)} {ts_ms}"


_READING_SERIES: dict[tuple[str, str, str, str, int | None, int | None], str] = {}
_READING_SERIES_MAX = 500_000
"""Ingest writes every reading of a device under the same series key; building it once
per device instead of once per reading is most of what makes ingest keep up."""


def _reading_line(record: Reading, site: str) -> str:
    key = (record.kind, record.device_id, record.district, site, record.loop, record.point)
    series = _READING_SERIES.get(key)
    if series is None:
        if len(_READING_SERIES) >= _READING_SERIES_MAX:
            _READING_SERIES.clear()
        tags = {"device_id": record.device_id, "district": record.district, "site": site}
        spec = SPECS[record.kind]
        if record.loop is None:
            series = _series(spec.measurement, tags)
        else:  # one series per point: its metrics share a timestamp, other points' do too
            series = _series(spec.point_measurement, tags | {"loop": str(record.loop), "point": str(record.point)})
        _READING_SERIES[key] = series
    fields = _fields(record.metrics)
    if record.seq is not None:
        fields = f"{fields},seq={record.seq}i" if fields else f"seq={record.seq}i"
    return f"{series} {fields} {record.ts_ms}"


def record_line(record: Record, site: str = "") -> str:
    if isinstance(record, Reading):
        return _reading_line(record, site)
    tags = {"device_id": record.device_id, "district": record.district, "site": site}
    if isinstance(record, PanelEvent):
        fields = {
            "event": record.event,
            "loop": record.loop,
            "point": record.point,
            "zone": record.zone,
            "component": record.component,
            "seq": record.seq,
        }
        return line(SPECS["panel"].measurement, tags, fields, record.ts_ms)
    if isinstance(record, DeviceStatus):
        return line(STATUS_MEASUREMENT, tags, {"online": record.online, "fw": record.fw}, record.ts_ms)
    raise TypeError(f"not a record: {record!r}")
