"""`firewatch bench api`: API latency under concurrent clients, and the console's first render.

Real services on loopback: Mosquitto, InfluxDB and `firewatch api` as a child
process (configured only by FIREWATCH_* variables, as an installer would). The
city (default 20,000 devices) is imported through the API's CSV import, open
alerts are written to the SQL store as alerting writes them, and one device gets
24 hours of readings at 30 s. An asyncio load client with N concurrent clients
then asks for the alert queue and for the 24-hour readings; finally headless
Chromium loads the console and reports when the map and queue first rendered
(the console's `fw-first-render` performance mark, from navigation start).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from firewatch.api.auth import issue
from firewatch.contract.db import Alert, AlertState, Severity, open_store
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from firewatch.services import InfluxD, Mosquitto, free_port
from firewatch.simulators import Fleet

CHROMIUM = "/usr/bin/chromium"


class ApiProcess:
    """`firewatch api --workers N` as a child process, configured only by FIREWATCH_* variables."""

    def __init__(self, settings: Settings, folder: Path, workers: int = 1) -> None:
        s = settings
        self.workers = workers
        self.port = free_port()
        self.env = {
            **os.environ,
            "FIREWATCH_MQTT__PORT": str(s.mqtt.port),
            "FIREWATCH_INFLUX__URL": s.influx.url,
            "FIREWATCH_INFLUX__DATABASE": s.influx.database,
            "FIREWATCH_STORE__URL": s.store.url,
            "FIREWATCH_MQTT__CLIENT_ID_PREFIX": s.mqtt.client_id_prefix,
            "FIREWATCH_API__PORT": str(self.port),
        }
        self.env.pop("FIREWATCH_CONFIG", None)
        self.log = folder / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "firewatch", "api", "--workers", str(self.workers)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 180  # workers import the app one each: 25 s apiece at load 14
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"api did not start within 180 s; see {self.log}")

    def processes(self) -> list[psutil.Process]:
        """The supervisor and its workers."""
        assert self.proc is not None
        top = psutil.Process(self.proc.pid)
        return [top, *top.children(recursive=True)]

    def stop(self) -> None:
        """SIGTERM (the supervisor stops its workers), then SIGKILL for whatever is left of the tree."""
        if self.proc and self.proc.poll() is None:
            workers = psutil.Process(self.proc.pid).children()
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            for w in workers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    w.kill()


async def _seed_alerts(settings: Settings, fleet: Fleet, count: int) -> None:
    store = await open_store(settings.store.url)
    now = int(time.time() * 1000)
    severities = (Severity.FIRE, Severity.CRITICAL, Severity.WARNING, Severity.WARNING, Severity.INFO)
    async with store.session() as s, s.begin():
        for k in range(count):
            d = fleet.devices[(k * 7919) % len(fleet.devices)]
            a = Alert(
                fingerprint=f"{d.id}:bench{k}",
                rule=f"bench{k % 5}",
                severity=severities[k % 5],
                state=AlertState.FIRING,
                kind=d.kind.value,
                device_id=d.id,
                district=d.district,
                site=d.site,
                summary="bench alert",
                score=(k % 100) / 100,
                reasons=["bench"],
                started_ms=now - k * 1000,
                last_seen_ms=now,
            )
            s.add(a)
            await s.flush()
            await store.audit(s, "alerting", "fired", f"alert:{a.id}")
    await store.aclose()


async def _seed_readings(settings: Settings, device_id: str, district: str) -> None:
    now = int(time.time() * 1000)
    lines = [
        f"hydrant,device_id={device_id},district={district} pressure_mpa={0.3 + (k % 60) / 1000},battery_pct=80 "
        f"{now - k * 30_000}"
        for k in range(2880)
    ]
    async with Influx(settings.influx) as influx:
        await influx.write("\n".join(lines))


class _Client:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads Content-Length answers, nothing more.

    The target is the server: httpx's pool walks every connection on each request
    (about 60 % of a core here at 50 clients), CPU the api's workers then lack on the same box.
    """

    def __init__(self, url: str, token: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> int:
        """The answer's status, its body read; a closed connection is opened again at the next request."""
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._conn
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n".encode() + self.auth + b"\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            await reader.readexactly(int(fields.get("content-length", 0)))
            if fields.get("connection") == "close":
                self.close()
            return int(lines[0].split(" ", 2)[1])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


def _cpu_s(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """CPU seconds (user + system) so far of each part's processes."""
    out = {}
    for part, group in procs.items():
        total = 0.0
        for p in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        out[part] = total
    return out


async def _load(
    url: str, token: str, path: str, clients: int, requests: int, procs: dict[str, list[psutil.Process]]
) -> dict[str, Any]:
    """`clients` concurrent connections sharing `requests` GETs; latency per request, throughput, CPU per part.

    A request that fails (status or connection) counts as an error, with its time and its kind
    (the status, or the exception's name), instead of ending the run. `alone_p50_ms` is the same
    request from one client before the load: the cost of one answer. `cpu_cores` is each part's
    CPU over the loaded run divided by its length: 2.0 is the whole of this 2-core machine.
    """
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    left = requests

    async def worker() -> None:
        nonlocal left
        client = _Client(url, token)
        while left > 0:
            left -= 1
            t = time.perf_counter()
            try:
                status = await asyncio.wait_for(client.get(path), 30)
                if status != 200:
                    errors[str(status)] += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                errors[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - t)
        client.close()

    one = _Client(url, token)
    alone = []
    for _ in range(50):
        t = time.perf_counter()
        await one.get(path)
        alone.append(time.perf_counter() - t)
    one.close()
    before = _cpu_s(procs)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    after = _cpu_s(procs)
    latencies.sort()
    return {
        "alone_p50_ms": round(1000 * statistics.median(alone), 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "cpu_cores": {part: round((after[part] - before[part]) / elapsed, 2) for part in procs},
    }


def _first_render(url: str, token: str, runs: int = 3) -> float | None:
    """Median time from navigation start to the console's first full render (map + queue)."""
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(url + "/")
        page.fill("#token", token)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        times = []
        for _ in range(runs):
            page.reload()
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            times.append(
                page.evaluate("performance.getEntriesByName('fw-first-render')[0].startTime")
            )
        browser.close()
    return round(statistics.median(times), 1)


def measure(devices: int, alerts: int, clients: int, requests: int, workers: int, folder: Path) -> dict[str, Any]:
    with Mosquitto(folder / "mosquitto") as m, InfluxD(folder / "influxd") as i:
        settings = Settings(
            mqtt={"port": m.port},
            influx={"url": i.url, "database": "bench"},
            store={"url": f"sqlite:///{folder}/firewatch.db"},
        )
        httpx.post(f"{i.url}/query", data={"q": 'CREATE DATABASE "bench"'}).raise_for_status()
        token = asyncio.run(issue(settings.store.url, "bench", "admin"))
        fleet = Fleet.build(devices, seed=3, districts=12)
        fleet.write_csv(folder / "city.csv")
        api = ApiProcess(settings, folder, workers)
        api.start()
        try:
            t = time.perf_counter()
            report = httpx.post(
                f"{api.url}/api/v1/devices/import",
                content=(folder / "city.csv").read_bytes(),
                headers={"Authorization": f"Bearer {token}", "content-type": "text/csv"},
                timeout=600,
            ).json()
            import_s = time.perf_counter() - t
            asyncio.run(_seed_alerts(settings, fleet, alerts))
            hydrant = fleet.of_kind("hydrant")[0]
            asyncio.run(_seed_readings(settings, hydrant.id, hydrant.district))
            procs = {
                "api": api.processes(),
                "influxd": [psutil.Process(i.proc.pid)] if i.proc else [],
                "client": [psutil.Process()],
            }
            alert_list = asyncio.run(
                _load(api.url, token, "/api/v1/alerts?state=open&limit=200", clients, requests, procs)
            )
            start = int(time.time() * 1000) - 86_400_000
            readings = asyncio.run(
                _load(
                    api.url,
                    token,
                    f"/api/v1/devices/{hydrant.id}/readings?start={start}",
                    clients,
                    requests,
                    procs,
                )
            )
            render_ms = _first_render(api.url, token)
        finally:
            api.stop()
    return {
        "devices": devices,
        "imported": report["created"],
        "import_s": round(import_s, 2),
        "open_alerts": alerts,
        "workers": workers,
        "clients": clients,
        "requests_per_endpoint": requests,
        "alert_list": alert_list,
        "readings_24h": readings,
        "console_first_render_ms": render_ms,
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1),
    }


def main(devices: int, alerts: int, clients: int, requests: int, workers: int, as_json: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="fw-bench-api-") as tmp:
        result = measure(devices, alerts, clients, requests, workers, Path(tmp))
    if as_json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    for key, value in result.items():
        print(f"{key:>24}: {value}")
