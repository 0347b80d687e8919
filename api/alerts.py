"""Alerts: the queue, one alert with its history and readings, and the operator's three actions.

Acknowledge, resolve and comment each change the alert row with one targeted
UPDATE guarded by the state it expects (so two operators clicking at once get
one success and one 409, never a lost update) and write an audit entry with the
token's name, then wake this api's stream clients. Alerting picks the change
up from the SQL store (`Pipeline.sync`) and announces it on the alert's MQTT
topic, so the topic keeps one writer and one format.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, func, select, update

from firewatch.api.auth import Operator, Principal, Viewer
from firewatch.api.context import Context, Ctx
from firewatch.api.errors import conflict, not_found
from firewatch.api.fields import (
    DeviceId,
    District,
    IdPath,
    KindName,
    Limit,
    Note,
    Offset,
    SinceQuery,
    Site,
    UntilQuery,
)
from firewatch.api.readings import ReadingsOut, readings
from firewatch.contract.db import (
    OPEN_STATES,
    Alert,
    AlertState,
    AuditEntry,
    Device,
    Severity,
    now_ms,
)
from firewatch.contract.kinds import SPECS

router = APIRouter(prefix="/api/v1", tags=["alerts"])
SEVERITY_RANK = case(
    {s.value: rank for rank, s in enumerate(reversed(Severity))}, value=Alert.severity, else_=len(Severity)
)
"""Most urgent first: the queue's order."""
WAITING_RANK = case({AlertState.FIRING.value: 0}, value=Alert.state, else_=1)
"""Within a severity, what nobody has acknowledged yet first."""
Outcome = Literal["", "real_fire", "false_alarm", "fault", "test", "other"]


ALERT_COLUMNS = tuple(Alert.__table__.columns)


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    fingerprint: str
    rule: str
    severity: str
    state: str
    kind: str
    device_id: str
    district: str
    site: str
    zone: str
    metric: str
    value: float | None
    threshold: float | None
    unit: str
    summary: str
    probable: bool
    score: float
    reasons: list[str]
    parent_id: int | None
    started_ms: int
    last_seen_ms: int
    resolved_ms: int | None
    acknowledged_ms: int | None
    acknowledged_by: str
    updated_ms: int


class AlertList(BaseModel):
    total: int
    items: list[AlertOut]


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at_ms: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]


class AlertDetail(BaseModel):
    alert: AlertOut
    history: list[AuditOut]
    readings: ReadingsOut | None = Field(
        description="around the alert; null for district alerts or when InfluxDB is down"
    )


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note = ""


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Outcome = Field(
        "", description="what it turned out to be; false_alarm feeds the false-alarm statistics"
    )
    note: Note = ""


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=4000, pattern=r"^[^\x00]*$")]


def queue_order() -> tuple[Any, ...]:
    """Fire first; within a severity what nobody has acknowledged yet, then by probable-fire score, then newest.

    An acknowledged alarm has a person on it; an unacknowledged one below it would wait unseen.
    """
    return (
        SEVERITY_RANK,
        WAITING_RANK,
        Alert.probable.desc(),
        Alert.score.desc(),
        Alert.started_ms.desc(),
        Alert.id.desc(),
    )


