"""Alerting split by district: workers on one broker and one store, each alert raised once.

Three workers over disjoint districts (real Mosquitto; SQLite and PostgreSQL): a worker
owns its districts' devices alone — their offline detection, open alerts and learned
baselines — so a city of silent devices goes offline once per device, not once per
worker, and an alarm in each district is one alert. As real processes on PostgreSQL: a
worker SIGKILLed in the middle of a burst and restarted loses and doubles nothing, and a
district moved from one worker to another (settings, restart of both) is neither raised
twice nor missed while neither worker holds it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import httpx
import orjson
import pytest
from sqlalchemy import select

from firewatch.alerting.service import AlertingService
from firewatch.alerting.state import load_baselines, save_baselines
from firewatch.contract.db import Alert, Device, open_store
from firewatch.contract.settings import Settings
from firewatch.services import free_port
from tests.conftest import wait_for
from tests.test_api_workers import store_settings  # noqa: F401 - the same SQLite and PostgreSQL stores

DISTRICTS = ("510104", "510105", "510106")
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


def test_three_district_workers_raise_every_alert_once(store_settings: Settings) -> None:  # noqa: F811
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
            await save_baselines(store, "electrical", ["E-a", "E-b"],
                                 [("E-a", "510104", {"n": 1}), ("E-b", "510105", {"n": 1})])
            await save_baselines(store, "electrical", ["E-a"], [("E-a", "510104", {"n": 2})])
            return sorted((b.device_id, str(b.state["n"])) for b in await load_baselines(store))
        finally:
            await store.aclose()

    assert asyncio.run(go()) == [("E-a", "2"), ("E-b", "1")]


class AlertingProcess:
    """`python -m firewatch alerting --districts ...` with a settings file of its own: a worker to SIGKILL."""

    def __init__(self, folder: Path, settings: Settings, districts: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.districts, self.metrics_port = districts, free_port()
        self.config, self.log = folder / "firewatch.toml", folder / "alerting.log"
        s = settings
        self.config.write_text(f"""
[mqtt]
host = "127.0.0.1"
port = {s.mqtt.port}
client_id_prefix = "{s.mqtt.client_id_prefix}"
[influx]
url = "{s.influx.url}"
database = "{s.influx.database}"
[store]
url = "{s.store.url}"
[up]
data_dir = "{s.up.data_dir}"
[notify]
embedded = false
[alerting]
metrics_port = {self.metrics_port}
""", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Started and subscribed to every one of its districts (the broker keeps their messages from then on)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "firewatch", "--config", str(self.config), "alerting",
                 "--districts", ",".join(self.districts)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        wait_for(lambda: self._connected() or self._exited(), timeout_s=60)
        assert not self._exited(), self.log.read_text(errors="replace")[-3000:]

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _connected(self) -> bool:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False
        return "firewatch_alerting_broker_connected 1.0" in text

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, as a settings change's restart does; the batch in hand is finished and acknowledged."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def _alarm(district: str, device: str, ts: int) -> tuple[str, bytes]:
    return f"fire/v1/{district}/{device}/telemetry", orjson.dumps(
        {"ts": ts, "kind": "electrical", "m": {"residual_ma": 420.0}})


async def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def _raised(url: str, expected: set[tuple[str, str]], workers: list[AlertingProcess]) -> list[tuple[str, str]]:
    """Wait until every expected alert is stored, then give every stored (device, rule), repeats included."""
    seen: list[tuple[str, str]] = []

    def done() -> bool:
        nonlocal seen
        seen = [(device, rule) for device, rule, _ in asyncio.run(_alerts(url))]
        return expected <= set(seen)

    try:
        wait_for(done, timeout_s=30)
    except AssertionError:
        logs = "\n".join(w.log.read_text(errors="replace")[-2000:] for w in workers)
        raise AssertionError(f"stored {sorted(seen)}, want {sorted(expected)}; logs:\n{logs}") from None
    return seen


async def _register_city(url: str, districts: tuple[str, ...], per_district: int) -> None:
    """Electrical detectors that report hourly: no offline alert within a test, only the alarms it sends."""
    store = await open_store(url)
    async with store.session() as s, s.begin():
        s.add_all(Device(id=f"E-{d}-{k}", kind="electrical", district=d, site=f"S{d}", report_interval_s=3600)
                  for d in districts for k in range(per_district))
    await store.aclose()


def _city_with_an_alarm_each(s: Settings, tmp_path: Path, holdings: dict[str, list[str]],
                             per_district: int) -> tuple[list[AlertingProcess], int]:
    """Workers (name: districts) started over a registered city, and the first device of each district alarmed
    and raised: every worker is up and has processed something before the test's own steps."""
    districts = [d for held in holdings.values() for d in held]
    asyncio.run(_register_city(s.store.url, tuple(districts), per_district))
    workers = [AlertingProcess(tmp_path / name, s, held) for name, held in holdings.items()]
    try:
        for w in workers:
            w.start()
        now = int(time.time() * 1000)
        asyncio.run(_publish(s.mqtt.port, [_alarm(d, f"E-{d}-0", now) for d in districts]))
        _raised(s.store.url, {(f"E-{d}-0", "residual_current") for d in districts}, workers)
    except BaseException:
        for w in workers:
            w.stop()
        raise
    return workers, now


