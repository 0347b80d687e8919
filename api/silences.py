"""Silences: maintenance windows that mute routing (never detection) for a device, site or district."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from firewatch.api.auth import Operator, Viewer
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, not_found
from firewatch.api.fields import DeviceId, District, EpochMs, IdPath, Note, Site
from firewatch.contract.db import Silence, now_ms

router = APIRouter(prefix="/api/v1", tags=["silences"])
Rule = Annotated[str, Field(pattern=r"^([A-Za-z0-9_.:-]{1,64})?$")]


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: DeviceId | None = None
    site: Site = ""
    district: District | None = None
    rule: Rule = Field("", description="empty matches every rule")
    starts_ms: EpochMs | None = Field(None, description="default now")
    ends_ms: EpochMs
    reason: Note = ""

    @model_validator(mode="after")
    def _scope(self) -> SilenceIn:
        if not (self.device_id or self.site or self.district):
            raise ValueError(
                "a silence needs a device_id, site or district (a city-wide mute is not allowed)"
            )
        if self.ends_ms <= (self.starts_ms or now_ms()):
            raise ValueError("ends_ms must be after starts_ms (and in the future)")
        return self


class SilencePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ends_ms: EpochMs | None = None
    reason: Note | None = None


class SilenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: str
    site: str
    district: str
    rule: str
    starts_ms: int
    ends_ms: int
    created_by: str
    reason: str
    active: bool = False


def _out(row: Silence) -> SilenceOut:
    t = now_ms()
    return SilenceOut.model_validate(row).model_copy(
        update={"active": row.starts_ms <= t < row.ends_ms}
    )


@router.get("/silences", response_model=list[SilenceOut], summary="Silences, newest first")
async def list_silences(
    c: Ctx, _: Viewer, expired: Annotated[bool, Query(description="include ended silences")] = False
) -> list[SilenceOut]:
    q = select(Silence).order_by(Silence.id.desc()).limit(1000)
    if not expired:
        q = q.where(Silence.ends_ms > now_ms())
    async with c.store.session() as s:
        return [_out(r) for r in (await s.execute(q)).scalars()]


@router.post("/silences", response_model=SilenceOut, status_code=201, summary="Create a silence")
async def create_silence(body: SilenceIn, c: Ctx, who: Operator) -> SilenceOut:
    values = body.model_dump()
    values["starts_ms"] = values["starts_ms"] or now_ms()
    values["device_id"] = values["device_id"] or ""
    values["district"] = values["district"] or ""
    async with c.store.session() as s, s.begin():
        row = Silence(created_by=who.name, **values)
        s.add(row)
        await s.flush()
        await c.store.audit(s, who.name, "create", f"silence:{row.id}", **values)
    return _out(row)


@router.get("/silences/{silence_id}", response_model=SilenceOut, summary="One silence")
async def get_silence(silence_id: IdPath, c: Ctx, _: Viewer) -> SilenceOut:
    async with c.store.session() as s:
        row = await s.get(Silence, silence_id)
    if row is None:
        raise not_found(f"silence {silence_id}")
    return _out(row)


@router.patch(
    "/silences/{silence_id}",
    response_model=SilenceOut,
    summary="Extend, shorten or re-explain a silence",
)
async def update_silence(
    silence_id: IdPath, body: SilencePatch, c: Ctx, who: Operator
) -> SilenceOut:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    async with c.store.session() as s, s.begin():
        row = await s.get(Silence, silence_id)
        if row is None:
            raise not_found(f"silence {silence_id}")
        if "ends_ms" in changes and changes["ends_ms"] <= row.starts_ms:
            raise ApiError(422, "ends_ms must be after the silence's starts_ms")
        for key, value in changes.items():
            setattr(row, key, value)
        await c.store.audit(s, who.name, "update", f"silence:{silence_id}", **changes)
    return _out(row)


@router.delete(
    "/silences/{silence_id}", status_code=204, summary="End a silence now (kept for the record)"
)
async def end_silence(silence_id: IdPath, c: Ctx, who: Operator) -> Response:
    async with c.store.session() as s, s.begin():
        row = await s.get(Silence, silence_id)
        if row is None:
            raise not_found(f"silence {silence_id}")
        t = now_ms()
        if row.ends_ms > t:
            row.ends_ms = max(t, row.starts_ms)
            await c.store.audit(s, who.name, "end", f"silence:{silence_id}")
    return Response(status_code=204)
