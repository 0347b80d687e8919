"""Duty checks (查岗) from the console and the API: ask control rooms to answer, read who did and how fast.

The api hands the request to the gateways over the broker (they hold the devices'
connections); the gateways record each device's result, which is what this reads.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from firewatch.api.auth import Operator, Viewer
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError
from firewatch.api.fields import DeviceId, District, Limit, Site
from firewatch.contract.mqtt import MqttError
from firewatch.gateway import DutyCheck, DutyRequest
from firewatch.gateway.publisher import request_duty_check

router = APIRouter(prefix="/api/v1", tags=["duty checks"])


class DutyCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: DeviceId | None = Field(None, description="one device (or its 12-hex transmitter address)")
    site: Site | None = Field(None, description="every device of one site")
    district: District | None = Field(None, description="every device of one district")


class DutyCheckSent(BaseModel):
    request_id: str
    scope: str


class DutyCheckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    request_id: str
    device_id: str
    district: str
    address: str
    requested_by: str
    sent_ms: int
    answered_ms: int | None
    response_s: float | None
    result: str


@router.post("/duty-checks", response_model=DutyCheckSent, status_code=202,
             summary="Ask control rooms for a duty check: one device, a site, a district, or all (empty body)")
async def send_duty_check(body: DutyCheckIn, c: Ctx, who: Operator) -> DutyCheckSent:
    req = DutyRequest(uuid.uuid4().hex[:16], who.name, body.device_id, body.district, body.site or None)
    try:
        await request_duty_check(c.settings.mqtt, req)
    except MqttError as exc:
        raise ApiError(503, f"the broker did not take the duty check: {exc}") from None
    scope = (f"device {body.device_id}" if body.device_id else f"site {body.site}" if body.site
             else f"district {body.district}" if body.district else "all connected devices")
    async with c.store.session() as s, s.begin():
        await c.store.audit(s, who.name, "duty_check", f"duty:{req.request_id}", scope=scope)
    return DutyCheckSent(request_id=req.request_id, scope=scope)


@router.get("/duty-checks", response_model=list[DutyCheckOut], summary="Duty-check results, newest first")
async def list_duty_checks(
    c: Ctx, _: Viewer,
    request_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    device_id: Annotated[DeviceId | None, Query()] = None,
    district: Annotated[District | None, Query()] = None,
    limit: Limit = 200,
) -> list[DutyCheckOut]:
    q = select(DutyCheck).order_by(DutyCheck.id.desc()).limit(limit)
    for column, value in ((DutyCheck.request_id, request_id), (DutyCheck.device_id, device_id),
                          (DutyCheck.district, district)):
        if value is not None:
            q = q.where(column == value)
    async with c.store.session() as s:
        return [DutyCheckOut.model_validate(r) for r in (await s.execute(q)).scalars()]
