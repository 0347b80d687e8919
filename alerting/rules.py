"""The rule catalogue: every rule a detector knows, per device kind, with its defaults.

Defaults come from DOMAIN.md (the standards, or field practice where marked).
Each rule turns readings into one number per device (a feature: the reading
itself, the hottest of four cables, a rate, a deviation from the learned
baseline) and compares it with a warning and an alarm level. `direction = -1`
flips the comparison for rules that fire when the number falls (pressure,
voltage, freeze). Any of these defaults can be overridden per kind, district,
site or device (see alerting/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Feature = Literal["value", "spread", "unbalance", "rate", "drift", "baseline", "frozen", "jump", "event"]


@dataclass(frozen=True, slots=True)
class Params:
    """The tunable side of a rule; None means the level is not used."""

    warning: float | None = None
    alarm: float | None = None
    deadband: float = 0.0
    """How far back over the level the feature must come before the alert clears (hysteresis)."""
    for_s: float = 0.0
    """Minimum time the condition must hold before the alert fires (0: at once)."""
    window_s: float = 0.0
    """Time constant of the feature's memory (rates: longest gap; drift and baseline: EWMA)."""
    warmup_s: float = 0.0
    """Learning time before a learned feature speaks."""
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    feature: Feature
    metrics: tuple[str, ...]
    defaults: Params
    label: str
    unit: str
    direction: int = 1
    reduce: Literal["max", "min"] = "max"
    severities: tuple[str, str] = ("warning", "critical")
    """Severity at the warning level and at the alarm level."""


TEMPS = ("temp1_c", "temp2_c", "temp3_c", "temp4_c")
VOLTS = ("voltage_a_v", "voltage_b_v", "voltage_c_v")
AMPS = ("current_a_a", "current_b_a", "current_c_a")

ELECTRICAL: tuple[Rule, ...] = (
    Rule("residual_current", "value", ("residual_ma",), Params(240, 300, 20), "residual current", "mA"),
    Rule("cable_temp", "value", TEMPS, Params(60, 70, 3), "cable temperature", "°C"),
    Rule("arc_fault", "value", ("arc_count",), Params(None, 14, 4), "arc fault", "half-cycles/s"),
    Rule("overvoltage", "value", VOLTS, Params(242, 264, 4), "over-voltage", "V"),
    Rule("undervoltage", "value", VOLTS, Params(198, 154, 4), "under-voltage", "V", direction=-1,
         reduce="min"),
    Rule("overcurrent", "value", AMPS, Params(None, None, 5, for_s=60), "overcurrent", "A"),
    Rule("temp_rise", "rate", TEMPS, Params(5, 15, 2, window_s=600), "cable temperature rise", "°C/min"),
    Rule("temp_imbalance", "spread", TEMPS, Params(8, 20, 2, for_s=120), "one cable hotter than its siblings",
         "°C"),
    Rule("current_imbalance", "unbalance", AMPS, Params(0.35, None, 0.05, for_s=300),
         "phase current unbalance (max - mean) / mean", ""),
    Rule("residual_creep", "drift", ("residual_ma",), Params(40, None, 10, window_s=259200, warmup_s=43200),
         "residual current creeping up", "mA"),
    Rule("residual_abnormal", "baseline", ("residual_ma",), Params(7, None, 2, for_s=60, window_s=86400,
         warmup_s=21600), "residual current abnormal for this device", "dev"),
    Rule("cable_temp_abnormal", "baseline", TEMPS, Params(7, None, 2, for_s=60, window_s=86400,
         warmup_s=21600), "cable temperature abnormal for this device", "dev"),
    Rule("sensor_frozen", "frozen", ("residual_ma", *TEMPS), Params(21600, None, 0), "sensor value frozen", "s",
         severities=("warning", "warning")),
    Rule("sensor_jump", "jump", ("residual_ma", *TEMPS), Params(3, None, 2, window_s=3600),
         "sensor value jumping", "spikes", severities=("warning", "warning")),
)

