"""Units (社会单位), their people and sites, and maintenance companies: CRUD, CSV import, the map.

A unit token sees its own unit, a maintenance token the units its company maintains;
everything else answers 404. Only admins change the registry.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select

from firewatch.api.auth import Admin, create_token
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, conflict, not_found
from firewatch.api.fields import IdPath, Name
from firewatch.api.scope import Scope, Seen
from firewatch.api.supervision_runtime import Rt
from firewatch.contract.db import Alert, AlertState, AuditEntry, Device, now_ms
from firewatch.supervision import (
    ASSIGNEE_STATES,
    CSV_COLUMNS,
    OPEN_STATES,
    CompanyIn,
    Contact,
    HazardOrder,
    HazardSeverity,
    MaintenanceCompany,
    TokenScope,
    Unit,
    UnitIn,
    UnitSite,
    read_csv,
    step_at,
)

router = APIRouter(prefix="/api/v1", tags=["units"])
OPEN_ALERTS = (AlertState.FIRING, AlertState.ACKNOWLEDGED)


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    role: str
    name: str
    phone: str
    channels: list[str] = Field(description="shown to admins only")


class UnitOut(BaseModel):
    id: int
    name: str
    credit_code: str
    category: str
    address: str
    district: str
    grid: str
    latitude: float | None
    longitude: float | None
    company_id: int | None
    company: str
    department: str
    sites: list[str]
    contacts: list[ContactOut]
    open_hazards: int
    major_open: int
    overdue: int


class CompanyOut(BaseModel):
    id: int
    name: str
    credit_code: str
    phone: str
    engineers: list[ContactOut]
    units: int


class Rejected(BaseModel):
    line: int
    credit_code: str
    reason: str


class ImportReport(BaseModel):
    created: int
    updated: int
    rejected: list[Rejected]


class ScopedTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field(description="who holds it, e.g. the unit manager's name; the actor in the audit")


class ScopedTokenOut(BaseModel):
    id: int
    name: str
    role: str
    token: str = Field(description="shown this once")


async def _counts(s: Any, unit_ids: list[int], now: int) -> dict[int, tuple[int, int, int]]:
    """Open, major open and overdue hazard orders per unit."""
    if not unit_ids:
        return {}
    q = select(HazardOrder.unit_id, HazardOrder.severity, HazardOrder.state, HazardOrder.deadline_ms).where(
        HazardOrder.unit_id.in_(unit_ids), HazardOrder.state.in_(OPEN_STATES)
    )
    out: dict[int, list[int]] = {}
    for unit_id, severity, state, deadline in (await s.execute(q)).all():
        c = out.setdefault(unit_id, [0, 0, 0])
        c[0] += 1
        c[1] += severity == HazardSeverity.MAJOR
        c[2] += state in ASSIGNEE_STATES and deadline < now
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


async def _units_out(s: Any, units: list[Unit], scope: Scope, now: int) -> list[UnitOut]:
    ids = [u.id for u in units]
    sites: dict[int, list[str]] = {}
    contacts: dict[int, list[ContactOut]] = {}
    companies: dict[int, str] = {}
    if ids:
        for site in (await s.scalars(select(UnitSite).where(UnitSite.unit_id.in_(ids)))).all():
            sites.setdefault(site.unit_id, []).append(site.site)
        for c in (await s.scalars(select(Contact).where(Contact.unit_id.in_(ids)).order_by(Contact.id))).all():
            contacts.setdefault(c.unit_id, []).append(_contact(c, scope))
        cids = {u.company_id for u in units if u.company_id}
        if cids:
            rows = await s.execute(select(MaintenanceCompany.id, MaintenanceCompany.name)
                                   .where(MaintenanceCompany.id.in_(cids)))
            companies = {k: v for k, v in rows.all()}
    counts = await _counts(s, ids, now)
    return [
        UnitOut(
            id=u.id, name=u.name, credit_code=u.credit_code, category=u.category, address=u.address,
            district=u.district, grid=u.grid, latitude=u.latitude, longitude=u.longitude,
            company_id=u.company_id, company=companies.get(u.company_id or 0, ""), department=u.department,
            sites=sorted(sites.get(u.id, [])), contacts=contacts.get(u.id, []),
            open_hazards=counts.get(u.id, (0, 0, 0))[0], major_open=counts.get(u.id, (0, 0, 0))[1],
            overdue=counts.get(u.id, (0, 0, 0))[2],
        )
        for u in units
    ]


def _contact(c: Contact, scope: Scope) -> ContactOut:
    admin = scope.who.role == "admin"
    return ContactOut(id=c.id, role=c.role, name=c.name, phone=c.phone, channels=c.channels if admin else [])


async def visible_unit(s: Any, scope: Scope, unit_id: int) -> Unit:
    unit = await s.get(Unit, unit_id)
    if unit is None or unit.retired_ms is not None or not scope.sees(unit_id):
        raise not_found(f"unit {unit_id}")
    return unit


@router.get("/units", response_model=list[UnitOut], summary="Units this token may see, with open hazards")
async def list_units(
    c: Ctx, rt: Rt, scope: Seen, district: str | None = None, grid: str | None = None,
    category: str | None = None,
) -> list[UnitOut]:
    q = select(Unit).where(Unit.retired_ms.is_(None)).order_by(Unit.district, Unit.name)
    if scope.units is not None:
        q = q.where(Unit.id.in_(scope.units or [-1]))
    for col, value in ((Unit.district, district), (Unit.grid, grid), (Unit.category, category)):
        if value:
            q = q.where(col == value[:64])
    async with c.store.session() as s:
        return await _units_out(s, list((await s.scalars(q.limit(20_000))).all()), scope,
                                await rt.supervisor.now())


async def _apply(s: Any, unit: Unit, body: UnitIn) -> None:
    """Write the body's fields, sites and contacts onto a unit (a new one or one being replaced)."""
    if body.company_id is not None and await s.get(MaintenanceCompany, body.company_id) is None:
        raise ApiError(422, f"maintenance company {body.company_id} does not exist")
    for key in ("name", "credit_code", "category", "address", "district", "grid", "latitude", "longitude",
                "company_id", "department"):
        setattr(unit, key, getattr(body, key))
    s.add(unit)
    await s.flush()
    taken = (await s.execute(select(UnitSite.site, UnitSite.unit_id).where(
        UnitSite.site.in_(body.sites or [""]), UnitSite.unit_id != unit.id))).all()
    if taken:
        raise conflict(f"site {taken[0][0]!r} already belongs to unit {taken[0][1]}")
    await s.execute(delete(UnitSite).where(UnitSite.unit_id == unit.id))
    await s.execute(delete(Contact).where(Contact.unit_id == unit.id))
    for site in dict.fromkeys(body.sites):
        s.add(UnitSite(site=site, unit_id=unit.id))
    for ct in body.contacts:
        s.add(Contact(unit_id=unit.id, **ct.model_dump()))


