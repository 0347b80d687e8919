"""Device kinds and their metric catalog: the one place that says what a reading may hold.

Physical ranges are what a sensor of that kind can report at all, not alarm
thresholds: a value outside them is a broken message, not a dangerous condition,
so ingest rejects it instead of storing it. Thresholds live in the rule catalogue
(contract/rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    ELECTRICAL = "electrical"
    HYDRANT = "hydrant"
    PANEL = "panel"
    PUMP = "pump"


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    low: float
    high: float
    label: str
    boolean: bool = False


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: Kind
    measurement: str
    metrics: dict[str, Metric]
    report_interval_s: int
    """Typical period between two telemetry reports; offline after two missed."""
    label: str
    point_metrics: dict[str, Metric] = field(default_factory=dict)
    """What one point of the device may report (a panel's components' analog values): a reading
    that names a loop and a point is judged against these and stored apart, tagged by both."""
    point_measurement: str = ""


VACUUM_MPA = -0.1
"""The lowest gauge pressure a sensor can read (a vacuum, -0.101 MPa): a transmitter at no pressure reads a little
either side of 0 within its accuracy (±0.02 MPa, DOMAIN.md), and a suction or a drained main reads below it; under a
vacuum is impossible."""


def _metrics(*items: Metric) -> dict[str, Metric]:
    return {m.name: m for m in items}


def _phases(quantity: str, unit: str, low: float, high: float, label: str) -> list[Metric]:
    return [Metric(f"{quantity}_{p}_{unit}", unit, low, high, f"{label} {p.upper()}") for p in "abc"]


METRIC_LABELS_ZH: dict[str, str] = {
    "residual current": "剩余电流", **{f"cable temperature {i}": f"线缆温度{i}" for i in range(1, 5)},
    **{f"current {p}": f"{p}相电流" for p in "ABC"}, **{f"voltage {p}": f"{p}相电压" for p in "ABC"},
    "arcing half-cycles in the worst 1 s": "故障电弧半周波数（最大1秒）", "pressure": "水压", "tilt": "倾角",
    "cover open": "井盖/箱盖打开", "water flowing": "出水", "temperature": "温度", "battery": "电池电量",
    "signal strength": "信号强度", "outlet pressure": "出口压力", "flow": "流量", "motor current": "电机电流",
    "supply voltage": "供电电压", "vibration": "振动",
    "event count": "事件计数", "height": "高度", "pressure (kPa)": "压力（kPa）", "gas concentration": "可燃气体浓度",
    "time": "时间", "voltage": "电压", "current": "电流", "air volume": "风量", "wind speed": "风速",
}
"""Each metric's label in Chinese (chart titles of a zh console); a test keeps it complete."""


ELECTRICAL = KindSpec(
    Kind.ELECTRICAL,
    "electrical",
    _metrics(
        Metric("residual_ma", "mA", 0, 3000, "residual current"),
        *[Metric(f"temp{i}_c", "°C", -40, 250, f"cable temperature {i}") for i in range(1, 5)],
        *_phases("current", "a", 0, 2000, "current"),
        *_phases("voltage", "v", 0, 500, "voltage"),
        Metric("arc_count", "half-cycles/s", 0, 100, "arcing half-cycles in the worst 1 s"),
    ),
    report_interval_s=60,
    label="electrical fire detector",
)

HYDRANT = KindSpec(
    Kind.HYDRANT,
    "hydrant",
    _metrics(
        Metric("pressure_mpa", "MPa", VACUUM_MPA, 2.5, "pressure"),
        Metric("tilt_deg", "°", 0, 180, "tilt"),
        Metric("cover_open", "bool", 0, 1, "cover open", boolean=True),
        Metric("water_flow", "bool", 0, 1, "water flowing", boolean=True),
        Metric("temp_c", "°C", -50, 100, "temperature"),
        Metric("battery_pct", "%", 0, 100, "battery"),
        Metric("rssi_dbm", "dBm", -150, 0, "signal strength"),
    ),
    report_interval_s=300,
    label="hydrant monitor",
)