@router.get(
    "/alerts", response_model=AlertList, summary="List alerts, queue order (severity, then score)"
)
async def list_alerts(
    request: Request,
    c: Ctx,
    _: Viewer,
    state: Annotated[
        list[AlertState | Literal["open"]] | None, Query(description="open = firing or acknowledged")
    ] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    kind: Annotated[KindName | None, Query()] = None,
    district: Annotated[District | None, Query()] = None,
    site: Annotated[Site | None, Query()] = None,
    device_id: Annotated[DeviceId | None, Query()] = None,
    rule: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: Limit = 200,
    offset: Offset = 0,
) -> Response:
    async def build() -> bytes:
        q = select(*ALERT_COLUMNS)
        if state:
            states = {s for s in state if s != "open"} | (set(OPEN_STATES) if "open" in state else set())
            q = q.where(Alert.state.in_(sorted(states)))
        if severity:
            q = q.where(Alert.severity.in_(severity))
        for column, value in (
            (Alert.kind, kind),
            (Alert.district, district),
            (Alert.site, site),
            (Alert.device_id, device_id),
            (Alert.rule, rule),
        ):
            if value is not None:
                q = q.where(column == value)
        if since is not None:
            q = q.where(Alert.started_ms >= since)
        if until is not None:
            q = q.where(Alert.started_ms < until)
        async with c.store.session() as s:
            total = (await s.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
            rows = (
                (await s.execute(q.order_by(*queue_order()).limit(limit).offset(offset)))
                .mappings()
                .all()
            )
        return orjson.dumps({"total": total, "items": [dict(r) for r in rows]})

    return await c.cache.answer(request, f"alerts?{request.url.query}", await c.feed.head(), build)


async def _alert(c: Context, alert_id: int) -> Alert:
    async with c.store.session() as s:
        a = await s.get(Alert, alert_id)
    if a is None:
        raise not_found(f"alert {alert_id}")
    return a


@router.get(
    "/alerts/{alert_id}",
    response_model=AlertDetail,
    summary="One alert, its history and the readings behind it",
)
async def get_alert(alert_id: IdPath, c: Ctx, _: Viewer) -> AlertDetail:
    a = await _alert(c, alert_id)
    async with c.store.session() as s:
        history = (
            await s.execute(
                select(AuditEntry)
                .where(AuditEntry.subject == f"alert:{alert_id}")
                .order_by(AuditEntry.id)
            )
        ).scalars()
        out_history = [AuditOut.model_validate(h) for h in history]
        device = await s.get(Device, a.device_id) if a.device_id else None
    behind = None
    if device is not None:
        start = a.started_ms - 30 * 60_000
        end = max((a.resolved_ms or now_ms()), a.last_seen_ms) + 5 * 60_000
        metrics = (
            [a.metric] if device.kind in SPECS and a.metric in SPECS[device.kind].metrics else None
        )
        try:
            behind = await readings(
                c, [device], start, min(end, start + 400 * 86_400_000 - 1), None, "max", metrics
            )
        except Exception:  # noqa: BLE001 - the alert still shows when InfluxDB does not answer
            behind = None
    return AlertDetail(alert=AlertOut.model_validate(a), history=out_history, readings=behind)


async def _change(
    c: Context,
    who: Principal,
    alert_id: int,
    action: str,
    allowed: tuple[AlertState, ...],
    values: dict[str, Any],
    detail: dict[str, Any],
) -> AlertOut:
    """One guarded UPDATE + its audit row in one transaction; 404/409 say why nothing changed."""
    async with c.store.session() as s, s.begin():
        done = await s.execute(
            update(Alert)
            .where(Alert.id == alert_id, Alert.state.in_(allowed))
            .values(updated_ms=now_ms(), **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 0:
            a = await s.get(Alert, alert_id)
            if a is None:
                raise not_found(f"alert {alert_id}")
            by = (
                f" by {a.acknowledged_by}"
                if a.state == AlertState.ACKNOWLEDGED and a.acknowledged_by
                else ""
            )
            raise conflict(f"alert {alert_id} is {a.state}{by}; cannot {action} it")
        await c.store.audit(s, who.name, action, f"alert:{alert_id}", **detail)
        a = await s.get(Alert, alert_id)
        assert a is not None
        await s.refresh(a)
        out = AlertOut.model_validate(a)
    c.feed.poke()
    return out


@router.post(
    "/alerts/{alert_id}/acknowledge", response_model=AlertOut, summary="Acknowledge a firing alert"
)
async def acknowledge(
    alert_id: IdPath, c: Ctx, who: Operator, body: AckIn | None = None
) -> AlertOut:
    note = body.note if body else ""
    t = now_ms()
    return await _change(
        c,
        who,
        alert_id,
        "acknowledge",
        (AlertState.FIRING,),
        {"state": AlertState.ACKNOWLEDGED, "acknowledged_ms": t, "acknowledged_by": who.name},
        {"note": note} if note else {},
    )


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, summary="Resolve an open alert")
async def resolve(
    alert_id: IdPath, c: Ctx, who: Operator, body: ResolveIn | None = None
) -> AlertOut:
    body = body or ResolveIn()
    detail = {k: v for k, v in body.model_dump().items() if v}
    return await _change(
        c, who, alert_id, "resolve", OPEN_STATES, {"state": AlertState.RESOLVED, "resolved_ms": now_ms()}, detail
    )


@router.post(
    "/alerts/{alert_id}/comments",
    response_model=AuditOut,
    status_code=201,
    summary="Add a note to an alert",
)
async def comment(alert_id: IdPath, body: CommentIn, c: Ctx, who: Operator) -> AuditOut:
    async with c.store.session() as s, s.begin():
        done = await s.execute(
            update(Alert)
            .where(Alert.id == alert_id)
            .values(updated_ms=now_ms())
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 0:
            raise not_found(f"alert {alert_id}")
        entry = AuditEntry(
            actor=who.name,
            action="comment",
            subject=f"alert:{alert_id}",
            detail={"text": body.text},
        )
        s.add(entry)
        await s.flush()
        out = AuditOut.model_validate(entry)
    c.feed.poke()
    return out
