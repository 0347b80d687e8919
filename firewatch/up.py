"""`firewatch up`: the whole platform on one machine, for a first look and for demos.

It checks every part's settings first, then reuses a broker and an InfluxDB
already reachable at the configured addresses, or starts its own under the data
folder, but only at the default loopback addresses unless told to (`[up]
start_services`): a private broker on a port nobody publishes to would swallow
alarms. Then it runs every part as its own process, with the same `firewatch`
commands a deployment runs, so that a crash in one part cannot take the others
down and Ctrl-C stops them all, and says "is up" once each part answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
from rich.console import Console

from firewatch.alerting.config import load as load_alerting
from firewatch.check import check
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from firewatch.services import InfluxD, Mosquitto, ServiceError

console = Console()
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Part:
    name: str
    args: list[str]


def parts(settings: Settings, devices: int) -> list[Part]:
    """The processes of an embedded platform, in start order."""
    sim = ["simulate", "--devices", str(devices), "--seed", "1"]
    if settings.up.simulate_rate:
        sim += ["--rate", str(settings.up.simulate_rate)]
    return [
        Part("registry", [*sim, "--register", "--duration", "0"]),
        Part("ingest", ["ingest"]),
        Part("alerting", ["alerting"]),
        Part("api", ["api"]),
        Part("simulator", sim),
    ]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class UpError(RuntimeError):
    """`up` cannot start as configured; the message says what to change."""


@dataclass
class Service:
    """A broker or database `up` uses, and whether it started it (and so stops it)."""

    what: str
    address: str
    child: Mosquitto | InfluxD | None = None

    def describe(self) -> str:
        if self.child is None:
            return f"{self.address}  (already running; not started by firewatch up)"
        return f"{self.address}  (started by firewatch up, data in {self.child.dir})"


def _may_start(settings: Settings, what: str, address: str, default: bool, key: str) -> bool:
    """Start a private one only where devices and people would look for it anyway.

    A broker started on a port nobody else uses is worse than none: alarms published to
    the usual address vanish without an error anywhere.
    """
    wanted = settings.up.start_services
    if wanted is not None:
        if not wanted:
            raise UpError(f"no {what} answers at {address} and [up] start_services = false ({key})")
        return True
    if default:
        return True
    if sys.stdin.isatty():
        answer = console.input(
            f"[yellow]No {what} answers at {address} ({key}).[/yellow] Start one of its own there? [y/N] "
        )
        if answer.strip().lower() in ("y", "yes", "是"):
            return True
    raise UpError(
        f"no {what} answers at {address} ({key}); start it, fix {key}, or set "
        "[up] start_services = true to let firewatch up start one there"
    )


def _own_services(settings: Settings) -> list[Service]:
    """The broker and InfluxDB to use: the configured ones, started here only when allowed."""
    data = settings.up.data_dir
    m = settings.mqtt
    broker = Service("broker", f"mqtt://{m.host}:{m.port}")
    if not _reachable(m.host, m.port):
        loopback = m.host in LOOPBACK
        if _may_start(settings, "MQTT broker", broker.address, loopback and m.port == 1883, "mqtt.host/mqtt.port"):
            if not loopback:
                raise UpError(f"cannot start a broker at {broker.address}: not this machine (mqtt.host)")
            broker.child = Mosquitto(data / "mosquitto", port=m.port)
    url = urlparse(settings.influx.url)
    host, port = url.hostname or "127.0.0.1", url.port or 8086
    influx = Service("InfluxDB", settings.influx.url)
    if not _reachable(host, port):
        loopback = host in LOOPBACK
        default = loopback and port == 8086 and url.scheme == "http"
        if _may_start(settings, "InfluxDB", influx.address, default, "influx.url"):
            if not loopback:
                raise UpError(f"cannot start InfluxDB at {influx.address}: not this machine (influx.url)")
            influx.child = InfluxD(data / "influxdb", port=port)
    started: list[Mosquitto | InfluxD] = []
    try:
        for service in (broker, influx):
            if service.child is not None:
                service.child.start()
                started.append(service.child)
    except ServiceError as exc:
        for child in started:
            child.stop()
        raise UpError(str(exc)) from None
    return [broker, influx]


def _wait_until_answering(
    settings: Settings,
    children: list[tuple[Part, subprocess.Popen[bytes]]],
    alerting_metrics: int,
    stopped: Callable[[], bool],
    timeout_s: float = 90.0,
) -> None:
    """Return when the api's health check and every metrics endpoint answer; raise when a part died."""
    api_host = "127.0.0.1" if settings.api.host in ("0.0.0.0", "::") else settings.api.host
    checks = {"api": f"http://{api_host}:{settings.api.port}/api/v1/health"}
    if settings.ingest.metrics_port:
        checks["ingest"] = f"http://127.0.0.1:{settings.ingest.metrics_port}/metrics"
    if alerting_metrics:
        checks["alerting"] = f"http://127.0.0.1:{alerting_metrics}/metrics"
    waiting = dict(checks)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2) as http:
        while waiting and not stopped():
            for part, proc in children:
                if proc.poll() is not None:
                    raise UpError(f"{part.name} exited with {proc.returncode} while starting")
            for name, url in list(waiting.items()):
                try:
                    if http.get(url).status_code == 200:
                        del waiting[name]
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise UpError(f"{', '.join(waiting)} did not answer within {timeout_s:.0f} s ({', '.join(waiting.values())})")
            if waiting:
                time.sleep(0.3)


