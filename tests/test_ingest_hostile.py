"""Ingest against a real Mosquitto and InfluxDB when devices send what they should not.

Each test is one finding of issue 17 that stopped or stalled ingest, or lost the
good data beside the bad; each now costs only the bad part.
"""

from __future__ import annotations

import asyncio

import httpx
import orjson

from firewatch.contract.db import Device, open_store
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from firewatch.ingest import Ingestor
from firewatch.services import free_port
from tests.test_ingest import NOW, Publisher, count_points, eventually, telemetry


async def _started(settings: Settings) -> Ingestor:
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    return ing


def _dead(settings: Settings) -> list[dict]:
    path = settings.ingest.dead_letter_file
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


async def test_a_message_nested_3000_deep_costs_nothing_else(settings: Settings) -> None:
    ing = await _started(settings)
    try:
        with Publisher(settings) as pub:
            pub.send("fire/v1/d1/X1/telemetry", b"[" * 3000 + b"]" * 3000)
            for i in range(20):
                pub.send("fire/v1/d1/H1/telemetry", telemetry("hydrant", NOW + i, i, pressure_mpa=0.3))
        async with Influx(settings.influx) as influx:
            await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 20)
        assert ing.metrics.value("firewatch_ingest_rejected_total", reason="bad_json") == 1
        assert ing.metrics.value("firewatch_ingest_messages_redelivered_total") == 0
    finally:
        await ing.stop()
    assert [d["reason"] for d in _dead(settings)] == ["bad_json"]


async def test_a_broken_probe_keeps_the_residual_current(settings: Settings) -> None:
    ing = await _started(settings)
    try:
        with Publisher(settings) as pub:
            pub.send("fire/v1/d1/E1/telemetry", telemetry(
                "electrical", NOW, 1, residual_ma=420.0, temp1_c=35.0, temp4_c=-500.0, humidity_pct=40.0))
        async with Influx(settings.influx) as influx:
            await eventually(lambda: count_points(influx, "electrical", "residual_ma"), 1)
            assert await count_points(influx, "electrical", "temp1_c") == 1
            assert await count_points(influx, "electrical", "temp4_c") == 0
        m = ing.metrics
        assert m.value("firewatch_ingest_rejected_total", reason="out_of_range") == 1
        assert m.value("firewatch_ingest_rejected_total", reason="unknown_metric") == 1
    finally:
        await ing.stop()
    dead = sorted(_dead(settings), key=lambda d: d["reason"])
    assert [(d["reason"], d["topic"]) for d in dead] == [
        ("out_of_range", "fire/v1/d1/E1/telemetry"), ("unknown_metric", "fire/v1/d1/E1/telemetry")]
    assert "temp4_c=-500.0" in dead[0]["detail"] and "humidity_pct" in dead[1]["detail"]


async def test_a_site_ending_in_a_backslash_keeps_its_readings(settings: Settings) -> None:
    store = await open_store(settings.store.url)
    async with store.session() as s:
        s.add(Device(id="H1", kind="hydrant", district="d1", site="东门\\"))
        s.add(Device(id="H2", kind="hydrant", district="d1", site="a\\ b,c=d"))
        await s.commit()
    await store.aclose()
    ing = await _started(settings)
    try:
        with Publisher(settings) as pub:
            for i in range(5):
                pub.send("fire/v1/d1/H1/telemetry", telemetry("hydrant", NOW + i, i, pressure_mpa=0.3))
                pub.send("fire/v1/d1/H2/telemetry", telemetry("hydrant", NOW + i, i, pressure_mpa=0.4))
        async with Influx(settings.influx) as influx:
            await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 10)
            sites = await influx.query('SHOW TAG VALUES FROM "hydrant" WITH KEY = "site"')
        assert sorted(v[1] for v in sites[0].values) == ["a＼ b,c=d", "东门＼"]
        assert ing.metrics.value("firewatch_ingest_rejected_total", reason="influx_refused") == 0
    finally:
        await ing.stop()


