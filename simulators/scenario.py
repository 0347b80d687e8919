"""Scenarios: incidents injected into the simulated city, and the ground truth they leave.

A scenario file is YAML:

    seed: 7                      # picks devices and times; default: the fleet's seed
    incidents:
      - type: cable_overheat     # one of INCIDENTS
        device: EL-510104-0001   # optional; else picked at random (of the right kind)
        district: "510104"       # optional; limits the random pick
        at: 2h                   # offset from the run's start, or an ISO time; default random
        duration: 40m            # default per type
        days: 3                  # false_alarm: how many days it repeats
        count: 6                 # water_main: how many hydrants (default: 60 % of the district's)

Each incident's physical signature is documented in docs/simulators.md
and in INCIDENTS below; `Incident.truth()` is the line written to the truth file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

from firewatch.contract.kinds import Kind
from firewatch.simulators.fleet import Device, Fleet

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
_UNITS = {"ms": 1, "s": 1000, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class ScenarioError(ValueError):
    """A scenario file is wrong; the message says which incident and which key."""


def parse_duration(text: str | float) -> int:
    """`90s`, `40m`, `2h`, `1d6h`, `3d` or a number of seconds, in milliseconds."""
    if isinstance(text, (int, float)):
        return int(text * 1000)
    s = str(text).strip().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return int(float(s) * 1000)
    parts = _DURATION.findall(s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise ValueError(f"{text!r} is not a duration like 90s, 40m, 2h, 1d6h")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))


def parse_time(text: str | float | datetime, start_ms: int) -> int:
    """An ISO time (UTC unless it says otherwise), epoch ms, or an offset (`2h`, `-3d`) from `start_ms`."""
    if isinstance(text, datetime):
        dt = text if text.tzinfo else text.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    if isinstance(text, (int, float)) and text > 1e11:
        return int(text)
    offset = str(text).strip()
    sign = -1 if offset.startswith("-") else 1
    try:
        return start_ms + sign * parse_duration(offset.lstrip("+-"))
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{text!r} is neither an offset like 2h nor an ISO time") from None
    return parse_time(dt, start_ms)


@dataclass(slots=True)
class Incident:
    """One occurrence of an incident on one device, resolved to event times."""

    type: str
    device: Device
    start_ms: int
    end_ms: int
    severity: str
    zone: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def truth(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "device_id": self.device.id,
            "district": self.device.district,
            "site": self.device.site,
            "incident": self.type,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "severity": self.severity,
        }
        if self.zone is not None:
            line["zone"] = self.zone
        return line


Effect = Callable[[dict[str, np.ndarray], np.ndarray, np.ndarray, Incident, np.ndarray], None]
"""Changes telemetry in place: (values, row indices, their event times, incident, uniform noise per row)."""


@dataclass(frozen=True, slots=True)
class IncidentType:
    kind: Kind | None
    """None: any kind (a device going silent)."""
    severity: str
    duration: str
    signature: str
    effect: Effect | None = None
    params: tuple[str, ...] = ()
    """Keys a scenario may set besides type, device, district, at and duration."""


def _frac(t: np.ndarray, inc: Incident, share: float = 1.0) -> np.ndarray:
    """0 at the start, 1 once `share` of the incident's window has passed."""
    return np.clip((t - inc.start_ms) / max(1.0, share * (inc.end_ms - inc.start_ms)), 0.0, 1.0)


