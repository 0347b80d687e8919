"""Indicators of a unit's fire-safety care over a day, a month or a rolling 30 days, from the platform's records.

Nothing here is typed in by anyone: each indicator is computed from what alerting, the gateway
and the supervisor stored (SQL: alerts, duty checks, hazard orders) and what the devices sent
(InfluxDB: pressure readings, panel shield events). Everything is computed *as of the period's
end*: an alert resolved, acknowledged or an order closed after the end counts as still open
then, so a past month gives the same figures whenever it is computed.

A device belongs to a unit through its site (`UnitSite`). Per-row work is numpy over arrays of
alerts, per-reading work is InfluxDB's `count()`; only the sparse shield events are paired in Python.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Select, and_, case, column, func, or_, select, table

from firewatch.contract.db import Alert, Device, Store
from firewatch.contract.influx import Influx
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import default_level
from firewatch.supervision.config import SupervisionConfig
from firewatch.supervision.hazards import FALSE_ALARM_RULE
from firewatch.supervision.models import HazardOrder, Unit, UnitSite

TZ = ZoneInfo("Asia/Shanghai")
"""Days and months are the center's (China Standard Time), not UTC."""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
FAULT_RULES = ("fault", "main_power", "backup_power")
"""Alerts that mean a monitored point or device is not intact (完好)."""
SHIELD_LOOKBACK_MS = 31 * DAY_MS
"""A point shielded before the period began is found by looking back this far."""
INFLUX_WINDOW_MS = 7 * DAY_MS
"""Readings are counted a week at a time (InfluxDB's shard length): a month of a city's hydrants in one
query took longer than the client's timeout on a loaded machine; grouped by device, not site, which
InfluxDB answered three times faster (`firewatch bench supervision`)."""
INFLUX_TIMEOUT_S = 300.0
"""A week of a city's readings is a scan, not an interactive query: on a loaded machine one took longer
than the client's default 10 s."""
INFLUX_PARALLEL = 2
"""Queries InfluxDB answers at once: one query keeps one core busy."""
PRESSURE_KINDS = ("hydrant", "pump")
"""Kinds whose pressure readings are judged against their floor."""
DUTY_CHECKS = table("duty_checks", column("device_id"), column("sent_ms"), column("answered_ms"),
                    column("response_s"), column("result"))
"""The gateway's duty-check log, read by its table (supervision imports only contract)."""


PressureFloor = Callable[[str, str, str, str, dict[str, Any]], float]
"""`(kind, district, site, device_id, thresholds)` → the pressure a hydrant's or pump's readings must stay
at or above: alerting's `pressure_low` warning level for that device, with its `[alerting]` district, site
and device settings and its registry thresholds. The api and the command hand in alerting's (supervision
imports only contract, and the fact is written once, there); `kind_floor` is the kind's default."""


def kind_floor(kind: str, _district: str, _site: str, _device_id: str, _thresholds: dict[str, Any]) -> float:
    return default_level(kind, "pressure_low", "warning")


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    """`day`, `month` or `rolling30`."""
    label: str
    start_ms: int
    end_ms: int
    """Exclusive: the moment the figures are taken."""

    @property
    def days(self) -> float:
        return (self.end_ms - self.start_ms) / DAY_MS


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=TZ).timestamp() * 1000)


