"""Public hazard reports (火灾隐患举报): a page and an endpoint with no sign-in, and the receipt lookup.

Anyone may report, so everything is bounded before it costs anything: the request's
size (photos × `max_photo_bytes`), submissions per client address per hour, per phone
per day and in total per minute. A report becomes a hazard order awaiting the
center's review; the reporter follows it with the receipt code and sees only its
state and the center's answer, never the unit's data.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from pydantic import Field as PField
from sqlalchemy import select
from starlette.datastructures import UploadFile

from firewatch.api.context import Ctx
from firewatch.api.districts import layer_response
from firewatch.api.errors import ApiError, invalid, not_found
from firewatch.api.hazards import read_limited
from firewatch.api.supervision_runtime import Rt
from firewatch.supervision import (
    HazardCategory,
    HazardOrder,
    HazardSeverity,
    HazardState,
    PhotoError,
    Unit,
)

router = APIRouter(tags=["public reports"])
RECEIPT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
FORM_SLACK = 64 * 1024
"""Room for the text fields and multipart boundaries beside the photos."""
NEAR_DEG = 0.01
"""A report within about a kilometre of a unit is attached to it (the center can change that)."""


class Window:
    """Counts of recent events per key in a sliding window, forgetting keys that fell silent."""

    def __init__(self, span_s: float, limit: int) -> None:
        self.span_s = span_s
        self.limit = limit
        self._hits: dict[str, deque[float]] = {}

    def full(self, key: str, now: float) -> bool:
        q = self._hits.get(key)
        while q and q[0] <= now - self.span_s:
            q.popleft()
        return bool(q) and len(q) >= self.limit

    def add(self, key: str, now: float) -> None:
        if len(self._hits) > 100_000:
            self._hits = {k: q for k, q in self._hits.items() if q and q[-1] > now - self.span_s}
        self._hits.setdefault(key, deque()).append(now)


class Limits:
    def __init__(self, per_address_per_hour: int, per_phone_per_day: int, total_per_minute: int) -> None:
        self.address = Window(3600, per_address_per_hour)
        self.phone = Window(86400, per_phone_per_day)
        self.total = Window(60, total_per_minute)

    def refuse(self, address: str, phone: str) -> str | None:
        now = time.monotonic()
        if self.total.full("", now):
            return "too many reports are arriving right now; please try again in a minute or call 119 if urgent"
        if self.address.full(address, now):
            return "too many reports from this network in the last hour; please try again later"
        if phone and self.phone.full(phone, now):
            return "too many reports from this phone number today"
        for w, key in ((self.total, ""), (self.address, address), (self.phone, phone)):
            w.add(key, now)
        return None


class ReportIn(BaseModel):
    phone: str = PField(pattern=r"^\+?[0-9][0-9\- ]{5,19}$")
    address: str = PField("", max_length=256, pattern=r"^[^\x00]*$")
    latitude: float | None = PField(None, ge=-90, le=90)
    longitude: float | None = PField(None, ge=-180, le=180)
    note: str = PField(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")


class Receipt(BaseModel):
    receipt: str
    state: str
    outcome: str
    submitted_ms: int
    closed_ms: int | None


Code = Annotated[str, Path(pattern=f"^[{RECEIPT_ALPHABET}]{{10}}$")]


async def read_form(request: Request, max_photos: int) -> tuple[ReportIn, list[UploadFile]]:
    """The report and its photos from the request's form; ApiError 413 (too many photos) or 422 (a broken form,
    a bad field, neither an address nor a place) says what is wrong. tests/fuzz/report_form.py fuzzes it."""
    try:
        form = await request.form(max_files=max_photos + 1, max_fields=20)
    except Exception as exc:  # noqa: BLE001 - python-multipart raises several kinds for a broken form
        raise invalid(f"the form could not be read: {str(exc)[:200]}") from None
    files = [f for f in form.getlist("photos") if isinstance(f, UploadFile)]
    if len(files) > max_photos:
        raise ApiError(413, f"at most {max_photos} photos per report")
    fields = {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
    try:
        body = ReportIn(**{k: fields.get(k) for k in ("phone", "address", "latitude", "longitude", "note")
                           if k in fields})
    except ValidationError as exc:
        errors = [{"loc": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise ApiError(422, "invalid report: " + "; ".join(f"{e['loc']}: {e['message']}" for e in errors),
                       errors) from None
    if not body.address and (body.latitude is None or body.longitude is None):
        raise invalid("give an address or a place on the map", "address")
    return body, files


@router.post("/api/v1/public/hazard-reports", response_model=Receipt, status_code=201,
             summary="Report a fire hazard (no sign-in): multipart form with phone, address or position, "
                     "note and up to a few photos",
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["phone", "note"], "properties": {
                     "phone": {"type": "string"}, "address": {"type": "string"}, "latitude": {"type": "number"},
                     "longitude": {"type": "number"}, "note": {"type": "string"},
                     "photos": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
async def submit(request: Request, c: Ctx, rt: Rt) -> Receipt:
    cfg = rt.config
    limit = cfg.public.max_photos * cfg.max_photo_bytes + FORM_SLACK
    await read_limited(request, limit)
    body, files = await read_form(request, cfg.public.max_photos)
    blobs = [await f.read() for f in files]
    for f, data in zip(files, blobs, strict=True):
        try:
            rt.photos.check(data)
        except PhotoError as exc:
            raise ApiError(413 if exc.too_large else 422, f"photo {f.filename or ''}: {exc}") from None
    client = request.client.host if request.client else ""
    refused = request.app.state.public_limits.refuse(client, body.phone.replace(" ", "").replace("-", ""))
    if refused:
        raise ApiError(429, refused)
    names = [await asyncio.to_thread(rt.photos.save, data) for data in blobs]
    now = await rt.supervisor.now()
    receipt = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(10))
    async with c.store.session() as s, s.begin():
        unit = None
        if body.latitude is not None and body.longitude is not None:
            near = select(Unit).where(
                Unit.retired_ms.is_(None), Unit.latitude.between(body.latitude - NEAR_DEG, body.latitude + NEAR_DEG),
                Unit.longitude.between(body.longitude - NEAR_DEG, body.longitude + NEAR_DEG))
            units = (await s.scalars(near.limit(200))).all()
            unit = min(units, default=None, key=lambda u: (u.latitude - body.latitude) ** 2  # type: ignore[operator]
                       + (u.longitude - body.longitude) ** 2)  # type: ignore[operator]
        o = HazardOrder(
            unit_id=unit.id if unit else None, category=HazardCategory.PUBLIC, severity=HazardSeverity.GENERAL,
            state=HazardState.AWAITING_REVIEW, district=unit.district if unit else "",
            title=f"群众举报：{body.note[:80]}", note=body.note, photos=names, opened_ms=now,
            deadline_ms=now + cfg.deadline_ms(HazardSeverity.GENERAL), opened_by="public", receipt=receipt,
            reporter_phone=body.phone, address=body.address, latitude=body.latitude, longitude=body.longitude,
        )
        s.add(o)
        await s.flush()
        await c.store.audit(s, "public", "open", f"hazard:{o.id}", after="awaiting_review", note=body.note,
                            photos=names, at=now)
    return Receipt(receipt=receipt, state=o.state, outcome="", submitted_ms=now, closed_ms=None)


@router.get("/api/v1/public/map-layer", summary="The city's map layer, for choosing a report's place (no sign-in)",
            responses={200: {"content": {"application/geo+json": {}}}})
async def public_layer(c: Ctx) -> Response:
    return layer_response(c)


@router.get("/api/v1/public/hazard-reports/{receipt}", response_model=Receipt,
            summary="Follow a public report by its receipt code (no sign-in)")
async def follow(receipt: Code, c: Ctx) -> Receipt:
    async with c.store.session() as s:
        o = (await s.scalars(select(HazardOrder).where(HazardOrder.receipt == receipt))).first()
    if o is None:
        raise not_found(f"report {receipt}")
    return Receipt(receipt=receipt, state=o.state, outcome=o.outcome, submitted_ms=o.opened_ms,
                   closed_ms=o.closed_ms)
