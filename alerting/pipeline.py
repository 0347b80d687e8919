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
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from firewatch.alerting.changes import AlertChange, ChangeFeed
from firewatch.alerting.config import AlertingConfig
from firewatch.alerting.correlate import Correlator
from firewatch.alerting.detect.panel import PanelDetector
from firewatch.alerting.detect.readings import ReadingDetector
from firewatch.alerting.lifecycle import Lifecycle
from firewatch.alerting.metrics import PREFIX
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.alerting.signal import Signal
from firewatch.alerting.state import load_baselines, save_baselines
from firewatch.contract.db import Store
from firewatch.contract.kinds import SPECS
from firewatch.contract.payload import DeviceStatus, PanelEvent, Reading, Record
from firewatch.contract.rules import READING_RULES

SLICE_MS = 60_000
SAVE_DEVICES = 500
"""Devices whose learned state is saved in one transaction (see `Pipeline.save_baselines`)."""
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


RECORD_TYPES = {"readings": "reading", "events": "panel_event", "statuses": "status"}
"""`Pipeline.counts` key → the `type` label of records_processed."""
COUNTERS = {
    "clock_ahead": ("records_clock_ahead", "Records stamped over max_clock_skew_s ahead; receive time used"),
    "unknown_status": ("statuses_unknown_device", "Status messages of devices neither registered nor seen"),
    "impossible": ("readings_impossible", "Physically impossible readings, counted towards sensor_impossible"),
    "unwatched": ("readings_unwatched", "Readings of a kind no rule watches (a panel's analog values): stored, not judged"),
    "signals": ("signals", "Detector findings handed to correlation and the lifecycle"),
}
"""The other `Pipeline.counts` keys, each its own counter (alert changes are the lifecycle's to count)."""


class Pipeline:
    def __init__(self, config: AlertingConfig, store: Store, registry: Registry | None = None,
                 metrics: CollectorRegistry | None = None, districts: Sequence[str] = ()) -> None:
        """`metrics`: where the stages register their Prometheus metrics (default: a registry of their own).

        `districts`: a worker's share of the city (none: all); its open alerts and learned
        baselines are restored from those districts only, as its registry holds only their devices.
        """
        self.districts = tuple(districts)
        metrics = metrics or CollectorRegistry()
        self.config = config
        self.store = store
        self.registry = registry or Registry()
        self.readings = {k: ReadingDetector(k, config, self.registry) for k in READING_RULES}
        self.panels = PanelDetector(config, self.registry)
        self.correlator = Correlator(config.correlation)
        self.lifecycle = Lifecycle(store, config.flap, metrics, self.districts, self.period_ms)
        self.feed = ChangeFeed()
        self.clock_ms = 0
        self._lock = asyncio.Lock()
        """Lifecycle changes commit one batch at a time (a tick must not interleave with a batch)."""
        self.counts: Counter[str] = Counter()
        """readings, events, statuses, clock_ahead, unknown_status, impossible, signals, changes."""
        metrics.register(_Counts(self))

    async def start(self) -> None:
        """Restore open alerts into the detectors and learned baselines, so a restart changes nothing."""
        for b in await load_baselines(self.store, self.districts):
            det = self.readings.get(b.kind)
            if det is not None:
                det.restore_baseline(b.device_id, b.district, b.state)
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
            det.grace(now_ms)
        new: dict[str, list[DeviceInfo]] = defaultdict(list)
        for d in self.registry.devices.values():
            if d.kind in self.readings and not self.readings[d.kind].knows(d.id):
                new[d.kind].append(d)
        for kind, infos in new.items():
            self.readings[kind].add(infos)  # a city's registry in one pass per kind, not a device at a time
        for d in self.registry.devices.values():
            det = self.panels if d.kind == "panel" else self.readings.get(d.kind)
            if det is not None:
                det.expect(d.id, d.district, now_ms)

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
            det = self.readings.get(kind)
            if det is None:
                self.counts["unwatched"] += len(rs)
                continue
            self.counts["readings"] += len(rs)
            signals += det.detect(rs)
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
        ts = np.concatenate([det.latest_seen() for det in (*self.readings.values(), self.panels)])
        ts = ts[ts > 0]
        if len(ts):
            mark = int(np.percentile(ts, 90, method="lower")) - int(self.config.lateness_s * 1000)
            self.clock_ms = max(self.clock_ms, mark)

    def _detector_of(self, device_id: str) -> ReadingDetector | PanelDetector | None:
        for det in (*self.readings.values(), self.panels):
            if det.knows(device_id):
                return det
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

    def period_ms(self, signal: Signal) -> int:
        """How often the signal's device reports: the registry's period, else its kind's."""
        info = self.registry.devices.get(signal.device_id)
        registered = info.report_interval_s if info is not None else None
        if registered or signal.kind in SPECS:
            return self.config.report_interval_ms(signal.kind, registered)
        return 60_000

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
        """Every device's learned state, `SAVE_DEVICES` at a time: the export walks the devices in Python
        (~0.1 ms each, and as much again serialising it), and a city's 100,000 in one go held the event loop, and every alert, for
        seconds. Between two shares readings go on being detected; each device's row is itself at one
        moment."""
        for kind, det in self.readings.items():
            start = 0
            while start < len(det.devices):
                stop = start + SAVE_DEVICES
                await save_baselines(self.store, kind, [d.id for d in det.devices[start:stop]],
                                     det.baselines(start, stop))
                start = stop

    def reconfigure(self) -> None:
        """Re-apply thresholds after the registry changed (new sites, device thresholds)."""
        for det in self.readings.values():
            det.reconfigure()


class _Counts(Collector):
    """The pipeline's counts, read when Prometheus scrapes (on the HTTP server's thread), so the
    per-reading path pays nothing for metrics. Copying a Counter is atomic under the GIL."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        p = self._pipeline
        counts = dict(p.counts)
        records = CounterMetricFamily(PREFIX + "records_processed", "Records through detection, by type",
                                      labels=["type"])
        for key, label in RECORD_TYPES.items():
            records.add_metric([label], counts.get(key, 0))
        yield records
        for key, (name, doc) in COUNTERS.items():
            yield CounterMetricFamily(PREFIX + name, doc, value=counts.get(key, 0))
        yield GaugeMetricFamily(
            PREFIX + "unregistered_devices",
            "Devices heard from but not in the registry (detected with their kind's defaults): register them",
            value=len(p.registry.unknown),
        )
        yield CounterMetricFamily(
            PREFIX + "readings_stale",
            "Readings not newer than their device's last one (redeliveries, out of order), skipped",
            value=sum(d.stale for d in p.readings.values()),
        )