PUMP = KindSpec(
    Kind.PUMP,
    "pump",
    _metrics(
        Metric("pressure_mpa", "MPa", VACUUM_MPA, 2.5, "outlet pressure"),
        Metric("flow_lps", "L/s", 0, 500, "flow"),
        Metric("current_a", "A", 0, 2000, "motor current"),
        Metric("voltage_v", "V", 0, 500, "supply voltage"),
        Metric("temp_c", "°C", -40, 200, "temperature"),
        Metric("vibration_mm_s", "mm/s", 0, 100, "vibration"),
    ),
    report_interval_s=60,
    label="fire pump room",
)

@dataclass(frozen=True, slots=True)
class AnalogType:
    """One analog value type of GB/T 26875.3-2011 (模拟量类型): the metric it becomes and its resolution."""

    code: int
    metric: Metric
    decimals: int
    """The raw value is a signed 16-bit count of 10**-decimals of the unit (0.1 °C is 1)."""


ANALOG_TYPES: dict[int, AnalogType] = {
    a.code: a
    for a in (
        AnalogType(1, Metric("event_count", "events", 0, 32000, "event count"), 0),
        AnalogType(2, Metric("height_m", "m", 0, 320, "height"), 2),
        AnalogType(3, Metric("temp_c", "°C", -273, 3200, "temperature"), 1),
        AnalogType(4, Metric("pressure_mpa", "MPa", 0, 3200, "pressure"), 1),
        AnalogType(5, Metric("pressure_kpa", "kPa", 0, 3200, "pressure (kPa)"), 1),
        AnalogType(6, Metric("gas_lel_pct", "%LEL", 0, 100, "gas concentration"), 1),
        AnalogType(7, Metric("time_s", "s", 0, 32000, "time"), 0),
        AnalogType(8, Metric("voltage_v", "V", 0, 3200, "voltage"), 1),
        AnalogType(9, Metric("current_a", "A", 0, 3200, "current"), 1),
        AnalogType(10, Metric("flow_lps", "L/s", 0, 3200, "flow"), 1),
        AnalogType(11, Metric("airflow_m3_min", "m³/min", 0, 3200, "air volume"), 1),
        AnalogType(12, Metric("wind_m_s", "m/s", 0, 20, "wind speed"), 0),
    )
}
"""The standard's table of component analog values (type 3 data units): code, quantity, unit, valid
range and resolution. 0 is unused, 13-127 reserved, 128-255 the vendor's own: none of those has a
unit the platform could store. The valid ranges are the physical ranges ingest holds values to."""

PANEL = KindSpec(
    Kind.PANEL,
    "panel_event",
    {},
    report_interval_s=300,
    label="fire alarm control panel",
    point_metrics=_metrics(*(a.metric for a in ANALOG_TYPES.values())),
    point_measurement="panel_analog",
)

SPECS: dict[str, KindSpec] = {s.kind.value: s for s in (ELECTRICAL, HYDRANT, PANEL, PUMP)}

PANEL_EVENTS: frozenset[str] = frozenset(
    {
        "fire",
        "fault",
        "fault_cleared",
        "supervisory",
        "shield",
        "unshield",
        "start",
        "feedback",
        "reset",
        "main_power_fault",
        "backup_power_fault",
        "power_restored",
        "test",
        "heartbeat",
        "duty_check_answered",
        "duty_check_missed",
    }
)
"""GB 26875 states a transmission device reports; `heartbeat` is its link inspection; the duty
check (查岗) events say whether the control room answered the center in time."""

FW_CHARS = 64
"""Longest firmware version a status keeps (`device_state.fw`); longer is cut at parse time."""
ZONE_CHARS = 128
"""Longest panel zone an event keeps (`alerts.zone`); longer is cut at parse time."""
COMPONENT_CHARS = 64
"""Longest panel component name an event keeps."""

STATUS_MEASUREMENT = "device_status"
ALERT_MEASUREMENT = "alert"
