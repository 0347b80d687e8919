"""Every dashboard query, substituted as Grafana would, runs against a real InfluxDB and returns data.

The city is the simulator's (fleet, registry and incidents), parsed by the
contract and written as ingest writes it; alerts are lines from alerting's own
InfluxDB output, and platform metrics are relayed from ingest's real Prometheus
registry and a real alerting service on the test broker (bench/dashboards.py
builds the same city at any size). Grafana itself
does not run here: transformations (joins, sorting) and rendering are not
exercised, only the queries they feed.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from firewatch.alerting import service as alerting_service
from firewatch.bench.dashboards import Query, interpolate, queries, registry
from firewatch.bench.dashboards import city as simulated_city
from firewatch.contract.db import Device, open_store
from firewatch.contract.influx import Influx, Series
from firewatch.contract.settings import InfluxSettings, Settings
from firewatch.dashboards.boards import all_dashboards
from firewatch.dashboards.grafana import INFLUX_UID, REGISTRY_UID
from firewatch.dashboards.platform import Target, scrape_once
from firewatch.ingest.metrics import Metrics
from firewatch.services import InfluxD, Mosquitto, free_port
from tests.conftest import make_settings

NOW_MS = int(time.time() * 1000)
MIN = 60_000
DISTRICTS = ("510104", "510105")


@dataclass
class City:
    influx: InfluxSettings
    store_url: str


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


async def _relay_alerting_metrics(influx: Influx, settings: Settings) -> None:
    """A running `firewatch alerting` that took one reading, scraped twice a minute apart."""
    port = free_port()
    settings.alerting = {"metrics_port": port}
    stop = asyncio.Event()
    running = asyncio.create_task(alerting_service.run(settings, stop=stop))
    target = Target("alerting", f"http://127.0.0.1:{port}/metrics")
    async with httpx.AsyncClient() as http:
        async with aiomqtt.Client("127.0.0.1", settings.mqtt.port) as client:
            body = {"ts": int(time.time() * 1000), "kind": "electrical", "m": {"residual_ma": 40.0}}
            while True:  # until subscribed and the reading went through a batch
                await client.publish("fire/v1/510104/E-relay/telemetry", orjson.dumps(body), qos=1)
                try:
                    text = (await http.get(target.url)).text
                except httpx.TransportError:
                    text = ""
                lag = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                       if s.name == "firewatch_alerting_event_lag_seconds"]
                if lag and math.isfinite(lag[0]):
                    break
                await asyncio.sleep(0.2)
        for minute in (2, 1):
            assert await scrape_once([target], http, influx, NOW_MS - minute * MIN) > 0
    stop.set()
    await asyncio.wait_for(running, 30)


async def _fill(city: City, devices: list[Device], lines: list[str], settings: Settings) -> None:
    async with Influx(city.influx) as influx:
        await influx.create_database()
        await influx.write("\n".join(lines))
        await _relay_ingest_metrics(influx)
        await asyncio.wait_for(_relay_alerting_metrics(influx, settings), 60)
    store = await open_store(city.store_url)
    async with store.session() as s, s.begin():
        s.add_all(devices)
    await store.aclose()


@pytest.fixture(scope="module")
def city(influxd: InfluxD, mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> City:
    folder = tmp_path_factory.mktemp("dashboards")
    c = City(
        InfluxSettings(url=influxd.url, database="dashboards"), f"sqlite:///{folder}/firewatch.db"
    )
    fleet, lines = simulated_city(60, 30, len(DISTRICTS), NOW_MS)
    assert [d.code for d in fleet.districts] == list(DISTRICTS)
    devices = registry(fleet)
    settings = make_settings(folder, mosquitto.port, influxd.url, "dashboards-alerting")
    asyncio.run(_fill(c, devices, lines, settings))
    return c


QUERIES = queries()


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
        series: list[Series] = await influx.query(interpolate(query, chosen, NOW_MS))
    return [row for s in series for row in s.values]


def _real_values(city: City, board: dict[str, Any], names: tuple[str, ...]) -> dict[str, list[str]]:
    """Resolve the chained variables as Grafana does: each query sees the values chosen before it."""
    chosen: dict[str, list[str]] = {}
    for var in board["templating"]["list"]:
        if var["name"] not in names:
            continue
        rows = asyncio.run(
            _run(
                city,
                Query(board, "", {"query": var["query"], "datasource": var["datasource"]}),
                chosen,
            )
        )
        assert rows, f"variable {var['name']} of {board['uid']} has no values"
        chosen[var["name"]] = [min(r[1] for r in rows)]
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
def test_queries_accept_a_chosen_district_site_and_device(
    city: City, board: dict[str, Any]
) -> None:
    chosen = _real_values(city, board, ("district", "site", "device"))
    results = [
        asyncio.run(_run(city, q, chosen)) for q in QUERIES if q.board["uid"] == board["uid"]
    ]
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


async def test_relay_writes_what_answered_and_survives_a_dead_target(settings: Any) -> None:
    metrics = Metrics()
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    metrics.rejected.labels(reason="bad_topic").inc(2)
    live = Target("ingest", f"http://127.0.0.1:{port}/metrics")
    dead = Target("alerting", f"http://127.0.0.1:{free_port()}/metrics")
    try:
        async with Influx(settings.influx) as influx, httpx.AsyncClient(timeout=2) as http:
            assert await scrape_once([dead, live], http, influx, NOW_MS) > 0
            rows = await influx.query(
                'SELECT "firewatch_ingest_rejected_total" FROM "platform" WHERE "reason" = \'bad_topic\' '
                'GROUP BY "service", "instance"'
            )
    finally:
        server.shutdown()
    assert [(s.tags["service"], s.tags["instance"], s.values[0][1]) for s in rows] == [
        ("ingest", f"127.0.0.1:{port}", 2.0)
    ]


def test_relay_targets_are_checked() -> None:
    assert Target.parse("api=http://api:8080/metrics") == Target("api", "http://api:8080/metrics")
    for bad in ("http://api:8080/metrics", "api=", "api=ftp://x", "=http://x"):
        with pytest.raises(ValueError):
            Target.parse(bad)


def _panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in board["panels"] if p["title"] == title)


def _lines(panel: dict[str, Any]) -> list[float]:
    """The threshold values a panel draws, lowest first (the first step is minus infinity)."""
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]


def test_threshold_lines_are_the_levels_alerting_judges_by() -> None:
    """An operator reading a line on a graph must see the level at which the alert fires."""
    from firewatch.contract.rules import RULES

    boards = {b["uid"]: b for b in all_dashboards()}
    elec, water = boards["firewatch-electrical"], boards["firewatch-water"]

    def levels(kind: str, *rules: str) -> list[float]:
        values = [getattr(RULES[kind][r].defaults, lvl) for r in rules for lvl in ("alarm", "warning")]
        return sorted(v for v in values if v is not None)

    assert _lines(_panel(elec, "Residual current, highest per district")) == levels("electrical", "residual_current")
    assert _lines(_panel(elec, "Residual current, highest per district"))[0] != 200  # the old, wrong line
    assert _lines(_panel(elec, "Cable temperature, hottest per district")) == levels("electrical", "cable_temp")
    assert _lines(_panel(elec, "Hottest circuits now")) == levels("electrical", "cable_temp")
    assert _lines(_panel(elec, "Arcing half-cycles per second")) == levels("electrical", "arc_fault")
    volts = [RULES["electrical"][r].defaults.warning for r in ("undervoltage", "overvoltage")]
    assert _lines(_panel(elec, "Phase voltage extremes")) == volts
    hydrant = [RULES["hydrant"]["pressure_low"].defaults.alarm, RULES["hydrant"]["pressure_low"].defaults.warning,
               RULES["hydrant"]["pressure_high"].defaults.warning]
    assert _lines(_panel(water, "Hydrant pressure by district")) == hydrant
    assert _lines(_panel(water, "Pump outlet pressure, lowest per district")) == levels("pump", "pressure_low")
    alarm = RULES["electrical"]["residual_current"].defaults.alarm
    over = _panel(elec, f"Detectors at or above {alarm:g} mA now")
    assert over["targets"][0]["query"].endswith(f'"r" >= {alarm:g}')


def test_a_changed_default_moves_the_line_and_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from firewatch.contract.rules import RULES
    from firewatch.dashboards.boards import electrical

    rule = RULES["electrical"]["residual_current"]
    monkeypatch.setitem(RULES["electrical"], "residual_current",
                        replace(rule, defaults=replace(rule.defaults, warning=222.0, alarm=333.0)))
    board = electrical()
    residual = _panel(board, "Residual current, highest per district")
    assert _lines(residual) == [222.0, 333.0]
    assert "Warning at 222 mA, alarm at 333 mA" in residual["description"]
    assert _panel(board, "Detectors at or above 333 mA now")["targets"][0]["query"].endswith('"r" >= 333')
