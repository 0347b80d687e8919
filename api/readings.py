"""Readings from InfluxDB: one device's or one site's, over a time range, in aggregation windows.

Values reach InfluxQL only as bound `$params`. The few things InfluxQL cannot
bind (measurement and field names, the GROUP BY window, the aggregate function)
are checked against the contract's metric catalog, a duration pattern and a
fixed list before they are written into the query text.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import select

from firewatch.api.auth import Viewer
from firewatch.api.context import Context, Ctx
from firewatch.api.devices import load_device
from firewatch.api.errors import ApiError, not_found
from firewatch.api.fields import MAX_MS, MIN_MS, DevicePath, SitePath
from firewatch.contract.db import Device, now_ms
from firewatch.contract.kinds import SPECS
from firewatch.contract.rules import LEVELS, RULES
from firewatch.contract.rules import Level as RuleLevel

router = APIRouter(prefix="/api/v1", tags=["readings"])
WINDOW_RE = re.compile(r"^([1-9][0-9]{0,5})(s|m|h|d)$")
UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
LADDER = ("10s", "30s", "1m", "5m", "10m", "30m", "1h", "3h", "6h", "12h", "1d")
TARGET_POINTS = 400
MAX_POINTS = 5000
MAX_RANGE_MS = 400 * 86_400_000
MAX_SITE_DEVICES = 200
Agg = Literal["mean", "max", "min", "last"]


class MetricOut(BaseModel):
    name: str
    unit: str
    label: str


class PanelEventOut(BaseModel):
    t: int
    event: str
    loop: int | None = None
    point: int | None = None
    zone: str | None = None
    component: str | None = None


class Level(BaseModel):
    rule: str
    level: RuleLevel
    value: float
    label: str


class SeriesOut(BaseModel):
    device_id: str
    kind: str
    metrics: list[MetricOut]
    levels: dict[str, list[Level]]
    """Per metric, the warning and alarm levels in force for this device (defaults, settings, registry)."""
    times: list[int]
    values: dict[str, list[float | None]]
    events: list[PanelEventOut]


class ReadingsOut(BaseModel):
    start_ms: int
    end_ms: int
    window: str
    agg: Agg
    series: list[SeriesOut]


def window_ms(window: str) -> int:
    m = WINDOW_RE.match(window)
    if not m:
        raise ApiError(422, f"window {window!r} must look like 30s, 5m, 1h or 1d, or be 'raw'")
    return int(m.group(1)) * UNIT_MS[m.group(2)]


def choose_window(start_ms: int, end_ms: int, window: str | None) -> str:
    """The caller's window if it gives at most MAX_POINTS, else the finest that gives about TARGET_POINTS."""
    span = end_ms - start_ms
    if window == "raw":
        return window
    if window:
        if span / window_ms(window) > MAX_POINTS:
            raise ApiError(
                422, f"window {window} gives more than {MAX_POINTS} points over this range"
            )
        return window
    return next((w for w in LADDER if span / window_ms(w) <= TARGET_POINTS), LADDER[-1])


def time_range(start: int | None, end: int | None, default_ms: int = 86_400_000) -> tuple[int, int]:
    end = end if end is not None else now_ms()
    start = start if start is not None else end - default_ms
    if start >= end:
        raise ApiError(422, "start must be before end")
    if end - start > MAX_RANGE_MS:
        raise ApiError(422, "the range may span at most 400 days")
    return max(start, MIN_MS), end


def _check_metrics(kinds: set[str], wanted: list[str] | None) -> None:
    catalog = {m for k in kinds for m in SPECS[k].metrics}
    unknown = [m for m in wanted or [] if m not in catalog]
    if unknown:
        raise ApiError(
            422, f"no metric {unknown[0]!r} here; known: {', '.join(sorted(catalog)) or 'none'}"
        )


