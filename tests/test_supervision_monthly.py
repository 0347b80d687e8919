"""The monthly job, in event time: the month that ended is scored and reported once the supervisor's clock
passes the 1st, by one of several api workers, and a restarted or second worker neither redoes nor loses it.

Real PostgreSQL (the claim is its primary key), the api over HTTP with its supervisor on the event clock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from firewatch.contract.db import now_ms, open_store
from firewatch.contract.influx import Influx
from firewatch.supervision import MonthlyReports, MonthlyRun
from firewatch.supervision import load as supervision_config
from tests import supervision_world
from tests.conftest import wait_for
from tests.supervision_world import SITE_A, World
from tests.test_api_server import run
from tests.test_supervision_month import at

pytestmark = pytest.mark.postgres
world, world_settings = supervision_world.world, supervision_world.world_settings


def runs(w: World) -> dict[str, MonthlyRun]:
    async def go() -> dict[str, MonthlyRun]:
        store = await open_store(w.api.settings.store.url)
        async with store.session() as s:
            rows = {r.period: r for r in (await s.execute(select(MonthlyRun))).scalars()}
        await store.aclose()
        return rows

    return run(go())


def worker_tick(w: World, clock_ms: int, workers: int = 1, **change: Any) -> list[str | None]:
    """`workers` more api workers (or one restarted) ticking at once at `clock_ms`; `change`: the March run's row
    first set to these values (a claim its worker left)."""

    async def go() -> list[str | None]:
        s = w.api.settings
        store, influx = await open_store(s.store.url), Influx(s.influx)
        try:
            if change:
                async with store.session() as session, session.begin():
                    await session.execute(update(MonthlyRun).where(MonthlyRun.period == "2026-03").values(**change))

            async def clock() -> int:
                return clock_ms

            jobs = [MonthlyReports(store, influx, supervision_config(s), clock) for _ in range(workers)]
            return list(await asyncio.gather(*(j.tick() for j in jobs)))
        finally:
            await influx.aclose()
            await store.aclose()

    return run(go())


def test_the_month_that_ended_is_reported_once_when_the_clock_passes_the_first(world: World) -> None:
    w = world
    reports = Path(w.api.settings.supervision["report_dir"])
    march = reports / "2026-03"
    fault = w.insert_alert(device_id="P-1", rule="fault", site=SITE_A, started_ms=at(2, 9))
    wait_for(lambda: runs(w).get("2026-02") and runs(w)["2026-02"].done_ms)
    assert "2026-03" not in runs(w) and not march.exists(), "March is not over while the clock is in it"

    w.resolve_alert(fault, at(3, 15))
    w.insert_alert(device_id="P-1", rule="offline", site=SITE_A, started_ms=at(31, 0) + 300_000)  # 04-01 00:05
    wait_for(lambda: runs(w).get("2026-03") and runs(w)["2026-03"].done_ms, timeout_s=60)
    a, b = w.a["id"], w.b["id"]
    files = {p.name for p in march.iterdir()}
    assert files == {f"unit-{a}.pdf", f"unit-{b}.pdf", "district-510104.pdf"}, files
    assert runs(w)["2026-03"].units == 2 and runs(w)["2026-03"].reports == 3

    # The console's download is the month's report as written; the scores are the API's.
    pdf = w.operator.get(f"/api/v1/reports/units/{a}.pdf", params={"month": "2026-03"})
    assert pdf.status_code == 200 and pdf.content == (march / f"unit-{a}.pdf").read_bytes()
    scored = {x["unit_id"]: x for x in w.operator.get("/api/v1/scores", params={"month": "2026-03"}).json()}
    assert scored[a]["indicators"]["faults"] == 1 and scored[a]["indicators"]["repair_worst_h"] == pytest.approx(30)

    # A restarted worker, and two more at once, leave a done month alone.
    before = {p.name: p.stat().st_mtime_ns for p in march.iterdir()}
    assert worker_tick(w, at(31, 1), workers=2) == [None, None]
    assert {p.name: p.stat().st_mtime_ns for p in march.iterdir()} == before

    # A worker died half-way (its claim 11 minutes old, one report missing): the next to look (this one or
    # the api's own) takes over and writes only what is missing.
    (march / f"unit-{b}.pdf").unlink()
    worker_tick(w, at(31, 1), done_ms=None, worker="dead:1:x", claimed_ms=now_ms() - 11 * 60_000)
    wait_for(lambda: runs(w)["2026-03"].done_ms)
    assert (march / f"unit-{b}.pdf").exists() and runs(w)["2026-03"].reports == 1
    assert runs(w)["2026-03"].worker != "dead:1:x"
    assert {n: t for n, t in before.items() if n != f"unit-{b}.pdf"} == {
        p.name: p.stat().st_mtime_ns for p in march.iterdir() if p.name != f"unit-{b}.pdf"}

    # A claim refreshed a minute ago belongs to a live worker: nobody else takes it.
    assert worker_tick(w, at(31, 1), done_ms=None, worker="alive:1:x", claimed_ms=now_ms() - 60_000) == [None]
    assert runs(w)["2026-03"].worker == "alive:1:x"

    # Several workers reaching a new month at once: exactly one produces it.
    assert sorted(worker_tick(w, at(61, 1), workers=3), key=str) == ["2026-04", None, None]
