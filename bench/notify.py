"""`firewatch bench notify`: from a panel's fire alarm published on MQTT to the first page a channel receives.

Real parts: Mosquitto and InfluxDB as child processes, `firewatch alerting` as
a child process (subscribe → parse → pipeline → change feed → routing →
escalation; with --standalone, alerting without notify and `firewatch notify` as a
second child process following the audit trail), a JSON webhook channel served here over HTTP, and a publisher
process sending a city's background telemetry (default 20,000 electrical
detectors at 2,000 messages/s) plus panel fire alarms, each from a new panel.
A fire's latency is the time from its publish (its `ts`) to the moment the
webhook receives the first page about it; `stored_to_page` is the notify
stages' share (from the lifecycle storing the alert to the page arriving).
Each paged fire is then confirmed real as the console's 真实火警 does (the alert
resolved with outcome `real_fire` and its audit row, in one transaction on the
store), and `confirm_to_handoff` is the time from that commit to the 119 side
(a second webhook path) receiving the hand-off; GB 50440 asks for 3 s.
Prints one JSON object with --json.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from firewatch.notify import load_file
from firewatch.services import InfluxD, Mosquitto

DISTRICTS = ("510104", "510105", "510106", "510107", "510108")
WARM_UP = "PWARMUP"


def _fire(client: Any, device: str, district: str, n: int) -> None:
    body = {"ts": int(time.time() * 1000), "seq": 1, "kind": "panel", "event": "fire", "loop": 1,
            "point": 1 + n % 200, "zone": f"{1 + n % 30}F", "component": "smoke"}
    client.publish(f"fire/v1/{district}/{device}/event", orjson.dumps(body), qos=1)


def _publish(port: int, devices: int, rate: float, fires_per_s: float, seconds: float) -> None:
    """Child process: background telemetry plus fire alarms, paced by the wall clock."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-notify-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    rng = random.Random(7)
    sent = fires = 0
    t0 = time.time()
    while (now := time.time()) - t0 < seconds:
        due = int((now - t0) * rate)
        while sent < due:
            d = sent % devices
            body = {"ts": int(time.time() * 1000), "seq": sent // devices, "kind": "electrical",
                    "m": {"residual_ma": 90 + rng.random() * 40, "temp1_c": 30 + rng.random() * 3,
                          "current_a_a": 20 + rng.random() * 5, "voltage_a_v": 220 + rng.random() * 4}}
            client.publish(f"fire/v1/{DISTRICTS[d % 5]}/E{d:06d}/telemetry", orjson.dumps(body), qos=1)
            sent += 1
        if fires < int((now - t0) * fires_per_s):
            _fire(client, f"P{fires:06d}", DISTRICTS[fires % 5], fires)
            fires += 1
        time.sleep(0.002)
    while fires < int(seconds * fires_per_s):
        _fire(client, f"P{fires:06d}", DISTRICTS[fires % 5], fires)
        fires += 1
    client.loop_stop()
    client.disconnect()


class _Pages:
    """What the webhook received: per alert, when its first fire page arrived (wall ms) and the alert's start."""

    def __init__(self, db: Path) -> None:
        self.first: dict[int, tuple[float, int, str]] = {}
        """alert id -> (received wall ms, published = alert start ms, device id)"""
        self.confirmed: dict[int, float] = {}
        """alert id -> wall ms its confirmation committed"""
        self.handed: dict[int, float] = {}
        """alert id -> wall ms the 119 side received its hand-off"""
        self.db = db
        self.lock = threading.Lock()

    def confirm(self, alert_id: int) -> None:
        """What the api's resolve with outcome real_fire writes: the alert and its audit row, one transaction."""
        with sqlite3.connect(self.db, timeout=30) as conn:
            now = int(time.time() * 1000)
            conn.execute("UPDATE alerts SET state = 'resolved', resolved_ms = ?, updated_ms = ? WHERE id = ?",
                         (now, now, alert_id))
            conn.execute("INSERT INTO audit (at_ms, actor, action, subject, detail) VALUES (?, 'bench', 'resolve', ?, ?)",
                         (now, f"alert:{alert_id}", '{"outcome": "real_fire"}'))
        with self.lock:
            self.confirmed[alert_id] = time.time() * 1000

    def handler(self) -> type[BaseHTTPRequestHandler]:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time() * 1000
                doc = orjson.loads(body)
                alert = doc["alert"]
                first = False
                with pages.lock:
                    if doc["purpose"] == "handoff":
                        pages.handed.setdefault(alert["id"], at)
                    elif doc["purpose"] == "page" and doc["severity"] == "fire":
                        first = alert["id"] not in pages.first
                        pages.first.setdefault(alert["id"], (at, alert["started_ms"], alert["device_id"]))
                self.send_response(204)
                self.end_headers()
                if first and not alert["device_id"].startswith(WARM_UP):
                    pages.confirm(alert["id"])

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _config(folder: Path, broker: Mosquitto, influx: InfluxD, standalone: bool, brigade: str) -> Path:
    path = folder / "firewatch.toml"
    path.write_text(f"""
[mqtt]
port = {broker.port}
[influx]
url = "{influx.url}"
database = "bench"
[store]
url = "sqlite:///{folder}/bench.db"
[up]
data_dir = "{folder}/data"
[notify]
secret = "bench"
embedded = {"false" if standalone else "true"}
metrics_port = 0
[notify.rate_limit]
per_person = 1000000
[notify.fire_brigade]
url = "webhook+{brigade}"
[[notify.routes]]
name = "all"
steps = [{{ notify = ["group:duty"] }}]
""", encoding="utf-8")
    return path


