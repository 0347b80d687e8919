"""`firewatch alerting` end to end on a real broker, SQL store and InfluxDB: a device publishes, the alert
is stored, published on MQTT and written to InfluxDB; bad messages are counted and cost nothing else."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import orjson
from sqlalchemy import select

from firewatch.alerting.changes import AlertChange, ChangeFeed
from firewatch.alerting.outputs import to_mqtt
from firewatch.alerting.service import AlertingService
from firewatch.contract.db import Alert
from firewatch.contract.influx import Influx
from firewatch.contract.mqtt import Publisher, Session
from firewatch.contract.settings import Settings
from firewatch.services import Mosquitto


async def wait_for(predicate, timeout: float = 15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_device_message_to_stored_published_and_recorded_alert(settings: Settings) -> None:
    service = AlertingService(settings)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        now = int(time.time() * 1000)
        async with aiomqtt.Client("127.0.0.1", settings.mqtt.port) as client:
            await client.subscribe("fire/v1/_alerts/#", qos=1)
            await client.publish("fire/v1/510104/E1/telemetry", b"{not json", qos=1)
            for i in range(3):  # three impossible values within the hour: a sensor fault
                await client.publish("fire/v1/510104/E1/telemetry", orjson.dumps(
                    {"ts": now - 3000 + i, "kind": "electrical", "m": {"residual_ma": 5000}}), qos=1)
            await client.publish("fire/v1/510104/E1/telemetry", orjson.dumps(
                {"ts": now, "kind": "electrical", "m": {"residual_ma": 420.0, "temp1_c": 35.0}}), qos=1)
            await client.publish("fire/v1/510104/P7/event", orjson.dumps(
                {"ts": now, "kind": "panel", "event": "fire", "loop": 1, "point": 3, "zone": "2F",
                 "component": "smoke"}), qos=1)
            got = {}
            async with asyncio.timeout(15):
                async for m in client.messages:
                    doc = orjson.loads(m.payload)
                    got[doc["rule"]] = (m.topic.value, doc)
                    if {"residual_current", "fire"} <= got.keys():
                        break
        topic, doc = got["residual_current"]
        assert topic == "fire/v1/_alerts/510104/E1/residual_current"
        assert (doc["change"], doc["severity"], doc["value"], doc["started_ms"]) == ("fired", "critical", 420.0, now)
        assert got["fire"][1]["severity"] == "fire"

        async def stored() -> list[Alert]:
            async with service.store.session() as s:  # type: ignore[union-attr]
                return list((await s.execute(select(Alert).order_by(Alert.rule))).scalars())

        alerts = await wait_for(stored)
        assert {(a.rule, a.device_id, a.state) for a in alerts} >= {
            ("residual_current", "E1", "firing"), ("fire", "P7", "firing"), ("sensor_impossible", "E1", "firing")}
        assert service.rejected == {"bad_json": 1, "out_of_range": 3}

        async def points() -> list:
            async with Influx(settings.influx) as influx:
                series = await influx.query('SELECT * FROM "alert" WHERE "rule" = $rule', {"rule": "residual_current"})
            return [r for s in series for r in s.rows()]

        (point,) = await wait_for(points)
        assert (point["device_id"], point["severity"], point["state"], point["time"]) == ("E1", "critical", "firing", now)
    finally:
        await service.stop()


async def test_alert_publisher_stops_when_stopped_as_the_puback_arrives(mosquitto: Mosquitto) -> None:
    """The service stops its MQTT alert publisher by cancelling it. A cancel in the turn of the loop
    right after the PUBACK was read used to be lost (aiomqtt waited with asyncio.wait_for, which on
    Python 3.11 drops it): the publisher then waited for the next change for good, its
    connection open, and the service's stop reported it stuck."""
    feed = ChangeFeed()
    changes = feed.subscribe()
    loop = asyncio.get_running_loop()
    session = Session("127.0.0.1", mosquitto.port, "t-alert-publisher-stop", session_expiry_s=0)
    async with Publisher(session) as client:
        publisher = asyncio.create_task(to_mqtt(changes, client))
        was_pending = False

        def stop_once_acknowledged() -> None:
            """Each turn of the loop: the PUBACK is in once the connection forgets the pending publish."""
            nonlocal was_pending
            conn = client._conn
            if conn is not None and conn._waiting:  # private, but the one way to pin the PUBACK to a turn
                was_pending = True
            elif was_pending:
                publisher.cancel()
                return
            loop.call_soon(stop_once_acknowledged)

        loop.call_soon(stop_once_acknowledged)
        alert = Alert(id=1, rule="residual_current", severity="critical", state="firing", kind="electrical",
                      device_id="E1", district="510104", started_ms=1, last_seen_ms=1)
        feed.publish([AlertChange("fired", alert, 1)])
        try:
            await asyncio.wait({publisher}, timeout=15)
            assert was_pending and publisher.cancelled()
        finally:
            publisher.cancel()


async def test_stopped_in_a_flood_nothing_is_lost_and_nothing_raised_twice(settings: Settings, caplog) -> None:
    """A restart (deploy, crash) while devices keep publishing: the stop ends promptly and cleanly,
    and every alarm published before, during or after it becomes exactly one alert."""
    alarms = 600
    first = AlertingService(settings)
    await first.start()
    await asyncio.wait_for(first.ready.wait(), 10)
    now = int(time.time() * 1000)

    async def flood() -> None:
        async with aiomqtt.Client("127.0.0.1", settings.mqtt.port) as client:
            for i in range(6000):
                alarm = i % 10 == 5
                device = f"ALARM-{i // 10}" if alarm else f"E{i % 600}"
                body = {"ts": now + i, "kind": "electrical", "m": {"residual_ma": 420.0 if alarm else 30.0}}
                await client.publish(f"fire/v1/510104/{device}/telemetry", orjson.dumps(body), qos=1)

    publishing = asyncio.create_task(flood())
    await wait_for(lambda: _true(first.received > 1000))
    t = time.monotonic()
    await asyncio.wait_for(first.stop(), 30)
    assert time.monotonic() - t < 12, "a stop must not wait out locks or stuck tasks"
    await publishing

    second = AlertingService(settings)
    await second.start()
    try:
        store = second.store
        assert store is not None

        async def alarm_alerts() -> list[Alert]:
            async with store.session() as s:
                return list((await s.execute(select(Alert).where(Alert.device_id.like("ALARM-%")))).scalars())

        await wait_for(lambda: _at_least(alarm_alerts, alarms), 30)
        await asyncio.sleep(1)  # anything raised twice would show by now
        found = await alarm_alerts()
        assert sorted(a.device_id for a in found) == sorted(f"ALARM-{k}" for k in range(alarms))
    finally:
        await second.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and r.name.startswith("alerting")]
    assert errors == []


async def _at_least(query, n: int) -> bool:
    return len(await query()) >= n


async def _true(condition: bool) -> bool:
    return condition