HYDRANT: tuple[Rule, ...] = (
    Rule("pressure_low", "value", ("pressure_mpa",), Params(0.14, 0.10, 0.01), "low water pressure", "MPa",
         direction=-1),
    Rule("pressure_high", "value", ("pressure_mpa",), Params(1.0, None, 0.02), "high water pressure", "MPa"),
    Rule("tilt", "value", ("tilt_deg",), Params(None, 30, 5), "hydrant tilted (knocked over?)", "°"),
    Rule("cover_open", "value", ("cover_open",), Params(0.5, None, 0, for_s=10), "cover open", ""),
    Rule("water_flow", "value", ("water_flow",), Params(0.5, None, 0, for_s=60),
         "water flowing with no fire logged (theft or leak)", ""),
    Rule("freeze_risk", "value", ("temp_c",), Params(2, None, 1), "freeze risk", "°C", direction=-1),
    Rule("battery_low", "value", ("battery_pct",), Params(20, 10, 2), "battery low", "%", direction=-1,
         severities=("info", "warning")),
    Rule("pressure_drop", "rate", ("pressure_mpa",), Params(0.05, 0.2, 0.02, window_s=1800),
         "water pressure dropping", "MPa/min", direction=-1),
    Rule("pressure_leak", "drift", ("pressure_mpa",), Params(0.05, None, 0.01, window_s=259200, warmup_s=43200),
         "water pressure sinking slowly (leak?)", "MPa", direction=-1),
    Rule("pressure_abnormal", "baseline", ("pressure_mpa",), Params(7, None, 2, for_s=600, window_s=86400,
         warmup_s=43200), "water pressure abnormally low for this hydrant", "dev", direction=-1),
    Rule("sensor_frozen", "frozen", ("pressure_mpa",), Params(86400, None, 0), "sensor value frozen", "s",
         severities=("warning", "warning")),
    Rule("sensor_jump", "jump", ("pressure_mpa",), Params(3, None, 2, window_s=3600), "sensor value jumping",
         "spikes", severities=("warning", "warning")),
)

PUMP: tuple[Rule, ...] = (
    Rule("pressure_low", "value", ("pressure_mpa",), Params(0.2, 0.1, 0.02, for_s=30), "low outlet pressure",
         "MPa", direction=-1),
    Rule("motor_current_high", "value", ("current_a",), Params(None, None, 2, for_s=30), "motor current high",
         "A"),
    Rule("motor_temp_high", "value", ("temp_c",), Params(70, 90, 3), "pump temperature high", "°C"),
    Rule("vibration_high", "value", ("vibration_mm_s",), Params(7.1, 11.2, 0.5, for_s=60), "vibration high",
         "mm/s"),
    Rule("overvoltage", "value", ("voltage_v",), Params(418, 456, 5, for_s=30), "supply over-voltage", "V"),
    Rule("undervoltage", "value", ("voltage_v",), Params(342, 304, 5, for_s=30), "supply under-voltage", "V",
         direction=-1),
    Rule("pressure_abnormal", "baseline", ("pressure_mpa",), Params(7, None, 2, for_s=120, window_s=86400,
         warmup_s=21600), "standby pressure abnormally low for this pump", "dev", direction=-1),
    Rule("sensor_frozen", "frozen", ("pressure_mpa",), Params(86400, None, 0), "sensor value frozen", "s",
         severities=("warning", "warning")),
)

PANEL: tuple[Rule, ...] = (
    Rule("fire", "event", (), Params(), "fire alarm", "", severities=("fire", "fire")),
    Rule("fault", "event", (), Params(), "fault", "", severities=("warning", "warning")),
    Rule("fault_unrepaired", "event", (), Params(for_s=86400), "fault unrepaired (hazard)", "",
         severities=("critical", "critical")),
    Rule("supervisory", "event", (), Params(), "supervisory signal", "", severities=("warning", "warning")),
    Rule("shield_left_on", "event", (), Params(for_s=86400), "points shielded too long", "",
         severities=("warning", "warning")),
    Rule("main_power", "event", (), Params(), "main power fault", "", severities=("critical", "critical")),
    Rule("backup_power", "event", (), Params(), "backup power fault", "", severities=("warning", "warning")),
    Rule("false_alarm_repeated", "event", (), Params(warning=3, window_s=7 * 86400), "a point false-alarms repeatedly",
         "alarms", severities=("warning", "warning")),
)
"""Panel rules are a state machine over GB 26875 events (alerting/detect/panel.py), not features."""

COMMON: tuple[Rule, ...] = (
    Rule("offline", "event", (), Params(warning=2), "offline (missed reporting periods)", "periods",
         severities=("warning", "warning")),
    Rule("sensor_impossible", "event", (), Params(warning=3, window_s=3600), "impossible sensor values", "",
         severities=("warning", "warning")),
)
"""Rules every kind has: missing heartbeats, and values outside the sensor's physical range
(`warning` of them within `window_s`; one garbled message is not yet a broken sensor)."""

READING_RULES: dict[str, tuple[Rule, ...]] = {"electrical": ELECTRICAL, "hydrant": HYDRANT, "pump": PUMP}
RULES: dict[str, dict[str, Rule]] = {
    kind: {r.name: r for r in (*rules, *COMMON)}
    for kind, rules in {**READING_RULES, "panel": PANEL}.items()
}
