"""The live stream (Server-Sent Events) and the console's starting snapshot.

Each event's id is an audit id. A client that reconnects with `Last-Event-ID`
(EventSource does this by itself) or `?since=` gets every alert and device
change after it, in order, so nothing is missed across a disconnect. The
snapshot returns the cursor it was taken at: load it, then stream from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel
from sqlalchemy import String, cast, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from firewatch.api.alerts import ALERT_COLUMNS, AlertOut, AuditOut, queue_order
from firewatch.api.auth import Viewer
from firewatch.api.context import Context, Ctx
from firewatch.api.devices import device_out
from firewatch.api.districts import DistrictOut, registry
from firewatch.api.fields import MAX_ID
from firewatch.api.tables import DeviceState
from firewatch.contract.db import OPEN_STATES, Alert, AlertState, AuditEntry, Device
from firewatch.contract.kinds import METRIC_LABELS_ZH
from firewatch.contract.rules import EXPLAIN_ZH, REASONS_ZH, rule_labels
from firewatch.notify import HANDED_OFF, HANDOFF_FAILED, NOBODY_REACHABLE

router = APIRouter(prefix="/api/v1", tags=["live"])
BATCH = 500
UNREGISTERED = "unregistered"
"""The kind the snapshot gives a device that reports without being in the registry."""
UNREGISTERED_SHOWN = 5000
RULE_LABELS = rule_labels()
IDLE_S = 15.0


class Snapshot(BaseModel):
    cursor: int
    devices: dict[str, list[Any]]
    """Columns id, kind, district, site, latitude, longitude, online (null: never reported);
    devices reporting without being registered come last, kind `unregistered`."""
    alerts: list[AlertOut]
    map_tile_url: str
    map_layer: bool
    """Whether GET /map/layer has boundaries and roads to draw."""
    districts: list[DistrictOut]
    rule_labels: dict[str, dict[str, str]]
    """`kind.rule` → {en, zh, unit}: the console says each alert in its language."""
    reason_labels: list[tuple[str, str]]
    """Correlation's reasons for a zh screen: (pattern, Chinese with `$1`… for its groups)."""
    explain_labels: list[tuple[str, str]]
    """The learned detectors' explanations for a zh screen: (pattern, Chinese), applied in turn."""
    metric_labels: dict[str, str]
    """Metric label → Chinese, for chart titles."""
    unreachable: list[AuditOut]
    """The `nobody_reachable` rows of open alerts nobody has acknowledged: the console's 无人可达 banner."""
    handoffs: list[AuditOut]
    """The 119 hand-offs (`handed_to_119`, `handoff_failed`) of open alerts."""


async def changes(c: Context, after: int, limit: int = BATCH) -> list[ServerSentEvent]:
    """Alert and device changes after audit id `after`, each with its subject's current state."""
    async with c.store.session() as s:
        rows = list(
            (
                await s.execute(
                    select(AuditEntry)
                    .where(
                        AuditEntry.id > after,
                        or_(
                            AuditEntry.subject.like("alert:%"), AuditEntry.subject.like("device:%")
                        ),
                    )
                    .order_by(AuditEntry.id)
                    .limit(limit)
                )
            ).scalars()
        )
        alert_ids = {
            int(k)
            for r in rows
            if (k := r.subject[6:]).isdigit() and r.subject.startswith("alert:")
        }
        device_ids = {r.subject[7:] for r in rows if r.subject.startswith("device:")}
        alerts = {
            a.id: a
            for a in (await s.execute(select(Alert).where(Alert.id.in_(alert_ids)))).scalars()
        }
        devices = {
            d.id: d
            for d in (await s.execute(select(Device).where(Device.id.in_(device_ids)))).scalars()
        }
        states = {
            st.device_id: st
            for st in (
                await s.execute(select(DeviceState).where(DeviceState.device_id.in_(device_ids)))
            ).scalars()
        }
    events = []
    for r in rows:
        audit = AuditOut.model_validate(r).model_dump()
        if r.subject.startswith("alert:"):
            a = alerts.get(int(r.subject[6:])) if r.subject[6:].isdigit() else None
            if a is None:
                continue
            data: dict[str, Any] = {
                "audit": audit,
                "alert": AlertOut.model_validate(a).model_dump(),
            }
            events.append(ServerSentEvent(id=str(r.id), event="alert", data=data))
        else:
            device_id = r.subject[7:]
            d = devices.get(device_id)
            st = states.get(device_id)
            data = {
                "audit": audit,
                "device_id": device_id,
                "device": device_out(d, st).model_dump() if d else None,
                "online": st.online if st else None,
                "district": d.district if d else st.district if st else "",
            }
            events.append(ServerSentEvent(id=str(r.id), event="device", data=data))
    if rows and (not events or events[-1].id != str(rows[-1].id)):
        events.append(
            ServerSentEvent(id=str(rows[-1].id), event="cursor", data={"cursor": rows[-1].id})
        )
    return events


