"""Unit scores (信用积分, 三色), random inspection draws (双随机) and inspection results over the API.

Scores are computed from the platform's records as of the month's end (firewatch.supervision
scores) and kept with their inputs' version; a draw is recorded with everything needed to re-run
it, and `GET …/draws/{id}/replay` re-runs it from the record.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from firewatch.api.auth import Operator, Viewer
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, not_found
from firewatch.api.fields import District, IdPath
from firewatch.api.supervision_runtime import Rt, Runtime
from firewatch.supervision import (
    Draw,
    HazardOrder,
    Inspection,
    InspectionResult,
    Period,
    ReportError,
    Unit,
    draw,
    gather_district,
    gather_units,
    month,
    month_scores,
    render_district,
    render_unit,
    replay,
    stored_report,
)

router = APIRouter(prefix="/api/v1", tags=["scores and inspections"])
Month = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (China Standard Time)")]


class ReasonOut(BaseModel):
    indicator: str
    points: float = Field(description="points lost; 0 for a reason that makes the unit red whatever the sum")
    zh: str
    en: str


class ScoreOut(BaseModel):
    unit_id: int
    unit: str
    district: str
    period: str
    score: float
    grade: str = Field(description="green, yellow or red")
    grade_zh: str
    trend: str = Field(description="up, down, flat, or new (no previous month)")
    previous: float | None
    breakdown: dict[str, float]
    reasons: list[ReasonOut]
    indicators: dict[str, Any]
    inputs_version: str


def _period(label: str) -> Period:
    try:
        return month(label)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


async def _scores(c: Ctx, rt: Rt, label: str, district: str | None, unit_ids: list[int] | None) -> list[ScoreOut]:
    scores = await month_scores(c.store, c.influx, rt.config, _period(label), district, unit_ids, floor=rt.floor)
    async with c.store.session() as s:
        names = {u.id: u for u in (await s.execute(select(Unit).where(
            Unit.id.in_([x.unit_id for x in scores])))).scalars()}
    return sorted((ScoreOut(unit=names[x.unit_id].name, district=names[x.unit_id].district, **x.as_dict())
                   for x in scores), key=lambda x: (x.score, x.unit_id))


@router.get("/scores", response_model=list[ScoreOut],
            summary="Every unit's score for a month (of a district), lowest first, computed as of the month's end")
async def list_scores(c: Ctx, rt: Rt, _: Viewer, month: Month, district: Annotated[District | None, Query()] = None
                      ) -> list[ScoreOut]:
    return await _scores(c, rt, month, district, None)


@router.get("/units/{unit_id}/score", response_model=ScoreOut, summary="One unit's score, breakdown and reasons")
async def unit_score(unit_id: IdPath, c: Ctx, rt: Rt, _: Viewer, month: Month) -> ScoreOut:
    found = await _scores(c, rt, month, None, [unit_id])
    if not found:
        raise not_found(f"unit {unit_id}")
    return found[0]


class DrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    district: District
    count: int = Field(ge=1, le=10_000)
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="omitted: a random seed, recorded")


class DrawOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    district: str
    drawn_by: str
    drawn_ms: int
    seed: int
    count: int
    settings: dict[str, Any]
    candidates: list[dict[str, Any]]
    excluded: list[dict[str, Any]]
    result: list[int]


class ReplayOut(BaseModel):
    draw_id: int
    recorded: list[int]
    replayed: list[int]
    same: bool


@router.post("/inspections/draws", response_model=DrawOut, status_code=201,
             summary="Draw units of a district for inspection, weighted by grade; the draw is recorded")
async def new_draw(body: DrawIn, c: Ctx, rt: Rt, who: Operator) -> DrawOut:
    row = await draw(c.store, rt.config.inspections, body.district, body.count, who.name, body.seed,
                     await rt.supervisor.now())
    return DrawOut.model_validate(row)


async def _draw(c: Ctx, draw_id: int) -> Draw:
    async with c.store.session() as s:
        row = await s.get(Draw, draw_id)
    if row is None:
        raise not_found(f"draw {draw_id}")
    return row


@router.get("/inspections/draws", response_model=list[DrawOut], summary="Recorded draws, newest first")
async def list_draws(c: Ctx, _: Viewer, district: Annotated[District | None, Query()] = None) -> list[DrawOut]:
    q = select(Draw).order_by(Draw.id.desc()).limit(200)
    if district is not None:
        q = q.where(Draw.district == district)
    async with c.store.session() as s:
        return [DrawOut.model_validate(r) for r in (await s.execute(q)).scalars()]


@router.get("/inspections/draws/{draw_id}", response_model=DrawOut, summary="One recorded draw")
async def get_draw(draw_id: IdPath, c: Ctx, _: Viewer) -> DrawOut:
    return DrawOut.model_validate(await _draw(c, draw_id))


@router.get("/inspections/draws/{draw_id}/replay", response_model=ReplayOut,
            summary="Re-run a draw from its record (candidates, weights, seed): the proof it was not rigged")
async def replay_draw(draw_id: IdPath, c: Ctx, _: Viewer) -> ReplayOut:
    row = await _draw(c, draw_id)
    again = replay(row)
    return ReplayOut(draw_id=row.id, recorded=row.result, replayed=again, same=again == row.result)


class InspectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit_id: int = Field(ge=1, le=2**62)
    draw_id: int | None = Field(None, ge=1, le=2**62)
    result: InspectionResult
    findings: Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")] = ""
    hazard_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(default_factory=list, max_length=100,
                                  description="orders opened for the findings (POST /api/v1/hazards)")
    at_ms: int | None = Field(None, ge=0, le=2**62, description="when inspected; omitted: the supervisor's clock")


class InspectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    unit_id: int
    draw_id: int | None
    inspector: str
    at_ms: int
    result: str
    findings: str
    hazard_ids: list[int]


@router.post("/inspections", response_model=InspectionOut, status_code=201,
             summary="Record an inspection's result against the unit and the hazard orders it opened")
async def record_inspection(body: InspectionIn, c: Ctx, rt: Rt, who: Operator) -> InspectionOut:
    at = body.at_ms if body.at_ms is not None else await rt.supervisor.now()
    async with c.store.session() as s, s.begin():
        if await s.get(Unit, body.unit_id) is None:
            raise not_found(f"unit {body.unit_id}")
        if body.draw_id is not None:
            d = await s.get(Draw, body.draw_id)
            if d is None or body.unit_id not in d.result:
                raise ApiError(422, f"unit {body.unit_id} was not drawn in draw {body.draw_id}")
        if body.hazard_ids:
            found = set((await s.execute(select(HazardOrder.id).where(
                HazardOrder.id.in_(body.hazard_ids), HazardOrder.unit_id == body.unit_id))).scalars())
            if missing := sorted(set(body.hazard_ids) - found):
                raise ApiError(422, f"hazard orders {missing} are not this unit's")
        row = Inspection(unit_id=body.unit_id, draw_id=body.draw_id, inspector=who.name, at_ms=at,
                         result=body.result, findings=body.findings, hazard_ids=body.hazard_ids)
        s.add(row)
        await s.flush()
        await c.store.audit(s, who.name, "inspect", f"unit:{body.unit_id}", inspection=row.id,
                            result=body.result, hazards=body.hazard_ids)
    return InspectionOut.model_validate(row)


@router.get("/inspections", response_model=list[InspectionOut], summary="Inspections recorded, newest first")
async def list_inspections(c: Ctx, _: Viewer, unit_id: Annotated[int | None, Query(ge=1, le=2**62)] = None
                           ) -> list[InspectionOut]:
    q = select(Inspection).order_by(Inspection.at_ms.desc()).limit(500)
    if unit_id is not None:
        q = q.where(Inspection.unit_id == unit_id)
    async with c.store.session() as s:
        return [InspectionOut.model_validate(r) for r in (await s.execute(q)).scalars()]


PDF = {200: {"content": {"application/pdf": {}}, "description": "the report"}}


def _pdf(body: bytes, name: str) -> Response:
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _kept(rt: Runtime, period: Period, subject: str) -> Response | None:
    """The month's report as the monthly job wrote it, when it did: what was signed off is what is downloaded."""
    path = stored_report(rt.config.report_dir, period.label, subject)
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        return None
    return _pdf(body, f"{subject}-{period.label}.pdf")


