"""The monthly job: when the supervisor's clock passes the 1st, the month that ended is scored and its reports written.

It runs in the api process beside the supervisor, on the supervisor's clock (event time by
default, so a replayed month produces its reports when the replay reaches the 1st), and every
api worker runs it. One `sv_monthly_runs` row per month is the claim: its period is the primary
key, so of several workers one inserts it and does the work; the others see the row and leave it.
The claimant refreshes its claim as it goes; a claim left `stale_ms` without a refresh (its worker
died or was restarted) is taken over by a guarded UPDATE. Reports already written are kept, so a
taken-over month only writes what is missing, and a done month is never produced again.

Scores are kept in `sv_scores` (`month_scores`), the PDFs under `[supervision] report_dir`, one
folder per month, where the api's report downloads look first (`stored_report`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Integer, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from firewatch.contract.db import Base, Store, now_ms
from firewatch.contract.influx import Influx
from firewatch.supervision.config import SupervisionConfig
from firewatch.supervision.indicators import (
    Period,
    PressureFloor,
    kind_floor,
    month_of,
    previous_month,
)
from firewatch.supervision.models import Unit
from firewatch.supervision.reports import (
    gather_district,
    gather_units,
    render_district,
    render_unit,
)
from firewatch.supervision.scores import Score, month_scores
from firewatch.supervision.supervisor import every

log = logging.getLogger(__name__)
STALE_MS = 10 * 60_000
"""A claim not refreshed for this long (wall clock) belongs to a worker that is gone."""


class MonthlyRun(Base):
    """One month's production: who claimed it, when it was last refreshed, when it was done."""

    __tablename__ = "sv_monthly_runs"
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    worker: Mapped[str] = mapped_column(String(128))
    claimed_ms: Mapped[int] = mapped_column()
    """Wall clock of the claim or its last refresh."""
    done_ms: Mapped[int | None] = mapped_column(nullable=True)
    units: Mapped[int] = mapped_column(Integer, default=0)
    reports: Mapped[int] = mapped_column(Integer, default=0)
    """Reports written by the worker that finished (those kept from a taken-over run are not counted)."""


def stored_report(root: Path, label: str, subject: str) -> Path:
    """Where the monthly job keeps a report: `subject` is `unit-{id}` or `district-{code}`."""
    return root / label / f"{subject}.pdf"


class MonthlyReports:
    def __init__(
        self, store: Store, influx: Influx | None, config: SupervisionConfig, clock: Callable[[], Awaitable[int]],
        floor: PressureFloor = kind_floor, wall_ms: Callable[[], int] = now_ms, stale_ms: int = STALE_MS,
    ) -> None:
        self.store, self.influx, self.config, self.clock, self.floor = store, influx, config, clock, floor
        self.wall_ms, self.stale_ms = wall_ms, stale_ms
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run(self) -> None:
        """Its own task beside the supervisor's sweep: a month's reports take long, the sweep must not wait."""
        await every(self.config.interval_s, self.tick, "monthly reports")

    async def tick(self) -> str | None:
        """Produce the month that ended before the clock's month, unless done or another worker has it;
        returns the month produced."""
        now = await self.clock()
        if now <= 0:
            return None  # nothing stored yet: the clock does not know what month it is
        period = previous_month(month_of(now))
        if not await self._claim(period.label):
            return None
        units, written = await self._produce(period)
        async with self.store.session() as s, s.begin():
            await s.execute(update(MonthlyRun).where(MonthlyRun.period == period.label,
                                                     MonthlyRun.worker == self.worker)
                            .values(done_ms=self.wall_ms(), units=units, reports=written))
        log.info("monthly reports for %s: %d units scored, %d reports written", period.label, units, written)
        return period.label

    async def _claim(self, label: str) -> bool:
        wall = self.wall_ms()
        try:
            async with self.store.session() as s, s.begin():
                row = await s.get(MonthlyRun, label)
                if row is None:
                    s.add(MonthlyRun(period=label, worker=self.worker, claimed_ms=wall))
                    return True
        except IntegrityError:
            return False  # another worker inserted it first
        if row.done_ms is not None or (row.worker != self.worker and wall - row.claimed_ms < self.stale_ms):
            return False
        async with self.store.session() as s, s.begin():
            taken = await s.execute(update(MonthlyRun).where(
                MonthlyRun.period == label, MonthlyRun.claimed_ms == row.claimed_ms, MonthlyRun.done_ms.is_(None))
                .values(worker=self.worker, claimed_ms=wall))
        if taken.rowcount == 1 and row.worker != self.worker:
            log.info("monthly reports for %s: taking over from %s", label, row.worker)
        return taken.rowcount == 1

    async def _refresh(self, label: str) -> None:
        """Keep the claim: a long month is not taken for a dead worker's."""
        async with self.store.session() as s, s.begin():
            await s.execute(update(MonthlyRun).where(MonthlyRun.period == label, MonthlyRun.worker == self.worker)
                            .values(claimed_ms=self.wall_ms()))

    async def _produce(self, period: Period) -> tuple[int, int]:
        scores = await month_scores(self.store, self.influx, self.config, period, floor=self.floor)
        if not scores:
            return 0, 0
        async with self.store.session() as s:
            district_of = dict((await s.execute(select(Unit.id, Unit.district))).all())
        by_district: dict[str, list[Score]] = {}
        for x in scores:
            by_district.setdefault(district_of[x.unit_id], []).append(x)
        root = self.config.report_dir
        folder = stored_report(root, period.label, "").parent
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        kept = set(await asyncio.to_thread(os.listdir, folder))
        written = 0
        for district, theirs in sorted(by_district.items()):
            path = stored_report(root, period.label, f"district-{district}")
            if path.name not in kept:
                d = await gather_district(self.store, self.influx, self.config, period, district, scores=theirs)
                await _write(path, await asyncio.to_thread(render_district, d, self.config))
                written += 1
            missing = [x for x in theirs if stored_report(root, period.label, f"unit-{x.unit_id}").name not in kept]
            months = await gather_units(self.store, self.influx, self.config, period,
                                        unit_ids=[x.unit_id for x in missing], scores=missing)
            for m in months:
                body = await asyncio.to_thread(render_unit, m, self.config)
                await _write(stored_report(root, period.label, f"unit-{m.unit.id}"), body)
                written += 1
            await self._refresh(period.label)
        return len(scores), written


async def _write(path: Path, body: bytes) -> None:
    """Whole or not at all: a worker killed mid-write leaves no half report for the console to serve."""

    def write() -> None:
        part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        part.write_bytes(body)
        part.replace(path)

    await asyncio.to_thread(write)
