"""`firewatch replay`: recorded readings through the same detectors, in event time, as fast as possible.

A user tunes thresholds on last month's data: export a CSV (any separator;
csv.Sniffer finds it), name the device and its kind (or the column that names
the device, for a file of several), map columns that are not named like the
metrics (`--map "Leakage (mA)=residual_ma"`), and read the alerts as JSON
lines, one per alert with its event-time start and end, in the order they
started. Settings (`[alerting]` thresholds, district/site/device overrides)
apply exactly as in the live service; the clock is the data's.

What a live device would do, replay does: rows are taken in event-time order
whatever the file's order; a value outside its sensor's physical range is
refused on its own (the row's other metrics are still evaluated, and the
refusal counts towards `sensor_impossible` at the row's time); each device's
reporting period is learned from its timestamps (the median gap), so a device
that reports every second is not offline after two minutes of silence, nor
one that reports hourly after two. `--learn 400` (rows) or `--learn 6h`
(event time from each device's first row) is a training window: its readings
teach the learned detectors and raise nothing. Lines that cannot be read are
counted on stderr, never fatal; a summary of what fired ends on stderr.
"""

from __future__ import annotations

import asyncio
import csv
import math
import re
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import orjson

from firewatch.alerting.config import load
from firewatch.alerting.pipeline import Pipeline
from firewatch.alerting.registry import DeviceInfo, Registry
from firewatch.contract.db import Alert, open_store
from firewatch.contract.kinds import SPECS
from firewatch.contract.payload import Reading
from firewatch.contract.settings import Settings, SettingsError

TIME_NAMES = ("time", "timestamp", "ts", "datetime", "date", "ts_ms", "time_ms")
CHUNK = 2000
LAST_MS = 253_402_300_799_999
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


class ReplayError(ValueError):
    """The file or the options cannot be replayed; the message says why."""


@dataclass
class Columns:
    time: int
    metrics: dict[int, str]
    device: int | None = None
    label: int | None = None
    ignored: list[str] = field(default_factory=list)
    units: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Per column recorded in another unit, (a, b): a·x + b is its value in its metric's unit."""


@dataclass
class Recording:
    """A file's readings in event-time order, with what was refused and each device's row times."""

    kind: str
    readings: list[Reading]
    refused: list[tuple[int, str, str]]
    """(event time, device, detail) of values outside their sensor's range, in event-time order."""
    rows: dict[str, np.ndarray]
    """Per device, the event time (ms) of every row read, sorted."""
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    """Per device, the row's label (1 anomalous, 0 normal) in the order of `rows`, from `label_column`."""
    bad: Counter[str] = field(default_factory=Counter)

    def period_s(self, device: str) -> int:
        """The device's reporting period: the median gap between its rows, whole seconds, at least 1."""
        ts = np.unique(self.rows.get(device, np.zeros(0, np.int64)))
        if len(ts) < 2:
            return 0
        return max(1, int(np.ceil(np.median(np.diff(ts)) / 1000)))


@dataclass
class Result:
    alerts: list[Alert]
    counts: Counter[str]
    learned_until: dict[str, int]
    """Per device, the event time the training window ended (0: no training window)."""


def parse_time(text: str) -> int:
    """ISO-8601 (UTC unless it says otherwise), or epoch seconds / milliseconds."""
    t = text.strip()
    try:
        x = float(t)
    except ValueError:
        try:
            dt = datetime.fromisoformat(t)
        except ValueError:
            raise ValueError(f"{text!r} is neither ISO-8601 nor epoch seconds/ms") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        ms = int(dt.timestamp() * 1000)
    else:
        if not math.isfinite(x):
            raise ValueError(f"{text!r} is not a time")
        ms = int(x if abs(x) > 1e11 else x * 1000)
    if not 0 < ms < LAST_MS:
        raise ValueError(f"{text!r} is before 1970 or after 9999")
    return ms


def parse_learn(text: str | None) -> tuple[int, int]:
    """`--learn 400` → (400 rows, 0); `--learn 6h` / `90min` / `2d` → (0, ms); None → (0, 0)."""
    if text is None:
        return 0, 0
    t = text.strip().lower()
    if re.fullmatch(r"\d+", t):
        return int(t), 0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)", t)
    if not m:
        raise ReplayError(f"--learn {text!r}: a number of rows (400) or a duration (90s, 30min, 6h, 2d)")
    return 0, int(float(m.group(1)) * _UNITS_MS[m.group(2)])


