"""Ingest against a real Mosquitto and a real InfluxDB: what goes in comes out, once, tagged."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest

from contract.db import Device, open_store
from contract.influx import Influx
from contract.settings import Settings
from ingest import Ingestor

NOW = int(time.time() * 1000) - 3_600_000
_publishers = itertools.count()


def telemetry(kind: str, ts: int, seq: int, **metrics: float | bool) -> bytes:
    return orjson.dumps({"ts": ts, "seq": seq, "kind": kind, "m": metrics})


class Publisher:
    """A paho client (not ours) publishing QoS 1, so the test checks interoperation too."""

    def __init__(self, settings: Settings) -> None:
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"testpub{next(_publishers)}", protocol=paho.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        self.client.loop_start()
        self.sent: list[paho.MQTTMessageInfo] = []

    def send(self, topic: str, payload: bytes) -> None:
        self.sent.append(self.client.publish(topic, payload, qos=1))

    def wait(self) -> None:
        for info in self.sent:
            info.wait_for_publish(10)
        self.sent.clear()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()
        self.client.disconnect()
        self.client.loop_stop()


async def eventually(check: Callable[[], Any], expected: Any, timeout_s: float = 20.0) -> None:
    """Poll `check` (plain or async) until it returns `expected`; fail with the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected!r}, still {got!r} after {timeout_s} s")
        await asyncio.sleep(0.05)


async def count_points(influx: Influx, measurement: str, field: str) -> int:
    series = await influx.query(f'SELECT count("{field}") FROM "{measurement}"')
    return series[0].values[0][1] if series else 0


@pytest.fixture
async def ingestor(settings: Settings) -> AsyncIterator[Ingestor]:
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    yield ing
    await ing.stop()


async def test_every_message_becomes_one_point_with_tags_fields_and_time(settings: Settings) -> None:
    store = await open_store(settings.store.url)
    async with store.session() as s:
        s.add(Device(id="E1", kind="electrical", district="510104", site="mall-7"))
        await s.commit()
    await store.aclose()
    ing = Ingestor(settings)
    await ing.start()
    await asyncio.wait_for(ing.ready.wait(), 10)
    n = 300
    with Publisher(settings) as pub:
        for i in range(n):
            pub.send("fire/v1/510104/E1/telemetry", telemetry("electrical", NOW + i, i, temp1_c=20.0 + i / 10, residual_ma=i))
            pub.send(f"fire/v1/510105/H{i % 7}/telemetry", telemetry("hydrant", NOW + i, i, pressure_mpa=0.3, cover_open=i % 2 == 0))
        pub.send("fire/v1/510104/P1/event", orjson.dumps({"ts": NOW, "seq": 1, "kind": "panel", "event": "fire", "loop": 1, "point": 23, "zone": "3F east", "component": "smoke"}))
        pub.send("fire/v1/510104/P1/status", orjson.dumps({"ts": NOW, "online": True, "fw": "2.1.0"}))
        pub.wait()
    async with Influx(settings.influx) as influx:
        await eventually(lambda: count_points(influx, "electrical", "residual_ma"), n)
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), n)
        await eventually(lambda: count_points(influx, "device_status", "online"), 1)
        rows = (await influx.query('SELECT * FROM electrical WHERE time = $t', {"t": (NOW + 42) * 1_000_000}))[0].rows()
        assert rows == [
            {
                "time": NOW + 42,
                "device_id": "E1",
                "district": "510104",
                "site": "mall-7",
                "residual_ma": 42.0,
                "temp1_c": pytest.approx(24.2),
                "seq": 42,
            }
        ]
        hydrant = (await influx.query('SELECT * FROM hydrant WHERE device_id = $d LIMIT 1', {"d": "H2"}))[0].rows()
        assert "site" not in hydrant[0] and hydrant[0]["district"] == "510105"
        assert hydrant[0]["cover_open"] == 1.0
        event = (await influx.query("SELECT * FROM panel_event"))[0].rows()
        assert event == [
            {"time": NOW, "device_id": "P1", "district": "510104", "event": "fire", "loop": 1,
             "point": 23, "zone": "3F east", "component": "smoke", "seq": 1}
        ]
        status = (await influx.query("SELECT online, fw FROM device_status"))[0].rows()
        assert status == [{"time": NOW, "online": True, "fw": "2.1.0"}]
    await ing.stop()
    assert ing.metrics.value("firewatch_ingest_messages_received_total") == 2 * n + 2
    assert ing.metrics.value("firewatch_ingest_records_written_total") == 2 * n + 2


async def test_a_redelivered_message_is_stored_once(settings: Settings, ingestor: Ingestor) -> None:
    with Publisher(settings) as pub:
        for _ in range(3):
            pub.send("fire/v1/d1/H1/telemetry", telemetry("hydrant", NOW, 7, pressure_mpa=0.31))
        pub.wait()
    async with Influx(settings.influx) as influx:
        await eventually(lambda: ingestor.metrics.value("firewatch_ingest_messages_received_total"), 3)
        await eventually(lambda: count_points(influx, "hydrant", "pressure_mpa"), 1)
    assert ingestor.metrics.value("firewatch_ingest_duplicates_total") == 2
