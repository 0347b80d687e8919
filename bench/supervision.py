"""`firewatch bench supervision`: a month's unit scores and monthly PDF reports for a city of units.

A simulated month (March 2026) is written as the platform would have stored it: units, sites
and devices in a fresh SQLite store, the month's alerts (faults repaired and not, false alarms,
offline spells, fire alarms acknowledged late or in time) and hazard orders, and the hydrants'
and pumps' pressure readings in a fresh InfluxDB. Then `month_scores` scores every unit as of the
month's end (what `GET /api/v1/scores` and the monthly job do) and `render_unit` renders unit reports
from those scores, as the monthly job does. Prints one JSON object: seconds for the scores, seconds for
the reports, peak RSS, the grade counts; beside them the ceiling measured in the same run,
`influx_scan_s` (InfluxDB counting the month's pressure readings once, ungrouped: the scores count
them twice, by device, below and above each floor), and the load average at the start.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import insert

import firewatch.gateway  # noqa: F401 - its duty-check table is one the scores read
from firewatch.contract.db import Alert, Device, open_store
from firewatch.contract.influx import Influx
from firewatch.contract.kinds import SPECS
from firewatch.contract.settings import InfluxSettings
from firewatch.services import InfluxD
from firewatch.supervision import (
    INFLUX_TIMEOUT_S,
    PRESSURE_KINDS,
    HazardOrder,
    SupervisionConfig,
    Unit,
    UnitSite,
    gather_units,
    month,
    month_scores,
    render_unit,
)

HOUR = 3_600_000
KINDS = ("panel", "hydrant", "pump", "electrical")
SHARE = (0.2, 0.1, 0.05, 0.65)
"""Of a unit's devices: panels, hydrant monitors, pump rooms, electrical fire detectors."""


