"""The api on several workers: every worker hears every device status, each change is recorded once.

The listeners are real (real Mosquitto, SQLite and PostgreSQL); two of them in one
process stand for two workers, so the test can wait until both have written every
status before it counts the audit rows. `firewatch api --workers 2` itself runs as
a real process tree, answers, and records a status.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import paho.mqtt.publish as mqtt_publish
import psutil
import pytest
from sqlalchemy import func, select

from firewatch.api.live import Feed, Listener
from firewatch.api.supervision_runtime import alone, sweep_lock
from firewatch.api.tables import DeviceState
from firewatch.bench.api import ApiProcess
from firewatch.contract.db import AuditEntry, Store, open_store
from firewatch.contract.payload import DeviceStatus
from firewatch.contract.settings import Settings
from tests import test_api_server
from tests.conftest import wait_for
from tests.postgres import database
from tests.test_api import HYDRANT, write_lines
from tests.test_api_server import ApiThread, client, tokens

api = test_api_server.api
"""The in-process api over this test's services."""

DEVICES = 30
CHANGES = 4
"""Each device goes online, offline, online, offline: four changes, each to be audited once."""


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield settings
        return
    with database("fw_workers") as url:
        yield settings.model_copy(update={"store": settings.store.model_copy(update={"url": url})})


async def _audited(store: Store) -> int:
    async with store.session() as s:
        return (
            await s.execute(select(func.count()).where(AuditEntry.subject.like("device:%")))
        ).scalar_one()


async def _end(tasks: list[asyncio.Task[None]], stores: list[Store]) -> None:
    """The workers' tasks cancelled and finished, then their stores closed."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for store in stores:
        await store.aclose()


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
            await _end(tasks, stores)

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


def test_a_restarted_api_keeps_the_time_a_device_went_offline(settings: Settings) -> None:
    """A device's last will (no `ts`) is retained by the broker and sent again to every api that
    starts. It used to be recorded as said at that moment, so each api restart moved the device's
    "offline since" to the restart. One that agrees with the store changes nothing now; one that
    says something new (a device that died while the api was away) is still recorded."""
    s = settings
    will, away = "fire/v1/510104/L-1/status", "fire/v1/510104/L-2/status"

    async def state(store: Store, device: str) -> DeviceState | None:
        async with store.session() as session:
            return await session.get(DeviceState, device)

    @contextlib.asynccontextmanager
    async def listening(store: Store) -> AsyncIterator[Listener]:
        """An api's live side, from subscribed to stopped."""
        listener = Listener(s.mqtt, store, Feed(store))
        tasks = [asyncio.create_task(listener.run()), asyncio.create_task(listener.record_statuses())]
        try:
            await _until(lambda: listener.connected, lambda: "the api to subscribe")
            yield listener
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def go() -> None:
        store = await open_store(s.store.url)
        try:
            async with listening(store) as first_api:
                await asyncio.to_thread(mqtt_publish.multiple, [
                    {"topic": will, "payload": '{"online": false}', "qos": 1, "retain": True},
                    {"topic": away, "payload": f'{{"ts": {int(time.time() * 1000)}, "online": true}}', "qos": 1},
                ], hostname="127.0.0.1", port=s.mqtt.port)
                await _until(lambda: first_api.statuses_written >= 2, lambda: "both live statuses recorded")
            first = await state(store, "L-1")
            assert first is not None and not first.online
            audited = await _audited(store)
            # L-2 dies while no api runs: only its retained will tells the next api
            await asyncio.to_thread(mqtt_publish.single, away, '{"online": false}', qos=1, retain=True,
                                    hostname="127.0.0.1", port=s.mqtt.port)
            await _until(lambda: int(time.time() * 1000) > first.ts_ms + 1, lambda: "the clock to move")
            async with listening(store) as restarted:
                await _until(lambda: restarted.statuses_written >= 2, lambda: "the restarted api to read both wills")
            again, died = await state(store, "L-1"), await state(store, "L-2")
            assert again is not None and (again.online, again.ts_ms) == (False, first.ts_ms)
            assert died is not None and not died.online
            assert await _audited(store) == audited + 1, "only L-2's change is new"
        finally:
            await store.aclose()

    asyncio.run(go())


def test_consoles_opening_one_chart_share_its_answer_and_see_new_readings(api: ApiThread) -> None:
    """Two consoles opening the last 24 h of a device moments apart (each its own now minus 24 h) get the
    same answer on whole windows, the second as a 304; a new reading shows within seconds."""
    admin = client(api, tokens(api.settings)["admin"])
    assert admin.post("/api/v1/devices", json=HYDRANT).status_code == 201
    now = int(time.time() * 1000)
    write_lines(api.settings, [f"hydrant,device_id=H-1,district=510104 pressure_mpa=0.3 {now - 3_600_000}"])
    window_start = (now - 86_400_000) - (now - 86_400_000) % 300_000  # 24 h in about 400 points: 5 min
    chart = "/api/v1/devices/H-1/readings"

    def second_console_gets_304() -> bool:
        """Two starts inside one 5-minute window, as two consoles' clocks give them (a new window between
        the two requests changes the answer's end: then ask again)."""
        first = admin.get(chart, params={"start": window_start + 1000})
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["start_ms"] % 300_000, body["end_ms"] % 300_000, body["window"]) == (0, 0, "5m")
        assert body["start_ms"] == window_start
        again = admin.get(chart, params={"start": window_start + 4000}, headers={"If-None-Match": first.headers["etag"]})
        return again.status_code == 304

    wait_for(second_console_gets_304, timeout_s=10)
    write_lines(api.settings, [f"hydrant,device_id=H-1,district=510104 pressure_mpa=0.9 {now - 60_000}"])

    def latest() -> float | None:
        return admin.get(chart, params={"start": window_start + 1000}).json()["series"][0]["values"]["pressure_mpa"][-1]

    wait_for(lambda: latest() == 0.9, timeout_s=10)


def test_one_worker_runs_the_supervision_sweep_and_another_takes_over_when_it_stops(
        store_settings: Settings) -> None:
    """Two workers on one store: the sweep runs in one; a third asking meanwhile is refused the lock;
    when the sweeping worker goes, the waiting one starts sweeping."""
    ran: list[int] = []

    async def sweep(k: int) -> None:
        ran.append(k)
        await asyncio.Event().wait()  # the supervisor's loop never returns

    async def go() -> tuple[list[int], bool, list[int]]:
        stores = [await open_store(store_settings.store.url) for _ in range(3)]
        tasks = [asyncio.create_task(alone(stores[k], functools.partial(sweep, k), 0.05)) for k in range(2)]
        try:
            await _until(lambda: len(ran) >= 1, lambda: "a worker to start sweeping")
            first = list(ran)
            async with sweep_lock(stores[2]) as third:
                pass
            tasks[first[0]].cancel()
            await asyncio.gather(tasks[first[0]], return_exceptions=True)
            await _until(lambda: len(ran) == 2, lambda: f"the other worker to take over (swept: {ran})")
            return first, third, list(ran)
        finally:
            await _end(tasks, stores)

    first, third, swept = asyncio.run(go())
    assert len(first) == 1 and not third, f"sweeping at first: {first}; a third worker got the lock: {third}"
    assert sorted(swept) == [0, 1]