def _spawn(part: Part, config: Path | None, settings: Settings) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "firewatch"]
    if config:
        args += ["--config", str(config)]
    env = os.environ.copy()
    if settings.api.map_layer is None:
        from firewatch.simulators.citymap import LAYER_FILE

        env["FIREWATCH_API__MAP_LAYER"] = str(LAYER_FILE)  # the simulated city's boundaries and roads
    return subprocess.Popen(args + part.args, env=env)


def run(settings: Settings, config: Path | None, devices: int) -> int:
    # Every part's settings are checked before anything starts (SettingsError: exit 2).
    check(settings)
    alerting_metrics = load_alerting(settings.alerting).metrics_port
    settings.up.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        services = _own_services(settings)
    except UpError as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        return 2
    children: list[tuple[Part, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        token = asyncio.run(_prepare(settings))
        for part in parts(settings, devices):
            proc = _spawn(part, config, settings)
            if part.name == "registry":
                proc.wait()
                continue
            children.append((part, proc))
        try:
            _wait_until_answering(settings, children, alerting_metrics, lambda: stopping)
        except UpError as exc:
            console.print(f"[red]{exc}; stopping[/red]", soft_wrap=True)
            return 1
        if stopping:
            return 0
        broker, influx = services
        metrics = settings.ingest.metrics_port
        alerting_stats = f"http://127.0.0.1:{alerting_metrics}/metrics"
        console.print(
            f"\n[bold]firewatch is up[/bold]\n"
            f"  console        {settings.api.public_url}/   (sign in with the admin token {token})\n"
            f"  API            {settings.api.public_url}/openapi.json\n"
            + (f"  ingest stats   http://127.0.0.1:{metrics}/metrics\n" if metrics else "")
            + (f"  alerting stats {alerting_stats}\n" if alerting_metrics else "")
            + f"  broker         {broker.describe()}  topics fire/v1/#\n"
            f"  InfluxDB       {influx.describe()}  database {settings.influx.database}\n"
            f"  SQL store      {_shown(settings.store.url)}\n"
            f"  data           {settings.up.data_dir.resolve()}\n"
            "Ctrl-C stops everything.\n",
            soft_wrap=True,
        )
        sys.stdout.flush()  # through a pipe too, "is up" is seen when it is true
        while not stopping:
            for part, proc in children:
                if proc.poll() is not None and part.name != "simulator":
                    console.print(f"[red]{part.name} exited with {proc.returncode}; stopping[/red]")
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        for _, proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for _, proc in reversed(children):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for service in reversed(services):
            if service.child is not None:
                service.child.stop()
        console.print("firewatch stopped.")


def _shown(url: str) -> str:
    """The store's URL without its password, for a banner someone may screenshot."""
    parts = urlparse(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


async def _prepare(settings: Settings) -> str:
    """Create the database, and the console's admin token on the first run.

    The token is kept in the data folder (only its hash is in the store) so that
    every `firewatch up` can show the operator how to sign in.
    """
    from firewatch.api.auth import issue

    async with Influx(settings.influx) as influx:
        await influx.create_database()
    await _demo_districts(settings)
    kept = settings.up.data_dir / "admin-token"
    if not kept.exists():
        kept.touch(mode=0o600)
        kept.write_text(await issue(settings.store.url, "admin (firewatch up)", "admin"))
    return kept.read_text().strip()


async def _demo_districts(settings: Settings) -> None:
    """The simulated city's district names, unless a registry is already loaded."""
    from sqlalchemy import func, select

    from firewatch.contract.db import District, open_store
    from firewatch.contract.districts import parse_csv, replace_registry
    from firewatch.simulators.citymap import DISTRICTS_FILE

    store = await open_store(settings.store.url)
    try:
        async with store.session() as s:
            loaded = (await s.execute(select(func.count()).select_from(District))).scalar_one()
        if not loaded:
            await replace_registry(store, parse_csv(DISTRICTS_FILE.read_text(encoding="utf-8")), "firewatch up")
    finally:
        await store.aclose()