def month(label: str) -> Period:
    """`2026-03` → that calendar month in China Standard Time; anything else is a ValueError saying the form."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", label)
    if not m or not 1 <= int(m[2]) <= 12:
        raise ValueError(f"month {label!r} is not YYYY-MM")
    first = date(int(m[1]), int(m[2]), 1)
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Period("month", label, _ms(first), _ms(nxt))


def month_of(ms: int) -> Period:
    """The calendar month (China Standard Time) holding the moment `ms`."""
    d = datetime.fromtimestamp(ms / 1000, TZ)
    return month(f"{d.year:04d}-{d.month:02d}")


def previous_month(p: Period) -> Period:
    first = datetime.fromtimestamp(p.start_ms / 1000, TZ).date()
    prev = (first - timedelta(days=1)).replace(day=1)
    return month(f"{prev.year:04d}-{prev.month:02d}")


def day(label: str) -> Period:
    try:
        d = date.fromisoformat(label)
    except ValueError:
        raise ValueError(f"day {label!r} is not YYYY-MM-DD") from None
    return Period("day", label, _ms(d), _ms(d + timedelta(days=1)))


def rolling30(end_ms: int) -> Period:
    """The 30 days before `end_ms` (the supervisor's clock for 'now')."""
    end = datetime.fromtimestamp(end_ms / 1000, TZ).isoformat(timespec="minutes")
    return Period("rolling30", f"30d-{end}", end_ms - 30 * DAY_MS, end_ms)


@dataclass(slots=True)
class Indicators:
    """One unit's indicators over one period; `None` where the unit has nothing to measure."""

    unit_id: int
    devices: int = 0
    integrity_rate: float = 1.0
    """完好率: share of device-time without an open fault, main or backup power fault."""
    faults: int = 0
    """Panel faults begun in the period."""
    faults_open: int = 0
    """...of which still unrepaired at its end."""
    repair_mean_h: float | None = None
    """Mean time to repair of the faults repaired."""
    repair_worst_h: float | None = None
    """Worst time to repair, counting an open fault's age at the end."""
    false_alarms: int = 0
    false_alarms_per_day: float = 0.0
    false_alarm_days_over: int = 0
    """Days with more false alarms than `[supervision.hazards] false_alarms_per_day`."""
    offline_rate: float = 0.0
    """Share of device-time offline."""
    shielded_h: float = 0.0
    """Point-hours with points shielded (屏蔽)."""
    pressure_readings: int = 0
    pressure_ok_rate: float | None = None
    """Share of hydrant and pump pressure readings at or above their floor."""
    duty_checks: int = 0
    duty_answered: int = 0
    duty_answer_rate: float | None = None
    duty_response_mean_s: float | None = None
    hazards_opened: int = 0
    hazards_overdue: int = 0
    """Orders open past their deadline at the end."""
    hazards_major_overdue: int = 0
    hazards_closed: int = 0
    hazards_closed_on_time: int = 0
    fire_alarms: int = 0
    alarm_handling_mean_s: float | None = None
    """Mean time from a fire alarm to its acknowledgement at the center."""
    missed_fire_responses: int = 0
    """Fire alarms neither acknowledged nor reset within `[supervision.scores] fire_response_s`."""
    evidence: int = 0
    """Records the figures came from (alerts, readings, duty checks, orders): 0 means nothing to judge."""

    def as_dict(self) -> dict[str, Any]:
        """Plain figures, floats to 6 places (what is stored, hashed and served)."""
        values = [getattr(self, k) for k in FIELDS]
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in zip(FIELDS, values, strict=True)}


FIELDS = tuple(f.name for f in fields(Indicators))


def _units(district: str | None, unit_ids: Iterable[int] | None, period: Period) -> Select[Any]:
    q = select(Unit.id).where(or_(Unit.retired_ms.is_(None), Unit.retired_ms >= period.start_ms))
    if district is not None:
        q = q.where(Unit.district == district)
    if unit_ids is not None:
        q = q.where(Unit.id.in_(list(unit_ids)))
    return q