def levels(c: Context, d: Device) -> dict[str, list[Level]]:
    """The levels of the device's plain-value rules, as alerting would judge this device now."""
    out: dict[str, list[Level]] = {}
    params = c.alerting.params(d.kind, d.district, d.site, d.id, registry=d.thresholds or {})
    for name, rule in RULES.get(d.kind, {}).items():
        p = params[name]
        if rule.feature != "value" or not p.enabled:
            continue
        for level in LEVELS:
            value = getattr(p, level)
            if value is not None:
                for metric in rule.metrics:
                    out.setdefault(metric, []).append(
                        Level(rule=name, level=level, value=value, label=rule.label)
                    )
    return out


def _device_filter(devices: list[Device]) -> tuple[str, dict[str, Any]]:
    params = {f"d{i}": d.id for i, d in enumerate(devices)}
    return "(" + " OR ".join(f'"device_id" = $d{i}' for i in range(len(devices))) + ")", params


async def _telemetry(
    c: Context,
    kind: str,
    devices: list[Device],
    metrics: list[str],
    start: int,
    end: int,
    window: str,
    agg: str,
) -> dict[str, tuple[list[int], dict[str, list[float | None]]]]:
    where, params = _device_filter(devices)
    params |= {"start": start * 1_000_000, "end": end * 1_000_000}
    measurement = SPECS[kind].measurement
    if window == "raw":
        cols = ", ".join(f'"{m}"' for m in metrics)
        q = (
            f'SELECT {cols} FROM "{measurement}" WHERE {where} AND time >= $start AND time < $end '
            f'GROUP BY "device_id" ORDER BY time DESC LIMIT {MAX_POINTS}'
        )
    else:
        cols = ", ".join(f'{agg}("{m}") AS "{m}"' for m in metrics)
        q = (
            f'SELECT {cols} FROM "{measurement}" WHERE {where} AND time >= $start AND time < $end '
            f'GROUP BY time({window}), "device_id" fill(none)'
        )
    out: dict[str, tuple[list[int], dict[str, list[float | None]]]] = {}
    for s in await c.influx.query(q, params):
        rows = s.values if window != "raw" else list(reversed(s.values))
        idx = {col: i for i, col in enumerate(s.columns)}
        times = [int(r[0]) for r in rows]
        values = {m: [r[idx[m]] if m in idx else None for r in rows] for m in metrics}
        out[s.tags.get("device_id", "")] = (times, values)
    return out


async def _events(
    c: Context, devices: list[Device], start: int, end: int
) -> dict[str, list[PanelEventOut]]:
    where, params = _device_filter(devices)
    params |= {"start": start * 1_000_000, "end": end * 1_000_000}
    q = (
        f'SELECT "event", "loop", "point", "zone", "component" FROM "{SPECS["panel"].measurement}" '
        f'WHERE {where} AND time >= $start AND time < $end GROUP BY "device_id" ORDER BY time DESC LIMIT 1000'
    )
    out: dict[str, list[PanelEventOut]] = {}
    for s in await c.influx.query(q, params):
        out[s.tags.get("device_id", "")] = [
            PanelEventOut(t=int(r["time"]), **_event_fields(r)) for r in s.rows()
        ]
    return out


def _event_fields(row: dict[str, Any]) -> dict[str, Any]:
    fields = {k: row.get(k) for k in ("event", "zone", "component")}
    fields["event"] = fields["event"] or ""
    for k in ("loop", "point"):
        fields[k] = int(row[k]) if row.get(k) is not None else None
    return fields


async def readings(
    c: Context,
    devices: list[Device],
    start: int,
    end: int,
    window: str | None,
    agg: str,
    wanted: list[str] | None,
) -> ReadingsOut:
    """Readings of devices (one kind's metrics each, panel events for panels), one query per kind."""
    chosen = choose_window(start, end, window)
    _check_metrics({d.kind for d in devices}, wanted)
    series: list[SeriesOut] = []
    by_kind: dict[str, list[Device]] = {}
    for d in devices:
        by_kind.setdefault(d.kind, []).append(d)
    for kind, group in by_kind.items():
        spec = SPECS[kind]
        metrics = [m for m in wanted if m in spec.metrics] if wanted else list(spec.metrics)
        if spec.metrics and not metrics:
            continue
        if spec.metrics:
            data = await _telemetry(c, kind, group, metrics, start, end, chosen, agg)
            events: dict[str, list[PanelEventOut]] = {}
        else:
            data = {}
            events = await _events(c, group, start, end)
        for d in group:
            times, values = data.get(d.id, ([], {m: [] for m in metrics}))
            series.append(
                SeriesOut(
                    device_id=d.id,
                    kind=kind,
                    metrics=[
                        MetricOut(name=m, unit=spec.metrics[m].unit, label=spec.metrics[m].label)
                        for m in metrics
                    ],
                    levels={m: v for m, v in levels(c, d).items() if m in metrics},
                    times=times,
                    values=values,
                    events=events.get(d.id, []),
                )
            )
    return ReadingsOut(start_ms=start, end_ms=end, window=chosen, agg=agg, series=series)  # type: ignore[arg-type]


