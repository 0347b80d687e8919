"""The rule catalogue: every rule a detector knows, per device kind, with its default levels.

This is the one place a threshold is written. Alerting judges readings by it,
the dashboards draw their threshold lines from it, and the api shows the levels
in force beside a device's readings, so it lives in the contract next to the
metric catalogue (contract/kinds.py) rather than inside alerting.
Defaults come from DOMAIN.md (the standards, or field practice where marked).
Each rule turns readings into one number per device (a feature: the reading
itself, the hottest of four cables, a rate, a deviation from the learned
baseline) and compares it with a warning and an alarm level. `direction = -1`
flips the comparison for rules that fire when the number falls (pressure,
voltage, freeze). Any of these defaults can be overridden per kind, district,
site or device (alerting/config.py resolves them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal, get_args

from firewatch.contract.db import Severity
from firewatch.contract.kinds import METRIC_LABELS_ZH

Feature = Literal["value", "spread", "unbalance", "rate", "drift", "baseline", "multivariate", "changepoint", "daily",
                  "weekly_shift", "cycle", "frozen", "jump", "event"]

READING_FEATURES: frozenset[Feature] = frozenset({"value", "spread", "unbalance"})
"""Features whose levels are readings, worse in the rule's `direction` (a low pressure's warning lies above its
alarm); every other feature reports its departure as a positive number (a pressure's fall per minute), so a
higher level is always the worse one."""
UNIT_FEATURES: frozenset[Feature] = frozenset({"value", "spread", "unbalance", "rate", "drift", "jump"})
"""Features whose levels are written in the metric's own unit (a standard's 70 °C, 0.05 MPa/min, a jump of a
quarter of full scale); the others are in deviations or multiples of what the device's own readings taught."""


@dataclass(frozen=True, slots=True)
class Params:
    """The tunable side of a rule; None means the level is not used."""

    warning: float | None = None
    alarm: float | None = None
    deadband: float = 0.0
    """How far back over the level the feature must come before the alert clears (hysteresis)."""
    for_s: float = 0.0
    """Minimum time the condition must hold before the alert fires (0: at once)."""
    keep_s: float = 0.0
    """Time the condition must stay clear before the alert resolves (0: at once): a departure that comes back
    within it is the same alert, not a new one."""
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
    severities: tuple[Severity, Severity] = (Severity.WARNING, Severity.CRITICAL)
    """Severity at the warning level and at the alarm level."""
    source: str = ""
    """Where the default levels come from (DOMAIN.md): a standard's clause, or field practice."""
    rated: str = ""
    """The nameplate value (`NAMEPLATE`) this rule's fixed levels derive from, if any."""

    @property
    def worse(self) -> int:
        """Which way a level is worse: the rule's direction for levels that are readings, else up."""
        return self.direction if self.feature in READING_FEATURES else 1


NAMEPLATE: dict[str, dict[str, float | None]] = {
    "electrical": {"voltage_v": 220.0, "current_a": None},
    "pump": {"voltage_v": 380.0, "current_a": None, "pressure_mpa": 0.7, "temp_c": 70.0},
}
"""A device's rated values (its nameplate) that the default levels of the rules naming them are written for:
a 380 V pump supply, a pump that holds 0.7 MPa (the simulated fleet holds 0.55-0.85 at standby) with a motor
rated for 70 °C. Set per kind, district, site or device (`[alerting.devices.X.nameplate]`), a rated value moves
its rules' levels with it: in proportion (voltage, pressure: 230 V puts under-voltage at 207/184 V), or by the
difference for a temperature (°C has no true zero). A rated value without a default here (current: every
circuit and motor differs) is the level itself: over the rated current is the alarm (DOMAIN.md, overcurrent)."""

WARNING_ONLY = (Severity.WARNING, Severity.WARNING)
CRITICAL_ONLY = (Severity.CRITICAL, Severity.CRITICAL)
FIRE_ONLY = (Severity.FIRE, Severity.FIRE)
"""Rules whose alarm level, if any, does not raise the severity."""

MAINS = "field practice: ±10 % of a 220 V supply"

