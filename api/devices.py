"""The device registry: list and filter, create, update, retire, and bulk import from CSV.

Retiring keeps the row (and its history) but takes the device off the map and
out of the statistics; ids stay unique forever so old readings never get a new owner.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import func, select

from firewatch.alerting import config as alerting_config
from firewatch.api.auth import Admin, Viewer
from firewatch.api.context import Ctx
from firewatch.api.errors import ApiError, conflict, invalid, not_found
from firewatch.api.fields import DeviceId, DevicePath, District, KindName, Limit, Offset, Site
from firewatch.api.tables import DeviceState
from firewatch.contract import credentials
from firewatch.contract.db import Device
from firewatch.contract.rules import RULES
from firewatch.contract.settings import SettingsError

router = APIRouter(prefix="/api/v1", tags=["devices"])
MAX_CSV_BYTES = 20 * 1024 * 1024
CSV_COLUMNS = (
    "id",
    "kind",
    "district",
    "site",
    "address",
    "latitude",
    "longitude",
    "thresholds",
    "report_interval_s",
    "transmitter_address",
)
TransmitterAddress = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-fA-F]{12}$", to_lower=True),
    Field(description="a panel's GB/T 26875.3 transmission device address, 12 hex digits"),
]
Thresholds = Annotated[
    dict[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")], dict[str, float | bool | None]],
    Field(
        max_length=100,
        description='per rule, e.g. {"overcurrent": {"alarm": 63}}; wins over [alerting] settings',
    ),
]


def check_thresholds(kind: str, thresholds: dict[str, Any], where: str = "body.thresholds") -> None:
    """Refuse what alerting would refuse: unknown rules for the kind, bad fields, unreachable levels."""
    rules = RULES.get(kind, {})
    for name, values in thresholds.items():
        if name not in rules:
            raise invalid(f"{kind} has no rule {name!r} (rules: {', '.join(rules)})", where)
        if any(isinstance(v, float) and not math.isfinite(v) for v in values.values()):
            raise invalid(f"thresholds.{name}: values must be finite numbers", where)
    try:
        alerting_config.load({kind: thresholds})
    except SettingsError as exc:
        raise invalid(str(exc).replace(f"alerting.{kind}.", "thresholds."), where) from None


Address = Annotated[str, Field(max_length=256, pattern=r"^[^\x00]*$")]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
ReportInterval = Annotated[
    int, Field(ge=1, le=7 * 86400, description="seconds; offline after two missed")
]


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: DeviceId
    kind: KindName
    district: District
    site: Site = ""
    address: Address = ""
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    thresholds: Thresholds = Field(default_factory=dict)
    report_interval_s: ReportInterval | None = None
    transmitter_address: TransmitterAddress | None = None


class DevicePatch(BaseModel):
    """Only the fields given change; `kind` never does (a new kind is a new device)."""

    model_config = ConfigDict(extra="forbid")
    district: District | None = None
    site: Site | None = None
    address: Address | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    thresholds: Thresholds | None = None
    report_interval_s: ReportInterval | None = None
    transmitter_address: TransmitterAddress | None = None


class Status(BaseModel):
    online: bool
    ts_ms: int
    fw: str
    changed_ms: int


class DeviceOut(BaseModel):
    id: str
    kind: str
    district: str
    site: str
    address: str
    latitude: float | None
    longitude: float | None
    thresholds: dict[str, Any]
    report_interval_s: int | None
    transmitter_address: str | None = None
    created_ms: int
    retired_ms: int | None
    status: Status | None = None


class DeviceList(BaseModel):
    total: int
    items: list[DeviceOut]


class Rejected(BaseModel):
    line: int
    id: str
    reason: str


class ImportReport(BaseModel):
    created: int
    updated: int
    rejected: list[Rejected]


def device_out(d: Device, st: DeviceState | None = None) -> DeviceOut:
    status = (
        Status(online=st.online, ts_ms=st.ts_ms, fw=st.fw, changed_ms=st.changed_ms) if st else None
    )
    return DeviceOut(
        id=d.id,
        kind=d.kind,
        district=d.district,
        site=d.site,
        address=d.address,
        latitude=d.latitude,
        longitude=d.longitude,
        thresholds=d.thresholds or {},
        report_interval_s=d.report_interval_s,
        transmitter_address=d.transmitter_address,
        created_ms=d.created_ms,
        retired_ms=d.retired_ms,
        status=status,
    )


async def check_transmitter(s: Any, address: str | None, device_id: str) -> None:
    """One transmission device speaks for one panel: a second claim on its address is a conflict."""
    if address is None:
        return
    owner = (await s.execute(select(Device.id).where(Device.transmitter_address == address))).scalar()
    if owner is not None and owner != device_id:
        raise conflict(f"transmitter address {address} belongs to device {owner}")


async def load_device(c: Ctx, device_id: str) -> Device:
    async with c.store.session() as s:
        d = await s.get(Device, device_id)
    if d is None:
        raise not_found(f"device {device_id}")
    return d


@router.get("/devices", response_model=DeviceList, summary="List devices, filtered")
async def list_devices(
    c: Ctx,
    _: Viewer,
    kind: Annotated[KindName | None, Query()] = None,
    district: Annotated[District | None, Query()] = None,
    site: Annotated[Site | None, Query()] = None,
    online: Annotated[bool | None, Query(description="by last reported status")] = None,
    retired: Annotated[bool, Query(description="list retired devices instead")] = False,
    limit: Limit = 500,
    offset: Offset = 0,
) -> DeviceList:
    q = select(Device, DeviceState).outerjoin(DeviceState, DeviceState.device_id == Device.id)
    q = q.where(Device.retired_ms.is_not(None) if retired else Device.retired_ms.is_(None))
    if kind:
        q = q.where(Device.kind == kind)
    if district:
        q = q.where(Device.district == district)
    if site:
        q = q.where(Device.site == site)
    if online is not None:
        q = q.where(DeviceState.online.is_(online))
    async with c.store.session() as s:
        total = (await s.execute(select(func.count()).select_from(q.subquery()))).scalar_one()
        rows = (await s.execute(q.order_by(Device.id).limit(limit).offset(offset))).all()
    return DeviceList(total=total, items=[device_out(d, st) for d, st in rows])


@router.get(
    "/devices/{device_id}", response_model=DeviceOut, summary="One device with its last status"
)
async def get_device(device_id: DevicePath, c: Ctx, _: Viewer) -> DeviceOut:
    async with c.store.session() as s:
        d = await s.get(Device, device_id)
        st = await s.get(DeviceState, device_id)
    if d is None:
        raise not_found(f"device {device_id}")
    return device_out(d, st)


@router.post("/devices", response_model=DeviceOut, status_code=201, summary="Register a device")
async def create_device(body: DeviceIn, c: Ctx, who: Admin) -> DeviceOut:
    check_thresholds(body.kind, body.thresholds)
    async with c.store.session() as s, s.begin():
        if await s.get(Device, body.id) is not None:
            raise conflict(f"device {body.id} already exists (retired ids are never reused)")
        await check_transmitter(s, body.transmitter_address, body.id)
        d = Device(**body.model_dump())
        s.add(d)
        await c.store.audit(
            s, who.name, "create", f"device:{body.id}", **body.model_dump(exclude={"id"})
        )
    c.feed.poke()
    return device_out(d)


@router.patch(
    "/devices/{device_id}",
    response_model=DeviceOut,
    summary="Change where a device is or its thresholds",
)
async def update_device(device_id: DevicePath, body: DevicePatch, c: Ctx, who: Admin) -> DeviceOut:
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(k, 0) is None for k in ("district", "site", "address", "thresholds")):
        raise ApiError(422, "district, site, address and thresholds cannot be null")
    async with c.store.session() as s, s.begin():
        d = await s.get(Device, device_id)
        if d is None:
            raise not_found(f"device {device_id}")
        if d.retired_ms is not None:
            raise conflict(f"device {device_id} is retired")
        if "thresholds" in changes:
            check_thresholds(d.kind, changes["thresholds"])
        await check_transmitter(s, changes.get("transmitter_address"), device_id)
        for key, value in changes.items():
            setattr(d, key, value)
        await c.store.audit(s, who.name, "update", f"device:{device_id}", **changes)
        st = await s.get(DeviceState, device_id)
    c.feed.poke()
    return device_out(d, st)


@router.delete(
    "/devices/{device_id}", response_model=DeviceOut, summary="Retire a device (kept, off the map)"
)
async def retire_device(device_id: DevicePath, c: Ctx, who: Admin) -> DeviceOut:
    """Its broker password and ACL entry go too (with `mqtt.password_file` set): a retired
    device can no longer connect once the broker rereads them."""
    async with c.store.session() as s:
        d = await s.get(Device, device_id)
    if d is None:
        raise not_found(f"device {device_id}")
    if d.retired_ms is not None:
        raise conflict(f"device {device_id} is already retired")
    retired = await credentials.retire_device(c.store, device_id, c.settings.mqtt.password_file, who.name)
    assert retired is not None
    c.feed.poke()
    return device_out(retired)


def _csv_row(raw: dict[str, str | None]) -> DeviceIn:
    """One CSV row as a DeviceIn; raises ValueError with the reason a person can act on."""
    missing = [k for k in ("id", "kind", "district") if not (raw.get(k) or "").strip()]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    fields: dict[str, Any] = {k: (raw.get(k) or "").strip() for k in CSV_COLUMNS}
    fields["transmitter_address"] = fields["transmitter_address"] or None
    for key, number in (("latitude", float), ("longitude", float), ("report_interval_s", int)):
        try:
            fields[key] = number(fields[key]) if fields[key] else None
        except ValueError:
            raise ValueError(f"{key} {fields[key]!r} is not a number") from None
    text = fields["thresholds"]
    try:
        fields["thresholds"] = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        raise ValueError(
            'thresholds is not JSON (expected an object like {"residual_ma": 300})'
        ) from None
    try:
        device = DeviceIn(**fields)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None
    try:
        check_thresholds(device.kind, device.thresholds)
    except ApiError as exc:
        raise ValueError(exc.message) from None
    return device


@router.post(
    "/devices/import",
    response_model=ImportReport,
    summary="Import devices from CSV; existing ids are updated",
    description="Columns: " + ", ".join(CSV_COLUMNS) + " (thresholds as a JSON object; "
    "only id, kind and district are required). "
    "Each row stands alone: a bad row is reported with its line and reason, the others are imported.",
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def import_devices(request: Request, c: Ctx, who: Admin) -> ImportReport:
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise ApiError(413, f"CSV larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB; split it")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"CSV must be UTF-8: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if "id" not in header or "kind" not in header or "district" not in header:
        raise ApiError(
            422,
            f"CSV header must name at least id, kind, district (columns: {', '.join(CSV_COLUMNS)})",
        )
    report = ImportReport(created=0, updated=0, rejected=[])
    good: dict[str, tuple[int, DeviceIn]] = {}
    try:
        for row in reader:
            line = reader.line_num
            try:
                dev = _csv_row(row)
            except ValueError as exc:
                report.rejected.append(
                    Rejected(line=line, id=str(row.get("id") or "")[:64], reason=str(exc))
                )
                continue
            if dev.id in good:
                report.rejected.append(
                    Rejected(line=line, id=dev.id, reason=f"duplicate of line {good[dev.id][0]}")
                )
                continue
            good[dev.id] = (line, dev)
    except csv.Error as exc:
        raise ApiError(422, f"CSV unreadable at line {reader.line_num}: {exc}") from None
    ids = list(good)
    async with c.store.session() as s, s.begin():
        existing: dict[str, Device] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            existing.update(
                {
                    d.id: d
                    for d in (await s.execute(select(Device).where(Device.id.in_(chunk)))).scalars()
                }
            )
        addresses = [dev.transmitter_address for _, dev in good.values() if dev.transmitter_address]
        owners: dict[str, str] = {}
        for i in range(0, len(addresses), 500):
            rows = await s.execute(select(Device.transmitter_address, Device.id)
                                   .where(Device.transmitter_address.in_(addresses[i : i + 500])))
            owners.update({a: d for a, d in rows})
        for device_id, (line, dev) in good.items():
            values = dev.model_dump(exclude={"id"})
            d = existing.get(device_id)
            address = dev.transmitter_address
            if address and owners.setdefault(address, device_id) != device_id:
                report.rejected.append(Rejected(
                    line=line, id=device_id, reason=f"transmitter address {address} belongs to device "
                                                    f"{owners[address]}"))
                continue
            if d is None:
                s.add(Device(id=device_id, **values))
                report.created += 1
                action = "create"
            elif d.retired_ms is not None:
                report.rejected.append(
                    Rejected(line=line, id=device_id, reason="device is retired")
                )
                continue
            elif d.kind != dev.kind:
                report.rejected.append(
                    Rejected(
                        line=line, id=device_id, reason=f"device is a {d.kind}; kind cannot change"
                    )
                )
                continue
            else:
                for key, value in values.items():
                    setattr(d, key, value)
                report.updated += 1
                action = "update"
            await c.store.audit(s, who.name, action, f"device:{device_id}", via="import", **values)
    report.rejected.sort(key=lambda r: r.line)
    c.feed.poke()
    return report
