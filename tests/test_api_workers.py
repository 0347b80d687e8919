"""The api on several workers: every worker hears every device status, each change is recorded once.

The listeners are real (real Mosquitto, SQLite and PostgreSQL); two of them in one
process stand for two workers, so the test can wait until both have written every
status before it counts the audit rows. `firewatch api --workers 2` itself runs as
a real process tree, answers, and records a status.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import paho.mqtt.publish as mqtt_publish
import psutil
import pytest
from sqlalchemy import func, select

from firewatch.api.live import Feed, Listener
from firewatch.api.tables import DeviceState
from firewatch.bench.api import ApiProcess
from firewatch.contract.db import AuditEntry, Store, open_store
from firewatch.contract.payload import DeviceStatus
from firewatch.contract.settings import Settings
from tests.conftest import wait_for

SERVER = "postgresql://postgres@127.0.0.1:5432/test"
DEVICES = 30
CHANGES = 4
"""Each device goes online, offline, online, offline: four changes, each to be audited once."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield settings
        return
    import psycopg

    name = f"fw_workers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield settings.model_copy(
        update={"store": settings.store.model_copy(update={"url": SERVER.rsplit("/", 1)[0] + f"/{name}"})}
    )
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _audited(store: Store) -> int:
    async with store.session() as s:
        return (
            await s.execute(select(func.count()).where(AuditEntry.subject.like("device:%")))
        ).scalar_one()


async def _until(check: Callable[[], bool], what: Callable[[], str], timeout_s: float = 30) -> None:
    """Wait for `check()` without blocking the listeners; on timeout say what was seen."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what()}")
        await asyncio.sleep(0.05)


def test_two_workers_hear_every_status_and_record_each_change_once(store_settings: Settings) -> None:
    s = store_settings
    base = int(time.time() * 1000)

    async def go() -> tuple[int, list[int], int]:
        stores = [await open_store(s.store.url) for _ in range(2)]
        listeners = [
            Listener(s.mqtt.model_copy(update={"client_id_prefix": f"{s.mqtt.client_id_prefix}w{k}"}),
                     store, Feed(store))
            for k, store in enumerate(stores)
        ]
        tasks = [asyncio.create_task(job) for li in listeners for job in (li.run(), li.record_statuses())]
        try:
            await _until(lambda: all(li.connected for li in listeners), lambda: "both workers to connect")
            for k in range(CHANGES):  # a round at a time: statuses of one device within a flush collapse
                messages = [
                    {
                        "topic": f"fire/v1/510104/W-{d}/status",
                        "payload": f'{{"ts": {base + 1000 * k}, "online": {str(k % 2 == 0).lower()}}}',
                        "qos": 1,
                    }
                    for d in range(DEVICES)
                ]
                await asyncio.to_thread(mqtt_publish.multiple, messages, hostname="127.0.0.1", port=s.mqtt.port)
                await _until(
                    lambda k=k: all(li.statuses_written >= DEVICES * (k + 1) for li in listeners),
                    lambda k=k: f"both workers to write round {k} "
                    f"(written: {[li.statuses_written for li in listeners]}, want {DEVICES * (k + 1)} each)",
                )
            async with stores[0].session() as session:
                offline = (
                    await session.execute(select(func.count()).where(DeviceState.online.is_(False)))
                ).scalar_one()
            return await _audited(stores[0]), [li.status_changes for li in listeners], offline
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for store in stores:
                await store.aclose()

    audited, changes, offline = asyncio.run(go())
    assert audited == DEVICES * CHANGES, f"{audited} device audit rows for {DEVICES * CHANGES} changes"
    assert sum(changes) == DEVICES * CHANGES, f"changes recorded per worker: {changes}"
    assert offline == DEVICES


@pytest.mark.postgres
@pytest.mark.parametrize("store_settings", ["postgresql"], indirect=True)
def test_a_status_the_store_refuses_does_not_lose_the_others(store_settings: Settings) -> None:
    """PostgreSQL refuses a district longer than its column (SQLite stores any); the nine beside it are kept."""
    s = store_settings
    now = int(time.time() * 1000)

    async def go() -> tuple[int, int, int]:
        store = await open_store(s.store.url)
        listener = Listener(s.mqtt, store, Feed(store))
        task = asyncio.create_task(listener.record_statuses())
        try:
            for k in range(10):
                district = "9" * 300 if k == 4 else "510104"
                listener.offer(DeviceStatus(district, f"B-{k}", now, True))
            await _until(lambda: listener.statuses_refused + listener.statuses_written >= 10,
                         lambda: f"the ten statuses (written {listener.statuses_written}, "
                         f"refused {listener.statuses_refused})")
            return await _audited(store), listener.statuses_written, listener.statuses_refused
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await store.aclose()

    assert asyncio.run(go()) == (9, 9, 1)


def test_firewatch_api_with_two_workers_serves_and_records(tmp_path: Path, settings: Settings) -> None:
    s = settings
    api = ApiProcess(s, tmp_path, workers=2)
    api.start()
    try:
        assert api.proc is not None
        parent = psutil.Process(api.proc.pid)
        def workers() -> list[psutil.Process]:  # beside them the supervisor has a resource tracker
            return [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]

        wait_for(lambda: len(workers()) == 2, timeout_s=60)
        wait_for(lambda: httpx.get(f"{api.url}/api/v1/health", timeout=5).json()["broker"], timeout_s=60)
        mqtt_publish.single("fire/v1/510104/W-1/status", f'{{"ts": {int(time.time() * 1000)}, "online": false}}',
                            qos=1, hostname="127.0.0.1", port=s.mqtt.port)

        async def audited() -> int:
            store = await open_store(s.store.url)
            try:
                return await _audited(store)
            finally:
                await store.aclose()

        wait_for(lambda: asyncio.run(audited()) >= 1, timeout_s=30)
    finally:
        api.stop()
        log = api.log.read_text(errors="replace")
    assert api.proc.returncode == 0, log[-2000:]
    assert "Traceback" not in log, log[-4000:]