async def _fill(store_url: str, influx: Influx, units: int, devices: int, districts: int, every_h: float,
                seed: int) -> dict[str, int]:
    """The simulated month; returns what was written."""
    rng = np.random.default_rng(seed)
    period = month("2026-03")
    start, end = period.start_ms, period.end_ms
    store = await open_store(store_url)
    per_unit = devices // units
    kinds = np.repeat(KINDS, [max(1, round(per_unit * s)) for s in SHARE])[:per_unit]
    written = {"units": units, "devices": 0, "alerts": 0, "hazards": 0, "readings": 0}
    async with store.engine.begin() as conn:
        await conn.execute(insert(Unit), [
            {"id": u + 1, "name": f"单位{u + 1:05d}", "credit_code": f"B{u + 1:017d}", "category": "general",
             "district": f"5101{u % districts:02d}"} for u in range(units)])
        await conn.execute(insert(UnitSite), [{"site": f"S{u + 1}", "unit_id": u + 1} for u in range(units)])
        rows = [{"id": f"U{u + 1}-{k}", "kind": kind, "district": f"5101{u % districts:02d}", "site": f"S{u + 1}"}
                for u in range(units) for k, kind in enumerate(kinds)]
        for i in range(0, len(rows), 20_000):
            await conn.execute(insert(Device), rows[i:i + 20_000])
        written["devices"] = len(rows)
        alerts: list[dict[str, Any]] = []
        hazards: list[dict[str, Any]] = []
        for u in range(units):
            site, dev, district = f"S{u + 1}", f"U{u + 1}-0", f"5101{u % districts:02d}"
            neglected = rng.random() < 0.05
            for _ in range(int(rng.poisson(2))):
                t = int(rng.integers(start, end - 6 * HOUR))
                fixed = None if neglected else t + int(rng.exponential(12) * HOUR)
                alerts.append(_alert("fault", "warning", dev, site, district, t, fixed))
            for _ in range(int(rng.poisson(3))):
                t = int(rng.integers(start, end - HOUR))
                alerts.append(_alert("fire", "fire", dev, site, district, t, t + 60_000,
                                     acked=t + int(rng.exponential(90) * 1000)))
            if rng.random() < 0.1:
                t = int(rng.integers(start, end - 24 * HOUR))
                alerts.append(_alert("offline", "warning", f"U{u + 1}-1", site, district, t, t + 6 * HOUR))
            if neglected:
                t = int(rng.integers(start, end - 10 * 24 * HOUR))
                hazards.append({"unit_id": u + 1, "category": "fault_unrepaired", "severity": "general",
                                "state": "dispatched", "device_id": dev, "site": site, "district": district,
                                "opened_ms": t, "deadline_ms": t + 72 * HOUR})
        for i in range(0, len(alerts), 20_000):
            await conn.execute(insert(Alert), alerts[i:i + 20_000])
        if hazards:
            await conn.execute(insert(HazardOrder), hazards)
        written["alerts"], written["hazards"] = len(alerts), len(hazards)
    await store.aclose()
    step = int(every_h * HOUR)
    times = np.arange(start, end, step)
    for k, kind in enumerate(kinds):
        if kind not in ("hydrant", "pump"):
            continue
        measurement = kind
        for u0 in range(0, units, 500):
            lines = []
            for u in range(u0, min(units, u0 + 500)):
                p = np.round(0.35 + 0.02 * rng.standard_normal(len(times)), 4)
                if rng.random() < 0.03:
                    p[: len(p) // 10] = 0.05
                tags = f"{measurement},device_id=U{u + 1}-{k},district=5101{u % districts:02d},site=S{u + 1}"
                lines += [f"{tags} pressure_mpa={v!r} {t}" for t, v in zip(times.tolist(), p.tolist(), strict=True)]
            await influx.write("\n".join(lines))
            written["readings"] += len(lines)
    return written


def _alert(rule: str, severity: str, device: str, site: str, district: str, t: int, resolved: int | None,
           acked: int | None = None) -> dict[str, Any]:
    return {"fingerprint": f"{device}:{rule}", "rule": rule, "severity": severity,
            "state": "resolved" if resolved is not None else "firing", "kind": "panel", "device_id": device,
            "district": district, "site": site, "started_ms": t, "last_seen_ms": resolved or t,
            "resolved_ms": resolved, "acknowledged_ms": acked}


def main(units: int, devices: int, districts: int, reports: int, every_h: float, as_json: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="fw-bench-supervision-") as tmp, InfluxD(Path(tmp) / "influxd") as influxd:
        out = asyncio.run(_run(Path(tmp), influxd.url, units, devices, districts, reports, every_h))
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if as_json:
        print(orjson.dumps(out).decode())
    else:
        for k, v in out.items():
            print(f"{k:>24}  {v}")
    sys.stdout.flush()


async def _run(tmp: Path, influx_url: str, units: int, devices: int, districts: int, reports: int,
               every_h: float) -> dict[str, Any]:
    load = [round(x, 2) for x in os.getloadavg()]
    influx = Influx(InfluxSettings(url=influx_url, database="bench"))
    await influx.create_database()
    url = f"sqlite:///{tmp}/bench.db"
    t0 = time.perf_counter()
    written = await _fill(url, influx, units, devices, districts, every_h, seed=13)
    fill_s = time.perf_counter() - t0
    config = SupervisionConfig()
    store = await open_store(url)
    period = month("2026-03")
    try:
        t0 = time.perf_counter()
        scan = ";".join(f'SELECT count("pressure_mpa") FROM "{SPECS[kind].measurement}" '
                        f"WHERE time >= {period.start_ms}ms AND time < {period.end_ms}ms" for kind in PRESSURE_KINDS)
        await influx.query(scan, timeout_s=INFLUX_TIMEOUT_S)
        scan_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = await month_scores(store, influx, config, period)
        scores_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        # As the monthly job does: the city scored once, then each unit's month gathered and rendered.
        chosen = [x for x in scores if x.unit_id <= reports]
        months = await gather_units(store, influx, config, period, unit_ids=[x.unit_id for x in chosen],
                                    scores=chosen)
        gather_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pages = sum(len(render_unit(m, config)) for m in months)
        render_s = time.perf_counter() - t0
    finally:
        await store.aclose()
        await influx.aclose()
    grades: dict[str, int] = {}
    for s in scores:
        grades[s.grade.value] = grades.get(s.grade.value, 0) + 1
    return {"bench": "supervision", "store": "sqlite", **written, "reading_every_h": every_h,
            "fill_s": round(fill_s, 1), "scores_s": round(scores_s, 2), "scored_units": len(scores),
            "influx_scan_s": round(scan_s, 2), "load_before": load,
            "grades": grades, "reports": len(months), "reports_s": round(gather_s + render_s, 1),
            "reports_gather_s": round(gather_s, 1), "reports_render_s": round(render_s, 1),
            "report_mean_kb": round(pages / max(1, len(months)) / 1024, 1),
            "targets": {"scores_s": 60, "reports_s": 300}}