TEMPS = ("temp1_c", "temp2_c", "temp3_c", "temp4_c")
VOLTS = ("voltage_a_v", "voltage_b_v", "voltage_c_v")
AMPS = ("current_a_a", "current_b_a", "current_c_a")
WHOLE_DAY_S = 86400
"""Warm-up of the learned baselines: a whole day of event time. Current, cable temperature, residual current
and mains pressure follow the day's load; a baseline that learned only the night would call the morning a
fault, and a device may be commissioned at any hour."""
PATTERN = Params(2.0, None, 1.0, window_s=7 * 86400, warmup_s=WHOLE_DAY_S)
"""Multivariate rules: the score is in multiples of the statistical limit (1); warning is the sensitivity."""
PATTERN_LABEL = "readings unlike this device's learned normal"
SHIFT = Params(30, None, 10, window_s=86400, warmup_s=WHOLE_DAY_S)
"""Change points: `warning` is the CUSUM decision interval h, in deviations (allowance 2 deviations)."""
SHIFT_LABEL = "level shift"
TEMP_SHIFT = Params(30, None, 6, keep_s=86400, window_s=3 * 86400, warmup_s=WHOLE_DAY_S)
"""A temperature's change points after its hour of the week (`weekly_shift`): `warning` is the CUSUM decision
interval h in deviations, `window_s` the level's memory (a departure lasting it is the new level); it speaks once
`warmup_s` has passed and every hour of the day has been seen three times (against that hour's profile, with a
wider allowance), and after its hour of the week once every hour of the week has been seen twice (two weeks,
whatever a training window says). Kept a day (`keep_s`): a night that no longer cools is away from its normal
every night and at it every afternoon, and that is one alert, not a new one every evening. h was 20 until its
deviation learned slower than its level (`changepoint.DEV_MEMORY`), then 25. At 30 (2026-12-07) 19 of the weather's
spells on generated years are taken for failures where 25 took 34, and every failure 25 found is found, hours
later; 35 missed one (docs/alerting.md)."""
TEMP_SHIFT_LABEL = "temperature away from its normal"
TEMP_CYCLE = Params(70, None, 30, for_s=43200, window_s=86400, warmup_s=WHOLE_DAY_S)
"""The day's cycle lost (`cycle`, after the week's profile `temp_shift` learned): `warning` is the share of the
usual cycle lost, in %, held for `for_s` (12 hours: a lost setback lasts days, a grey day does not; a whole day
came a day late); `window_s` the fit's memory."""
TEMP_CYCLE_LABEL = "temperature no longer follows its daily cycle"

ELECTRICAL: tuple[Rule, ...] = (
    Rule("residual_current", "value", ("residual_ma",), Params(240, 300, 20), "residual current", "mA",
         source="GB 50116 §9.2.3"),
    Rule("cable_temp", "value", TEMPS, Params(60, 70, 3), "cable temperature", "°C",
         source="GB 14287.3"),
    Rule("arc_fault", "value", ("arc_count",), Params(None, 14, 4), "arc fault", "half-cycles/s",
         source="GB 14287.4; none at 9 or fewer"),
    Rule("overvoltage", "value", VOLTS, Params(242, 264, 4), "over-voltage", "V",
         source=MAINS, rated="voltage_v"),
    Rule("undervoltage", "value", VOLTS, Params(198, 154, 4), "under-voltage", "V", direction=-1,
         reduce="min", source=MAINS, rated="voltage_v"),
    Rule("overcurrent", "value", AMPS, Params(None, None, 5, for_s=60), "overcurrent", "A", rated="current_a"),
    Rule("temp_rise", "rate", TEMPS, Params(5, 15, 2, window_s=600), "cable temperature rise", "°C/min"),
    Rule("temp_imbalance", "spread", TEMPS, Params(8, 20, 2, for_s=120), "one cable hotter than its siblings",
         "°C"),
    Rule("current_imbalance", "unbalance", AMPS, Params(0.35, None, 0.05, for_s=300),
         "phase current unbalance (max - mean) / mean", ""),
    Rule("residual_creep", "drift", ("residual_ma",), Params(40, None, 10, window_s=259200, warmup_s=43200),
         "residual current creeping up", "mA"),
    Rule("residual_abnormal", "baseline", ("residual_ma",), Params(7, None, 2, for_s=60, window_s=86400,
         warmup_s=WHOLE_DAY_S), "residual current abnormal for this device", "dev"),
    Rule("cable_temp_abnormal", "baseline", TEMPS, Params(7, None, 2, for_s=60, window_s=86400,
         warmup_s=WHOLE_DAY_S), "cable temperature abnormal for this device", "dev"),
    Rule("pattern_abnormal", "multivariate", ("residual_ma", *TEMPS, *AMPS, *VOLTS), PATTERN, PATTERN_LABEL,
         "x limit"),
    Rule("level_shift", "changepoint", ("residual_ma",), SHIFT, SHIFT_LABEL, "dev"),
    Rule("load_abnormal", "daily", (*AMPS, *TEMPS), Params(10, None, 3, for_s=600, window_s=14 * 86400,
         warmup_s=2 * 86400), "current or cable temperature unusual for the time of day", "dev"),
    Rule("sensor_frozen", "frozen", ("residual_ma", *TEMPS), Params(21600, None, 0), "sensor value frozen", "s",
         severities=WARNING_ONLY),
    Rule("sensor_jump", "jump", ("residual_ma", *TEMPS), Params(3, None, 2, window_s=3600),
         "sensor value jumping", "spikes", severities=WARNING_ONLY),
)