async def compute(
    store: Store, influx: Influx | None, config: SupervisionConfig, period: Period,
    district: str | None = None, unit_ids: Iterable[int] | None = None, floor: PressureFloor = kind_floor,
) -> dict[int, Indicators]:
    """Every indicator of each unit of a district (or of the given units, or all) over `period`."""
    units = _units(district, unit_ids, period).subquery()
    async with store.session() as s:
        ids = [r for (r,) in await s.execute(select(units.c.id).order_by(units.c.id))]
        out = {u: Indicators(u) for u in ids}
        if not ids:
            return out
        index = {u: i for i, u in enumerate(ids)}
        sites = {site: u for site, u in await s.execute(
            select(UnitSite.site, UnitSite.unit_id).join(units, units.c.id == UnitSite.unit_id))}
        of_units = (select().select_from(Device).join(UnitSite, UnitSite.site == Device.site)
                    .join(units, units.c.id == UnitSite.unit_id)
                    .where(or_(Device.retired_ms.is_(None), Device.retired_ms >= period.start_ms)))
        counted = (await s.execute(of_units.add_columns(UnitSite.unit_id, func.count())
                                   .group_by(UnitSite.unit_id))).all()
        pressure = (await s.execute(of_units.add_columns(
            Device.id, Device.site, Device.kind, Device.district, Device.thresholds)
            .where(Device.kind.in_(PRESSURE_KINDS)))).all()
        alerts = (await s.execute(
            select(UnitSite.unit_id, Alert.rule, Alert.device_id, Alert.started_ms, Alert.resolved_ms,
                   Alert.acknowledged_ms, Alert.probable)
            .join(UnitSite, UnitSite.site == Alert.site).join(units, units.c.id == UnitSite.unit_id)
            .where(Alert.started_ms < period.end_ms,
                   or_(Alert.resolved_ms.is_(None), Alert.resolved_ms >= period.start_ms),
                   Alert.rule.in_((*FAULT_RULES, FALSE_ALARM_RULE, "offline"))))).all()
        duty = (await s.execute(
            select(UnitSite.unit_id, func.count(),
                   func.sum(case((and_(DUTY_CHECKS.c.answered_ms.is_not(None),
                                       DUTY_CHECKS.c.answered_ms < period.end_ms), 1), else_=0)),
                   func.avg(DUTY_CHECKS.c.response_s))
            .select_from(DUTY_CHECKS).join(Device, Device.id == DUTY_CHECKS.c.device_id)
            .join(UnitSite, UnitSite.site == Device.site).join(units, units.c.id == UnitSite.unit_id)
            .where(DUTY_CHECKS.c.sent_ms >= period.start_ms, DUTY_CHECKS.c.sent_ms < period.end_ms,
                   DUTY_CHECKS.c.result != "pending")
            .group_by(UnitSite.unit_id))).all()
        hazards = (await s.execute(
            select(HazardOrder.unit_id, HazardOrder.severity, HazardOrder.opened_ms, HazardOrder.deadline_ms,
                   HazardOrder.closed_ms)
            .join(units, units.c.id == HazardOrder.unit_id)
            .where(HazardOrder.opened_ms < period.end_ms,
                   or_(HazardOrder.closed_ms.is_(None), HazardOrder.closed_ms >= period.start_ms)))).all()
    n = np.zeros(len(ids))
    for u, count in counted:
        n[index[u]] = count
        out[u].devices = count
    for u, *_ in (*alerts, *hazards):
        out[u].evidence += 1
    _from_alerts(out, index, n, alerts, config, period)
    _from_duty(out, duty)
    _from_hazards(out, hazards, period)
    if influx is not None:
        floors = {kind: {d: floor(kind, dist, site, d, thresholds or {})
                         for d, site, k, dist, thresholds in pressure if k == kind} for kind in PRESSURE_KINDS}
        await _from_influx(out, sites, {d: sites[site] for d, site, *_ in pressure}, floors, influx, period, district)
    return out