def _assert_raised_once(url: str, expected: set[tuple[str, str]]) -> None:
    seen = [(device, rule) for device, rule, _ in asyncio.run(_alerts(url))]
    doubled = sorted({a for a in seen if seen.count(a) > 1})
    assert not doubled and set(seen) == expected, f"raised twice: {doubled}; all: {sorted(seen)}"


@pytest.mark.postgres
@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_a_worker_killed_and_restarted_loses_and_doubles_nothing(
        store_settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    """SIGKILL right after a burst (some of it processed, none of it acknowledged for sure); what its
    districts publish while it is dead waits in its session. After the restart every alarm is one alert,
    and an alarm that goes on is not raised again."""
    s = store_settings
    workers, now = _city_with_an_alarm_each(s, tmp_path, {"a": ["510104"], "b": ["510105"]}, 5)
    try:
        # a burst the worker is in the middle of when it dies
        asyncio.run(_publish(s.mqtt.port, [_alarm("510104", f"E-510104-{k % 2}", now + k) for k in range(200)]))
        workers[0].kill()
        asyncio.run(_publish(s.mqtt.port, [_alarm("510104", f"E-510104-{k}", now + 1000 + k) for k in (0, 2, 3)]))
        workers[0].start()
        expected = {(f"E-510104-{k}", "residual_current") for k in range(4)} | {("E-510105-0", "residual_current")}
        _raised(s.store.url, expected, workers)
        # an alarm that goes on, then a new one behind it in the district's session: once the new one is
        # raised, the first was processed too
        asyncio.run(_publish(s.mqtt.port, [_alarm("510104", "E-510104-3", now + 2000),
                                           _alarm("510104", "E-510104-4", now + 2000)]))
        expected.add(("E-510104-4", "residual_current"))
        _raised(s.store.url, expected, workers)
    finally:
        for w in workers:
            w.stop()
    _assert_raised_once(s.store.url, expected)


@pytest.mark.postgres
@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_a_district_moved_to_another_worker_keeps_its_alerts_once_and_misses_nothing(
        store_settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    """510105 moves from the first worker to the second (settings, then a restart of both); what its devices
    publish while neither holds it is raised by the new owner, and its open alert is not raised again."""
    s = store_settings
    districts = ("510104", "510105", "510106")
    workers, now = _city_with_an_alarm_each(s, tmp_path, {"first": ["510104", "510105"], "second": ["510106"]}, 3)
    try:
        for w in workers:
            w.stop()
        # nobody holds 510105 now: an alarm that goes on, and a new one
        asyncio.run(_publish(s.mqtt.port, [_alarm("510105", f"E-510105-{k}", now + 1000) for k in (0, 1)]))
        first = AlertingProcess(tmp_path / "first-after", s, ["510104"])
        second = AlertingProcess(tmp_path / "second-after", s, ["510105", "510106"])
        workers = [first, second]
        for w in workers:
            w.start()
        asyncio.run(_publish(s.mqtt.port, [_alarm("510105", "E-510105-2", now + 2000),
                                           _alarm("510104", "E-510104-1", now + 2000)]))
        expected = {(f"E-{d}-0", "residual_current") for d in districts} | {
            ("E-510105-1", "residual_current"), ("E-510105-2", "residual_current"), ("E-510104-1", "residual_current")}
        _raised(s.store.url, expected, workers)
    finally:
        for w in workers:
            w.stop()
    _assert_raised_once(s.store.url, expected)