HYDRANT: tuple[Rule, ...] = (
    Rule("pressure_low", "value", ("pressure_mpa",), Params(0.14, 0.10, 0.01), "low water pressure", "MPa",
         direction=-1, source="GB 50974 §7.2.8"),
    Rule("pressure_high", "value", ("pressure_mpa",), Params(1.0, None, 0.02), "high water pressure", "MPa",
         source="field practice"),
    Rule("tilt", "value", ("tilt_deg",), Params(None, 30, 5), "hydrant tilted (knocked over?)", "°"),
    Rule("cover_open", "value", ("cover_open",), Params(0.5, None, 0, for_s=10), "cover open", ""),
    Rule("water_flow", "value", ("water_flow",), Params(0.5, None, 0, for_s=60),
         "water flowing with no fire logged (theft or leak)", ""),
    Rule("freeze_risk", "value", ("temp_c",), Params(2, None, 1), "freeze risk", "°C", direction=-1),
    Rule("battery_low", "value", ("battery_pct",), Params(20, 10, 2), "battery low", "%", direction=-1,
         severities=(Severity.INFO, Severity.WARNING)),
    Rule("pressure_drop", "rate", ("pressure_mpa",), Params(0.05, 0.2, 0.02, window_s=1800),
         "water pressure dropping", "MPa/min", direction=-1),
    Rule("pressure_leak", "drift", ("pressure_mpa",), Params(0.05, None, 0.01, window_s=259200, warmup_s=43200),
         "water pressure sinking slowly (leak?)", "MPa", direction=-1),
    Rule("pressure_abnormal", "baseline", ("pressure_mpa",), Params(7, None, 2, for_s=600, window_s=86400,
         warmup_s=WHOLE_DAY_S), "water pressure abnormally low for this hydrant", "dev", direction=-1),
    Rule("level_shift", "changepoint", ("pressure_mpa",), SHIFT, SHIFT_LABEL, "dev"),
    Rule("temp_shift", "weekly_shift", ("temp_c",), TEMP_SHIFT, TEMP_SHIFT_LABEL, "dev"),
    Rule("temp_cycle", "cycle", ("temp_c",), TEMP_CYCLE, TEMP_CYCLE_LABEL, "%"),
    Rule("sensor_frozen", "frozen", ("pressure_mpa",), Params(86400, None, 0), "sensor value frozen", "s",
         severities=WARNING_ONLY),
    Rule("sensor_jump", "jump", ("pressure_mpa",), Params(3, None, 2, window_s=3600), "sensor value jumping",
         "spikes", severities=WARNING_ONLY),
)

PUMP: tuple[Rule, ...] = (
    Rule("pressure_low", "value", ("pressure_mpa",), Params(0.2, 0.1, 0.02, for_s=30), "low outlet pressure",
         "MPa", direction=-1, rated="pressure_mpa"),
    Rule("motor_current_high", "value", ("current_a",), Params(None, None, 2, for_s=30), "motor current high",
         "A", rated="current_a"),
    Rule("motor_temp_high", "value", ("temp_c",), Params(70, 90, 3), "pump temperature high", "°C",
         rated="temp_c"),
    Rule("vibration_high", "value", ("vibration_mm_s",), Params(7.1, 11.2, 0.5, for_s=60), "vibration high",
         "mm/s"),
    Rule("overvoltage", "value", ("voltage_v",), Params(418, 456, 5, for_s=30), "supply over-voltage", "V",
         rated="voltage_v"),
    Rule("undervoltage", "value", ("voltage_v",), Params(342, 304, 5, for_s=30), "supply under-voltage", "V",
         direction=-1, rated="voltage_v"),
    Rule("pressure_abnormal", "baseline", ("pressure_mpa",), Params(7, None, 2, for_s=120, window_s=86400,
         warmup_s=WHOLE_DAY_S), "standby pressure abnormally low for this pump", "dev", direction=-1),
    Rule("pattern_abnormal", "multivariate", ("pressure_mpa", "flow_lps", "current_a", "voltage_v", "vibration_mm_s"),
         PATTERN, PATTERN_LABEL, "x limit"),
    Rule("temp_shift", "weekly_shift", ("temp_c",), TEMP_SHIFT, TEMP_SHIFT_LABEL, "dev"),
    Rule("temp_cycle", "cycle", ("temp_c",), TEMP_CYCLE, TEMP_CYCLE_LABEL, "%"),
    Rule("sensor_frozen", "frozen", ("pressure_mpa",), Params(86400, None, 0), "sensor value frozen", "s",
         severities=WARNING_ONLY),
)