async def _code_free(s: Any, model: type[Unit | MaintenanceCompany], code: str, own: int | None) -> None:
    other = await s.scalar(select(model.id).where(model.credit_code == code))
    if other is not None and other != own:
        raise conflict(f"credit code {code} is already registered (id {other})")


@router.post("/units", response_model=UnitOut, status_code=201, summary="Register a unit")
async def create_unit(body: UnitIn, c: Ctx, rt: Rt, who: Admin) -> UnitOut:
    async with c.store.session() as s, s.begin():
        await _code_free(s, Unit, body.credit_code, None)
        unit = Unit()
        await _apply(s, unit, body)
        await c.store.audit(s, who.name, "create", f"unit:{unit.id}", **body.model_dump(mode="json"))
    async with c.store.session() as s:
        return (await _units_out(s, [unit], Scope(who, None), await rt.supervisor.now()))[0]


@router.put("/units/{unit_id}", response_model=UnitOut, summary="Replace a unit's record")
async def update_unit(unit_id: IdPath, body: UnitIn, c: Ctx, rt: Rt, who: Admin) -> UnitOut:
    async with c.store.session() as s, s.begin():
        unit = await visible_unit(s, Scope(who, None), unit_id)
        await _code_free(s, Unit, body.credit_code, unit.id)
        await _apply(s, unit, body)
        await c.store.audit(s, who.name, "update", f"unit:{unit.id}", **body.model_dump(mode="json"))
    async with c.store.session() as s:
        return (await _units_out(s, [unit], Scope(who, None), await rt.supervisor.now()))[0]


@router.delete("/units/{unit_id}", status_code=204, summary="Retire a unit (its history stays)")
async def retire_unit(unit_id: IdPath, c: Ctx, who: Admin) -> Response:
    async with c.store.session() as s, s.begin():
        unit = await visible_unit(s, Scope(who, None), unit_id)
        unit.retired_ms = now_ms()
        await s.execute(delete(UnitSite).where(UnitSite.unit_id == unit.id))
        await c.store.audit(s, who.name, "retire", f"unit:{unit.id}")
    return Response(status_code=204)