async def _roster(folder: Path, hook: str) -> None:
    roster = folder / "roster.yaml"
    roster.write_text(f'people: [{{id: duty, channels: ["webhook+{hook}"]}}]\ngroups: [{{id: duty, members: [duty]}}]\n')
    await load_file(f"sqlite:///{folder}/bench.db", roster)


def _warm_up(port: int, pages: _Pages, timeout_s: float = 90) -> None:
    """Fire once until a page arrives: then the service is subscribed and every stage has run once."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-notify-warm")
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.time() + timeout_s
    n = 0
    while not any(d.startswith(WARM_UP) for _, _, d in pages.first.values()):
        if time.time() > deadline:
            raise RuntimeError("the alerting service never paged the warm-up fire")
        _fire(client, f"{WARM_UP}{n}", DISTRICTS[0], n)
        n += 1
        time.sleep(1.0)
    client.loop_stop()
    client.disconnect()


def run(devices: int, rate: float, fires_per_s: float, seconds: float, folder: Path,
        standalone: bool = False) -> dict[str, Any]:
    pages = _Pages(folder / "bench.db")
    http = ThreadingHTTPServer(("127.0.0.1", 0), pages.handler())
    threading.Thread(target=http.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{http.server_address[1]}/duty"
    with Mosquitto(folder / "mosquitto") as broker, InfluxD(folder / "influxd") as influx:
        httpx.post(f"{influx.url}/query", data={"q": 'CREATE DATABASE "bench"'}).raise_for_status()
        config = _config(folder, broker, influx, standalone, f"http://127.0.0.1:{http.server_address[1]}/119")
        asyncio.run(_roster(folder, hook))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWATCH_")}
        log = (folder / "alerting.log").open("wb")
        children = [subprocess.Popen(
            [sys.executable, "-c", "from firewatch.cli import main; main()", "--config", str(config), part],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        ) for part in (("alerting", "notify") if standalone else ("alerting",))]
        try:
            _warm_up(broker.port, pages)
            before = len(pages.first)
            pub = multiprocessing.get_context("spawn").Process(
                target=_publish, args=(broker.port, devices, rate, fires_per_s, seconds)
            )
            pub.start()
            pub.join()
            expected = int(seconds * fires_per_s)
            deadline = time.time() + 30
            while len(pages.first) - before < expected and time.time() < deadline:
                time.sleep(0.1)
            deadline = time.time() + 30
            while len(pages.handed) < len(pages.confirmed) and time.time() < deadline:
                time.sleep(0.1)
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(15)
            log.close()
            http.shutdown()
    stored = _stored_ms(folder / "bench.db")
    rows = [(at - started, at - stored[a]) for a, (at, started, d) in pages.first.items()
            if not d.startswith(WARM_UP) and a in stored]
    lat = np.array(rows) if rows else np.full((1, 2), np.nan)
    handoff = np.array([pages.handed[a] - c for a, c in pages.confirmed.items() if a in pages.handed]
                       or [np.nan])
    return {
        "notify": "standalone" if standalone else "embedded",
        "devices": devices,
        "background_msgs_per_s": rate,
        "fires_published": int(seconds * fires_per_s),
        "fires_paged": len(rows),
        "fire_first_page_p50_ms": round(float(np.percentile(lat[:, 0], 50)), 1),
        "fire_first_page_p99_ms": round(float(np.percentile(lat[:, 0], 99)), 1),
        "fire_first_page_max_ms": round(float(np.max(lat[:, 0])), 1),
        "stored_to_page_p50_ms": round(float(np.percentile(lat[:, 1], 50)), 1),
        "stored_to_page_p99_ms": round(float(np.percentile(lat[:, 1], 99)), 1),
        "target_p99_ms": 1000,
        "fires_confirmed": len(pages.confirmed),
        "handed_to_119": len(pages.handed),
        "confirm_to_handoff_p50_ms": round(float(np.percentile(handoff, 50)), 1),
        "confirm_to_handoff_p99_ms": round(float(np.percentile(handoff, 99)), 1),
        "handoff_target_ms": 3000,
    }


def _stored_ms(db: Path) -> dict[int, int]:
    """When the lifecycle stored each alert: the wall time of its first audit entry."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT subject, MIN(at_ms) FROM audit WHERE actor = 'alerting' AND subject LIKE 'alert:%' GROUP BY subject"
        ).fetchall()
    return {int(subject.split(":", 1)[1]): at for subject, at in rows}


def main(devices: int, rate: float, fires_per_s: float, seconds: float, as_json: bool,
         standalone: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        result = run(devices, rate, fires_per_s, seconds, Path(tmp), standalone)
    if as_json:
        print(orjson.dumps(result).decode())
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")