PANEL: tuple[Rule, ...] = (
    Rule("fire", "event", (), Params(), "fire alarm", "", severities=FIRE_ONLY),
    Rule("fault", "event", (), Params(), "fault", "", severities=WARNING_ONLY),
    Rule("fault_unrepaired", "event", (), Params(for_s=86400), "fault unrepaired (hazard)", "",
         severities=CRITICAL_ONLY),
    Rule("supervisory", "event", (), Params(), "supervisory signal", "", severities=WARNING_ONLY),
    Rule("shield_left_on", "event", (), Params(for_s=86400), "points shielded too long", "",
         severities=WARNING_ONLY),
    Rule("main_power", "event", (), Params(), "main power fault", "", severities=CRITICAL_ONLY),
    Rule("backup_power", "event", (), Params(), "backup power fault", "", severities=WARNING_ONLY),
    Rule("false_alarm_repeated", "event", (), Params(warning=3, window_s=7 * 86400), "a point false-alarms repeatedly",
         "alarms", severities=WARNING_ONLY),
    Rule("duty_check_missed", "event", (), Params(), "control room did not answer the duty check", "",
         severities=CRITICAL_ONLY),
)
"""Panel rules are a state machine over GB 26875 events (alerting/detect/panel.py), not features."""

COMMON: tuple[Rule, ...] = (
    Rule("offline", "event", (), Params(warning=2), "offline (missed reporting periods)", "periods",
         severities=WARNING_ONLY),
    Rule("sensor_impossible", "event", (), Params(warning=3, window_s=3600), "impossible sensor values", "",
         severities=WARNING_ONLY),
)
"""Rules every kind has: missing heartbeats, and values outside the sensor's physical range
(`warning` of them within `window_s`; one garbled message is not yet a broken sensor)."""

HAZARD_KIND = "hazard"
"""The `kind` of supervision's alerts, for notify's routes (`kind = ["hazard"]`)."""
HAZARD: tuple[Rule, ...] = (
    Rule("hazard_overdue", "event", (), Params(), "hazard order overdue", "",
         source="policy: an overdue rectification escalates to the supervising department and the district"),
)
"""supervision's alerts: a hazard order past its deadline while still with the unit, a warning for a
general hazard and critical for a major one. notify routes and escalates them like any alert;
supervision resolves one when its order goes to review or closes. Not detection rules (not in RULES)."""

COMMON_RULES: dict[str, Rule] = {r.name: r for r in COMMON}
READING_RULES: dict[str, tuple[Rule, ...]] = {"electrical": ELECTRICAL, "hydrant": HYDRANT, "pump": PUMP}
RULES: dict[str, dict[str, Rule]] = {
    kind: {r.name: r for r in (*rules, *COMMON)}
    for kind, rules in {**READING_RULES, "panel": PANEL}.items()
}

Level = Literal["warning", "alarm"]
LEVELS: tuple[Level, ...] = get_args(Level)
"""A rule's two levels, in the order its severities follow."""


def rated_params(rule: Rule, kind: str, p: Params, nameplate: dict[str, float]) -> Params:
    """`p` (a rule's levels as set for the default nameplate) moved to a device's rated values."""
    rated = nameplate.get(rule.rated) if rule.rated else None
    if rated is None:
        return p
    default = NAMEPLATE[kind][rule.rated]
    if default is None:
        return replace(p, alarm=rated)
    if rule.unit == "°C":
        shift = rated - default
        return replace(p, warning=None if p.warning is None else p.warning + shift,
                       alarm=None if p.alarm is None else p.alarm + shift)
    k = rated / default
    return replace(p, warning=None if p.warning is None else p.warning * k,
                   alarm=None if p.alarm is None else p.alarm * k, deadband=p.deadband * k)


