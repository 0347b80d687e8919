"""`firewatch up`: the whole platform on one machine, for a first look and for demos.

It reuses a broker and an InfluxDB already reachable at the configured
addresses, or starts its own under the data folder; then it runs every part as
its own process, with the same `firewatch` commands a deployment runs, so that
a crash in one part cannot take the others down and Ctrl-C stops them all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console

from firewatch.alerting.config import load as load_alerting
from firewatch.contract.influx import Influx
from firewatch.contract.settings import Settings
from firewatch.services import InfluxD, Mosquitto

console = Console()


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


def _own_services(settings: Settings) -> list[Mosquitto | InfluxD]:
    """Start what is not already running; return what we started, to stop it later."""
    data = settings.up.data_dir
    started: list[Mosquitto | InfluxD] = []
    if _reachable(settings.mqtt.host, settings.mqtt.port):
        console.print(f"broker: using the one at {settings.mqtt.host}:{settings.mqtt.port}")
    else:
        m = Mosquitto(data / "mosquitto", port=settings.mqtt.port)
        m.start()
        started.append(m)
        console.print(f"broker: started Mosquitto on 127.0.0.1:{m.port} (data in {m.dir})")
    url = urlparse(settings.influx.url)
    if _reachable(url.hostname or "127.0.0.1", url.port or 8086):
        console.print(f"InfluxDB: using the one at {settings.influx.url}")
    else:
        i = InfluxD(data / "influxdb", port=url.port or 8086)
        i.start()
        started.append(i)
        console.print(f"InfluxDB: started influxd on {i.url} (data in {i.dir})")
    return started


def _spawn(part: Part, config: Path | None) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "firewatch"]
    if config:
        args += ["--config", str(config)]
    return subprocess.Popen(args + part.args, env=os.environ.copy())


def run(settings: Settings, config: Path | None, devices: int) -> int:
    # A bad [alerting] stops `up` before anything starts.
    alerting_metrics = load_alerting(settings.alerting).metrics_port
    settings.up.data_dir.mkdir(parents=True, exist_ok=True)
    started = _own_services(settings)
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
            proc = _spawn(part, config)
            if part.name == "registry":
                proc.wait()
                continue
            children.append((part, proc))
        metrics = settings.ingest.metrics_port
        alerting_stats = f"http://127.0.0.1:{alerting_metrics}/metrics"
        console.print(
            f"\n[bold]firewatch is up[/bold]\n"
            f"  console        {settings.api.public_url}/   (sign in with the admin token {token})\n"
            f"  API            {settings.api.public_url}/openapi.json\n"
            + (f"  ingest stats   http://127.0.0.1:{metrics}/metrics\n" if metrics else "")
            + (f"  alerting stats {alerting_stats}\n" if alerting_metrics else "")
            + f"  broker         mqtt://{settings.mqtt.host}:{settings.mqtt.port}  (topics fire/v1/#)\n"
            f"  InfluxDB       {settings.influx.url}  database {settings.influx.database}\n"
            f"  data           {settings.up.data_dir.resolve()}\n"
            "Ctrl-C stops everything.\n"
        )
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
        for service in reversed(started):
            service.stop()
        console.print("firewatch stopped.")


async def _prepare(settings: Settings) -> str:
    """Create the database, and the console's admin token on the first run.

    The token is kept in the data folder (only its hash is in the store) so that
    every `firewatch up` can show the operator how to sign in.
    """
    from firewatch.api.auth import issue

    async with Influx(settings.influx) as influx:
        await influx.create_database()
    kept = settings.up.data_dir / "admin-token"
    if not kept.exists():
        kept.touch(mode=0o600)
        kept.write_text(await issue(settings.store.url, "admin (firewatch up)", "admin"))
    return kept.read_text().strip()
