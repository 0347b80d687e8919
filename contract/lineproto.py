"""InfluxDB line protocol for the storage schema of DESIGN.md, in millisecond precision.

Every record becomes exactly one point keyed by its tags and device timestamp, so
a redelivered message overwrites itself instead of counting twice.
"""

from __future__ import annotations

from contract.kinds import SPECS, STATUS_MEASUREMENT
from contract.payload import DeviceStatus, PanelEvent, Reading, Record

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " "})
_STR_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": " "})


def tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def string_field(value: str) -> str:
    return '"' + value.translate(_STR_ESCAPES) + '"'


def field_value(value: float | int | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return string_field(value)


def line(measurement: str, tags: dict[str, str], fields: dict[str, object], ts_ms: int) -> str:
    """One point; tags with empty values are left out (InfluxDB refuses them)."""
    tag_part = "".join(f",{k}={tag(v)}" for k, v in sorted(tags.items()) if v)
    field_part = ",".join(f"{k}={field_value(v)}" for k, v in fields.items() if v is not None)
    return f"{tag(measurement)}{tag_part} {field_part} {ts_ms}"


def record_line(record: Record, site: str = "") -> str:
    tags = {"device_id": record.device_id, "district": record.district, "site": site}
    if isinstance(record, Reading):
        fields: dict[str, object] = dict(record.metrics)
        if record.seq is not None:
            fields["seq"] = record.seq
        return line(SPECS[record.kind].measurement, tags, fields, record.ts_ms)
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
