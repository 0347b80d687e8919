"""Alerting split by district: workers on one broker and one store, each alert raised once.

Two workers over disjoint districts (real Mosquitto; SQLite and PostgreSQL): a worker
owns its districts' devices alone — their offline detection, open alerts and learned
baselines — so a city of silent devices goes offline once per device, not once per
worker, and an alarm in each district is one alert.
"""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import orjson
from sqlalchemy import select

from firewatch.alerting.service import AlertingService
from firewatch.alerting.state import load_baselines, save_baselines
from firewatch.contract.db import Alert, Device, open_store
from firewatch.contract.settings import Settings
from tests.test_api_workers import store_settings  # noqa: F401 - the same SQLite and PostgreSQL stores

DISTRICTS = ("510104", "510105")
PER_DISTRICT = 3


async def _register(url: str) -> None:
    store = await open_store(url)
    async with store.session() as s, s.begin():
        s.add_all(
            Device(id=f"E-{d}-{k}", kind="electrical", district=d, site=f"S{d}", report_interval_s=1)
            for d in DISTRICTS
            for k in range(PER_DISTRICT)
        )
    await store.aclose()


async def _alerts(url: str) -> list[tuple[str, str, str]]:
    store = await open_store(url)
    async with store.session() as s:
        rows = (await s.execute(select(Alert.device_id, Alert.rule, Alert.district))).all()
    await store.aclose()
    return [tuple(r) for r in rows]


def test_two_district_workers_raise_every_alert_once(store_settings: Settings) -> None:  # noqa: F811
    s = store_settings
    expected = {(f"E-{d}-{k}", "offline") for d in DISTRICTS for k in range(PER_DISTRICT)}
    expected |= {(f"E-{d}-0", "residual_current") for d in DISTRICTS}

    async def go() -> tuple[list[tuple[str, str, str]], list[set[str]], list[set[str]]]:
        await _register(s.store.url)
        workers = [AlertingService(s, [d]) for d in DISTRICTS]
        for w in workers:
            await w.start()
        try:
            for w in workers:
                await asyncio.wait_for(w.ready.wait(), 30)
            now = int(time.time() * 1000)
            async with aiomqtt.Client("127.0.0.1", s.mqtt.port) as client:
                for d in DISTRICTS:
                    await client.publish(f"fire/v1/{d}/E-{d}-0/telemetry", orjson.dumps(
                        {"ts": now, "kind": "electrical", "m": {"residual_ma": 420.0}}), qos=1)
            deadline = time.monotonic() + 60
            seen: list[tuple[str, str, str]] = []
            while not expected <= {(device, rule) for device, rule, _ in seen}:
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {sorted(expected)}; stored: {sorted(seen)}")
                await asyncio.sleep(0.1)
                seen = await _alerts(s.store.url)
            registries = [{i.district for i in w.pipeline.registry.devices.values()} for w in workers]
            owned = [{a.district for a in w.pipeline.lifecycle.open.values()} for w in workers]
            return seen, registries, owned
        finally:
            for w in workers:
                await w.stop()

    seen, registries, owned = asyncio.run(go())
    assert registries == [{d} for d in DISTRICTS], "each worker knows its own districts' devices only"
    assert owned == [{d} for d in DISTRICTS], "each worker's open alerts are its own districts'"
    doubled = sorted(a for a in seen if seen.count(a) > 1)
    assert not doubled and len(seen) == len(expected), f"raised twice: {doubled}; all: {sorted(seen)}"


def test_a_worker_saving_its_baselines_keeps_the_other_districts(store_settings: Settings) -> None:  # noqa: F811
    """Saving replaces the worker's own districts' learned state, never another worker's."""

    async def go() -> list[tuple[str, str]]:
        store = await open_store(store_settings.store.url)
        try:
            await save_baselines(store, "electrical", [("E-a", "510104", {"n": 1}), ("E-b", "510105", {"n": 1})])
            await save_baselines(store, "electrical", [("E-a", "510104", {"n": 2})], ["510104"])
            return sorted((b.device_id, str(b.state["n"])) for b in await load_baselines(store))
        finally:
            await store.aclose()

    assert asyncio.run(go()) == [("E-a", "2"), ("E-b", "1")]
