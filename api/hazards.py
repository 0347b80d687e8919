"""Hazard work orders over HTTP: the board, one order with its history, moves, photos, manual orders.

The center (operator and up) dispatches, reviews, rejects and reopens; the unit and
its maintenance company accept, start and report rectification, each only on their
own units' orders. A move the state or the platform's data forbid answers 409 with
the reason ("refused: device P-7 still reports fault").
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from firewatch.api.auth import Operator
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, conflict, not_found
from firewatch.api.fields import IdPath, Note
from firewatch.api.scope import Scope, Seen
from firewatch.api.supervision_runtime import Rt
from firewatch.api.units import visible_unit
from firewatch.contract.db import now_ms
from firewatch.supervision import (
    ASSIGNEE_STATES,
    Action,
    HazardCategory,
    HazardLink,
    HazardOrder,
    HazardSeverity,
    HazardState,
    LinkGone,
    MoveError,
    PhotoError,
    Unit,
    act,
    history,
    step_at,
)

router = APIRouter(prefix="/api/v1", tags=["hazards"])
PhotoName = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}\.(jpg|png|webp)$")]


class HazardOut(BaseModel):
    id: int
    unit_id: int | None
    unit: str
    category: str
    severity: str
    state: str
    device_id: str
    site: str
    district: str
    title: str
    note: str
    photos: list[str]
    opened_ms: int
    deadline_ms: int
    overdue: bool
    due_in_ms: int = Field(description="deadline minus the supervisor's clock (event time by default)")
    escalated_ms: int | None
    closed_ms: int | None
    opened_by: str
    address: str
    latitude: float | None
    longitude: float | None
    outcome: str


class Step(BaseModel):
    at_ms: int
    actor: str
    action: str
    before: str
    after: str
    note: str
    photos: list[str]


class HazardPage(HazardOut):
    history: list[Step]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action
    note: Note = ""
    photos: list[PhotoName] = Field(default_factory=list, max_length=10)
    unit_id: int | None = Field(None, ge=1, le=2**62, description="dispatch: the unit to send a public report to")


class HazardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: int = Field(ge=1, le=2**62)
    title: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]
    note: Note = ""
    severity: HazardSeverity = HazardSeverity.GENERAL
    device_id: Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00]*$")] = ""
    photos: list[PhotoName] = Field(default_factory=list, max_length=10)


def order_out(o: HazardOrder, now: int, unit: str) -> HazardOut:
    return HazardOut(
        id=o.id, unit_id=o.unit_id, unit=unit, category=o.category, severity=o.severity, state=o.state,
        device_id=o.device_id, site=o.site, district=o.district, title=o.title, note=o.note,
        photos=list(o.photos), opened_ms=o.opened_ms, deadline_ms=o.deadline_ms,
        overdue=o.state in ASSIGNEE_STATES and o.deadline_ms < now, due_in_ms=o.deadline_ms - now,
        escalated_ms=o.escalated_ms,
        closed_ms=o.closed_ms, opened_by=o.opened_by, address=o.address, latitude=o.latitude,
        longitude=o.longitude, outcome=o.outcome,
    )


async def _visible(c: Ctx, scope: Scope, order_id: int) -> HazardOrder:
    async with c.store.session() as s:
        o = await s.get(HazardOrder, order_id)
    if o is None or not scope.sees_order(o.id, o.unit_id):
        raise not_found(f"hazard order {order_id}")
    return o


async def _page(c: Ctx, rt: Rt, o: HazardOrder) -> HazardPage:
    async with c.store.session() as s:
        unit = await s.get(Unit, o.unit_id) if o.unit_id else None
    steps = [Step(at_ms=step_at(e), actor=e.actor, action=e.action,
                  before=str(e.detail.get("before", "")), after=str(e.detail.get("after", "")),
                  note=str(e.detail.get("note", "")), photos=list(e.detail.get("photos", [])))
             for e in await history(c.store, o.id)]
    base = order_out(o, await rt.supervisor.now(), unit.name if unit else "")
    return HazardPage(**base.model_dump(), history=steps)


@router.get("/hazards", response_model=list[HazardOut], summary="Hazard orders by deadline (the board)")
async def list_hazards(
    c: Ctx, rt: Rt, scope: Seen,
    state: Annotated[list[HazardState] | None, Query()] = None,
    district: Annotated[str | None, Query(max_length=32)] = None,
    unit_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    category: HazardCategory | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[HazardOut]:
    now = await rt.supervisor.now()
    q = select(HazardOrder, Unit.name).outerjoin(Unit, Unit.id == HazardOrder.unit_id)
    if scope.order_id is not None:
        q = q.where(HazardOrder.id == scope.order_id)
    elif scope.units is not None:
        q = q.where(HazardOrder.unit_id.in_(scope.units or [-1]))
    if state:
        q = q.where(HazardOrder.state.in_(state))
    if district:
        q = q.where(HazardOrder.district == district)
    if unit_id:
        q = q.where(HazardOrder.unit_id == unit_id)
    if category:
        q = q.where(HazardOrder.category == category)
    if overdue is not None:
        late = HazardOrder.state.in_(ASSIGNEE_STATES) & (HazardOrder.deadline_ms < now)
        q = q.where(late if overdue else ~late)
    async with c.store.session() as s:
        rows = (await s.execute(q.order_by(HazardOrder.deadline_ms, HazardOrder.id).limit(limit))).all()
    return [order_out(o, now, name or "") for o, name in rows]


@router.get("/hazards/{order_id}", response_model=HazardPage, summary="One order with its whole history")
async def get_hazard(order_id: IdPath, c: Ctx, rt: Rt, scope: Seen) -> HazardPage:
    return await _page(c, rt, await _visible(c, scope, order_id))


@router.post("/hazards/{order_id}/actions", response_model=HazardPage,
             summary="Move an order: accept, start, report_fixed (assignee); dispatch, approve, reject, reopen "
                     "(center); note (anyone who may act)")
async def act_on(order_id: IdPath, body: ActionIn, c: Ctx, rt: Rt, scope: Seen) -> HazardPage:
    by = scope.acting_as()
    await _visible(c, scope, order_id)
    for name in body.photos:
        if rt.photos.path(name) is None:
            raise ApiError(422, f"photo {name} was not uploaded (POST /api/v1/photos first)")
    if body.unit_id is not None:
        async with c.store.session() as s:
            await visible_unit(s, scope, body.unit_id)
    try:
        done = await act(c.store, rt.config, order_id, body.action, scope.who.name, by,
                         await rt.supervisor.now(), body.note, tuple(body.photos), body.unit_id)
    except MoveError as exc:
        raise conflict(str(exc)) from None
    if body.action in (Action.DISPATCH, Action.REOPEN):
        rt.supervisor.tell_later(done.order)
    return await _page(c, rt, done.order)


@router.post("/hazards", response_model=HazardPage, status_code=201,
             summary="Open an order by hand (an inspection finding) with a note and photos")
async def open_hazard(body: HazardIn, c: Ctx, rt: Rt, who: Operator) -> HazardPage:
    for name in body.photos:
        if rt.photos.path(name) is None:
            raise ApiError(422, f"photo {name} was not uploaded (POST /api/v1/photos first)")
    now = await rt.supervisor.now()
    async with c.store.session() as s, s.begin():
        unit = await visible_unit(s, Scope(who, None), body.unit_id)
        o = HazardOrder(unit_id=unit.id, category=HazardCategory.MANUAL, severity=body.severity,
                        state=HazardState.DISPATCHED, device_id=body.device_id, district=unit.district,
                        title=body.title, note=body.note, photos=body.photos, opened_ms=now,
                        deadline_ms=now + rt.config.deadline_ms(body.severity), opened_by=who.name,
                        address=unit.address)
        s.add(o)
        await s.flush()
        await c.store.audit(s, who.name, "open", f"hazard:{o.id}", after="dispatched", note=body.note,
                            photos=body.photos, at=now)
    rt.supervisor.tell_later(o)
    return await _page(c, rt, o)


class LinkOut(BaseModel):
    """A one-tap link sent for an order: to whom, when, until when, and whether the center revoked it."""

    id: int
    role: str
    person: str
    sent_ms: int
    expires_ms: int
    revoked_ms: int | None
    revoked_by: str


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Note = ""


def link_out(row: HazardLink) -> LinkOut:
    return LinkOut(id=row.id, role=row.role, person=row.person, sent_ms=row.sent_ms, expires_ms=row.expires_ms,
                   revoked_ms=row.revoked_ms, revoked_by=row.revoked_by)


@router.get("/hazards/{order_id}/links", response_model=list[LinkOut],
            summary="The one-tap links sent for an order (wall-clock times), revoked or not")
async def list_links(order_id: IdPath, c: Ctx, rt: Rt, who: Operator) -> list[LinkOut]:
    await _visible(c, Scope(who, None), order_id)
    return [link_out(row) for row in await rt.links.sent(order_id)]


@router.post("/hazards/{order_id}/links/{link_id}/revoke", response_model=LinkOut,
             summary="Revoke one link (its holder is refused at once; every other link keeps working), audited")
async def revoke_link(order_id: IdPath, link_id: IdPath, body: RevokeIn, c: Ctx, rt: Rt, who: Operator) -> LinkOut:
    await _visible(c, Scope(who, None), order_id)
    try:
        row = await rt.links.revoke(order_id, link_id, who.name, now_ms(), await rt.supervisor.now(), body.reason)
    except LinkGone as exc:
        raise ApiError(404, str(exc)) from None
    return link_out(row)


class PhotoOut(BaseModel):
    name: str
    bytes: int


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` (a declared length is checked first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"upload is {int(declared) / 1048576:.1f} MiB; the limit is {limit / 1048576:.1f} MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"upload is over the limit of {limit / 1048576:.1f} MiB")
        chunks.append(chunk)
    data = b"".join(chunks)
    request._body = data  # Starlette replays a read body to request.form() from here
    return data


@router.post("/photos", response_model=PhotoOut, status_code=201,
             summary="Upload one photo (JPEG, PNG or WebP as the raw body); use its name in an action",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                 "image/png": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_photo(request: Request, rt: Rt, scope: Seen) -> PhotoOut:
    scope.acting_as()
    data = await read_limited(request, rt.config.max_photo_bytes)
    try:
        name = await asyncio.to_thread(rt.photos.save, data)
    except PhotoError as exc:
        raise ApiError(413 if exc.too_large else 422, str(exc)) from None
    return PhotoOut(name=name, bytes=len(data))


@router.get("/hazards/{order_id}/photos/{name}", summary="A photo of an order", response_class=FileResponse)
async def get_photo(order_id: IdPath, name: str, c: Ctx, rt: Rt, scope: Seen) -> FileResponse:
    o = await _visible(c, scope, order_id)
    in_history = any(name in e.detail.get("photos", []) for e in await history(c.store, o.id))
    path = rt.photos.path(name) if name in o.photos or in_history else None
    if path is None:
        raise not_found(f"photo {name[:40]} of order {order_id}")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})