def _index(names: list[str], column: str | None, option: str) -> int | None:
    if column is None:
        return None
    if column not in names:
        raise ReplayError(f"{option} {column!r} is not a column ({', '.join(names)})")
    return names.index(column)


def columns(header: list[str], kind: str, maps: list[str], time_column: str | None,
            device_column: str | None = None, label_column: str | None = None) -> Columns:
    metrics = SPECS[kind].metrics
    mapping: dict[str, str] = {}
    units: dict[str, tuple[float, float]] = {}
    for m in maps:
        col, sep, target = m.rpartition("=")
        if not sep or not col:
            raise ReplayError(f"--map {m!r}: expected column=metric or column=metric:unit")
        metric, _, unit = target.partition(":")
        if metric not in metrics:
            raise ReplayError(f"--map {m!r}: {kind} has no metric {metric!r} ({', '.join(metrics)})")
        mapping[col] = metric
        if unit.strip():
            units[col] = _conversion(m, metrics[metric].unit, unit.strip())
    names = [h.strip() for h in header]
    t = _index(names, time_column, "--time-column")
    if t is None:
        t = next((i for i, h in enumerate(names) if h.lower() in TIME_NAMES), 0)
    cols = Columns(t, {}, _index(names, device_column, "--device-column"), _index(names, label_column,
                                                                                   "--label-column"))
    for i, h in enumerate(names):
        if i in (t, cols.device, cols.label):
            continue
        metric = mapping.get(h, h if h in metrics else None)
        if metric is None:
            cols.ignored.append(h)
        else:
            cols.metrics[i] = metric
            if h in units:
                cols.units[i] = units[h]
    missing = set(mapping) - set(names)
    if missing:
        raise ReplayError(f"--map names columns that are not in the file: {', '.join(sorted(missing))}")
    if not cols.metrics:
        raise ReplayError(f"no column is a {kind} metric ({', '.join(metrics)}); use --map column=metric")
    return cols


@cache
def _registry() -> Any:
    import pint  # here, not at the top: it takes 0.4 s to import, and only a --map naming a unit needs it

    return pint.UnitRegistry()


def _conversion(option: str, own: str, unit: str) -> tuple[float, float]:
    """(a, b) with a·x + b a value recorded in `unit` in the metric's own unit `own` (pint's units: bar, psi,
    kPa, L/min, m^3/h, degF...), so a recording in another unit is judged by the same levels and nameplate."""
    ureg = _registry()
    try:
        zero, one = (float(ureg.Quantity(x, unit).to(own).magnitude) for x in (0.0, 1.0))
    except Exception as exc:  # noqa: BLE001 - pint's parser raises what its tokens lead to (AssertionError for "**")
        raise ReplayError(f"--map {option!r}: cannot read {unit!r} as {own}: {str(exc) or 'not a unit'}") from None
    if not (math.isfinite(zero) and math.isfinite(one) and one != zero):
        raise ReplayError(f"--map {option!r}: {unit!r} is no unit of {own}")
    return float(f"{one - zero:.12g}"), float(f"{zero:.12g}")


def read(f: TextIO, device: str | None, kind: str, district: str, maps: list[str], time_column: str | None,
         device_column: str | None = None, label_column: str | None = None, quiet: bool = False,
         scale: tuple[int, int] | None = None) -> Recording:
    """The file as a Recording; a row with one impossible value keeps its other metrics.

    `scale` (a training window as from `parse_learn`) maps every column linearly
    onto 5..95 % of its metric's physical range, fitted on the training rows (or
    the whole file): for recordings in units no device kind has (evaluation only).
    """
    if kind not in SPECS or not SPECS[kind].metrics:
        raise ReplayError(f"--kind {kind!r}: one of electrical, hydrant, pump")
    if not device and not device_column:
        raise ReplayError("name the device (--device ID) or the column that names it (--device-column NAME)")
    sample = f.read(64 * 1024)
    f.seek(0)
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t| ")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(f, dialect)
    header = next(rows, None)
    if header is None:
        raise ReplayError("the file is empty")
    cols = columns(header, kind, maps, time_column, device_column, label_column)
    if cols.ignored and not quiet:
        print(f"replay: ignoring columns {', '.join(cols.ignored)}", file=sys.stderr)
    bad: Counter[str] = Counter()
    parsed: list[tuple[int, int, str, dict[str, float], int]] = []
    for n, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            ts = parse_time(row[cols.time])
        except (ValueError, IndexError):
            bad["bad_time"] += 1
            continue
        dev = row[cols.device].strip() if cols.device is not None and cols.device < len(row) else device
        if not dev:
            bad["no_device"] += 1
            continue
        values: dict[str, float] = {}
        for i, metric in cols.metrics.items():
            cell = row[i].strip() if i < len(row) else ""
            if not cell:
                continue
            try:
                v = float({"true": 1, "false": 0}.get(cell.lower(), cell))
            except ValueError:
                bad["bad_value"] += 1
                continue
            a, b = cols.units.get(i, (1.0, 0.0))
            values[metric] = a * v + b
        label = 0
        if cols.label is not None:
            cell = row[cols.label].strip() if cols.label < len(row) else ""
            try:
                label = 1 if float(cell or 0) > 0 else 0
            except ValueError:
                label = 1 if cell.lower() in ("true", "yes", "anomaly") else 0
        parsed.append((ts, n, dev, values, label))
    parsed.sort(key=lambda p: p[0])
    if scale is not None:
        _scale(parsed, kind, scale)
    return _recording(parsed, kind, district, cols.label is not None, bad)


