"""`firewatch bench dashboards`: what each dashboard query costs InfluxDB on a simulated city.

The simulator's city (its fleet, registry and incidents in every district) is
parsed by the contract and written as ingest writes it into a fresh InfluxDB,
with alert changes in alerting's own line format. Then every panel, variable
and annotation query is sent as Grafana sends it on first load: the
dashboard's default range, `$__interval` of 1 m or the panel's minimum,
every variable "All". The
tests use the same city and the same substitution.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from firewatch.alerting.changes import AlertChange, ChangeKind
from firewatch.alerting.outputs import change_line
from firewatch.contract.db import Alert, AlertState, Device, Severity
from firewatch.contract.influx import Influx
from firewatch.contract.lineproto import record_line
from firewatch.contract.payload import parse
from firewatch.contract.settings import InfluxSettings
from firewatch.dashboards.boards import all_dashboards
from firewatch.dashboards.grafana import REGISTRY_UID, Json
from firewatch.services import InfluxD
from firewatch.simulators import Fleet, Scenario, generate

MIN = 60_000
HOUR = 60 * MIN

INCIDENTS = [
    # (incident, hours before the end of the run, extra keys), in every district, so that
    # each panel has something to show at the end: an open fault older than a day, a
    # newer one, a low hydrant, a detector over 300 mA, a fire, a false alarm.
    ("panel_fault", 29, {}),
    ("residual_creep", 30, {"duration": "30h"}),
    ("false_alarm", 20, {"days": 1}),
    ("panel_fault", 5, {}),
    ("water_theft", 4, {}),
    ("knocked_over", 3, {"duration": "1h"}),
    ("pressure_drop", 2, {"duration": "3h"}),
    ("panel_fire", 2, {}),
    ("cable_overheat", 1, {}),
    ("pump_failure", 1, {}),
    ("arc_fault", 0.5, {}),
]


def city(
    devices: int, hours: float, districts: int, now_ms: int, seed: int = 3
) -> tuple[Fleet, list[str]]:
    """The fleet and the line protocol of its last `hours` up to `now_ms`."""
    fleet = Fleet.build(devices, seed=seed, districts=districts)
    incidents = [
        {"type": kind, "district": d.code, "at": f"{int(max(0.0, hours - before) * 60)}m", **extra}
        for d in fleet.districts
        for kind, before, extra in INCIDENTS
    ]
    start = now_ms - int(hours * HOUR)
    sites = {d.id: d.site for d in fleet.devices}
    lines: list[str] = []
    for m in generate(
        fleet, Scenario.from_dict({"seed": seed, "incidents": incidents}), start, now_ms
    ):
        parsed = parse(m.topic, m.payload, now_ms)
        lines += [record_line(r, sites[r.device_id]) for r in parsed.records]
    return fleet, lines + alert_lines(fleet, now_ms)


def alert_lines(fleet: Fleet, now_ms: int) -> list[str]:
    """Per district: one alert still firing (fired 20 min ago), one fired and resolved since."""
    out = []
    for n, district in enumerate(d.code for d in fleet.districts):
        detectors = [d for d in fleet.of_kind("electrical") if d.district == district][:2]
        for k, device in enumerate(detectors):
            resolved = k == 1
            alert = Alert(
                id=10 * n + k,
                fingerprint=f"{device.id}:residual_current",
                rule="residual_current",
                severity=Severity.CRITICAL,
                state=AlertState.FIRING,
                kind="electrical",
                device_id=device.id,
                district=district,
                site=device.site,
                value=320.0,
                threshold=300.0,
                summary=f"{device.id} residual current 320 mA",
                score=0.5,
                probable=False,
                started_ms=now_ms - (2 * HOUR if resolved else 20 * MIN),
                last_seen_ms=now_ms,
            )
            out.append(change_line(AlertChange(ChangeKind.FIRED, alert, None)))
            if resolved:
                alert.state, alert.resolved_ms = AlertState.RESOLVED, now_ms - HOUR
                out.append(change_line(AlertChange(ChangeKind.RESOLVED, alert, None)))
    return out


def registry(fleet: Fleet) -> list[Device]:
    return [Device(**d.registry_row()) for d in fleet.devices]


@dataclass
class Query:
    board: Json
    where: str
    target: Json
    interval: str = "1m"
    """`$__interval`: Grafana's pick for a wall-screen panel is under a minute; the panel's minimum wins."""

    @property
    def text(self) -> str:
        return self.target.get("query") or self.target["rawSql"]

    @property
    def registry(self) -> bool:
        return self.target["datasource"]["uid"] == REGISTRY_UID


def queries() -> list[Query]:
    """Every query the dashboards send: variables, annotations and panel targets."""
    out = []
    for board in all_dashboards():
        for var in board["templating"]["list"]:
            out.append(
                Query(
                    board,
                    f"{board['uid']} variable {var['name']}",
                    {"query": var["query"], "datasource": var["datasource"]},
                )
            )
        for anno in board["annotations"]["list"]:
            if "query" in anno:
                out.append(
                    Query(
                        board,
                        f"{board['uid']} annotation {anno['name']}",
                        {**anno["target"], "datasource": anno["datasource"]},
                    )
                )
        for p in board["panels"]:
            for t in p["targets"]:
                out.append(
                    Query(
                        board,
                        f"{board['uid']} {p['title']} {t['refId']}",
                        t,
                        p.get("interval", "1m"),
                    )
                )
    return out


_REGEX_SPECIAL = re.compile(r"([\\/^$*+?.()|\[\]{}])")


def _variable_text(values: list[str] | None) -> str:
    """A multi-value variable as Grafana writes it into `/^$var$/`: All, one escaped value, `(a|b)`."""
    if values is None:
        return ".*"
    escaped = [_REGEX_SPECIAL.sub(r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _range_ms(time_from: str) -> int:
    m = re.fullmatch(r"now-(\d+)([mhd])", time_from)
    if not m:
        raise ValueError(f"unsupported range {time_from!r}")
    return int(m.group(1)) * {"m": MIN, "h": HOUR, "d": 24 * HOUR}[m.group(2)]


def interpolate(query: Query, chosen: dict[str, list[str]], now_ms: int) -> str:
    """The InfluxQL Grafana sends: macros of the default range, the interval, the variables."""
    board = query.board
    start = now_ms - _range_ms(board["time"]["from"])
    q = query.text.replace("$timeFilter", f"time >= {start}ms and time <= {now_ms + MIN}ms")
    q = q.replace("$__interval", query.interval)
    for var in board["templating"]["list"]:
        q = q.replace("$" + var["name"], _variable_text(chosen.get(var["name"])))
    if re.search(r"\$\w", q):
        raise ValueError(f"unsubstituted macro or variable in {q}")
    return q


async def _time_all(settings: InfluxSettings, lines: list[str], now_ms: int) -> dict[str, Any]:
    async with Influx(settings) as influx:
        await influx.create_database()
        for i in range(0, len(lines), 10_000):
            await influx.write("\n".join(lines[i : i + 10_000]))
        timings: list[tuple[float, str]] = []
        for q in queries():
            if q.registry:
                continue
            started = time.perf_counter()
            await influx.query(interpolate(q, {}, now_ms))
            timings.append((time.perf_counter() - started, q.where))
    seconds = [t for t, _ in timings]
    per_board: dict[str, float] = {}
    for t, where in timings:
        per_board[where.split()[0]] = per_board.get(where.split()[0], 0.0) + t
    return {
        "queries": len(timings),
        "total_s": round(sum(seconds), 3),
        "median_s": round(statistics.median(seconds), 4),
        "max_s": round(max(seconds), 3),
        "slowest": max(timings)[1],
        "per_dashboard_s": {k: round(v, 3) for k, v in per_board.items()},
    }


def run(devices: int, hours: float, districts: int) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    started = time.perf_counter()
    _, lines = city(devices, hours, districts, now_ms)
    generated_s = time.perf_counter() - started
    with (
        tempfile.TemporaryDirectory(prefix="fw-bench-dash-") as folder,
        InfluxD(Path(folder)) as influxd,
    ):
        result = asyncio.run(
            _time_all(InfluxSettings(url=influxd.url, timeout_s=300), lines, now_ms)
        )
    return {
        "devices": devices,
        "hours": hours,
        "districts": districts,
        "points": len(lines),
        "city_s": round(generated_s, 1),
        **result,
    }


def main(devices: int, hours: float, districts: int, as_json: bool) -> None:
    result = run(devices, hours, districts)
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        for key, value in result.items():
            print(f"{key:>16}  {value}")