def _from_alerts(out: dict[int, Indicators], index: dict[int, int], n: np.ndarray, rows: list[Any],
                 config: SupervisionConfig, period: Period) -> None:
    if not rows:
        return
    unit = np.array([index[r[0]] for r in rows])
    rule = np.array([r[1] for r in rows])
    start = np.array([r[3] for r in rows], dtype=np.int64)
    end_at = np.int64(period.end_ms)
    resolved = np.array([r[4] if r[4] is not None and r[4] < period.end_ms else period.end_ms for r in rows],
                        dtype=np.int64)
    done = np.array([r[4] is not None and r[4] < period.end_ms for r in rows])
    acked = np.array([r[5] if r[5] is not None and r[5] < period.end_ms else -1 for r in rows], dtype=np.int64)
    probable = np.array([bool(r[6]) for r in rows])
    began_in = start >= period.start_ms
    span = np.clip(resolved, period.start_ms, end_at) - np.clip(start, period.start_ms, end_at)
    device_time = np.maximum(n, 1) * (period.end_ms - period.start_ms)
    size = len(index)

    def per_unit(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(unit[mask], weights=None if weights is None else weights[mask], minlength=size)

    def mean_per_unit(mask: np.ndarray, values: np.ndarray) -> list[float | None]:
        """Each unit's mean of `values` over its alerts in `mask`; None for a unit with none."""
        n, total = per_unit(mask), per_unit(mask, values)
        return [float(t / k) if k else None for t, k in zip(total, n, strict=True)]

    fault = np.isin(rule, FAULT_RULES)
    integrity = 1 - np.minimum(per_unit(fault, span) / device_time, 1)
    offline = np.minimum(per_unit(rule == "offline", span) / device_time, 1)
    panel_fault = (rule == "fault") & began_in
    repair_h = (resolved - start) / HOUR_MS
    faults, faults_open = per_unit(panel_fault), per_unit(panel_fault & ~done)
    repair_mean = mean_per_unit(panel_fault & done, repair_h)
    worst = np.full(size, -1.0)
    np.maximum.at(worst, unit[panel_fault], repair_h[panel_fault])
    fire = (rule == FALSE_ALARM_RULE) & began_in
    false_alarm = fire & done & ~probable
    local_day = (start + 8 * HOUR_MS) // DAY_MS
    days_over = np.zeros(size, dtype=np.int64)
    if false_alarm.any():
        pairs, per_day = np.unique(np.stack([unit[false_alarm], local_day[false_alarm]]), axis=1,
                                   return_counts=True)
        days_over = np.bincount(pairs[0][per_day > config.hazards.false_alarms_per_day], minlength=size)
    ack_s = np.where(acked >= 0, (acked - start) / 1000, np.nan)
    responded = np.fmin(np.where(acked >= 0, acked, np.nan), np.where(done, resolved, np.nan))
    missed = fire & ~((responded - start) <= config.scores.fire_response_s * 1000)
    handling_mean = mean_per_unit(fire & (acked >= 0), np.nan_to_num(ack_s))
    false_alarms, fires, missed_n = per_unit(false_alarm), per_unit(fire), per_unit(missed)
    for u, i in index.items():
        x = out[u]
        x.integrity_rate, x.offline_rate = float(integrity[i]), float(offline[i])
        x.faults, x.faults_open = int(faults[i]), int(faults_open[i])
        x.repair_mean_h = repair_mean[i]
        x.repair_worst_h = float(worst[i]) if worst[i] >= 0 else None
        x.false_alarms = int(false_alarms[i])
        x.false_alarms_per_day = x.false_alarms / period.days
        x.false_alarm_days_over = int(days_over[i])
        x.fire_alarms = int(fires[i])
        x.missed_fire_responses = int(missed_n[i])
        x.alarm_handling_mean_s = handling_mean[i]


def _from_duty(out: dict[int, Indicators], rows: list[Any]) -> None:
    for u, asked, answered, mean_s in rows:
        x = out[u]
        x.duty_checks, x.duty_answered = int(asked), int(answered or 0)
        x.evidence += x.duty_checks
        x.duty_answer_rate = x.duty_answered / x.duty_checks if x.duty_checks else None
        x.duty_response_mean_s = float(mean_s) if mean_s is not None else None


def _from_hazards(out: dict[int, Indicators], rows: list[Any], period: Period) -> None:
    for u, severity, opened, deadline, closed in rows:
        x = out[u]
        x.hazards_opened += opened >= period.start_ms
        closed_by_end = closed is not None and closed < period.end_ms
        if closed_by_end:
            x.hazards_closed += 1
            x.hazards_closed_on_time += closed <= deadline
        elif deadline < period.end_ms:
            x.hazards_overdue += 1
            x.hazards_major_overdue += severity == "major"


async def _from_influx(out: dict[int, Indicators], sites: dict[str, int], device_units: dict[str, int],
                       floors: dict[str, dict[str, float]], influx: Influx, period: Period,
                       district: str | None) -> None:
    in_district = " AND district = $district" if district is not None else ""
    params = {"district": district} if district is not None else None
    total: dict[int, int] = {}
    low: dict[int, int] = {}

    running = asyncio.Semaphore(INFLUX_PARALLEL)

    async def count(into: dict[int, int], m: str, condition: str, devices: dict[str, float], level: float | None,
                    start: int) -> None:
        """Add each unit's readings of `m` in the window from `start` matching `condition`, from its devices
        (those whose floor is `level`)."""
        q = (f'SELECT count("pressure_mpa") FROM "{m}" WHERE time >= {start}ms AND '
             f'time < {min(start + INFLUX_WINDOW_MS, period.end_ms)}ms{in_district}{condition} GROUP BY "device_id"')
        async with running:
            answer = await influx.query(q, params, timeout_s=INFLUX_TIMEOUT_S)
        for sr in answer:
            device = sr.tags.get("device_id", "")
            if device in devices and (level is None or devices[device] == level) and sr.values:
                u = device_units[device]
                into[u] = into.get(u, 0) + int(sr.values[0][1])

    counts = []
    for kind, floor_of in floors.items():
        m = SPECS[kind].measurement
        # Below a floor, not at or above it: a field filter scans every point either way, but few series
        # answer. One query per distinct floor (most devices keep the kind's), each device counted against
        # its own.
        asked = [(total, "", None)] + [(low, f' AND "pressure_mpa" < {level}', level)
                                       for level in sorted(set(floor_of.values()))]
        counts += [count(into, m, condition, floor_of, level, start) for into, condition, level in asked
                   for start in range(period.start_ms, period.end_ms, INFLUX_WINDOW_MS)]
    await asyncio.gather(*counts)
    for u, n in total.items():
        out[u].pressure_readings = n
        out[u].evidence += n
        out[u].pressure_ok_rate = 1 - low.get(u, 0) / n if n else None
    shield_where = (f"time >= {period.start_ms - SHIELD_LOOKBACK_MS}ms AND time < {period.end_ms}ms "
                    f"AND (\"event\" = 'shield' OR \"event\" = 'unshield'){in_district}")
    panel = SPECS["panel"].measurement
    for sr in await influx.query(f'SELECT "event", "loop", "point" FROM "{panel}" WHERE {shield_where} '
                                 'GROUP BY "device_id", "site"', params):
        u = sites.get(sr.tags.get("site", ""))
        if u is not None:
            out[u].shielded_h += _shielded_ms(sr.values, period) / HOUR_MS
            out[u].evidence += len(sr.values)


def _shielded_ms(rows: list[list[Any]], period: Period) -> int:
    """Point-milliseconds shielded within the period, from one device's shield/unshield events in time order."""
    since: dict[tuple[Any, Any], int] = {}
    total = 0

    def add(start: int, end: int) -> int:
        return max(0, min(end, period.end_ms) - max(start, period.start_ms))

    for ts, event, loop, point in rows:
        key = (loop, point)
        if event == "shield":
            since.setdefault(key, ts)
        elif key == (None, None):
            total += sum(add(t, ts) for t in since.values())
            since.clear()
        elif key in since:
            total += add(since.pop(key), ts)
    return total + sum(add(t, period.end_ms) for t in since.values())
