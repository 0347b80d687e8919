"""Detection over the telemetry of one device kind: rules in, signals out, one pass per batch.

Every device of the kind has a slot; its state lives in the numpy arrays of
the feature stages (thresholds, rates, baseline, sensor faults), the level
engine and the heartbeat tracker, all indexed by slot. A batch of readings
becomes a matrix (one row per reading, one column per metric) and every stage
works on whole columns. A device with several readings in one batch (a
gateway's backlog, a replay) is handled in rounds of at most one reading per
device, in timestamp order, so state advances exactly as if they came one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, repeat
from operator import attrgetter
from typing import Any, TypeVar

import numpy as np

from firewatch.alerting.config import AlertingConfig
from firewatch.alerting.detect.arrays import grown
from firewatch.alerting.detect.baseline import Baseline, Drift
from firewatch.alerting.detect.changepoint import ChangePoints
from firewatch.alerting.detect.cycle import DayCycle
from firewatch.alerting.detect.daily import TimeOfDay
from firewatch.alerting.detect.heartbeat import Heartbeats, silence
from firewatch.alerting.detect.levels import Change, LevelEngine
from firewatch.alerting.detect.multivariate import Multivariate
from firewatch.alerting.detect.rates import Rates
from firewatch.alerting.detect.sensor import Frozen, Jumps
from firewatch.alerting.detect.thresholds import Thresholds
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.alerting.signal import Signal
from firewatch.contract.db import Severity
from firewatch.contract.kinds import SPECS
from firewatch.contract.payload import Reading
from firewatch.contract.rules import COMMON_RULES, READING_RULES, RULES, Params

NAN = float("nan")
OFFLINE = COMMON_RULES["offline"].severities[0]
IMPOSSIBLE = COMMON_RULES["sensor_impossible"].severities[0]
_ts = attrgetter("ts_ms")
_slot = attrgetter("slot")
_T = TypeVar("_T")


class ReadingDetector:
    def __init__(self, kind: str, config: AlertingConfig, registry: Registry) -> None:
        self.kind = kind
        self.config = config
        self.registry = registry
        self.metrics = list(SPECS[kind].metrics)
        self._columns: dict[tuple[str, ...], np.ndarray] = {}
        columns = {m: i for i, m in enumerate(self.metrics)}
        by = {f: [r for r in READING_RULES[kind] if r.feature in f] for f in
              (("value", "spread", "unbalance"), ("rate",), ("drift",), ("baseline",), ("multivariate",),
               ("changepoint",), ("weekly_shift",), ("cycle",), ("daily",), ("frozen",), ("jump",))}
        week = ChangePoints(kind, by[("weekly_shift",)], columns, weekly=True)
        self.stages = [
            Thresholds(by[("value", "spread", "unbalance")], columns),
            Rates(by[("rate",)], columns),
            Drift(kind, by[("drift",)], columns),
            Baseline(kind, by[("baseline",)], columns),
            Multivariate(kind, by[("multivariate",)], columns),
            ChangePoints(kind, by[("changepoint",)], columns),
            week,
            DayCycle(kind, by[("cycle",)], columns, week),
            TimeOfDay(kind, by[("daily",)], columns),
            Frozen(kind, by[("frozen",)], columns),
            Jumps(kind, by[("jump",)], columns),
        ]
        self.rules = [r for s in self.stages for r in s.rules]
        self.rule_index = {r.name: i for i, r in enumerate(self.rules)}
        self.levels = LevelEngine(self.rules)
        self.pattern = next(s for s in self.stages if isinstance(s, Multivariate))
        self.shifts, self.week_shifts = (s for s in self.stages if isinstance(s, ChangePoints))
        self.cycle = next(s for s in self.stages if isinstance(s, DayCycle))
        self.daily = next(s for s in self.stages if isinstance(s, TimeOfDay))
        self.pattern.engine = self.daily.engine = self.levels
        self.heartbeats = Heartbeats()
        self.index: dict[str, int] = {}
        self.devices: list[DeviceInfo] = []
        self.last_ts = np.zeros(0, dtype=np.int64)
        self.bad_ts = np.zeros(0, dtype=np.int64)
        self.bad_window_ms = np.zeros(0, dtype=np.int64)
        self.bad_count = np.zeros(0, dtype=np.int64)
        self.bad_needed = np.zeros(0, dtype=np.int64)
        self._teaching = False
        self.stale = 0
        """Readings older than the newest one already seen from their device (redeliveries)."""

    @property
    def teaching(self) -> bool:
        """True while a training window runs: learned stages take every reading and fit nothing yet."""
        return self._teaching

    @teaching.setter
    def teaching(self, on: bool) -> None:
        self._teaching = on
        for stage in self.learned:
            stage.teaching = on

    def commission(self) -> None:
        """After a training window: learned stages speak from now on, and no level is raised yet."""
        n = len(self.devices)
        for stage in self.learned:
            stage.commission(n)
        self.levels.clear(n)
        self.heartbeats.offline[:n] = False
        self.bad_ts[:n] = self.bad_count[:n] = 0

    @property
    def learned(self) -> list[Baseline | Drift | Multivariate | ChangePoints | DayCycle | TimeOfDay]:
        return [s for s in self.stages
                if isinstance(s, Baseline | Drift | Multivariate | ChangePoints | DayCycle | TimeOfDay)]

    def slot(self, device_id: str, district: str) -> int:
        s = self.index.get(device_id)
        if s is None:
            s = self.add([self.registry.get(device_id, self.kind, district)])[0]
        return s

    def add(self, infos: Sequence[DeviceInfo]) -> list[int]:
        """Slots for new devices, made together: every array grows once (by doubling) and the settings are
        applied once per group of devices that share them, so a batch of first-seen devices, or a city's
        registry at start, costs numpy passes rather than a configuration per device."""
        start = len(self.devices)
        for i, info in enumerate(infos):
            self.index[info.id] = start + i
        self.devices.extend(infos)
        n = len(self.devices)
        for stage in (*self.stages, self.levels, self.heartbeats):
            stage.grow(n)
        for name in ("last_ts", "bad_ts", "bad_window_ms", "bad_count", "bad_needed"):
            setattr(self, name, grown(getattr(self, name), n, 0))
        self.configure(np.arange(start, n))
        return list(range(start, n))

    def grace(self, now_ms: int) -> None:
        """No device of this kind is called offline for silence before its grace from `now_ms`."""
        self.heartbeats.grace(now_ms)

    def knows(self, device_id: str) -> bool:
        return device_id in self.index

    def expect(self, device_id: str, district: str, now_ms: int) -> None:
        """The device should report from `now_ms` on (the registry says it exists)."""
        self.heartbeats.expect(self.slot(device_id, district), now_ms)

    def latest_seen(self) -> np.ndarray:
        """When each device of this kind was last heard from (event time, ms)."""
        return self.heartbeats.latest(len(self.devices))

    def restore_baseline(self, device_id: str, district: str, state: dict[str, Any]) -> None:
        """Give a device back what its learned stages had learnt before a restart."""
        s = self.slot(device_id, district)
        for stage in self.learned:
            stage.restore(s, state)

    def baselines(self, start: int = 0, stop: int | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(device, district, learned state) of every device in slots `start:stop` that has learnt
        something, to store."""
        rows = []
        for s, d in enumerate(self.devices[start:stop], start):
            state: dict[str, Any] = {}
            for stage in self.learned:
                state.update(stage.export(s))
            if state:
                rows.append((d.id, d.district, state))
        return rows

    def reconfigure(self) -> None:
        """Re-apply thresholds of every device whose registry entry changed (new site, own thresholds)."""
        changed = []
        for s, d in enumerate(self.devices):
            info = self.registry.devices.get(d.id)
            if info is not None and info != d:
                self.devices[s] = info
                changed.append(s)
        self.configure(np.array(changed, dtype=np.int64))

    def configure(self, slots: np.ndarray) -> None:
        """(Re)apply the settings and registry thresholds of the devices in `slots`, one pass per group
        of devices whose settings are the same (resolved once per district and site when a device has
        none of its own)."""
        groups: dict[tuple[int, int], tuple[dict[str, Params], int, list[int]]] = {}
        for s in slots.tolist():
            info = self.devices[s]
            params = self.config.params(self.kind, info.district, info.site, info.id, info.thresholds)
            interval = self.config.report_interval_ms(self.kind, info.report_interval_s)
            groups.setdefault((id(params), interval), (params, interval, []))[2].append(s)
        for params, interval, members in groups.values():
            at = np.array(members, dtype=np.int64)
            for stage in (*self.stages, self.levels):
                stage.set_params(at, params)
            self.heartbeats.set_params(at, interval, params["offline"])
            bad = params["sensor_impossible"]
            self.bad_window_ms[at] = int(bad.window_s * 1000)
            self.bad_needed[at] = int(bad.warning or 1) if bad.enabled else -1

    def detect(self, readings: Sequence[Reading]) -> list[Signal]:
        n = len(readings)
        ids = [r.device_id for r in readings]
        slots = np.fromiter(map(self.index.get, ids, repeat(-1)), np.int64, n)
        new = np.flatnonzero(slots < 0)
        if len(new):
            first = {ids[i]: readings[i].district for i in new}
            self.add([self.registry.get(d, self.kind, district) for d, district in first.items()])
            slots[new] = [self.index[ids[i]] for i in new]
        ts = np.fromiter(map(_ts, readings), np.int64, n)
        return self.detect_arrays(slots, ts, self._matrix(readings))

    def _matrix(self, readings: Sequence[Reading]) -> np.ndarray:
        """[readings, metrics] with NaN for what a reading lacks; readings that name the same
        metrics in the same order (nearly all) are copied as one block."""
        groups: dict[tuple[str, ...], list[Reading]] = {}
        for r in readings:
            groups.setdefault(tuple(r.metrics), []).append(r)
        if len(groups) == 1:
            ((names, rows),) = groups.items()
            return self._block(names, rows)
        v = np.full((len(readings), len(self.metrics)), NAN)
        at = {id(r): i for i, r in enumerate(readings)}
        for names, rows in groups.items():
            block = self._block(names, rows)
            v[[at[id(r)] for r in rows]] = block
        return v

    def _block(self, names: tuple[str, ...], rows: list[Reading]) -> np.ndarray:
        """Rows that all carry `names`, in that order, as a full [rows, metrics] matrix."""
        values = np.fromiter(chain.from_iterable(r.metrics.values() for r in rows), float, len(rows) * len(names))
        cols = self._columns.get(names)
        if cols is None:
            cols = self._columns[names] = np.array([self.metrics.index(m) for m in names], dtype=np.int64)
        out = np.full((len(rows), len(self.metrics)), NAN)
        out[:, cols] = values.reshape(len(rows), len(names))
        return out

    def detect_arrays(self, slots: np.ndarray, ts: np.ndarray, v: np.ndarray) -> list[Signal]:
        """Readings as arrays: device slots, event times (ms) and a [n, metrics] matrix with NaN gaps."""
        out: list[Signal] = []
        for rows in _rounds(slots, ts):
            s, t, x = slots[rows], ts[rows], v[rows]
            fresh = t > self.last_ts[s]
            if not fresh.all():
                self.stale += int((~fresh).sum())
                rows, s, t, x = rows[fresh], s[fresh], t[fresh], x[fresh]
                if not len(s):
                    continue
            self.last_ts[s] = t
            for back in _arrival(rows, s, self.heartbeats.seen(s, t)):
                out.append(self._heartbeat(back, int(self.last_ts[back]), None))
            f = np.concatenate([stage.compute(s, t, x) for stage in self.stages], axis=1)
            changes = self.levels.step(s, t, f)
            matured = [c for c in changes if c.row < 0]
            for c in _arrival(rows, s, matured, _slot):
                out.append(self._signal(c, c.at_ms, None))
            for c in _arrival(rows, s, changes[len(matured):], _slot):
                out.append(self._signal(c, int(t[c.row]), x[c.row]))
        return out

    def tick(self, now_ms: int) -> list[Signal]:
        n = len(self.devices)
        out = [self._signal(c, c.at_ms, None) for c in self.levels.tick(now_ms, n)]
        out += [self._heartbeat(s, at, OFFLINE) for s, at in self.heartbeats.tick(now_ms, n)]
        bad = self.bad_ts[:n]
        for s in np.nonzero((bad > 0) & (now_ms - bad > self.bad_window_ms[:n]))[0]:
            at = int(bad[s] + self.bad_window_ms[s])
            if self.bad_count[s] >= self.bad_needed[s]:
                out.append(self._impossible(int(s), at, None))
            self.bad_ts[s] = self.bad_count[s] = 0
        return out

    def seen(self, device_id: str, district: str, ts_ms: int) -> list[Signal]:
        """A sign of life without readings (a status message)."""
        s = self.slot(device_id, district)
        return [self._heartbeat(b, ts_ms, None) for b in self.heartbeats.seen(np.array([s]), np.array([ts_ms]))]

    def offline(self, device_id: str, district: str, ts_ms: int) -> list[Signal]:
        s = self.slot(device_id, district)
        return [self._heartbeat(s, ts_ms, OFFLINE)] if self.heartbeats.went_offline(s, ts_ms) else []

    def impossible(self, device_id: str, district: str, ts_ms: int, detail: str) -> list[Signal]:
        """A message from this device was refused as physically impossible."""
        s = self.slot(device_id, district)
        if self.bad_ts[s] and ts_ms - self.bad_ts[s] > self.bad_window_ms[s]:
            self.bad_count[s] = 0
        self.bad_ts[s] = ts_ms
        self.bad_count[s] += 1
        if self.bad_count[s] == self.bad_needed[s]:
            return [self._impossible(s, ts_ms, detail)]
        return []

    def restore(self, device_id: str, district: str, rule: str, severity: str) -> None:
        """Remember an open alert (after a restart) so it is neither raised twice nor left open forever."""
        s = self.slot(device_id, district)
        if rule == "offline":
            self.heartbeats.restore(s)
        elif rule == "sensor_impossible":
            self.bad_ts[s] = max(int(self.last_ts[s]), 1)
            self.bad_count[s] = self.bad_needed[s]
        elif rule in self.rule_index:
            j = self.rule_index[rule]
            sev = self.rules[j].severities
            self.levels.restore(s, j, 2 if severity == sev[1] and sev[0] != sev[1] else 1)

    def _base(self, s: int, rule: str, ts_ms: int, severity: Severity | None, **found: Any) -> Signal:
        d = self.devices[s]
        return Signal(rule, d.id, d.district, ts_ms, severity, kind=self.kind, site=d.site, zone=d.zone, **found)

    def _signal(self, c: Change, ts_ms: int, row: np.ndarray | None) -> Signal:
        rule = self.rules[c.rule]
        metric = rule.metrics[0]
        if row is not None and len(rule.metrics) > 1:
            values = [row[self.metrics.index(m)] for m in rule.metrics]
            pick = np.nanargmin if rule.reduce == "min" else np.nanargmax
            metric = rule.metrics[int(pick(values))]
        threshold = self.levels.threshold(c.slot, c.rule, c.new or c.old)
        where = f" ({metric})" if len(rule.metrics) > 1 and rule.feature == "value" else ""
        shown = metric if rule.feature == "value" else rule.metrics[0] if len(rule.metrics) == 1 else ""
        if c.new and rule.feature == "multivariate":
            why = self.pattern.explain(c.slot, row) if row is not None else "held long enough"
            summary = f"{rule.label}: {c.value:.3g} x its limit; {why}"
        elif c.new and rule.feature in ("changepoint", "weekly_shift"):
            shifts = self.shifts if rule.feature == "changepoint" else self.week_shifts
            shown = shifts.metric(c.slot)
            summary = f"{rule.label}: {shifts.explain(c.slot)} (CUSUM {c.value:.3g}, h {threshold:g})"
        elif c.new and rule.feature == "cycle":
            shown = self.cycle.metric(c.slot)
            summary = f"{rule.label}: {self.cycle.explain(c.slot)}"
        elif c.new and rule.feature == "daily":
            summary = f"{rule.label}: {self.daily.explain(c.slot, ts_ms)} ({c.value:.3g} dev)"
        elif c.new:
            summary = f"{rule.label}{where}: {c.value:.4g} {rule.unit}, level {threshold:g}"
        else:
            summary = f"{rule.label}: back to {c.value:.4g} {rule.unit}"
        return self._base(
            c.slot, rule.name, ts_ms, rule.severities[c.new - 1] if c.new else None,
            metric=shown, value=round(c.value, 4), threshold=threshold, unit=rule.unit, summary=summary,
        )

    def _heartbeat(self, s: int, ts_ms: int, severity: Severity | None) -> Signal:
        last = int(self.heartbeats.last_seen[s])
        summary = f"{RULES[self.kind]['offline'].label}: {silence(last, ts_ms)}" if severity else "back online"
        return self._base(s, "offline", ts_ms, severity, summary=summary)

    def _impossible(self, s: int, ts_ms: int, detail: str | None) -> Signal:
        summary = f"impossible sensor value: {detail}" if detail else "sensor values plausible again"
        return self._base(s, "sensor_impossible", ts_ms, IMPOSSIBLE if detail else None, summary=summary)


def _rounds(slots: np.ndarray, ts: np.ndarray) -> list[np.ndarray]:
    """Row indices split so that each round holds a device at most once, in event-time order.

    Within a round the rows are in slot order: every stage gathers and scatters its per-device state
    by slot, and in slot order those passes walk memory forwards instead of at random (a quarter of
    the detection time for a city's batch).
    """
    n = len(slots)
    if n == 0:
        return []
    order = np.lexsort((ts, slots))
    s = slots[order]
    start = np.r_[True, s[1:] != s[:-1]]
    if start.all():
        return [order]
    group_start = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    rank = np.arange(n) - group_start
    return [order[rank == k] for k in range(int(rank.max()) + 1)]


def _arrival(rows: np.ndarray, slots: np.ndarray, found: list[_T], slot: Callable[[_T], int] = int) -> list[_T]:
    """What a round found, back in the order its readings came (a round runs in slot order): the
    signals of a batch come out in the same order however its rows were walked. `slots` (the round's,
    ascending) and `rows` (their positions in the batch) are parallel; `slot` gives a finding's slot."""
    if len(found) < 2:
        return found
    at = rows[np.searchsorted(slots, [slot(f) for f in found])]
    return [found[i] for i in np.argsort(at, kind="stable")]
