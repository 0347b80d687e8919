"""Restarts without storms, on a real broker and SQL store: after alerting or the broker restarts,
devices get a grace of their reporting period before anyone is declared offline.

Before, every restart marked the whole city offline for a moment (the retained last wills
of the devices' previous connections, or the silence while the broker was down): hundreds
of offline warnings fired and cleared, stayed in the week's statistics and could page.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt
import orjson
import pytest
from sqlalchemy import select

from firewatch.alerting.service import AlertingService
from firewatch.contract.db import Alert, Device, open_store
from firewatch.contract.settings import Settings
from tests.conftest import OwnServices, make_settings

DEVICES = [f"HY{k:03d}" for k in range(40)]
PERIOD_S = 2
"""The hydrants' reporting period here: offline after two missed, i.e. 4 s of silence."""


def _settings(tmp_path: Path, own_services: OwnServices) -> tuple[Settings, object]:
    broker, influx = own_services.mosquitto(), own_services.influxd()
    s = make_settings(tmp_path, broker.port, influx.url, "firewatch")
    return s.model_copy(update={"alerting": {"hydrant": {"report_interval_s": PERIOD_S}, "metrics_port": 0}}), broker


async def _register(settings: Settings) -> None:
    store = await open_store(settings.store.url)
    async with store.session() as s, s.begin():
        s.add_all(Device(id=d, kind="hydrant", district="510104") for d in DEVICES)
    await store.aclose()


async def _report(port: int, online: bool | None = None, retain: bool = False, clock: bool = True) -> None:
    now = int(time.time() * 1000)
    stamp = {"ts": now} if clock else {}
    async with aiomqtt.Client("127.0.0.1", port) as c:
        for d in DEVICES:
            if online is None:
                body = {"ts": now, "kind": "hydrant", "m": {"pressure_mpa": 0.3}}
                await c.publish(f"fire/v1/510104/{d}/telemetry", orjson.dumps(body), qos=1)
            else:
                await c.publish(f"fire/v1/510104/{d}/status", orjson.dumps({**stamp, "online": online}),
                                qos=1, retain=retain)


async def _offline_alerts(service: AlertingService) -> list[Alert]:
    assert service.store is not None
    async with service.store.session() as s:
        return list((await s.execute(select(Alert).where(Alert.rule == "offline"))).scalars())


async def _city_reporting(port: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await _report(port)
        await asyncio.sleep(PERIOD_S / 2)


@pytest.mark.parametrize("clock", [True, False], ids=["wills-with-ts", "clockless-wills"])
async def test_a_restart_finds_the_previous_last_wills_and_declares_nobody_offline(
    tmp_path: Path, own_services: OwnServices, clock: bool
) -> None:
    """A clockless will (no `ts`, as a device's last will usually is) has no time of its own: the
    retained copy the broker sends on subscribing is dated before the subscription, so it waits out
    the grace too (it was dated at arrival and took every such device offline at once)."""
    settings, broker = _settings(tmp_path, own_services)
    await _register(settings)
    # what the broker keeps from the devices' previous connections: their last wills, retained
    await _report(broker.port, online=False, retain=True, clock=clock)
    service = AlertingService(settings)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        await _report(broker.port, online=True, retain=True)  # the city comes back within its period
        await _city_reporting(broker.port, 3 * PERIOD_S)
        assert await _offline_alerts(service) == []
        # a device that really stays away is still declared offline once its grace is over
        async with aiomqtt.Client("127.0.0.1", broker.port) as c:
            await c.publish("fire/v1/510104/HY000/status", orjson.dumps({"ts": int(time.time() * 1000), "online": False}), qos=1)
        end = time.monotonic() + 10
        while not await _offline_alerts(service) and time.monotonic() < end:
            await asyncio.sleep(0.2)
        (alert,) = await _offline_alerts(service)
        assert alert.device_id == "HY000" and "ms" not in alert.summary, alert.summary
    finally:
        await service.stop()


async def test_a_broker_restart_longer_than_the_reporting_period_is_no_offline_storm(
    tmp_path: Path, own_services: OwnServices
) -> None:
    settings, broker = _settings(tmp_path, own_services)
    await _register(settings)
    service = AlertingService(settings)
    await service.start()
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        await _city_reporting(broker.port, PERIOD_S)
        broker.stop()
        await asyncio.sleep(3 * PERIOD_S)  # silence longer than the offline limit
        broker.start()
        await asyncio.wait_for(_wait_connected(service), 20)
        await _city_reporting(broker.port, 3 * PERIOD_S)
        assert await _offline_alerts(service) == []
    finally:
        await service.stop()


async def _wait_connected(service: AlertingService) -> None:
    while not service.subscribed:
        await asyncio.sleep(0.1)
