"""Alerting on a real broker and a real SQL store (SQLite and PostgreSQL) when devices misbehave.

Each test is a finding of issue 17 that stopped alerting or silenced another
device's alarm: a hostile message killed the processing task while the health
check stayed green; a broken probe silenced residual-current alarms; on PostgreSQL
a long or NUL-carrying zone failed the whole alert transaction, so an innocent
panel in the same batch lost its fire alert.

The services run without the notify stage: it is not the subject here, and a stop that
cancels it mid-write can leave SQLite's write lock behind (a race of its own, not this file's).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiomqtt
import httpx
import orjson
import pytest
from sqlalchemy import select

import firewatch.alerting.service as service_module
from firewatch.alerting.service import AlertingService
from firewatch.contract.db import Alert, AlertState
from firewatch.contract.kinds import ZONE_CHARS
from firewatch.contract.settings import Settings
from firewatch.services import free_port
from tests.postgres import database
from tests.test_alerting_service import wait_for


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_settings(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Settings]:
    if request.param == "sqlite":
        yield settings
        return
    with database("fw_hostile") as url:
        yield settings.model_copy(update={"store": settings.store.model_copy(update={"url": url})})


async def _alerts(service: AlertingService) -> list[Alert]:
    assert service.store is not None
    async with service.store.session() as s:
        return list((await s.execute(select(Alert).order_by(Alert.id))).scalars())


def _fire(device: str, ts: int, zone: str = "2F") -> tuple[str, bytes]:
    return f"fire/v1/510104/{device}/event", orjson.dumps(
        {"ts": ts, "kind": "panel", "event": "fire", "loop": 1, "point": 3, "zone": zone, "component": "smoke"})


async def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def test_a_message_nested_3000_deep_leaves_alerting_alive(store_settings: Settings) -> None:
    service = AlertingService(store_settings)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        now = int(time.time() * 1000)
        await _publish(store_settings.mqtt.port, [
            ("fire/v1/510104/X1/event", b"[" * 3000 + b"]" * 3000), _fire("P1", now)])
        (alert,) = await wait_for(lambda: _alerts(service))
        assert (alert.device_id, alert.rule, alert.severity) == ("P1", "fire", "fire")
        assert service.rejected["bad_json"] == 1
    finally:
        await service.stop()


async def test_a_broken_probe_does_not_silence_residual_current(store_settings: Settings) -> None:
    service = AlertingService(store_settings)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        now = int(time.time() * 1000)
        await _publish(store_settings.mqtt.port, [("fire/v1/510104/E1/telemetry", orjson.dumps(
            {"ts": now - 3000 + i, "kind": "electrical",
             "m": {"residual_ma": 420.0, "temp1_c": 35.0, "temp4_c": -500.0}})) for i in range(3)])

        async def both() -> list[Alert] | None:
            found = await _alerts(service)
            return found if {a.rule for a in found} >= {"residual_current", "sensor_impossible"} else None

        found = await wait_for(both)
        current = next(a for a in found if a.rule == "residual_current")
        assert (current.device_id, current.severity, current.value) == ("E1", "critical", 420.0)
        assert service.rejected["out_of_range"] == 3
    finally:
        await service.stop()


async def test_a_hostile_zone_costs_no_other_panel_its_fire_alert(store_settings: Settings) -> None:
    """A zone over the column's length with a NUL in it, and an innocent panel in the same batch."""
    service = AlertingService(store_settings)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        now = int(time.time() * 1000)
        await _publish(store_settings.mqtt.port, [
            _fire("P-HOSTILE", now, zone="3F\x00" + "东" * 300), _fire("P-INNOCENT", now)])

        async def two() -> list[Alert] | None:
            found = await _alerts(service)
            return found if len(found) == 2 else None

        found = {a.device_id: a for a in await wait_for(two)}
        assert found["P-INNOCENT"].state == AlertState.FIRING
        zone = found["P-HOSTILE"].zone
        assert zone.startswith("3F 东") and len(zone) == ZONE_CHARS and "\x00" not in zone
    finally:
        await service.stop()