def _scale(parsed: list[tuple[int, int, str, dict[str, float], int]], kind: str, learn: tuple[int, int]) -> None:
    spec = SPECS[kind].metrics
    first: dict[str, int] = {}
    seen: Counter[str] = Counter()
    fit: dict[str, list[float]] = defaultdict(list)
    for ts, _, dev, values, _ in parsed:
        first.setdefault(dev, ts)
        seen[dev] += 1
        rows, ms = learn
        if (rows and seen[dev] <= rows) or (ms and ts < first[dev] + ms) or not (rows or ms):
            for k, v in values.items():
                fit[k].append(v)
    for name, vs in fit.items():
        lo, hi = min(vs), max(vs)
        span = (hi - lo) or 1.0
        m = spec[name]
        width = m.high - m.low
        for _, _, _, values, _ in parsed:
            if name in values:
                values[name] = min(max(m.low + width * (0.05 + 0.9 * (values[name] - lo) / span), m.low), m.high)


def _recording(parsed: list[tuple[int, int, str, dict[str, float], int]], kind: str, district: str,
               labelled: bool, bad: Counter[str]) -> Recording:
    spec = SPECS[kind].metrics
    readings: list[Reading] = []
    refused: list[tuple[int, str, str]] = []
    times: dict[str, list[int]] = defaultdict(list)
    labels: dict[str, list[int]] = defaultdict(list)
    for ts, n, dev, values, label in parsed:
        for metric, v in list(values.items()):
            m = spec[metric]
            if not m.low <= v <= m.high:
                bad["out_of_range"] += 1
                refused.append((ts, dev, f"line {n}: {metric}={v:g} outside {m.low}..{m.high} {m.unit}"))
                del values[metric]
        times[dev].append(ts)
        labels[dev].append(label)
        if values:
            readings.append(Reading(district, dev, kind, ts, None, values))  # type: ignore[arg-type]
    rows = {dev: np.array(t, dtype=np.int64) for dev, t in times.items()}
    marks = {dev: np.array(v, dtype=np.int8) for dev, v in labels.items()} if labelled else {}
    return Recording(kind, readings, refused, rows, marks, bad)


def alert_line(a: Alert) -> bytes:
    def iso(ms: int | None) -> str | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")

    return orjson.dumps({
        "device_id": a.device_id, "rule": a.rule, "severity": a.severity, "state": a.state,
        "start": iso(a.started_ms), "end": iso(a.resolved_ms), "start_ms": a.started_ms, "end_ms": a.resolved_ms,
        "value": a.value, "threshold": a.threshold, "unit": a.unit, "metric": a.metric, "summary": a.summary,
    })


def _training(rec: Recording, learn: tuple[int, int]) -> dict[str, int]:
    """Per device, the event time before which its readings only teach (0: none)."""
    rows, ms = learn
    out: dict[str, int] = {}
    for dev, ts in rec.rows.items():
        if rows and len(ts):
            out[dev] = int(ts[min(rows, len(ts)) - 1]) + 1 if rows < len(ts) else int(ts[-1]) + 1
        elif ms and len(ts):
            out[dev] = int(ts[0]) + ms
    return out


