"""The supervisor's clock: event time from the platform's own records, or the wall clock.

Event time is the newest of what alerting has stored (alert starts, refreshes and
resolutions) and the newest reading or panel event in InfluxDB. Alerts alone would
stand still through a quiet day with nothing firing or clearing, and then no order
would open, fall due or pass its verification; every device's readings keep it moving.
Both reads are bounded to what is newer than the clock already is, so each costs an
index lookup, not a scan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import func, select

from firewatch.contract.db import Alert, Store
from firewatch.contract.influx import Influx
from firewatch.contract.kinds import SPECS

log = logging.getLogger(__name__)
LOOKBACK_MS = 86_400_000
"""Readings may arrive late (a gateway's backlog): look back this far behind the clock."""


class Clock:
    def __init__(
        self, store: Store, influx: Influx | None, mode: str,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.store = store
        self.influx = influx
        self.mode = mode
        self.wall_ms = wall_ms
        self.event_ms = 0
        self._seen_updated = 0

    async def now(self) -> int:
        if self.mode == "wall":
            return self.wall_ms()
        async with self.store.session() as s:
            q = select(func.max(Alert.last_seen_ms), func.max(Alert.updated_ms))
            if self._seen_updated:
                q = q.where(Alert.updated_ms >= self._seen_updated - 60_000)
            latest, updated = (await s.execute(q)).one()
        self.event_ms = max(self.event_ms, latest or 0)
        self._seen_updated = max(self._seen_updated, updated or 0)
        self.event_ms = max(self.event_ms, await self._newest_reading())
        return self.event_ms

    async def _newest_reading(self) -> int:
        if self.influx is None:
            return 0
        since = max(0, self.event_ms - LOOKBACK_MS)
        q = ";".join(f'SELECT * FROM "{spec.measurement}" WHERE time > {since}ms ORDER BY time DESC LIMIT 1'
                     for spec in SPECS.values())
        try:
            series = await self.influx.query(q)
        except Exception as exc:  # noqa: BLE001 - InfluxDB away: the alerts still tell the time
            log.warning("supervision clock: InfluxDB unreadable (%s); using the alerts alone", exc)
            return 0
        newest = 0
        for sr in series:
            col = sr.columns.index("time") if "time" in sr.columns else 0
            newest = max([newest, *(int(v[col]) for v in sr.values)])
        return newest
