"""Statistics for the shift report: online rate, alerts per day, time to acknowledge, false-alarm points.

A panel fire alarm counts as false unless whoever resolved it said it was a real
fire (outcome `real_fire`): most are false (DOMAIN.md), so the default is the
likely truth, and a point that keeps appearing here needs a handling plan (GB 50440).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import case, func, select

from firewatch.api.auth import Viewer
from firewatch.api.context import Ctx
from firewatch.api.fields import SinceQuery, UntilQuery
from firewatch.api.tables import DeviceState
from firewatch.contract.db import Alert, AlertState, AuditEntry, Device, Severity

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"])
DAY_MS = 86_400_000
Offset = Annotated[
    int,
    Query(
        ge=-14 * 60,
        le=14 * 60,
        description="local time offset in minutes for day boundaries (China: 480)",
    ),
]


class OnlineRate(BaseModel):
    district: str
    kind: str
    total: int
    online: int
    offline: int
    unknown: int
    rate: float | None
    """online / (online + offline); devices that never reported are not counted against it."""


class DayCount(BaseModel):
    day: str
    rule: str
    kind: str
    severity: str
    count: int


class AckTime(BaseModel):
    severity: str
    acknowledged: int
    mean_s: float | None


class FalseAlarmPoint(BaseModel):
    device_id: str
    site: str
    district: str
    zone: str
    count: int
    last_ms: int


def _range(since: int | None, until: int | None, default_days: int = 30) -> tuple[int, int]:
    hi = until if until is not None else int(time.time() * 1000)
    return (since if since is not None else hi - default_days * DAY_MS), hi


@router.get(
    "/online", response_model=list[OnlineRate], summary="Device online rate per district and kind"
)
async def online_rate(c: Ctx, _: Viewer) -> list[OnlineRate]:
    on = func.sum(case((DeviceState.online.is_(True), 1), else_=0))
    off = func.sum(case((DeviceState.online.is_(False), 1), else_=0))
    q = (
        select(Device.district, Device.kind, func.count(), on, off)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .where(Device.retired_ms.is_(None))
        .group_by(Device.district, Device.kind)
        .order_by(Device.district, Device.kind)
    )
    async with c.store.session() as s:
        rows = (await s.execute(q)).all()
    out = []
    for district, kind, total, n_on, n_off in rows:
        n_on, n_off = int(n_on or 0), int(n_off or 0)
        rate = n_on / (n_on + n_off) if n_on + n_off else None
        out.append(
            OnlineRate(
                district=district,
                kind=kind,
                total=total,
                online=n_on,
                offline=n_off,
                unknown=total - n_on - n_off,
                rate=rate,
            )
        )
    return out


@router.get(
    "/alerts-per-day",
    response_model=list[DayCount],
    summary="Alerts started per day, rule and kind",
)
async def alerts_per_day(
    c: Ctx,
    _: Viewer,
    since: SinceQuery = None,
    until: UntilQuery = None,
    utc_offset_minutes: Offset = 0,
) -> list[DayCount]:
    lo, hi = _range(since, until)
    shift = utc_offset_minutes * 60_000
    day = (Alert.started_ms + shift) // DAY_MS
    q = (
        select(day, Alert.rule, Alert.kind, Alert.severity, func.count())
        .where(Alert.started_ms >= lo, Alert.started_ms < hi)
        .group_by(day, Alert.rule, Alert.kind, Alert.severity)
        .order_by(day, Alert.rule)
    )
    async with c.store.session() as s:
        rows = (await s.execute(q)).all()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [
        DayCount(
            day=(epoch + timedelta(days=int(d))).date().isoformat(),
            rule=r,
            kind=k,
            severity=sev,
            count=n,
        )
        for d, r, k, sev, n in rows
    ]


@router.get(
    "/time-to-acknowledge",
    response_model=list[AckTime],
    summary="Mean time from start to acknowledgement, per severity",
)
async def time_to_acknowledge(
    c: Ctx, _: Viewer, since: SinceQuery = None, until: UntilQuery = None
) -> list[AckTime]:
    lo, hi = _range(since, until)
    q = (
        select(Alert.severity, func.count(), func.avg(Alert.acknowledged_ms - Alert.started_ms))
        .where(Alert.acknowledged_ms.is_not(None), Alert.started_ms >= lo, Alert.started_ms < hi)
        .group_by(Alert.severity)
        .order_by(Alert.severity)
    )
    async with c.store.session() as s:
        rows = (await s.execute(q)).all()
    return [
        AckTime(severity=sev, acknowledged=n, mean_s=float(m) / 1000 if m is not None else None)
        for sev, n, m in rows
    ]


@router.get(
    "/false-alarms",
    response_model=list[FalseAlarmPoint],
    summary="Points with the most false fire alarms",
)
async def false_alarms(
    c: Ctx,
    _: Viewer,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[FalseAlarmPoint]:
    lo, hi = _range(since, until)
    async with c.store.session() as s:
        alerts = (
            await s.execute(
                select(
                    Alert.id,
                    Alert.device_id,
                    Alert.site,
                    Alert.district,
                    Alert.zone,
                    Alert.started_ms,
                ).where(
                    Alert.severity == Severity.FIRE,
                    Alert.state == AlertState.RESOLVED,
                    Alert.started_ms >= lo,
                    Alert.started_ms < hi,
                )
            )
        ).all()
        real: set[str] = set()
        resolves = select(AuditEntry.subject, AuditEntry.detail).where(
            AuditEntry.action == "resolve",
            AuditEntry.subject.like("alert:%"),
            AuditEntry.at_ms >= lo,
        )
        for subject, detail in (await s.execute(resolves)).all():
            if (detail or {}).get("outcome") == "real_fire":
                real.add(subject)
    points: dict[tuple[str, str], FalseAlarmPoint] = {}
    for alert_id, device_id, site, district, zone, started in alerts:
        if f"alert:{alert_id}" in real:
            continue
        p = points.get((device_id, zone))
        if p is None:
            p = points[(device_id, zone)] = FalseAlarmPoint(
                device_id=device_id,
                site=site,
                district=district,
                zone=zone,
                count=0,
                last_ms=started,
            )
        p.count += 1
        p.last_ms = max(p.last_ms, started)
    return sorted(points.values(), key=lambda p: (-p.count, -p.last_ms))[:limit]
