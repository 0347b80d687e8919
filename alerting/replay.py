"""`firewatch replay`: recorded readings through the same detectors, in event time, as fast as possible.

A user tunes thresholds on last month's data: export a CSV (any separator;
csv.Sniffer finds it), name the device and its kind, map columns that are not
named like the metrics (`--map "Leakage (mA)=residual_ma"`), and read the
alerts as JSON lines, one per alert with its event-time start and end, in the
order they started. Settings (`[alerting]` thresholds, district/site/device
overrides) apply exactly as in the live service; the clock is the data's.
Lines that cannot be read are counted on stderr, never fatal.
"""

from __future__ import annotations

import asyncio
import csv
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

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


class ReplayError(ValueError):
    """The file or the options cannot be replayed; the message says why."""


@dataclass
class Columns:
    time: int
    metrics: dict[int, str]
    ignored: list[str] = field(default_factory=list)


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
        return int(dt.timestamp() * 1000)
    return int(x if x > 1e11 else x * 1000)


def columns(header: list[str], kind: str, maps: list[str], time_column: str | None) -> Columns:
    metrics = SPECS[kind].metrics
    mapping: dict[str, str] = {}
    for m in maps:
        col, sep, metric = m.rpartition("=")
        if not sep or not col:
            raise ReplayError(f"--map {m!r}: expected column=metric")
        if metric not in metrics:
            raise ReplayError(f"--map {m!r}: {kind} has no metric {metric!r} ({', '.join(metrics)})")
        mapping[col] = metric
    names = [h.strip() for h in header]
    if time_column is not None:
        if time_column not in names:
            raise ReplayError(f"--time-column {time_column!r} is not a column ({', '.join(names)})")
        t = names.index(time_column)
    else:
        t = next((i for i, h in enumerate(names) if h.lower() in TIME_NAMES), 0)
    cols = Columns(t, {})
    for i, h in enumerate(names):
        if i == t:
            continue
        metric = mapping.get(h, h if h in metrics else None)
        if metric is None:
            cols.ignored.append(h)
        else:
            cols.metrics[i] = metric
    missing = set(mapping) - set(names)
    if missing:
        raise ReplayError(f"--map names columns that are not in the file: {', '.join(sorted(missing))}")
    if not cols.metrics:
        raise ReplayError(f"no column is a {kind} metric ({', '.join(metrics)}); use --map column=metric")
    return cols


def read(f: TextIO, device: str, kind: str, district: str, maps: list[str], time_column: str | None,
         bad: Counter[str]) -> Iterator[tuple[Reading | None, str]]:
    """Readings in file order; (None, reason) for values the sensor cannot have (the live parser refuses them)."""
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
    cols = columns(header, kind, maps, time_column)
    if cols.ignored:
        print(f"replay: ignoring columns {', '.join(cols.ignored)}", file=sys.stderr)
    spec = SPECS[kind].metrics
    for n, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            ts = parse_time(row[cols.time])
        except (ValueError, IndexError):
            bad["bad_time"] += 1
            continue
        values: dict[str, float] = {}
        impossible = ""
        for i, metric in cols.metrics.items():
            cell = row[i].strip() if i < len(row) else ""
            if not cell:
                continue
            try:
                v = float({"true": 1, "false": 0}.get(cell.lower(), cell))
            except ValueError:
                bad["bad_value"] += 1
                continue
            m = spec[metric]
            if not m.low <= v <= m.high:
                impossible = f"line {n}: {metric}={cell} outside {m.low}..{m.high} {m.unit}"
                continue
            values[metric] = v
        if impossible:
            bad["out_of_range"] += 1
            yield None, f"{ts}|{impossible}"
        if values:
            yield Reading(district, device, kind, ts, None, values), ""


def alert_line(a: Alert) -> bytes:
    def iso(ms: int | None) -> str | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")

    return orjson.dumps({
        "device_id": a.device_id, "rule": a.rule, "severity": a.severity, "state": a.state,
        "start": iso(a.started_ms), "end": iso(a.resolved_ms), "start_ms": a.started_ms, "end_ms": a.resolved_ms,
        "value": a.value, "threshold": a.threshold, "unit": a.unit, "metric": a.metric, "summary": a.summary,
    })


async def replay(settings: Settings, path: Path, device: str, kind: str, maps: list[str],
                 time_column: str | None, district: str, site: str, out: TextIO) -> Counter[str]:
    if kind not in SPECS or not SPECS[kind].metrics:
        raise ReplayError(f"--kind {kind!r}: one of electrical, hydrant, pump")
    config = load({**settings.alerting, "clock": "event", "lateness_s": 0})
    bad: Counter[str] = Counter()
    with open(path, newline="", encoding="utf-8-sig") as f:  # noqa: ASYNC230 - read before the pipeline runs
        rows = list(read(f, device, kind, district, maps, time_column, bad))
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/replay.db")
        registry = Registry([DeviceInfo(device, kind, district, site)])
        pipeline = Pipeline(config, store, registry)
        changes = pipeline.feed.subscribe()
        alerts: dict[int, Alert] = {}
        chunk: list[Reading] = []
        impossible: list[tuple[str, str, str, str]] = []
        for reading, why in rows:
            if reading is None:
                ts, detail = why.split("|", 1)
                impossible.append((district, device, kind, detail))
                pipeline.clock_ms = max(pipeline.clock_ms, int(ts))
                continue
            chunk.append(reading)
            if len(chunk) >= CHUNK:
                await pipeline.process(chunk, impossible)
                chunk, impossible = [], []
        await pipeline.process(chunk, impossible)
        for c in changes.drain():
            alerts[c.alert.id] = c.alert
        out.writelines(alert_line(a).decode() + "\n" for a in sorted(alerts.values(), key=lambda a: (a.started_ms, a.id)))
        bad["readings"] = pipeline.counts["readings"]
        bad["alerts"] = len(alerts)
        await store.aclose()
    return bad


def main(settings: Settings, path: Path, device: str, kind: str, maps: list[str], time_column: str | None,
         district: str, site: str) -> None:
    try:
        counts = asyncio.run(replay(settings, path, device, kind, maps, time_column, district, site, sys.stdout))
    except (ReplayError, OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"replay: {exc}") from None
    print("replay: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