def _cursor(last_event_id: str | None, since: int | None) -> int | None:
    if last_event_id and last_event_id.strip().isdigit() and len(last_event_id.strip()) < 19:
        return int(last_event_id.strip())
    return since


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    summary="Live alert and device changes (SSE), resumable by Last-Event-ID",
    description="Events: `alert` {audit, alert}, `device` {audit, device_id, device, online}, "
    "`cursor` {cursor} (position only). Without Last-Event-ID or since, starts at the present.",
)
async def stream(
    request: Request,
    c: Ctx,
    who: Viewer,
    since: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="audit id to resume after")
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> AsyncIterable[ServerSentEvent]:
    cursor = _cursor(last_event_id, since)
    if cursor is None:
        cursor = await c.feed.head()
    c.metrics.stream_clients.inc()
    try:
        yield ServerSentEvent(id=str(cursor), event="cursor", data={"cursor": cursor}, retry=2000)
        while True:
            grown = c.feed.grown()
            if not await request.app.state.auth.valid(who):
                yield ServerSentEvent(event="error", data={"error": "the API token was revoked"})
                return
            batch = await changes(c, cursor)
            for event in batch:
                yield event
            if batch:
                cursor = int(batch[-1].id or cursor)
            if len(batch) >= BATCH:
                continue
            try:
                await asyncio.wait_for(grown.wait(), IDLE_S)
            except TimeoutError:
                pass
    finally:
        c.metrics.stream_clients.dec()


@router.get(
    "/console/snapshot",
    response_model=Snapshot,
    summary="Devices (columnar) and open alerts, with the stream cursor",
)
async def snapshot(request: Request, c: Ctx, _: Viewer) -> Response:
    """Built once per audit cursor and shared by every console asking (ETag: a reload may cost a 304)."""
    cursor = await c.feed.head()

    async def build() -> bytes:
        async with c.store.session() as s:
            rows = (
                await s.execute(
                    select(
                        Device.id,
                        Device.kind,
                        Device.district,
                        Device.site,
                        Device.latitude,
                        Device.longitude,
                        DeviceState.online,
                    )
                    .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                    .where(Device.retired_ms.is_(None))
                    .order_by(Device.id)
                )
            ).all()
            alerts = (
                (
                    await s.execute(
                        select(*ALERT_COLUMNS)
                        .where(Alert.state.in_(OPEN_STATES))
                        .order_by(*queue_order())
                        .limit(5000)
                    )
                )
                .mappings()
                .all()
            )
            # Devices that report but are not registered: shown at their topic's district, to be registered.
            unregistered = (
                await s.execute(
                    select(DeviceState.device_id, DeviceState.district, DeviceState.online)
                    .outerjoin(Device, Device.id == DeviceState.device_id)
                    .where(Device.id.is_(None))
                    .order_by(DeviceState.device_id)
                    .limit(UNREGISTERED_SHOWN)
                )
            ).all()
            # A step that reached nobody paged the fallback: loud on every screen until someone acknowledges.
            unreachable = await _notices(s, [NOBODY_REACHABLE], [AlertState.FIRING])
            handoffs = await _notices(s, [HANDED_OFF, HANDOFF_FAILED], OPEN_STATES)
        rows = [*rows, *((r.device_id, UNREGISTERED, r.district, "", None, None, r.online) for r in unregistered)]
        names = ("id", "kind", "district", "site", "latitude", "longitude", "online")
        columns: dict[str, list[Any]] = {n: [r[i] for r in rows] for i, n in enumerate(names)}
        return orjson.dumps(
            {
                "cursor": cursor,
                "devices": columns,
                "alerts": [dict(a) for a in alerts],
                "map_tile_url": c.settings.api.map_tile_url,
                "map_layer": c.settings.api.map_layer is not None,
                "districts": [d.model_dump() for d in await registry(c)],
                "rule_labels": RULE_LABELS,
                "reason_labels": REASONS_ZH,
                "explain_labels": EXPLAIN_ZH,
                "metric_labels": METRIC_LABELS_ZH,
                "unreachable": [AuditOut.model_validate(a).model_dump() for a in unreachable],
                "handoffs": [AuditOut.model_validate(a).model_dump() for a in handoffs],
            }
        )

    return await c.cache.answer(request, "console/snapshot", cursor, build)


async def _notices(s: AsyncSession, actions: list[str], states: Sequence[str]) -> Sequence[AuditEntry]:
    """notify's audit rows of these kinds about alerts in these states, oldest first."""
    return (
        await s.scalars(
            select(AuditEntry)
            .join(Alert, AuditEntry.subject == literal("alert:") + cast(Alert.id, String))
            .where(AuditEntry.action.in_(actions), Alert.state.in_(states))
            .order_by(AuditEntry.id)
            .limit(500)
        )
    ).all()
