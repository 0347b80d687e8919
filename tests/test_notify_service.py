"""`firewatch notify` on its own: a real subprocess following a real alerting service through the store.

Alerting runs with `[notify] embedded = false`, so the pages come from the notify process
alone; it is killed (SIGKILL, no goodbye) right after a page and started again while
another fire arrives. Every fire is paged once: none missed, none twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
from sqlalchemy import func, select

from firewatch.alerting.service import AlertingService
from firewatch.contract.db import AuditEntry, Severity, open_store
from firewatch.contract.settings import Settings
from firewatch.notify import embedded
from firewatch.notify.delivery import Message, MessageState
from firewatch.notify.roster import load_yaml
from firewatch.services import free_port
from tests.notify_servers import HttpSink
from tests.postgres import database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fw.db"
        return
    with database("fw_notify") as url:
        yield url


class NotifyProcess:
    """`python -m firewatch notify` with a settings file, its output kept for a failing test to show."""

    def __init__(self, tmp_path: Path, config: Path, metrics_port: int) -> None:
        self.config, self.metrics_port, self.log = config, metrics_port, tmp_path / "notify.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "firewatch", "--config", str(self.config), "notify"],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(30)
        return self.proc.returncode

    def metric(self, name: str, **labels: str) -> float | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            if head == (f"{name}{{{want}}}" if want else name):
                return float(value)
        return 0.0


def write_config(path: Path, settings: Settings, store_url: str, metrics_port: int) -> None:
    path.write_text(f"""
[mqtt]
host = "127.0.0.1"
port = {settings.mqtt.port}
[store]
url = "{store_url}"
[api]
secret = "test-secret"
public_url = "https://fw.example.org"
[up]
data_dir = "{settings.up.data_dir}"
[notify]
embedded = false
poll_s = 0.1
metrics_port = {metrics_port}
backoff_s = 0.05
[[notify.routes]]
name = "fire"
severity = ["fire"]
steps = [{{ notify = ["group:duty"], wait_min = 30 }}]
""", encoding="utf-8")
    settings.store.url = store_url
    settings.api.secret = "test-secret"
    settings.notify = {"embedded": False}
    settings.alerting = {"metrics_port": 0}


async def officer_and_alerting(settings: Settings, store_url: str, sink: HttpSink) -> AlertingService:
    """Officer zhang on duty, paged on the sink's webhook, and a started alerting service (notify not embedded)."""
    store = await open_store(store_url)
    await load_yaml(store, f"""
people: [{{id: zhang, name: 张伟, channels: ["webhook+{sink.base}/zhang"]}}]
groups: [{{id: duty, members: [zhang]}}]
""")
    await store.aclose()
    service = AlertingService(settings)
    await service.start()
    await asyncio.wait_for(service.ready.wait(), 30)
    return service


@pytest.fixture
async def alerting(settings: Settings, store_url: str, sink: HttpSink, tmp_path: Path) -> AsyncIterator[
        tuple[AlertingService, NotifyProcess]]:
    port = free_port()
    config = tmp_path / "firewatch.toml"
    write_config(config, settings, store_url, port)
    service = await officer_and_alerting(settings, store_url, sink)
    notify = NotifyProcess(tmp_path, config, port)
    try:
        yield service, notify
    finally:
        if notify.proc is not None:
            notify.stop()
        await service.stop()


async def fire(settings: Settings, panel: str) -> None:
    event = {"ts": int(time.time() * 1000), "kind": "panel", "event": "fire", "loop": 1, "point": 7,
             "zone": "2F west", "component": "smoke"}
    async with aiomqtt.Client("127.0.0.1", settings.mqtt.port) as client:
        await client.publish(f"fire/v1/510104/{panel}/event", json.dumps(event).encode(), qos=1)


def paged(sink: HttpSink) -> list[str]:
    """The device of each page the officer's webhook received, in order."""
    return [json.loads(r.body)["alert"]["device_id"] for r in sink.at("/zhang")]


async def until(check: object, what: str, seen: Callable[[], str] = str, timeout_s: float = 30) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not await asyncio.to_thread(check):  # type: ignore[arg-type]
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gave up waiting: {what}; {seen()}") from None


async def all_sent(store_url: str) -> bool:
    store = await open_store(store_url)
    try:
        async with store.session() as s:
            states = (await s.scalars(select(Message.state))).all()
    finally:
        await store.aclose()
    return bool(states) and all(st == MessageState.SENT for st in states)


async def test_notify_alone_pages_each_fire_once_across_a_kill_and_restart(
    alerting: tuple[AlertingService, NotifyProcess], settings: Settings, sink: HttpSink, store_url: str,
) -> None:
    service, notify = alerting
    assert embedded(settings) == [], "[notify] embedded = false: `firewatch alerting` runs no notify of its own"
    notify.start()
    await until(lambda: notify.metric("firewatch_notify_audit_cursor") is not None, "notify's metrics")

    await fire(settings, "P1")
    await until(lambda: paged(sink) == ["P1"], "the first fire paged")
    assert json.loads(sink.at("/zhang")[0].body)["severity"] == Severity.FIRE
    while not await all_sent(store_url):  # a kill before `sent` is recorded is the one documented resend
        await asyncio.sleep(0.02)
    await until(lambda: notify.metric("firewatch_notify_messages_total", result="sent", channel="webhook+http") == 1,
                "the page counted on notify's own metrics port")
    notify.kill()

    await fire(settings, "P2")
    async with asyncio.timeout(20):
        while service.metrics.value("firewatch_alerting_alert_changes_total", kind="fired", severity="fire") < 2:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert paged(sink) == ["P1"], "nobody pages while notify is down"

    notify.start()
    await until(lambda: paged(sink) == ["P1", "P2"], "the fire that arrived while notify was down",
                lambda: f"paged {paged(sink)}; notify's log:\n{notify.log.read_text()}")
    store = await open_store(store_url)
    try:
        async with store.session() as s:
            newest = await s.scalar(select(func.max(AuditEntry.id)))
    finally:
        await store.aclose()
    await until(lambda: (notify.metric("firewatch_notify_audit_cursor") or 0) >= newest, "every change handled")
    await asyncio.sleep(0.5)
    assert paged(sink) == ["P1", "P2"], "each fire paged once"
    assert notify.stop() == 0, notify.log.read_text()


def test_a_taken_metrics_port_stops_notify_naming_the_key(tmp_path: Path, settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "firewatch.toml"
        write_config(config, settings, f"sqlite:///{tmp_path}/fw.db", port)
        done = subprocess.run([sys.executable, "-m", "firewatch", "--config", str(config), "notify"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert f"notify.metrics_port: cannot serve on {port}" in done.stderr


def test_a_bad_metrics_port_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "firewatch.toml"
    config.write_text("[notify]\nmetrics_port = 70000\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "firewatch", "--config", str(config), "notify"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "notify.metrics_port" in done.stderr