class UnitPage(BaseModel):
    unit: UnitOut
    devices: list[dict[str, Any]]
    open_alerts: list[dict[str, Any]]
    hazards: list[dict[str, Any]]
    history: list[dict[str, Any]]


@router.get("/units/{unit_id}", response_model=UnitPage,
            summary="A unit's page: sites, devices, open alerts, hazards and history")
async def unit_page(unit_id: IdPath, c: Ctx, rt: Rt, scope: Seen) -> UnitPage:
    from firewatch.api.hazards import order_out

    now = await rt.supervisor.now()
    async with c.store.session() as s:
        unit = await visible_unit(s, scope, unit_id)
        out = (await _units_out(s, [unit], scope, now))[0]
        sites = out.sites or [""]
        devices = (await s.scalars(select(Device).where(Device.site.in_(sites), Device.retired_ms.is_(None))
                                   .order_by(Device.id).limit(5000))).all()
        alerts = (await s.scalars(select(Alert).where(Alert.site.in_(sites), Alert.state.in_(OPEN_ALERTS))
                                  .order_by(Alert.started_ms.desc()).limit(500))).all()
        orders = (await s.scalars(select(HazardOrder).where(HazardOrder.unit_id == unit.id)
                                  .order_by(HazardOrder.id.desc()).limit(500))).all()
        subjects = [f"unit:{unit.id}", *(f"hazard:{o.id}" for o in orders)]
        audit = (await s.scalars(select(AuditEntry).where(AuditEntry.subject.in_(subjects))
                                 .order_by(AuditEntry.id.desc()).limit(200))).all()
    return UnitPage(
        unit=out,
        devices=[{"id": d.id, "kind": d.kind, "site": d.site, "address": d.address} for d in devices],
        open_alerts=[{"id": a.id, "rule": a.rule, "severity": a.severity, "device_id": a.device_id,
                      "summary": a.summary, "started_ms": a.started_ms} for a in alerts],
        hazards=[order_out(o, now, unit.name).model_dump() for o in orders],
        # An order's steps at the supervisor's clock, as the order's own page and the board show them.
        history=[{"at_ms": step_at(e), "actor": e.actor, "action": e.action, "subject": e.subject,
                  "note": str(e.detail.get("note", ""))} for e in audit],
    )


