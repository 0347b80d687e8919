"""The alerting pipeline: detect → correlate → lifecycle → change feed, composed in this one place.

    pipeline = Pipeline(config, store, registry)
    await pipeline.start()                        # reload open alerts and baselines
    changes = pipeline.feed.subscribe()           # outputs and notify stages attach here
    await pipeline.process(records, now_ms=...)   # parsed records from contract.payload.parse
    await pipeline.tick(now_ms)                   # timers: heartbeats, minimum durations, hazards
    await pipeline.sync()                         # operators' acknowledgements and resolutions

Time is event time. With `clock = "event"` (replay, evaluation) the pipeline's
clock follows the devices' timestamps (see `_advance`), and timers run
after every batch; with `clock = "wall"` (live) the service calls `tick` with
the wall clock, and a device timestamp more than `max_clock_skew_s` ahead of
the receive time is replaced by the receive time (counted as `clock_ahead`).
In event mode a batch is cut into slices of `SLICE_MS` of event time and the
timers run after each, so how messages happen to be batched does not change
the alerts (timer alerts carry the event time their condition matured; a
device back within one slice of being overdue is not reported offline). Each stage is its own module and can be tested alone; this class only routes
records to them and signals between them.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from operator import attrgetter

import numpy as np

from firewatch.alerting.changes import AlertChange, ChangeFeed
from firewatch.alerting.config import AlertingConfig
from firewatch.alerting.correlate import Correlator
from firewatch.alerting.detect.panel import PanelDetector
from firewatch.alerting.detect.readings import ReadingDetector
from firewatch.alerting.lifecycle import Lifecycle
from firewatch.alerting.registry import Registry
from firewatch.alerting.signal import Signal
from firewatch.alerting.state import load_baselines, save_baselines
from firewatch.contract.db import Store
from firewatch.contract.payload import DeviceStatus, PanelEvent, Reading, Record
from firewatch.contract.rules import READING_RULES

SLICE_MS = 60_000
_ts = attrgetter("ts_ms")


def _slices(records: Iterable[Record]) -> list[list[Record]]:
    """Records in event-time order, cut where the `SLICE_MS` grid is crossed."""
    records = list(records)
    if not records:
        return []
    ts = np.fromiter(map(_ts, records), np.int64, len(records))
    if ts[-1] // SLICE_MS == ts[0] // SLICE_MS and (ts[1:] >= ts[:-1]).all():
        return [records]  # the usual live batch: in order, within one slice
    order = np.argsort(ts, kind="stable")
    bins = ts[order] // SLICE_MS
    cuts = np.flatnonzero(bins[1:] != bins[:-1]) + 1
    return [[records[i] for i in part] for part in np.split(order, cuts)]


class Pipeline:
    def __init__(self, config: AlertingConfig, store: Store, registry: Registry | None = None) -> None:
        self.config = config
        self.store = store
        self.registry = registry or Registry()
        self.readings = {k: ReadingDetector(k, config, self.registry) for k in READING_RULES}
        self.panels = PanelDetector(config, self.registry)
        self.correlator = Correlator(config.correlation)
        self.lifecycle = Lifecycle(store, config.flap)
        self.feed = ChangeFeed()
        self.clock_ms = 0
        self._lock = asyncio.Lock()
        """Lifecycle changes commit one batch at a time (a tick must not interleave with a batch)."""
        self.counts: Counter[str] = Counter()
        """readings, events, statuses, clock_ahead, unknown_status, impossible, signals, changes."""

    async def start(self) -> None:
        """Restore open alerts into the detectors and learned baselines, so a restart changes nothing."""
        for b in await load_baselines(self.store):
            det = self.readings.get(b.kind)
            if det is not None:
                s = det.slot(b.device_id, b.district)
                for stage in det.learned:
                    stage.restore(s, b.state)
        for a in await self.lifecycle.load():
            self.clock_ms = max(self.clock_ms, a.last_seen_ms)
            if a.rule == "water_main" or (a.kind == "hydrant" and a.rule in ("pressure_low", "pressure_drop")):
                self.correlator.restore(a.rule, a.device_id, a.district, a.started_ms)
            if not a.device_id:
                continue
            if a.kind == "panel":
                self.panels.restore(a.device_id, a.district, a.rule, a.severity, a.started_ms)
            elif a.kind in self.readings:
                self.readings[a.kind].restore(a.device_id, a.district, a.rule, a.severity)

    def expect(self, now_ms: int) -> None:
        """Every registered device is expected to report from now on: silent ones go offline in time.

        Called at start and after every reconnect to the broker: each device gets its grace from now.
        """
        for det in (*self.readings.values(), self.panels):
            det.heartbeats.grace_from = max(det.heartbeats.grace_from, now_ms)
        for d in self.registry.devices.values():
            det = self.panels if d.kind == "panel" else self.readings.get(d.kind)
            if det is None:
                continue
            slot = det.state(d.id, d.district).slot if det is self.panels else det.slot(d.id, d.district)
            det.heartbeats.last_seen[slot] = max(int(det.heartbeats.last_seen[slot]), now_ms)

    def detect(self, records: Iterable[Record], impossible: Iterable[tuple[str, str, str, str]] = (),
               now_ms: int | None = None) -> list[Signal]:
        """Run the detectors; `impossible` lists (district, device_id, kind, detail) of refused readings."""
        by_kind: dict[str, list[Reading]] = defaultdict(list)
        events: list[PanelEvent] = []
        statuses: list[DeviceStatus] = []
        skew = int(self.config.max_clock_skew_s * 1000)
        for r in records:
            if now_ms is not None and r.ts_ms > now_ms + skew:
                r.ts_ms = now_ms
                self.counts["clock_ahead"] += 1
            if isinstance(r, Reading):
                by_kind[r.kind].append(r)
            elif isinstance(r, PanelEvent):
                events.append(r)
            else:
                statuses.append(r)
        signals: list[Signal] = []
        for kind, rs in by_kind.items():
            self.counts["readings"] += len(rs)
            signals += self.readings[kind].detect(rs)
        if events:
            self.counts["events"] += len(events)
            signals += self.panels.detect(sorted(events, key=lambda e: e.ts_ms))
        for st in statuses:
            signals += self._status(st)
        for district, device_id, kind, detail in impossible:
            det = self.readings.get(kind) or self._detector_of(device_id)
            if isinstance(det, ReadingDetector):
                self.counts["impossible"] += 1
                signals += det.impossible(device_id, district, now_ms or self.clock_ms, detail)
        return signals

    def _advance(self) -> None:
        """Event clock: the 90th percentile of the devices' latest timestamps, less the lateness.

        A percentile rather than the newest timestamp, so a few devices with clocks
        running ahead cannot fire everyone else's timers early.
        """
        seen = [det.heartbeats.last_seen[: len(det.devices)] for det in self.readings.values()]
        seen.append(self.panels.heartbeats.last_seen[: len(self.panels.panels)])
        ts = np.concatenate(seen)
        ts = ts[ts > 0]
        if len(ts):
            mark = int(np.percentile(ts, 90, method="lower")) - int(self.config.lateness_s * 1000)
            self.clock_ms = max(self.clock_ms, mark)

    def _detector_of(self, device_id: str) -> ReadingDetector | PanelDetector | None:
        for det in self.readings.values():
            if device_id in det.index:
                return det
        if device_id in self.panels.panels:
            return self.panels
        info = self.registry.devices.get(device_id)
        if info is not None:
            return self.panels if info.kind == "panel" else self.readings.get(info.kind)
        return None

    def _status(self, st: DeviceStatus) -> list[Signal]:
        self.counts["statuses"] += 1
        det = self._detector_of(st.device_id)
        if det is None:
            self.counts["unknown_status"] += 1
            return []
        if st.online:
            return det.seen(st.device_id, st.district, st.ts_ms)
        return det.offline(st.device_id, st.district, st.ts_ms)

    def timers(self, now_ms: int) -> list[Signal]:
        self.clock_ms = max(self.clock_ms, now_ms)
        out: list[Signal] = []
        for det in self.readings.values():
            out += det.tick(self.clock_ms)
        out += self.panels.tick(self.clock_ms)
        return out

    async def process(self, records: Iterable[Record], impossible: Iterable[tuple[str, str, str, str]] = (),
                      now_ms: int | None = None) -> list[AlertChange]:
        if self.config.clock == "wall":
            return await self._apply(self.detect(records, impossible, now_ms), now_ms or self.clock_ms)
        signals = self.detect([], impossible, now_ms)
        for part in _slices(records):
            signals += self.detect(part)
            self._advance()
            signals += self.timers(self.clock_ms)
        return await self._apply(signals, self.clock_ms)

    def teach(self, records: Iterable[Record]) -> None:
        """A training window (replay's `--learn`): the readings teach the learned detectors, nothing is raised."""
        for det in self.readings.values():
            det.teaching = True
        try:
            for part in _slices(records):
                self.detect(part)
                self._advance()
                self.timers(self.clock_ms)
        finally:
            for det in self.readings.values():
                det.teaching = False

    def commission(self, now_ms: int) -> None:
        """End of a training window: what was learned is the device's normal from `now_ms`, every level clear."""
        self.clock_ms = max(self.clock_ms, now_ms)
        for det in self.readings.values():
            det.commission()

    async def tick(self, now_ms: int) -> list[AlertChange]:
        return await self._apply(self.timers(now_ms), now_ms)

    async def _apply(self, signals: list[Signal], now_ms: int) -> list[AlertChange]:
        async with self._lock:
            return await self._apply_locked(signals, now_ms)

    async def _apply_locked(self, signals: list[Signal], now_ms: int) -> list[AlertChange]:
        changes = []
        if signals:
            self.counts["signals"] += len(signals)
            changes = await self.lifecycle.apply(self.correlator.correlate(signals))
        changes += await self.lifecycle.tick(now_ms)
        if changes:
            self.counts["changes"] += len(changes)
            self.feed.publish(changes)
        return changes

    async def sync(self) -> list[AlertChange]:
        async with self._lock:
            changes = await self.lifecycle.sync()
        self.feed.publish(changes)
        return changes

    async def save_baselines(self) -> None:
        for kind, det in self.readings.items():
            rows = []
            for s, d in enumerate(det.devices):
                state = {}
                for stage in det.learned:
                    state.update(stage.export(s))
                if state:
                    rows.append((d.id, d.district, state))
            await save_baselines(self.store, kind, rows)

    def reconfigure(self) -> None:
        """Re-apply thresholds after the registry changed (new sites, device thresholds)."""
        for det in self.readings.values():
            for s, d in enumerate(det.devices):
                info = self.registry.devices.get(d.id)
                if info is not None and info != d:
                    det.devices[s] = info
                    det.configure(s)