def default_level(kind: str, rule: str, level: Level) -> float:
    """A rule's default level, for the parts that draw or quote it (dashboards, docs)."""
    value = getattr(RULES[kind][rule].defaults, level)
    if value is None:
        raise LookupError(f"the {kind} rule {rule} has no {level} level")
    return value


LABELS_ZH: dict[str, str] = {
    "a point false-alarms repeatedly": "点位反复误报", "arc fault": "故障电弧", "backup power fault": "备用电源故障",
    "battery low": "电池电量低", "readings unlike this device's learned normal": "读数组合偏离本设备常态",
    "current or cable temperature unusual for the time of day": "电流或线缆温度与该时段常态不符", "level shift": "读数水平突变", "temperature away from its normal": "温度偏离常态", "temperature no longer follows its daily cycle": "温度失去昼夜变化规律", "control room did not answer the duty check": "监控室未应答查岗", "cable temperature": "线缆温度", "cable temperature abnormal for this device": "线缆温度异常（偏离本设备常态）",
    "cable temperature rise": "线缆温升过快", "cover open": "井盖/箱盖打开", "fault": "故障", "fault unrepaired (hazard)": "故障未修复（隐患）",
    "fire alarm": "火警", "hazard order overdue": "隐患工单超期未整改", "freeze risk": "冰冻风险", "high water pressure": "水压过高", "hydrant tilted (knocked over?)": "消火栓倾斜（被撞倒？）",
    "impossible sensor values": "传感器数值不可能", "low outlet pressure": "出口压力低", "low water pressure": "水压低",
    "main power fault": "主电源故障", "motor current high": "电机电流过大", "offline (missed reporting periods)": "离线（未按周期上报）",
    "one cable hotter than its siblings": "单根线缆温度明显高于其他", "over-voltage": "过电压", "overcurrent": "过电流",
    "phase current unbalance (max - mean) / mean": "三相电流不平衡", "points shielded too long": "点位屏蔽时间过长",
    "pump temperature high": "水泵温度过高", "residual current": "剩余电流", "residual current abnormal for this device": "剩余电流异常（偏离本设备常态）",
    "residual current creeping up": "剩余电流缓慢上升", "sensor value frozen": "传感器数值冻结", "sensor value jumping": "传感器数值跳变",
    "standby pressure abnormally low for this pump": "稳压压力异常偏低", "supervisory signal": "监管信号",
    "supply over-voltage": "供电过电压", "supply under-voltage": "供电欠电压", "under-voltage": "欠电压", "vibration high": "振动过大",
    "water flowing with no fire logged (theft or leak)": "无火警时出水（盗水或泄漏）", "water pressure abnormally low for this hydrant": "水压异常偏低（偏离本消火栓常态）",
    "water pressure dropping": "水压快速下降", "water pressure sinking slowly (leak?)": "水压缓慢下降（泄漏？）",
}
"""Each rule's label in Chinese, for the screens and messages of a zh center; a test keeps it complete."""

ZONE_RULE_LABELS = {"water_main": ("water main pressure loss", "供水管网压力下降")}
"""Correlation's district alerts, which no device rule raises."""


REASONS_ZH: tuple[tuple[str, str], ...] = (
    (r"^(\d+) points in zone (.+) within (\S+) s$", "$2 区 $3 秒内 $1 个点位报警"),
    (r"^alarms in (\d+) zones$", "$1 个区域报警"),
    (r"^heat detector after smoke$", "感烟之后感温探测器报警"),
    (r"^manual call point$", "手动报警按钮"),
    (r"^linkage (.+) without reset$", "联动（$1）未复位"),
    (r"^(.+) at the same site$", "同一单位另有：$1"),
    (r"^not reset after (\S+) min$", "$1 分钟未复位"),
    (r"^reset within (\S+) s$", "$1 秒内复位"),
    (r"^point false-alarmed (\d+) times in (\S+) days$", "该点位 $2 天内误报 $1 次"),
)
"""Correlation's reasons (alerting/correlate.py, in English) as a zh center reads them: a pattern and
its Chinese with `$1`… for the pattern's groups, the same text for Python and the console's JavaScript."""


def reason_zh(reason: str) -> str:
    """A correlation reason in Chinese; one no pattern knows stays as it is."""
    for pattern, zh in REASONS_ZH:
        m = re.match(pattern, reason)
        if m:
            return m.expand(zh.replace("$", "\\"))
    return reason