@router.get("/reports/units/{unit_id}.pdf", response_class=Response, responses=PDF,
            summary="A unit's monthly report in Chinese (PDF): indicators, charts, alarms, hazards, score")
async def unit_report(unit_id: IdPath, c: Ctx, rt: Rt, _: Viewer, month: Month) -> Response:
    period = _period(month)
    if (kept := await _kept(rt, period, f"unit-{unit_id}")) is not None:
        return kept
    found = await gather_units(c.store, c.influx, rt.config, period, unit_ids=[unit_id], floor=rt.floor)
    if not found:
        raise not_found(f"unit {unit_id}")
    try:
        body = await asyncio.to_thread(render_unit, found[0], rt.config)
    except ReportError as exc:
        raise ApiError(503, str(exc)) from None
    return _pdf(body, f"unit-{unit_id}-{period.label}.pdf")


@router.get("/reports/districts/{district}.pdf", response_class=Response, responses=PDF,
            summary="A district's monthly report in Chinese (PDF): units ranked, red units, overdue hazards, draws")
async def district_report(district: District, c: Ctx, rt: Rt, _: Viewer, month: Month) -> Response:
    period = _period(month)
    if (kept := await _kept(rt, period, f"district-{district}")) is not None:
        return kept
    found = await gather_district(c.store, c.influx, rt.config, period, district, rt.floor)
    if not found.scores:
        raise not_found(f"a unit in district {district}")
    try:
        body = await asyncio.to_thread(render_district, found, rt.config)
    except ReportError as exc:
        raise ApiError(503, str(exc)) from None
    return _pdf(body, f"district-{district}-{period.label}.pdf")
