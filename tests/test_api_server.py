"""The api as a real HTTP server in a thread, with tokens of each role; used by all api tests.

Running uvicorn for real (not an in-process transport) is what the console,
the live stream and schemathesis see, so the tests exercise the same path.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import uvicorn

from firewatch.api import create_app
from firewatch.api.auth import issue
from firewatch.contract.settings import Settings
from firewatch.services import free_port

T = TypeVar("T")


class ApiThread:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings.model_copy(
            update={
                "api": settings.api.model_copy(update={"host": "127.0.0.1", "port": free_port()})
            }
        )
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api.port}"

    def start(self) -> ApiThread:
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.settings.api.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("api did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server and self.thread:
            self.server.should_exit = True
            self.thread.join(10)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end in a thread of its own, so it works beside Playwright's loop too."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(coro)))
    thread.start()
    thread.join()
    if not out:
        raise RuntimeError("coroutine failed; see the thread's traceback above")
    return out[0]


def tokens(settings: Settings) -> dict[str, str]:
    return {
        role: run(issue(settings.store.url, f"{role}-tester", role))  # type: ignore[arg-type]
        for role in ("viewer", "operator", "admin")
    }


def client(api: ApiThread, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api.url, headers=headers, timeout=10)


@pytest.fixture
def api(settings: Settings) -> Iterator[ApiThread]:
    server = ApiThread(settings).start()
    yield server
    server.stop()


def read_events(lines: Iterator[str], count: int, timeout_s: float = 10) -> list[dict[str, Any]]:
    """The next `count` SSE events (comments and keep-alives skipped) from a response's `iter_lines()`."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    for line in lines:
        if time.monotonic() > deadline:
            break
        if not line:
            if current:
                events.append(current)
                current = {}
                if len(events) >= count:
                    break
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        current[key] = orjson.loads(value) if key == "data" else value
    return events


def test_health_reports_every_backing_service(api: ApiThread) -> None:
    deadline = time.monotonic() + 10
    while True:
        r = httpx.get(f"{api.url}/api/v1/health")
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "broker": True, "influx": True, "store": True}


def test_health_says_which_service_is_down(own_services: Any, tmp_path: Any) -> None:
    m, i = own_services.mosquitto(), own_services.influxd()
    server = ApiThread(own_services.settings(tmp_path, m, i)).start()
    try:
        i.kill()
        r = httpx.get(f"{server.url}/api/v1/health")
        assert r.status_code == 503
        assert r.json()["influx"] is False and r.json()["store"] is True
    finally:
        server.stop()


def test_metrics_count_requests_by_route(api: ApiThread) -> None:
    httpx.get(f"{api.url}/api/v1/alerts/7")
    text = httpx.get(f"{api.url}/metrics").text
    assert (
        'firewatch_api_requests_total{method="GET",route="/api/v1/alerts/{alert_id}",status="401"} 1.0'
        in text
    )


class PipelineThread:
    """Ingest and alerting in this process, on an event loop of their own, as `firewatch up` runs them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(self) -> PipelineThread:
        self.thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        from firewatch.alerting.service import AlertingService
        from firewatch.ingest import Ingestor

        self.ingest = Ingestor(self.settings)
        await self.ingest.start()
        self.alerting = AlertingService(self.settings)
        await self.alerting.start()
        await asyncio.wait_for(self.alerting.ready.wait(), 30)

    async def _stop(self) -> None:
        await self.alerting.stop()
        await self.ingest.stop()

    def stop(self) -> None:
        try:
            self._call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def test_token_command_prints_a_token_once_that_the_api_accepts(api: ApiThread) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "FIREWATCH_STORE__URL": api.settings.store.url}
    env.pop("FIREWATCH_CONFIG", None)
    cmd = [sys.executable, "-m", "firewatch", "api", "token"]
    out = subprocess.run(
        cmd + ["create", "--role", "operator", "--name", "李娜"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out.startswith("fw_")
    assert client(api, out).get("/api/v1/session").json() == {"name": "李娜", "role": "operator"}
    bad = subprocess.run(
        cmd + ["create", "--role", "root", "--name", "x"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "role" in bad.stderr
    listed = subprocess.run(
        cmd + ["list"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "operator\t李娜\tactive" in listed and out not in listed


def test_the_api_reconnects_to_a_restarted_broker_and_records_statuses_again(
    own_services: Any, tmp_path: Any
) -> None:
    import paho.mqtt.publish as mqtt_publish

    from tests.conftest import wait_for

    m, i = own_services.mosquitto(), own_services.influxd()
    server = ApiThread(own_services.settings(tmp_path, m, i)).start()
    try:
        admin = client(server, tokens(server.settings)["admin"])
        admin.post("/api/v1/devices", json={"id": "H-7", "kind": "hydrant", "district": "510104"})
        wait_for(lambda: admin.get("/api/v1/health").json()["broker"])
        m.kill()
        wait_for(lambda: admin.get("/api/v1/health").status_code == 503)
        m.start()
        wait_for(lambda: admin.get("/api/v1/health").json()["broker"])
        status = f'{{"ts": {int(time.time() * 1000)}, "online": true}}'
        mqtt_publish.single("fire/v1/510104/H-7/status", status, hostname="127.0.0.1", port=m.port)
        wait_for(lambda: admin.get("/api/v1/devices/H-7").json()["status"])
    finally:
        server.stop()