async def test_a_gateway_array_beyond_int64_costs_one_write(settings: Settings) -> None:
    """One 148 KB array of readings with seq 2^64-1 took 6,001 bisecting writes and 16.6 s."""
    bad = b",".join(
        b'{"ts":%d,"seq":18446744073709551615,"kind":"hydrant","m":{"pressure_mpa":0.3}}' % (NOW + i)
        for i in range(1700)
    )
    good = orjson.dumps({"ts": NOW, "seq": 7, "kind": "hydrant", "m": {"pressure_mpa": 0.5}})
    payload = b"[" + bad + b"," + good + b"]"
    assert len(payload) > 140_000
    ing = await _started(settings)
    try:
        with Publisher(settings) as pub:
            pub.send("fire/v1/d1/G1/telemetry", payload)
        async with Influx(settings.influx) as influx:
            await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 1)
        m = ing.metrics
        await eventually(lambda: m.value("firewatch_ingest_influx_writes_total", outcome="ok"), 1)
        assert m.value("firewatch_ingest_rejected_total", reason="bad_schema") == 1700
        assert m.value("firewatch_ingest_influx_writes_total", outcome="refused") == 0
    finally:
        await ing.stop()


async def test_lines_influxdb_refuses_cost_a_bounded_number_of_writes(settings: Settings) -> None:
    """3,000 readings in one message, every other one with a field InfluxDB holds as an integer."""
    async with Influx(settings.influx) as influx:
        await influx.write(f"hydrant,device_id=seed tilt_deg=5i {NOW - 1}")
        ing = await _started(settings)
        try:
            readings = [{"ts": NOW + i, "seq": i, "kind": "hydrant",
                         "m": {"pressure_mpa": 0.3, **({"tilt_deg": 1.0} if i % 2 else {})}} for i in range(3000)]
            with Publisher(settings) as pub:
                pub.send("fire/v1/d1/G1/telemetry", orjson.dumps(readings))
            await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 1500)
            await eventually(
                lambda: ing.metrics.value("firewatch_ingest_rejected_total", reason="influx_refused"), 1500)
            writes = sum(ing.metrics.value("firewatch_ingest_influx_writes_total", outcome=o)
                         for o in ("ok", "refused"))
            assert writes <= 4, writes
        finally:
            await ing.stop()
    dead = [d for d in _dead(settings) if d["reason"] == "influx_refused"]
    assert len(dead) == 1500 and all("tilt_deg=1.0" in d["payload"] for d in dead)
    assert "field type conflict" in dead[0]["detail"]


async def test_a_dead_task_restarts_and_health_says_so_meanwhile(settings: Settings) -> None:
    port = free_port()
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"metrics_port": port, "flush_interval_s": 0.05})})
    ing = Ingestor(settings)
    ing.supervisor.restart_s = 1.5
    failures = iter([RuntimeError("an unforeseen bug")])
    real_tick = ing._rejections.tick

    def tick() -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        real_tick()

    ing._rejections.tick = tick  # type: ignore[method-assign]
    await ing.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async def health() -> tuple[int, dict]:
                r = await http.get("/health")
                return r.status_code, r.json()

            await eventually(health, (503, {"healthy": False, "tasks_down": ["ingest_flush_loop"]}), 5)
            assert "firewatch_ingest_tasks_down 1.0" in (await http.get("/metrics")).text
            await eventually(health, (200, {"healthy": True, "tasks_down": []}), 5)
            with Publisher(settings) as pub:  # sealed by the restarted flush loop, so stored
                pub.send("fire/v1/d1/H1/telemetry", telemetry("hydrant", NOW, 1, pressure_mpa=0.3))
            async with Influx(settings.influx) as influx:
                await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 1)
            text = (await http.get("/metrics")).text
            assert 'firewatch_ingest_task_restarts_total{task="ingest_flush_loop"} 1.0' in text
    finally:
        await ing.stop()