def _overheat(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    m = f"temp{inc.params['phase']}_c"
    v[m][i] += (inc.params["peak_c"] - v[m][i]) * _frac(t, inc, 0.75)


def _residual(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["residual_ma"][i] += (inc.params["peak_ma"] - inc.device.params["residual_ma"]) * _frac(t, inc, 0.9)


def _arc(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["arc_count"][i] = 14 + np.floor(r * 20)


def _imbalance(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    hot = inc.params["phase"]
    for n, ph in enumerate("abc"):
        v[f"current_{ph}_a"][i] *= 1.8 if ph == hot else 0.6
        if ph == hot:
            v[f"temp{n + 1}_c"][i] += 12.0


def _pressure_drop(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["pressure_mpa"][i] = 0.03 + 0.03 * r


def _leak(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["pressure_mpa"][i] += (inc.params["floor_mpa"] - v["pressure_mpa"][i]) * _frac(t, inc)


def _knocked(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["tilt_deg"][i] = 60 + 25 * r
    v["pressure_mpa"][i] = 0.01 + 0.03 * r
    v["water_flow"][i] = 1


def _theft(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["cover_open"][i] = 1
    v["water_flow"][i] = 1
    v["pressure_mpa"][i] -= 0.04


def _main(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["pressure_mpa"][i] = 0.05 + 0.04 * r


def _freeze(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["temp_c"][i] += (inc.params["low_c"] - v["temp_c"][i]) * _frac(t, inc, 0.4)


def _pump(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    v["current_a"][i] = inc.device.params["rated_a"] * (0.95 + 0.1 * r)
    v["pressure_mpa"][i] = 0.03 + 0.03 * r
    v["flow_lps"][i] = 0.4 * r
    v["vibration_mm_s"][i] = 6 + 3 * r
    v["voltage_v"][i] -= 6


def _fire_heat(v: dict, i: np.ndarray, t: np.ndarray, inc: Incident, r: np.ndarray) -> None:
    warm = _frac(t, inc, 0.5)
    for n in range(1, 5):
        m = f"temp{n}_c"
        v[m][i] += (np.minimum(v[m][i] + 25.0, 65.0) - v[m][i]) * warm
    v["residual_ma"][i] += 100.0 * warm


INCIDENTS: dict[str, IncidentType] = {
    "cable_overheat": IncidentType(
        Kind.ELECTRICAL, "critical", "40m",
        "one cable temperature (temp1..3, `phase`) climbs linearly to `peak_c` (95) over the first "
        "75 % of the window and holds; crosses 70 °C about 55-65 % into the window", _overheat, ("phase", "peak_c")),
    "residual_creep": IncidentType(
        Kind.ELECTRICAL, "critical", "4d",
        "residual current creeps linearly from its baseline (25-160 mA) to `peak_ma` (450) over 90 % "
        "of the window, daily load ripple on top; crosses 300 mA about 60-75 % into the window", _residual,
        ("peak_ma",)),
    "arc_fault": IncidentType(
        Kind.ELECTRICAL, "critical", "5m",
        "arc_count 14-33 arcing half-cycles/s in every report of the window (healthy: 0, rarely 1-3)", _arc),
    "phase_imbalance": IncidentType(
        Kind.ELECTRICAL, "warning", "3h",
        "one phase (`phase`) carries 1.8x its current, the other two 0.6x; that phase's cable is "
        "12 °C hotter than its siblings (stays below 70 °C)", _imbalance, ("phase",)),
    "pressure_drop": IncidentType(
        Kind.HYDRANT, "critical", "1h",
        "pressure falls at once to 0.03-0.06 MPa (below 0.10) for the whole window, then recovers",
        _pressure_drop),
    "slow_leak": IncidentType(
        Kind.HYDRANT, "warning", "2d",
        "pressure slides linearly from normal to `floor_mpa` (0.12) over the window: below 0.14 "
        "(warning) in its last part, never below 0.10", _leak, ("floor_mpa",)),
    "knocked_over": IncidentType(
        Kind.HYDRANT, "critical", "3h",
        "tilt 60-85° (>= 30), water_flow true, pressure 0.01-0.04 MPa (broken off, water gushing)",
        _knocked),
    "water_theft": IncidentType(
        Kind.HYDRANT, "warning", "30m",
        "cover_open and water_flow true, pressure 0.04 MPa lower (stays above 0.14), no panel fire "
        "anywhere near", _theft),
    "water_main": IncidentType(
        Kind.HYDRANT, "critical", "2h",
        "`count` hydrants of one district (default 60 %, at least 3) drop to 0.05-0.09 MPa, their "
        "onsets staggered over 4 minutes; one truth line per hydrant", _main, ("count",)),
    "freeze_risk": IncidentType(
        Kind.HYDRANT, "warning", "12h",
        "temp_c falls linearly to `low_c` (-4 °C) over the first 40 % of the window and holds; "
        "crosses 2 °C about 25-35 % into it", _freeze, ("low_c",)),
    "pump_failure": IncidentType(
        Kind.PUMP, "critical", "20m",
        "motor running at rated current (30-90 A), vibration 6-9 mm/s, but outlet pressure 0.03-0.06 "
        "MPa and flow < 0.4 L/s (healthy test run: pressure +0.25 MPa, flow 20-40 L/s)", _pump),
    "panel_fire": IncidentType(
        Kind.PANEL, "fire", "30m",
        "in one zone: smoke point at 0 s, a second smoke point at 30-70 s, linkage start/feedback of "
        "the smoke exhaust fan at 95/105 s, a heat detector at 130-190 s, a manual call point at 230 s, "
        "fire pump start/feedback at 250/265 s; no reset", params=("zone",)),
    "false_alarm": IncidentType(
        Kind.PANEL, "fire", "6m",
        "one smoke point (the same every day, kitchen zone when there is one) goes to fire and the "
        "panel is reset 2-6 minutes later; repeats `days` days (3) at the same hour +-15 min; "
        "one truth line per day", params=("zone", "days")),
    "panel_fault": IncidentType(
        Kind.PANEL, "warning", "",
        "one `fault` event (component detector) and no fault_cleared: the fault stands until the end "
        "of the run (end_ms is the run's end)", params=("zone",)),
    "fire_heat": IncidentType(
        Kind.ELECTRICAL, "warning", "30m",
        "added by panel_fire to every electrical detector of the burning building, from 60 s after the "
        "first alarm: all four cable temperatures rise by up to 25 °C (capped at 65 °C, so below 70) and "
        "residual current by 100 mA (stays below 300) over the first half of the window, then hold", _fire_heat),
    "silent": IncidentType(
        None, "warning", "2h",
        "the device sends nothing (no telemetry, heartbeat or status) during the window, without a "
        "will: its connection looks alive; offline after 2 missed reporting periods"),
}


_COMMON_KEYS = {"type", "device", "district", "at", "duration"}


@dataclass(slots=True)
class Scenario:
    """Incident specs as read from YAML; `resolve` turns them into incidents on one fleet."""

    incidents: list[dict[str, Any]]
    seed: int | None = None
    name: str = ""

    @classmethod
    def load(cls, path: Path | str) -> Scenario:
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
        return cls.from_dict(doc, name=Path(path).stem)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], name: str = "") -> Scenario:
        if not isinstance(doc, dict) or not isinstance(doc.get("incidents", []), list):
            raise ScenarioError("a scenario is a mapping with a list under `incidents`")
        specs = doc.get("incidents") or []
        for n, spec in enumerate(specs):
            if not isinstance(spec, dict) or spec.get("type") not in INCIDENTS:
                got = spec.get("type") if isinstance(spec, dict) else spec
                raise ScenarioError(f"incidents[{n}].type: {got!r} is not one of {sorted(INCIDENTS)}")
            allowed = _COMMON_KEYS | set(INCIDENTS[spec["type"]].params)
            for key in spec:
                if key not in allowed:
                    raise ScenarioError(f"incidents[{n}].{key}: not a key of {spec['type']} "
                                        f"(one of {', '.join(sorted(allowed))})")
        return cls(list(specs), doc.get("seed"), name)

    def resolve(self, fleet: Fleet, start_ms: int, end_ms: int | None) -> list[Incident]:
        """Pick devices and times; the same scenario, fleet and range give the same incidents."""
        rng = np.random.default_rng(self.seed if self.seed is not None else fleet.seed)
        span_end = end_ms if end_ms is not None else start_ms + DAY
        used: set[str] = set()
        out: list[Incident] = []
        for n, spec in enumerate(self.incidents):
            try:
                out.extend(_resolve(spec, fleet, start_ms, span_end, rng, used))
            except (ValueError, KeyError, TypeError) as exc:
                raise ScenarioError(f"incidents[{n}] ({spec.get('type')}): {exc}") from None
        out.sort(key=lambda i: (i.start_ms, i.device.id))
        return out


def write_truth(incidents: list[Incident], path: Path | str) -> None:
    """Ground truth as JSON lines, one per incident occurrence and device, in start order."""
    with open(path, "wb") as f:
        f.writelines(orjson.dumps(inc.truth()) + b"\n" for inc in incidents)


def _pick(spec: dict[str, Any], fleet: Fleet, kind: Kind | None, rng: np.random.Generator,
          used: set[str]) -> Device:
    if "device" in spec:
        device = fleet.by_id().get(str(spec["device"]))
        if device is None:
            raise ValueError(f"device {spec['device']!r} is not in the fleet")
        if kind is not None and device.kind is not kind:
            raise ValueError(f"device {device.id} is a {device.kind.value}, this incident needs a {kind.value}")
        return device
    pool = [d for d in fleet.devices if (kind is None or d.kind is kind)
            and ("district" not in spec or d.district == str(spec["district"]))]
    if not pool:
        raise ValueError(f"the fleet has no {kind.value if kind else ''} device to pick"
                         + (f" in district {spec['district']}" if "district" in spec else ""))
    fresh = [d for d in pool if d.id not in used] or pool
    device = fresh[int(rng.integers(len(fresh)))]
    used.add(device.id)
    return device


def _window(spec: dict[str, Any], itype: IncidentType, start_ms: int, end_ms: int,
            rng: np.random.Generator) -> tuple[int, int]:
    text = spec.get("duration", itype.duration)
    duration = parse_duration(text) if text else None
    if "at" in spec:
        at = parse_time(spec["at"], start_ms)
    else:
        latest = max(start_ms, end_ms - (duration or 0))
        at = int(start_ms + rng.uniform(0, 1) * (latest - start_ms))
    return at, at + duration if duration is not None else max(end_ms, at)


def _resolve(spec: dict[str, Any], fleet: Fleet, start_ms: int, end_ms: int, rng: np.random.Generator,
             used: set[str]) -> list[Incident]:
    kind_name = spec["type"]
    itype = INCIDENTS[kind_name]
    params = {k: v for k, v in spec.items() if k not in _COMMON_KEYS}
    if kind_name == "water_main":
        return _water_main(spec, fleet, itype, start_ms, end_ms, rng, used)
    device = _pick(spec, fleet, itype.kind, rng, used)
    at, end = _window(spec, itype, start_ms, end_ms, rng)
    inc = Incident(kind_name, device, at, end, itype.severity, params=params)
    p = inc.params
    if kind_name == "cable_overheat":
        p["phase"] = int(p.get("phase", rng.integers(1, 4)))
        p["peak_c"] = float(p.get("peak_c", 95.0))
        if p["phase"] not in (1, 2, 3):
            raise ValueError("phase must be 1, 2 or 3 (temp1_c..temp3_c)")
    elif kind_name == "phase_imbalance":
        p["phase"] = str(p.get("phase", "abc"[int(rng.integers(3))]))
        if p["phase"] not in ("a", "b", "c"):
            raise ValueError("phase must be a, b or c")
    elif kind_name == "residual_creep":
        p["peak_ma"] = float(p.get("peak_ma", 450.0))
    elif kind_name == "slow_leak":
        p["floor_mpa"] = float(p.get("floor_mpa", 0.12))
    elif kind_name == "freeze_risk":
        p["low_c"] = float(p.get("low_c", -4.0))
    elif kind_name in ("panel_fire", "panel_fault", "false_alarm"):
        return _panel(inc, spec, fleet, end_ms, rng)
    return [inc]


def _water_main(spec: dict[str, Any], fleet: Fleet, itype: IncidentType, start_ms: int, end_ms: int,
                rng: np.random.Generator, used: set[str]) -> list[Incident]:
    hydrants = fleet.of_kind(Kind.HYDRANT)
    districts = sorted({h.district for h in hydrants})
    if not districts:
        raise ValueError("the fleet has no hydrants")
    district = str(spec["district"]) if "district" in spec else max(
        districts, key=lambda d: (sum(h.district == d for h in hydrants), d))
    pool = [h for h in hydrants if h.district == district]
    if not pool:
        raise ValueError(f"district {district} has no hydrants")
    count = min(len(pool), int(spec.get("count", max(3, round(0.6 * len(pool))))))
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]
    at, end = _window(spec, itype, start_ms, end_ms, rng)
    out = []
    for h in chosen:
        used.add(h.id)
        onset = at + int(rng.uniform(0, 4 * MINUTE))
        out.append(Incident("water_main", h, onset, end, itype.severity))
    return out


def _panel(inc: Incident, spec: dict[str, Any], fleet: Fleet, end_ms: int,
           rng: np.random.Generator) -> list[Incident]:
    zones = inc.device.zones
    if inc.type == "false_alarm" and "zone" not in spec and "1F kitchen" in zones:
        inc.zone = "1F kitchen"
    else:
        inc.zone = str(spec.get("zone", zones[int(rng.integers(len(zones)))]))
    z = zones.index(inc.zone) if inc.zone in zones else 0
    inc.params["loop"] = 1 + z % int(inc.device.params.get("loops", 1))
    inc.params["point"] = 10 + 20 * z + int(rng.integers(0, 8))
    if inc.type == "panel_fire":
        heated = [Incident("fire_heat", d, inc.start_ms + MINUTE, inc.end_ms, INCIDENTS["fire_heat"].severity)
                  for d in fleet.devices if d.kind is Kind.ELECTRICAL and d.site == inc.device.site]
        return [inc, *heated]
    if inc.type != "false_alarm":
        return [inc]
    out = []
    for day in range(int(spec.get("days", 3))):
        start = inc.start_ms + day * DAY + (int(rng.uniform(-15, 15) * MINUTE) if day else 0)
        if start >= end_ms:
            break
        reset = start + int(rng.uniform(2, 6) * MINUTE)
        out.append(Incident("false_alarm", inc.device, start, reset, inc.severity, inc.zone, dict(inc.params)))
    return out


def panel_events(inc: Incident, rng: np.random.Generator) -> list[tuple[int, dict[str, Any]]]:
    """The GB 26875 events an incident on a panel sends, as (event time, payload fields)."""
    if inc.type not in ("panel_fire", "false_alarm", "panel_fault"):
        return []
    loop, point, zone = inc.params["loop"], inc.params["point"], inc.zone
    s = inc.start_ms

    def ev(dt_s: float, event: str, component: str, pt: int | None) -> tuple[int, dict[str, Any]]:
        fields = {"event": event, "loop": loop, "point": pt, "zone": zone, "component": component}
        return s + int(dt_s * 1000), {k: v for k, v in fields.items() if v is not None}

    if inc.type == "panel_fire":
        linkage = 200 + point % 50
        return [
            ev(0, "fire", "smoke", point),
            ev(rng.uniform(30, 70), "fire", "smoke", point + 1),
            ev(95, "start", "smoke_exhaust_fan", linkage),
            ev(105, "feedback", "smoke_exhaust_fan", linkage),
            ev(rng.uniform(130, 190), "fire", "heat", point + 5),
            ev(230, "fire", "manual", point + 9),
            ev(250, "start", "fire_pump", linkage + 1),
            ev(265, "feedback", "fire_pump", linkage + 1),
        ]
    if inc.type == "false_alarm":
        return [ev(0, "fire", "smoke", point), (inc.end_ms, {"event": "reset"})]
    return [ev(0, "fault", "detector", point)]