EXPLAIN_ZH: tuple[tuple[str, str], ...] = (
    (r"\(missing, ", "(缺失, "),
    (r"([^;,\s][^;,]*?) higher than usual \(([^,]+), usually ([^;]+); (\d+%)\)", "$1高于常值（$2，常值 $3，占 $4）"),
    (r"([^;,\s][^;,]*?) lower than usual \(([^,]+), usually ([^;]+); (\d+%)\)", "$1低于常值（$2，常值 $3，占 $4）"),
    (r"([^;,\s][^;,]*?) shifted up: now about ([^,]+), usually (\S+)", "$1上移：现约 $2，常值 $3"),
    (r"([^;,\s][^;,]*?) shifted down: now about ([^,]+), usually (\S+)", "$1下移：现约 $2，常值 $3"),
    (r" \(CUSUM (\S+), h (\S+)\)$", "（累积和 $1，判定值 $2）"),
    (r"([^;,\s][^;,]*?) keeps (\d+%) of its usual daily cycle \(usually ([^)]+) from night to day\)",
     "$1的昼夜变化仅剩常态的 $2（通常昼夜相差 $3）"),
    (r"([^;,\s][^;,]*?) (-?[\d.]+(?:e[-+]?\d+)? \S*) at (\d\d:00-\d\d:00) UTC, usually (\S+) at this hour",
     "$1 $2（UTC $3），该时段常值 $4"),
    (r" \((\S+) dev\)$", "（偏离 $1 倍）"),
    (r"^(\S+) x its limit; ", "达限值的 $1 倍；"),
    (r"）, ", "）；"),
    (r" \[standby\]$", "（待机）"),
    (r" \[running\]$", "（运行）"),
    (r"held long enough$", "持续超限"),
    (r"no single metric stands out$", "无单一突出指标"),
)
"""How the learned detectors explain an alert (alerting/detect: the multivariate model's contributions, a
change point, the hour's load), in Chinese: patterns applied in turn to what follows the rule's label, then
each metric's label (`METRIC_LABELS_ZH`); the same text for Python and the console's JavaScript."""


def explain_zh(why: str) -> str | None:
    """A learned detector's explanation in Chinese; None when it is not one (a plain level's summary)."""
    said = why
    for pattern, zh in EXPLAIN_ZH:
        said = re.sub(pattern, zh.replace("$", "\\"), said)
    if said == why:
        return None
    for en in sorted(METRIC_LABELS_ZH, key=len, reverse=True):
        said = said.replace(en, METRIC_LABELS_ZH[en])
    return said


def summary_zh(alert: Any) -> str:
    """An alert said from its rule's Chinese label and its numbers, as the console says it:
    `水压低：0.09 MPa（阈值 0.1 MPa）`, `火警：3F east`. Alerting's own summaries are English and
    begin with the rule's label; a summary written otherwise is kept as written."""
    label = _labels().get(f"{alert.kind}.{alert.rule}")
    summary = alert.summary or alert.rule
    if label is None or not summary.startswith(label["en"]):
        return summary
    why = explain_zh(summary[len(label["en"]) + 2:]) if summary.startswith(label["en"] + ": ") else None
    if why is not None:
        return f"{label['zh']}：{why}"
    unit = alert.unit or label["unit"]
    if alert.value is not None and alert.threshold is not None:
        return f"{label['zh']}：{_num(alert.value)} {unit}（阈值 {_num(alert.threshold)} {unit}）"
    if alert.kind == "panel" and alert.zone:
        return f"{label['zh']}：{alert.zone}"
    return label["zh"]


def _num(v: float) -> str:
    """Four significant digits, no trailing zeros (the console's `num`)."""
    return f"{float(f'{v:.4g}'):g}"


@cache
def _labels() -> dict[str, dict[str, str]]:
    return rule_labels()


def rule_labels() -> dict[str, dict[str, str]]:
    """`kind.rule` → {en, zh, unit}: what a screen needs to say an alert in its language."""
    out = {f"{kind}.{name}": {"en": r.label, "zh": LABELS_ZH.get(r.label, r.label), "unit": r.unit}
           for kind, rules in RULES.items() for name, r in rules.items()}
    for r in HAZARD:
        out[f"{HAZARD_KIND}.{r.name}"] = {"en": r.label, "zh": LABELS_ZH[r.label], "unit": r.unit}
    for name, (en, zh) in ZONE_RULE_LABELS.items():
        out[f"hydrant.{name}"] = {"en": en, "zh": zh, "unit": ""}
    return out