@pytest.mark.postgres
async def test_a_transaction_the_store_refuses_is_split_down_to_the_bad_alert(settings: Settings) -> None:
    """Whatever makes PostgreSQL refuse one alert (here a trigger), the others in its batch are
    stored, and the refused one is not left in the open set: the panel's next alarm raises it."""
    import psycopg

    with database("fw_split") as url:
        settings = settings.model_copy(update={"store": settings.store.model_copy(update={"url": url})})
        service = AlertingService(settings)
        try:
            await service.start()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("""CREATE FUNCTION refuse_bad() RETURNS trigger AS $$ BEGIN
                    IF NEW.device_id = 'P-BAD' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                    RETURN NEW; END $$ LANGUAGE plpgsql""")
                conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION refuse_bad()")
            await asyncio.wait_for(service.ready.wait(), 10)
            now = int(time.time() * 1000)
            await _publish(settings.mqtt.port, [_fire(f"P{i}", now) for i in range(3)] + [_fire("P-BAD", now)]
                           + [_fire(f"P{i}", now) for i in range(3, 6)])

            async def six() -> list[Alert] | None:
                found = await _alerts(service)
                return found if len(found) >= 6 else None

            found = await wait_for(six)
            assert sorted(a.device_id for a in found) == [f"P{i}" for i in range(6)]
            await wait_for(lambda: _async(service.pipeline.lifecycle.refused >= 1))  # type: ignore[union-attr]
            assert "P-BAD:fire" not in service.pipeline.lifecycle.open  # type: ignore[union-attr]
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP TRIGGER refuse ON alerts")
            # No reset: to the panel's detector the next alarm is more evidence for an incident whose alert
            # the store refused; it used to be dropped until the panel was reset, now it raises the alert.
            await _publish(settings.mqtt.port, [_fire("P-BAD", now + 1000)])

            async def bad() -> list[Alert]:
                return [a for a in await _alerts(service) if a.device_id == "P-BAD"]

            (alert,) = await wait_for(bad)
            assert (alert.rule, alert.state) == ("fire", AlertState.FIRING)
        finally:
            await service.stop()


async def _async(value: bool) -> bool:
    return value


async def test_a_dead_task_restarts_and_health_says_so_meanwhile(settings: Settings, monkeypatch) -> None:
    """A failure nobody foresaw (here parse made to raise on one topic) kills the processing task:
    it is restarted, /health answers 503 while it is down, and the next fire alarm becomes an alert."""
    real_parse = service_module.parse

    def parse(topic: str, payload: bytes, now_ms: int | None = None):
        if topic.endswith("/BOOM/event"):
            raise RuntimeError("an unforeseen bug")
        return real_parse(topic, payload, now_ms)

    monkeypatch.setattr(service_module, "parse", parse)
    port = free_port()
    service = AlertingService(settings)
    service.supervisor.restart_s = 1.5
    service.metrics.serve(port, service.supervisor)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/health")).status_code == 200
            now = int(time.time() * 1000)
            await _publish(settings.mqtt.port, [("fire/v1/510104/BOOM/event", b"{}")])

            async def unhealthy() -> httpx.Response | None:
                r = await http.get("/health")
                return r if r.status_code == 503 else None

            r = await wait_for(unhealthy, 5)
            assert r.json() == {"healthy": False, "tasks_down": ["alerting-process"]}
            assert "firewatch_alerting_tasks_down 1.0" in (await http.get("/metrics")).text
            await _publish(settings.mqtt.port, [_fire("P1", now)])
            (alert,) = await wait_for(lambda: _alerts(service))
            assert alert.device_id == "P1"
            assert (await http.get("/health")).status_code == 200
            text = (await http.get("/metrics")).text
            assert 'firewatch_alerting_task_restarts_total{task="alerting-process"} 1.0' in text
    finally:
        await service.stop()
        await asyncio.to_thread(service.metrics.close)
