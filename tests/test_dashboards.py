"""Every dashboard query, substituted as Grafana would, runs against a real InfluxDB and returns data.

The city written here is shaped like the simulator's: the contract's records
through `contract.lineproto`, alerts as alerting writes them, the registry rows
`contract.db.Device`, and platform metrics relayed from ingest's real
Prometheus registry. Grafana itself does not run here: transformations
(joins, sorting) and rendering are not exercised, only the queries they feed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import start_http_server
from sqlalchemy import text

from contract.db import Device, open_store
from contract.influx import Influx, Series
from contract.lineproto import line, record_line
from contract.payload import DeviceStatus, PanelEvent, Reading
from contract.settings import InfluxSettings
from dashboards.boards import all_dashboards
from dashboards.grafana import INFLUX_UID, REGISTRY_UID
from dashboards.platform import Target, scrape_once
from firewatch.services import InfluxD, free_port
from ingest.metrics import Metrics

NOW_MS = int(time.time() * 1000)
MIN = 60_000
HOUR = 60 * MIN
DISTRICTS = ("510104", "510105")


@dataclass
class City:
    influx: InfluxSettings
    store_url: str


def _city_lines() -> tuple[list[str], list[Device]]:
    """Two districts of two sites, each site with one device of every kind, and their troubles."""
    lines: list[str] = []
    devices: list[Device] = []
    for d_index, district in enumerate(DISTRICTS):
        for s in range(2):
            site = f"{district}-b{s + 1:02d}"
            ids = {k: f"{p}-{district}-{s + 1}" for k, p in
                   (("electrical", "EL"), ("hydrant", "HY"), ("pump", "PU"), ("panel", "FP"))}
            for kind, dev in ids.items():
                devices.append(Device(id=dev, kind=kind, district=district, site=site, address=f"{s} Renmin Rd",
                                      latitude=30.6 + d_index / 10 + s / 100, longitude=104.0 + s / 100))
                online = not (kind == "hydrant" and s == 1)
                lines.append(record_line(DeviceStatus(district, dev, NOW_MS - 3 * HOUR, online, "1.0"), site))
            trouble = s == 0
            for k, ts in enumerate(range(NOW_MS - 3 * HOUR, NOW_MS, MIN)):
                late = ts > NOW_MS - 20 * MIN
                lines.append(record_line(Reading(district, ids["electrical"], "electrical", ts, k, {
                    "residual_ma": 350.0 if trouble and late else 120.0 + k % 7,
                    **{f"temp{i}_c": (76.0 if trouble and late and i == 2 else 31.0 + i) for i in range(1, 5)},
                    **{f"current_{p}_a": 40.0 + i for i, p in enumerate("abc")},
                    **{f"voltage_{p}_v": 221.0 - i for i, p in enumerate("abc")},
                    "arc_count": 15.0 if trouble and late else 0.0,
                }), site))
                lines.append(record_line(Reading(district, ids["pump"], "pump", ts, k, {
                    "pressure_mpa": 0.7, "flow_lps": 30.0 if k % 30 < 3 else 0.0, "current_a": 55.0,
                    "voltage_v": 380.0, "temp_c": 22.0, "vibration_mm_s": 1.5,
                }), site))
                if k % 5 == 0:
                    low = 0.08 if trouble else 0.12
                    lines.append(record_line(Reading(district, ids["hydrant"], "hydrant", ts, k, {
                        "pressure_mpa": low if late else 0.32,
                        "tilt_deg": 35.0 if trouble and k == 100 else 1.5,
                        "cover_open": trouble and k == 110,
                        "water_flow": trouble and k in (120, 125),
                        "temp_c": 12.0, "battery_pct": 80.0, "rssi_dbm": -90.0,
                    }), site))
                    lines.append(record_line(PanelEvent(district, ids["panel"], ts, k, "heartbeat"), site))
            panel_events = [("fire", 2 * HOUR), ("reset", 2 * HOUR - 3 * MIN), ("fire", HOUR),
                            ("start", HOUR - MIN), ("feedback", HOUR - MIN // 2), ("supervisory", 90 * MIN)]
            panel_events += [("fault", 3 * 24 * HOUR)] if trouble else [("main_power_fault", 2 * HOUR),
                                                                        ("fault_cleared", HOUR)]
            for n, (event, ago) in enumerate(panel_events):
                lines.append(record_line(PanelEvent(district, ids["panel"], NOW_MS - ago, 10_000 + n, event,
                                                    loop=1, point=20 + n, zone="3F east", component="smoke"), site))
            alert_tags = {"device_id": ids["electrical"], "district": district, "site": site,
                          "rule": "residual_current", "severity": "warning"}
            lines.append(line("alert", alert_tags, {"state": "firing", "value": 350.0, "threshold": 300.0,
                                                    "score": 0.4, "summary": "residual current 350 mA"},
                              NOW_MS - 15 * MIN))
            if not trouble:
                lines.append(line("alert", alert_tags, {"state": "resolved", "value": 120.0, "threshold": 300.0,
                                                        "score": 0.0, "summary": "residual current back"},
                                  NOW_MS - 5 * MIN))
    return lines, devices


async def _relay_ingest_metrics(influx: Influx) -> None:
    """Two scrapes a minute apart of ingest's own metrics registry, served over real HTTP."""
    metrics = Metrics()
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    target = Target("ingest", f"http://127.0.0.1:{port}/metrics")
    async with httpx.AsyncClient() as http:
        for minute in (3, 2, 1):
            metrics.received.inc(600)
            metrics.written.inc(590)
            metrics.rejected.labels(reason="bad_json").inc(7)
            metrics.rejected.labels(reason="out_of_range").inc(3)
            metrics.write_seconds.observe(0.02)
            metrics.spool_records.set(40 * minute)
            metrics.connected.set(1)
            assert await scrape_once([target], http, influx, NOW_MS - minute * MIN) > 0
    server.shutdown()