Start = Annotated[
    int | None, Query(ge=MIN_MS, le=MAX_MS, description="epoch ms; default end - 24 h")
]
End = Annotated[int | None, Query(ge=MIN_MS, le=MAX_MS, description="epoch ms; default now")]
Window = Annotated[
    str | None,
    Query(
        pattern=r"^(raw|[1-9][0-9]{0,5}[smhd])$",
        description="aggregation window (30s, 5m, 1h, 1d) or raw; default: about 400 points",
    ),
]
Metrics = Annotated[
    list[Annotated[str, Query(pattern=r"^[a-z0-9_]{1,64}$")]] | None,
    Query(description="metric names; default all of the kind"),
]


async def _answer(
    request: Request,
    c: Context,
    devices: Callable[[], Awaitable[list[Device]]],
    start: int | None,
    end: int | None,
    window: str | None,
    agg: str,
    wanted: list[str] | None,
) -> Response:
    """The readings as JSON bytes, one build shared by every console asking for the same chart.

    A range ending now (no `end`) is widened to whole windows: the consoles that open
    the same device's chart within one window then ask the same question (their
    `start` is their own now minus the range) and share its answer for up to a
    second; until a new reading or window changes it, its bytes and so its ETag
    stay the same on every worker, and a console holding them gets a 304.
    """
    lo, hi = time_range(start, end)
    chosen = choose_window(lo, hi, window)
    if end is None and chosen != "raw":
        w = window_ms(chosen)
        lo, hi = lo - lo % w, hi - hi % w + w

    async def build() -> bytes:
        return (await readings(c, await devices(), lo, hi, chosen, agg, wanted)).model_dump_json().encode()

    key = f"{request.url.path}?{lo}&{hi}&{chosen}&{agg}&{','.join(wanted or [])}"  # what the answer covers
    return await c.readings_cache.answer(request, key, await c.feed.head(), build)


@router.get(
    "/devices/{device_id}/readings",
    response_model=ReadingsOut,
    summary="A device's readings over a time range",
)
async def device_readings(
    request: Request,
    device_id: DevicePath,
    c: Ctx,
    _: Viewer,
    start: Start = None,
    end: End = None,
    window: Window = None,
    agg: Agg = "mean",
    metric: Metrics = None,
) -> Response:
    async def devices() -> list[Device]:
        return [await load_device(c, device_id)]

    return await _answer(request, c, devices, start, end, window, agg, metric)


@router.get(
    "/sites/{site}/readings",
    response_model=ReadingsOut,
    summary="Readings of every device at a site",
)
async def site_readings(
    request: Request,
    site: SitePath,
    c: Ctx,
    _: Viewer,
    start: Start = None,
    end: End = None,
    window: Window = None,
    agg: Agg = "mean",
    metric: Metrics = None,
) -> Response:
    async def devices() -> list[Device]:
        async with c.store.session() as s:
            found = list(
                (
                    await s.execute(
                        select(Device)
                        .where(Device.site == site, Device.retired_ms.is_(None))
                        .order_by(Device.id)
                        .limit(MAX_SITE_DEVICES)
                    )
                ).scalars()
            )
        if not found:
            raise not_found(f"site {site!r} (no active device there)")
        return found

    return await _answer(request, c, devices, start, end, window, agg, metric)