async def run(settings: Settings, rec: Recording, learn: tuple[int, int] = (0, 0), district: str = "replay",
              site: str = "") -> Result:
    """The recording through a fresh pipeline in event time; every alert it raised, with start and end."""
    config = load({**settings.alerting, "clock": "event", "lateness_s": 0})
    until = _training(rec, learn)
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/replay.db")
        registry = Registry([DeviceInfo(d, rec.kind, district, site, report_interval_s=rec.period_s(d) or None)
                             for d in rec.rows])
        pipeline = Pipeline(config, store, registry)
        changes = pipeline.feed.subscribe()
        end = max(until.values(), default=0)
        teach = [r for r in rec.readings if r.ts_ms < until.get(r.device_id, 0)]
        rest = [r for r in rec.readings if r.ts_ms >= until.get(r.device_id, 0)]
        for i in range(0, len(teach), CHUNK):
            pipeline.teach(teach[i: i + CHUNK])
        if until:
            pipeline.commission(end)
        refused = [x for x in rec.refused if x[0] >= until.get(x[1], 0)]
        await _feed(pipeline, rest, refused, district, rec.kind)
        alerts: dict[int, Alert] = {}
        for c in changes.drain():
            alerts[c.alert.id] = c.alert
        counts = Counter(rec.bad)
        counts["readings"] = pipeline.counts["readings"]
        counts["readings_learned_from_only"] = len(teach)
        counts["alerts"] = len(alerts)
        await store.aclose()
    ordered = sorted(alerts.values(), key=lambda a: (a.started_ms, a.id))
    return Result(ordered, counts, until)


async def _feed(pipeline: Pipeline, readings: list[Reading], refused: list[tuple[int, str, str]],
                district: str, kind: str) -> None:
    """Readings in chunks and each refused value at its own event time, so no clock runs ahead."""
    chunk: list[Reading] = []
    j = 0
    for r in readings:
        while j < len(refused) and refused[j][0] <= r.ts_ms:
            if chunk:
                await pipeline.process(chunk)
                chunk = []
            ts, dev, detail = refused[j]
            pipeline.clock_ms = max(pipeline.clock_ms, ts)
            await pipeline.process([], [(district, dev, kind, detail)])
            j += 1
        chunk.append(r)
        if len(chunk) >= CHUNK:
            await pipeline.process(chunk)
            chunk = []
    await pipeline.process(chunk)
    for ts, dev, detail in refused[j:]:
        pipeline.clock_ms = max(pipeline.clock_ms, ts)
        await pipeline.process([], [(district, dev, kind, detail)])


def summary(rec: Recording, result: Result) -> list[str]:
    """What an operator reads first: how much was replayed, and what fired, by rule."""
    lines = []
    ts = [t for t in rec.rows.values() if len(t)]
    if ts:
        first = min(int(t[0]) for t in ts)
        last = max(int(t[-1]) for t in ts)
        periods = sorted({rec.period_s(d) for d in rec.rows})
        iso = [datetime.fromtimestamp(x / 1000, UTC).isoformat(timespec="seconds") for x in (first, last)]
        lines.append(f"replay: {len(rec.rows)} device(s), {sum(map(len, ts))} rows from {iso[0]} to {iso[1]}, "
                     f"reporting period {'/'.join(f'{p} s' for p in periods)} (learned from the file)")
    if result.learned_until:
        lines.append(f"replay: {result.counts['readings_learned_from_only']} readings only taught the detectors "
                     "(--learn)")
    last = max((int(t[-1]) for t in ts), default=0)
    by_rule: dict[str, list[Alert]] = defaultdict(list)
    for a in result.alerts:
        by_rule[a.rule].append(a)
    if not by_rule:
        lines.append("replay: nothing fired")
    for rule, alerts in sorted(by_rule.items(), key=lambda kv: -len(kv[1])):
        open_ = sum(1 for a in alerts if a.resolved_ms is None)
        sev = Counter(a.severity for a in alerts)
        held = sum((a.resolved_ms or last) - a.started_ms for a in alerts) / 1000
        lines.append(f"replay: {rule}: {len(alerts)} alert(s) ({', '.join(f'{n} {s}' for s, n in sev.items())}"
                     f"{f', {open_} open at the end' if open_ else ''}), {held:.0f} s in alert")
    return lines


def main(settings: Settings, path: Path, device: str | None, kind: str, maps: list[str], time_column: str | None,
         district: str, site: str, device_column: str | None = None, learn: str | None = None) -> None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rec = read(f, device, kind, district, maps, time_column, device_column)
        result = asyncio.run(run(settings, rec, parse_learn(learn), district, site))
    except (ReplayError, OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"replay: {exc}") from None
    sys.stdout.writelines(alert_line(a).decode() + "\n" for a in result.alerts)
    print("replay: " + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())), file=sys.stderr)
    for line in summary(rec, result):
        print(line, file=sys.stderr)