async def _fill(city: City, devices: list[Device], lines: list[str]) -> None:
    async with Influx(city.influx) as influx:
        await influx.create_database()
        await influx.write("\n".join(lines))
        await _relay_ingest_metrics(influx)
    store = await open_store(city.store_url)
    async with store.session() as s, s.begin():
        s.add_all(devices)
    await store.aclose()


@pytest.fixture(scope="module")
def city(influxd: InfluxD, tmp_path_factory: pytest.TempPathFactory) -> City:
    folder = tmp_path_factory.mktemp("dashboards")
    c = City(InfluxSettings(url=influxd.url, database="dashboards"), f"sqlite:///{folder}/firewatch.db")
    lines, devices = _city_lines()
    asyncio.run(_fill(c, devices, lines))
    return c


# -- what Grafana does to a query before sending it ---------------------------------------------

_REGEX_SPECIAL = re.compile(r"([\\/^$*+?.()|\[\]{}])")


def _variable_text(values: list[str] | None) -> str:
    """A multi-value variable inside `/^$var$/`: the 'All' value `.*`, one escaped value, or `(a|b)`."""
    if values is None:
        return ".*"
    escaped = [_REGEX_SPECIAL.sub(r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _range_ms(time_from: str) -> int:
    amount, unit = re.fullmatch(r"now-(\d+)([mhd])", time_from).groups()  # type: ignore[union-attr]
    return int(amount) * {"m": MIN, "h": HOUR, "d": 24 * HOUR}[unit]


def interpolate(query: str, board: dict[str, Any], chosen: dict[str, list[str]]) -> str:
    start = NOW_MS - _range_ms(board["time"]["from"])
    q = query.replace("$timeFilter", f"time >= {start}ms and time <= {NOW_MS + MIN}ms")
    q = q.replace("$__interval", "1m")
    for var in board["templating"]["list"]:
        q = q.replace("$" + var["name"], _variable_text(chosen.get(var["name"])))
    assert not re.search(r"\$\w", q), f"unsubstituted macro or variable left in {q}"
    return q


@dataclass
class Query:
    board: dict[str, Any]
    where: str
    target: dict[str, Any]

    @property
    def text(self) -> str:
        return self.target.get("query") or self.target["rawSql"]


def _queries() -> Iterator[Query]:
    for board in all_dashboards():
        for var in board["templating"]["list"]:
            yield Query(board, f"{board['uid']} variable {var['name']}", {"query": var["query"], "datasource": var["datasource"]})
        for anno in board["annotations"]["list"]:
            if "query" in anno:
                yield Query(board, f"{board['uid']} annotation {anno['name']}", {**anno["target"], "datasource": anno["datasource"]})
        for p in board["panels"]:
            for t in p["targets"]:
                yield Query(board, f"{board['uid']} {p['title']} {t['refId']}", t)


QUERIES = list(_queries())


async def _run(city: City, query: Query, chosen: dict[str, list[str]]) -> list[Any]:
    uid = query.target["datasource"]["uid"]
    if uid == REGISTRY_UID:
        store = await open_store(city.store_url)
        try:
            async with store.session() as s:
                return list((await s.execute(text(query.text))).all())
        finally:
            await store.aclose()
    assert uid == INFLUX_UID
    async with Influx(city.influx) as influx:
        series: list[Series] = await influx.query(interpolate(query.text, query.board, chosen))
    return [row for s in series for row in s.values]


def _real_values(city: City, board: dict[str, Any], names: tuple[str, ...]) -> dict[str, list[str]]:
    """Resolve the chained variables as Grafana does: each query sees the values chosen before it."""
    chosen: dict[str, list[str]] = {}
    for var in board["templating"]["list"]:
        if var["name"] not in names:
            continue
        rows = asyncio.run(_run(city, Query(board, "", {"query": var["query"], "datasource": var["datasource"]}), chosen))
        assert rows, f"variable {var['name']} of {board['uid']} has no values"
        chosen[var["name"]] = [sorted(r[1] for r in rows)[0]]
    return chosen


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_query_returns_data_with_all_selected(city: City, query: Query) -> None:
    assert asyncio.run(_run(city, query, {})), f"no data for: {query.text}"


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_query_returns_data_for_one_real_district(city: City, query: Query) -> None:
    chosen = _real_values(city, query.board, ("district",))
    assert chosen.get("district", [DISTRICTS[0]])[0] in DISTRICTS
    assert asyncio.run(_run(city, query, chosen)), f"no data for {chosen}: {query.text}"


@pytest.mark.parametrize("board", all_dashboards(), ids=lambda b: b["uid"])
def test_queries_accept_a_chosen_district_site_and_device(city: City, board: dict[str, Any]) -> None:
    chosen = _real_values(city, board, ("district", "site", "device"))
    results = [asyncio.run(_run(city, q, chosen)) for q in QUERIES if q.board["uid"] == board["uid"]]
    assert any(results), f"nothing shows for the chosen {chosen}"


def test_dashboards_are_json_with_unique_uids_and_panel_ids(tmp_path: Path) -> None:
    import json

    boards = all_dashboards()
    uids = [b["uid"] for b in boards]
    assert len(set(uids)) == len(uids) == 5
    for b in boards:
        assert json.loads(json.dumps(b)) == b
        ids = [p["id"] for p in b["panels"]]
        assert len(set(ids)) == len(ids)
        for p in b["panels"]:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            assert {t["datasource"]["uid"] for t in p["targets"]} <= {INFLUX_UID, REGISTRY_UID}
            assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