@router.post(
    "/units/import", response_model=ImportReport,
    summary="Import units from CSV; existing credit codes are updated",
    description="Columns: " + ", ".join(CSV_COLUMNS) + " (sites separated by `;`; only name, credit_code "
    "and district are required). Each row stands alone: a bad row is reported with its line and reason.",
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_units(request: Request, c: Ctx, who: Admin) -> ImportReport:
    try:
        good, bad = read_csv(await request.body())
    except OverflowError as exc:
        raise ApiError(413, str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    report = ImportReport(created=0, updated=0,
                          rejected=[Rejected(line=ln, credit_code=code, reason=r) for ln, code, r in bad])
    async with c.store.session() as s, s.begin():
        companies = dict((await s.execute(select(MaintenanceCompany.credit_code, MaintenanceCompany.id))).all())
        existing = {u.credit_code: u for u in (await s.scalars(select(Unit).where(
            Unit.credit_code.in_([u.credit_code for _, u, _ in good] or [""])))).all()}
        site_owner = dict((await s.execute(select(UnitSite.site, UnitSite.unit_id))).all())
        claimed: dict[str, int] = {}
        for line, body, company in good:
            if company and company not in companies:
                report.rejected.append(Rejected(line=line, credit_code=body.credit_code,
                                                reason=f"maintenance company {company} is not registered"))
                continue
            unit = existing.get(body.credit_code)
            clash = next((st for st in body.sites if st in claimed or
                          site_owner.get(st, unit.id if unit else None) != (unit.id if unit else None)), None)
            if clash:
                report.rejected.append(Rejected(line=line, credit_code=body.credit_code,
                                                reason=f"site {clash!r} already belongs to another unit"))
                continue
            claimed.update(dict.fromkeys(body.sites, line))
            body = body.model_copy(update={"company_id": companies.get(company) if company else None})
            if unit is None:
                unit = Unit()
                report.created += 1
            else:
                report.updated += 1
            async with s.begin_nested():
                await _apply(s, unit, body)
            await c.store.audit(s, who.name, "import", f"unit:{unit.id}", line=line)
    report.rejected.sort(key=lambda r: r.line)
    return report


@router.get("/units-map", summary="Units on the map, coloured by their open hazards")
async def units_map(c: Ctx, rt: Rt, scope: Seen) -> list[dict[str, Any]]:
    q = select(Unit.id, Unit.name, Unit.district, Unit.category, Unit.latitude, Unit.longitude).where(
        Unit.retired_ms.is_(None), Unit.latitude.is_not(None), Unit.longitude.is_not(None))
    if scope.units is not None:
        q = q.where(Unit.id.in_(scope.units or [-1]))
    async with c.store.session() as s:
        rows = (await s.execute(q.limit(50_000))).all()
        counts = await _counts(s, [r[0] for r in rows], await rt.supervisor.now())
    return [{"id": r[0], "name": r[1], "district": r[2], "category": r[3], "latitude": r[4], "longitude": r[5],
             "open_hazards": counts.get(r[0], (0, 0, 0))[0], "major_open": counts.get(r[0], (0, 0, 0))[1],
             "overdue": counts.get(r[0], (0, 0, 0))[2]} for r in rows]


async def _scoped_token(c: Ctx, who: Admin, role: str, name: str, unit_id: int | None,
                        company_id: int | None) -> ScopedTokenOut:
    row, plain = await create_token(c.store, name, role, who.name)  # type: ignore[arg-type]
    async with c.store.session() as s, s.begin():
        s.add(TokenScope(token_id=row.id, unit_id=unit_id, company_id=company_id))
        await c.store.audit(s, who.name, "scope", f"token:{row.id}", unit_id=unit_id, company_id=company_id)
    return ScopedTokenOut(id=row.id, name=row.name, role=row.role, token=plain)


@router.post("/units/{unit_id}/tokens", response_model=ScopedTokenOut, status_code=201,
             summary="A `unit` token for the unit's manager (their phone pages)")
async def unit_token(unit_id: IdPath, body: ScopedTokenIn, c: Ctx, who: Admin) -> ScopedTokenOut:
    async with c.store.session() as s:
        await visible_unit(s, Scope(who, None), unit_id)
    return await _scoped_token(c, who, "unit", body.name, unit_id, None)


@router.get("/companies", response_model=list[CompanyOut], summary="Maintenance companies this token may see")
async def list_companies(c: Ctx, scope: Seen) -> list[CompanyOut]:
    async with c.store.session() as s:
        q = select(MaintenanceCompany).order_by(MaintenanceCompany.name)
        if scope.units is not None:
            q = q.where(MaintenanceCompany.id.in_(
                select(Unit.company_id).where(Unit.id.in_(scope.units or [-1]))))
        companies = list((await s.scalars(q)).all())
        ids = [m.id for m in companies] or [-1]
        engineers: dict[int, list[ContactOut]] = {}
        for ct in (await s.scalars(select(Contact).where(Contact.company_id.in_(ids)))).all():
            engineers.setdefault(ct.company_id, []).append(_contact(ct, scope))
        units = dict((await s.execute(select(Unit.company_id, func.count()).where(
            Unit.company_id.in_(ids), Unit.retired_ms.is_(None)).group_by(Unit.company_id))).all())
    return [CompanyOut(id=m.id, name=m.name, credit_code=m.credit_code, phone=m.phone,
                       engineers=engineers.get(m.id, []), units=units.get(m.id, 0)) for m in companies]


@router.post("/companies", response_model=CompanyOut, status_code=201, summary="Register a maintenance company")
async def create_company(body: CompanyIn, c: Ctx, who: Admin) -> CompanyOut:
    async with c.store.session() as s, s.begin():
        await _code_free(s, MaintenanceCompany, body.credit_code, None)
        m = MaintenanceCompany(name=body.name, credit_code=body.credit_code, phone=body.phone,
                               channels=body.channels)
        s.add(m)
        await s.flush()
        rows = [Contact(company_id=m.id, **e.model_dump()) for e in body.engineers]
        s.add_all(rows)
        await s.flush()
        await c.store.audit(s, who.name, "create", f"company:{m.id}", **body.model_dump(mode="json"))
    return CompanyOut(id=m.id, name=m.name, credit_code=m.credit_code, phone=m.phone, units=0,
                      engineers=[_contact(e, Scope(who, None)) for e in rows])


@router.post("/companies/{company_id}/tokens", response_model=ScopedTokenOut, status_code=201,
             summary="A `maintenance` token for a company's engineer (their phone pages)")
async def company_token(company_id: IdPath, body: ScopedTokenIn, c: Ctx, who: Admin) -> ScopedTokenOut:
    async with c.store.session() as s:
        if await s.get(MaintenanceCompany, company_id) is None:
            raise not_found(f"maintenance company {company_id}")
    return await _scoped_token(c, who, "maintenance", body.name, None, company_id)
